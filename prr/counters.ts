/**
 * The PRR's counters, declared once, in plain typed arrays. The data plane only increments
 * array slots; Prometheus reads them at scrape time (metrics issue), `prr subscribers` reads
 * them over the control socket. Drop reasons are one table with stable names (the `reason`
 * label), including every codec decode error.
 */
import { DECODE_ERROR_NAMES } from '../common/codec/result.js';
import { REASSEMBLY_DROP_NAMES } from './reassembly.js';
import { COUNTERS_AT, RECORD_F64, type BindingTable } from './bindings.js';

/** Why the PRR dropped a packet. Names are stable: they are metric labels. */
export const DROP_REASON_NAMES = [
  ...DECODE_ERROR_NAMES, // malformed packets, by what was wrong (truncated, bad_checksum, ...)
  'not_ipv4', // the IPv4 side or the tunnel carried something that is not IPv4
  'not_shared', // IPv4 destination is not one of the shared addresses
  'no_binding', // shared address, but no binding holds the port (RFC 7596: no softwire)
  'no_port', // a protocol without ports (or a non-first fragment) to a shared address
  'unknown_cpe', // tunnel packet from an IPv6 address with no binding
  'spoofed_ipv6', // the inner source is bound, but to another CPE's IPv6 address
  'port_outside_set', // a known CPE sent from an address/port outside its set
  'wrong_endpoint', // the CPE sent to a tunnel endpoint (BR) address that is not its own
  'tunnel_loop', // the inner packet would come straight back into a tunnel
  'hairpin_disabled', // customer-to-customer traffic with hairpinning off
  'ttl_expired', // TTL ran out here (an ICMP Time Exceeded may be sent)
  'over_mtu_df', // bigger than the tunnel MTU with DF set (Fragmentation Needed may be sent)
  'icmp_policy', // incoming ICMP refused by policy
  'icmp_unroutable', // ICMP error whose quoted packet matches no binding (forged or stale)
  'icmp_not_for_us', // an ICMPv6 error about a tunnel packet that we cannot relay
] as const;

export type DropReasonName = (typeof DROP_REASON_NAMES)[number];

/** Index of each reason in DROP_REASON_NAMES. */
export const Drop = Object.fromEntries(DROP_REASON_NAMES.map((n, i) => [n, i])) as { readonly [K in DropReasonName]: number };

/** Index of a codec DecodeError (negative) in the reason table. */
export function decodeDrop(code: number): number {
  return -code - 1;
}

/** Global counters (one slot each). */
export const GLOBAL_NAMES = [
  'in4_packets', // IPv4 read from the TUN (from the Internet)
  'in4_bytes',
  'in6_packets', // IPv4 received through the tunnel (from CPEs)
  'in6_bytes',
  'out4_packets', // IPv4 written to the TUN (to the Internet)
  'out4_bytes',
  'out6_packets', // IPv4 sent into the tunnel (to CPEs)
  'out6_bytes',
  'hairpin_packets',
  'hairpin_bytes',
  'icmp4_generated', // ICMPv4 errors the PRR made
  'icmp4_rate_limited', // ICMPv4 errors not sent because of the rate limit
  'icmp4_policy_suppressed', // ICMPv4 errors not sent because generate_icmp_errors is off
  'icmp_relayed', // ICMPv4 errors from the Internet relayed to a CPE by the quoted port
  'icmp6_translated', // ICMPv6 errors from the IPv6 core turned into ICMPv4 (RFC 2473 §8)
  'icmp6_generated', // ICMPv6 Destination Unreachable 5 sent to CPEs whose packet failed source validation
  'icmp6_rate_limited', // those not sent because of the internal side's rate limit
  'pmtu_lowered', // a binding's tunnel MTU lowered by a Packet Too Big
  'pmtu_raised', // a lowered tunnel MTU back to the full one after [tunnel] pmtu_timeout (RFC 8201 §4)
  'frag_needed_sent', // ICMPv4 Fragmentation Needed sent (to the Internet or a CPE), a subset of icmp4_generated
  'tx_errors', // sends the kernel refused
] as const;

export type GlobalName = (typeof GLOBAL_NAMES)[number];
export const G = Object.fromEntries(GLOBAL_NAMES.map((n, i) => [n, i])) as { readonly [K in GlobalName]: number };

/**
 * Per-binding counters, at perBinding[binding id * PER_BINDING + B.name]. Once attached to the
 * binding table they live in its records, beside what a packet reads of its binding (one cache
 * line per binding, see prr/bindings.ts): hence the stride of a record and B's offset in it.
 */
