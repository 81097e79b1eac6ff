/**
 * The SMAP's counters, declared once, in plain typed arrays. The data plane only increments
 * array slots; `smap status` reads them over the control socket, Prometheus (metrics issue) at
 * scrape time. Drop reasons are one table with stable names (the `reason` label), including
 * every codec decode error, counted separately for each direction.
 */
import { DECODE_ERROR_NAMES } from '../common/codec/result.js';

/** Why the SMAP dropped a packet. Names are stable: they are metric labels. */
export const DROP_REASON_NAMES = [
  ...DECODE_ERROR_NAMES, // malformed packets, by what was wrong (truncated, bad_checksum, ...)
  'not_ipv4', // the TUN or the tunnel carried something that is not IPv4
  'no_binding', // no binding (or no WAN address) yet: nothing can be tunnelled
  'not_shared_source', // LAN side: the source is not the shared address (not NATed)
  'outside_set', // LAN side: the source port / ICMP echo identifier is outside our port set
  'no_port', // LAN side: a protocol (or ICMP type) without a port to check
  'not_from_prr', // tunnel side: the outer IPv6 source is not the PRR
  'not_to_shared', // tunnel side: the inner IPv4 destination is not our shared address
  'over_mtu_df', // LAN side: over the tunnel MTU with DF (queued before the MTU went down): Fragmentation Needed sent
] as const;

export type DropReasonName = (typeof DROP_REASON_NAMES)[number];

/** Index of each reason in DROP_REASON_NAMES. */
export const Drop = Object.fromEntries(DROP_REASON_NAMES.map((n, i) => [n, i])) as { readonly [K in DropReasonName]: number };

/** Index of a codec DecodeError (negative) in the reason table. */
export function decodeDrop(code: number): number {
  return -code - 1;
}

export const GLOBAL_NAMES = [
  'lan_packets', // IPv4 read from the TUN (LAN and the router itself, after SNAT)
  'lan_bytes',
  'to_prr_packets', // IPv4 sent into the tunnel
  'to_prr_bytes',
  'tunnel_packets', // IPv4 received through the tunnel (any sender)
  'tunnel_bytes',
  'to_lan_packets', // IPv4 written to the TUN (toward the LAN or the router)
  'to_lan_bytes',
  'fragments_out', // non-first IPv4 fragments sent on (their first fragment carried the port)
  'tunnel_errors', // ICMPv6 errors and local send errors reported by the tunnel socket
  'tx_errors', // packets the kernel refused on send
  'pmtu_lowered', // the tunnel MTU lowered by an ICMPv6 Packet Too Big from the path to the PRR
  'pmtu_raised', // a learnt tunnel MTU expired ([tunnel] pmtu_timeout): the full MTU tried again
  'frag_needed_sent', // ICMPv4 Fragmentation Needed sent to a LAN host
  'icmp_rate_limited', // ICMPv4 errors not sent because of the rate limit
] as const;

export type GlobalName = (typeof GLOBAL_NAMES)[number];
export const G = Object.fromEntries(GLOBAL_NAMES.map((n, i) => [n, i])) as { readonly [K in GlobalName]: number };

export interface CounterSnapshot {
  global: Record<string, number>;
  /** Drops of packets going to the PRR (read from the TUN), by reason. */
  drops_out: Record<string, number>;
  /** Drops of packets coming from the tunnel, by reason. */
  drops_in: Record<string, number>;
}

export class SmapCounters {
  readonly global = new Float64Array(GLOBAL_NAMES.length);
  readonly dropsOut = new Float64Array(DROP_REASON_NAMES.length);
  readonly dropsIn = new Float64Array(DROP_REASON_NAMES.length);

  /** Plain object view (control socket, tests); every global counter, the non-zero drops. */
  snapshot(): CounterSnapshot {
    const all: Record<string, number> = {};
    GLOBAL_NAMES.forEach((n, i) => (all[n] = this.global[i]!));
    const nonZero = (a: Float64Array): Record<string, number> => {
      const o: Record<string, number> = {};
      DROP_REASON_NAMES.forEach((n, i) => {
        if (a[i] !== 0) o[n] = a[i]!;
      });
      return o;
    };
    return { global: all, drops_out: nonZero(this.dropsOut), drops_in: nonZero(this.dropsIn) };
  }
}