export const BINDING_NAMES = ['from_cpe_packets', 'from_cpe_bytes', 'to_cpe_packets', 'to_cpe_bytes', 'drops'] as const;
export type BindingCounterName = (typeof BINDING_NAMES)[number];
export const B = Object.fromEntries(BINDING_NAMES.map((n, i) => [n, COUNTERS_AT + i])) as { readonly [K in BindingCounterName]: number };
export const PER_BINDING = RECORD_F64;

/** What the counters read of a reassembler (prr/reassembly.ts). */
export interface ReassemblyView {
  readonly counters: { fragments: number; reassembled: number; drops: Float64Array };
  readonly inProgress: number;
  readonly fragmentsHeld: number;
  bytesHeld(): number;
}

export class PrrCounters {
  readonly global = new Float64Array(GLOBAL_NAMES.length);
  /** Drops of packets that came from the Internet (IPv4 side), by reason. */
  readonly drops4 = new Float64Array(DROP_REASON_NAMES.length);
  /** Drops of packets that came through the tunnel (IPv6 side), by reason. */
  readonly drops6 = new Float64Array(DROP_REASON_NAMES.length);
  private own: Float64Array;
  private table: BindingTable | undefined;

  constructor(bindings = 1024) {
    this.own = new Float64Array(Math.max(16, bindings) * PER_BINDING);
  }

  /** The per-binding counters: the table's records once attached, else an array of the same layout. */
  get perBinding(): Float64Array {
    return this.table !== undefined ? this.table.slots : this.own;
  }

  /**
   * Keep the per-binding counters in `table`'s records (what `prr run` does): the counters of
   * every binding id the table has handed out, growing with it. Counts made before are kept.
   */
  attach(table: BindingTable): void {
    const from = this.own;
    const to = table.slots;
    for (let i = 0; i < from.length && i < to.length; i += PER_BINDING) {
      for (let s = COUNTERS_AT; s < COUNTERS_AT + BINDING_NAMES.length; s++) to[i + s] = from[i + s]!;
    }
    this.table = table;
    this.own = new Float64Array(0);
  }

  /** Make room for binding ids below `limit` (attached: the table makes room as it grows). */
  ensure(limit: number): void {
    if (this.table !== undefined || limit * PER_BINDING <= this.own.length) return;
    let n = this.own.length;
    while (n < limit * PER_BINDING) n *= 2;
    const a = new Float64Array(n);
    a.set(this.own);
    this.own = a;
  }

  /** Zero the counters of a binding id (a new binding that reuses a released id). */
  resetBinding(id: number): void {
    this.ensure(id + 1);
    const at = id * PER_BINDING + COUNTERS_AT;
    this.perBinding.fill(0, at, at + BINDING_NAMES.length);
  }

  binding(id: number, slot: number): number {
    return this.perBinding[id * PER_BINDING + slot] ?? 0;
  }

  /**
   * The reassemblers keep their own counters (a timeout or an eviction happens to a datagram, not
   * to the packet being handled); they are reported beside ours, their drops under the same
   * `drops4` / `drops6` maps with their `frag_*` reasons.
   */
  reassembly: { internet?: ReassemblyView; tunnel?: ReassemblyView } = {};

  /** Plain object view (control socket, tests). Zero counters are left out. */
  snapshot(): {
    global: Record<string, number>;
    drops4: Record<string, number>;
    drops6: Record<string, number>;
    reassembly: Record<string, Record<string, number>>;
  } {
    const pick = (names: readonly string[], a: Float64Array, o: Record<string, number> = {}): Record<string, number> => {
      names.forEach((n, i) => {
        if (a[i] !== 0) o[n] = a[i]!;
      });
      return o;
    };
    const r = this.reassembly;
    const view = (x: ReassemblyView | undefined): Record<string, number> =>
      x === undefined ? {} : { fragments: x.counters.fragments, reassembled: x.counters.reassembled, in_progress: x.inProgress, fragments_held: x.fragmentsHeld, bytes_held: x.bytesHeld() };
    const drops4 = pick(DROP_REASON_NAMES, this.drops4);
    const drops6 = pick(DROP_REASON_NAMES, this.drops6);
    if (r.internet) pick(REASSEMBLY_DROP_NAMES, r.internet.counters.drops, drops4);
    if (r.tunnel) pick(REASSEMBLY_DROP_NAMES, r.tunnel.counters.drops, drops6);
    return { global: pick(GLOBAL_NAMES, this.global), drops4, drops6, reassembly: { internet: view(r.internet), tunnel: view(r.tunnel) } };
  }
}
