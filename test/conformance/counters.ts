/**
 * Snabb lwAFTR counter names -> the PRR's counters (prr/counters.ts), in one table.
 *
 * Each mapped row says how Snabb's counter is computed from ours, so the harness compares
 * `value(ours)` with Snabb's expected delta (0 when the case does not list it: Snabb's rule is
 * that every counter not listed stays 0). Rows without `value` are not mapped, and say why.
 *
 * Units. Snabb counts bytes of whole frames: an IPv4 packet plus its 14-byte Ethernet header, a
 * tunnel packet plus Ethernet and the 40-byte outer IPv6 header. The PRR counts the IPv4 packets
 * it reads and writes (the inner packet on the tunnel side): Ethernet and the outer header are
 * the kernel's. So `bytes = ours + 14 (or 54) per packet`. Snabb's frames here carry no 802.1Q
 * tag (the VLAN cases are not applicable) and no IPv6 extension headers after reassembly.
 *
 * ICMPv6 errors from the IPv6 core (the "OPE" cases) reach the PRR as error-queue reports of the
 * tunnel socket (IoStats.errqueueMessages), not as packets it reads: Snabb's in-ipv6 counts them,
 * so in-ipv6-packets adds the error-queue messages, and in-ipv6-bytes the size of those ICMPv6
 * frames, which the error queue does not report (a fact of the input the harness supplies).
 */
import { DROP_REASON_NAMES, GLOBAL_NAMES, type DropReasonName, type GlobalName, type PrrCounters } from '../../prr/counters.js';
import { REASSEMBLY_DROP_NAMES, type ReassemblyDropName } from '../../prr/reassembly.js';

export const ETH = 14;
export const IPV6_HDR = 40;

/** One reassembler's counters (prr/reassembly.ts): fragments taken, datagrams made, drops by reason. */
export interface OurReassembly {
  fragments: number;
  reassembled: number;
  drops: Record<ReassemblyDropName, number>;
}

/** The PRR's counters after one case (a fresh data plane per case, so values are deltas). */
export interface OurCounters {
  global: Record<GlobalName, number>;
  drops4: Record<DropReasonName, number>;
  drops6: Record<DropReasonName, number>;
  /** IPv4 reassembly of fragments from the Internet (reasm4) and from CPEs (reasm6). */
  reasm4: OurReassembly;
  reasm6: OurReassembly;
  /** Error-queue messages the tunnel socket read (IoStats.errqueueMessages). */
  errqueue: number;
}

/** What the harness knows about the input that no PRR counter can say (the kernel's part). */
export interface InputFacts {
  /** Bytes, as Snabb counts them, of the ICMPv6 errors that reached the PRR through the error queue. */
  errqueueFrameBytes: number;
  /** IPv4-side frames the kernel keeps (ARP, packets to the host's own address), which Snabb's reassembler counts as unneeded. */
  kernelFrames4: number;
}

export interface CounterRow {
  theirs: string;
  /** Our side, as a formula over prr/counters.ts names (printed in the README and on failure). */
  ours: string;
  value?: (o: OurCounters, f: InputFacts) => number;
  /** For a row without value: why it is not mapped. For a mapped row: a caveat, if any. */
  note?: string;
}

const sum = (r: Record<DropReasonName, number>): number => DROP_REASON_NAMES.reduce((n, k) => n + r[k], 0);
const rsum = (r: OurReassembly, except: readonly ReassemblyDropName[] = []): number =>
  REASSEMBLY_DROP_NAMES.reduce((n, k) => n + (except.includes(k) ? 0 : r.drops[k]), 0);

const NO_DROP_BYTES = 'the PRR counts drops by reason in packets, not bytes';
const KERNEL_FRAG6 = 'IPv6 fragmentation and reassembly of tunnel packets are the kernel\'s (raw socket)';
const KERNEL_FRAG4_OUT = 'IPv4 toward the Internet is fragmented by the kernel at the egress link MTU, not by the PRR';
const KERNEL_ND = 'ARP and NDP are the kernel\'s';
const KERNEL_ECHO = 'echo to the PRR host\'s own addresses is answered by the kernel';
const NO_ICMP6 = 'the PRR sends no ICMPv6 errors (known failing: see README)';

export const COUNTER_MAP: readonly CounterRow[] = [
  // ---- traffic in and out ----
  { theirs: 'in-ipv4-packets', ours: 'in4_packets', value: (o) => o.global.in4_packets, note: 'every TUN read, fragments each (Snabb counts reassembled datagrams)' },
  { theirs: 'in-ipv4-bytes', ours: 'in4_bytes + 14 * in4_packets', value: (o) => o.global.in4_bytes + ETH * o.global.in4_packets },
  { theirs: 'in-ipv6-packets', ours: 'in6_packets + tunnel errqueue messages', value: (o) => o.global.in6_packets + o.errqueue },
  {
    theirs: 'in-ipv6-bytes', ours: 'in6_bytes + 54 * in6_packets + (ICMPv6 error frames, input fact)',
    value: (o, f) => o.global.in6_bytes + (ETH + IPV6_HDR) * o.global.in6_packets + f.errqueueFrameBytes,
  },
  { theirs: 'out-ipv4-packets', ours: 'out4_packets', value: (o) => o.global.out4_packets, note: 'before the kernel fragments them' },
  { theirs: 'out-ipv4-bytes', ours: 'out4_bytes + 14 * out4_packets', value: (o) => o.global.out4_bytes + ETH * o.global.out4_packets },
  { theirs: 'out-ipv6-packets', ours: 'out6_packets', value: (o) => o.global.out6_packets, note: 'before the kernel fragments them' },
  { theirs: 'out-ipv6-bytes', ours: 'out6_bytes + 54 * out6_packets', value: (o) => o.global.out6_bytes + (ETH + IPV6_HDR) * o.global.out6_packets },
  { theirs: 'hairpin-ipv4-packets', ours: 'hairpin_packets', value: (o) => o.global.hairpin_packets, note: 'hairpinned packets forwarded (Snabb also counts those dropped later on its hairpin path)' },
  { theirs: 'hairpin-ipv4-bytes', ours: 'hairpin_bytes + 14 * hairpin_packets', value: (o) => o.global.hairpin_bytes + ETH * o.global.hairpin_packets },
  { theirs: 'out-icmpv4-error-packets', ours: 'icmp4_generated', value: (o) => o.global.icmp4_generated },
  { theirs: 'out-icmpv4-error-bytes', ours: '-', note: 'generated errors are counted in packets; their bytes are in out4_bytes / out6_bytes' },
  { theirs: 'out-icmpv6-error-packets', ours: '-', note: NO_ICMP6 },
  { theirs: 'out-icmpv6-error-bytes', ours: '-', note: NO_ICMP6 },

  // ---- drops ----
  {
    theirs: 'drop-all-ipv4-iface-packets', ours: 'sum(drops4) + sum(reasm4 drops)', value: (o) => sum(o.drops4) + rsum(o.reasm4),
    note: 'reassembly drops are events: one per refused fragment or dropped datagram',
  },
  { theirs: 'drop-all-ipv4-iface-bytes', ours: '-', note: NO_DROP_BYTES },
  {
    theirs: 'drop-all-ipv6-iface-packets', ours: 'sum(drops6) + sum(reasm6 drops)', value: (o) => sum(o.drops6) + rsum(o.reasm6),
    note: 'drops6 includes ICMPv6 errors from the error queue that were not relayed',
  },
  { theirs: 'drop-all-ipv6-iface-bytes', ours: '-', note: NO_DROP_BYTES },
  { theirs: 'drop-misplaced-not-ipv4-packets', ours: 'drops4.not_ipv4', value: (o) => o.drops4.not_ipv4 },
  { theirs: 'drop-misplaced-not-ipv4-bytes', ours: '-', note: NO_DROP_BYTES },
  { theirs: 'drop-misplaced-not-ipv6-packets', ours: '-', note: 'the raw socket receives only IPv6 with next header 4; anything else stays with the kernel' },
  { theirs: 'drop-misplaced-not-ipv6-bytes', ours: '-', note: 'as above' },
  {
    theirs: 'drop-no-dest-softwire-ipv4-packets', ours: 'drops4.not_shared + drops4.no_binding + drops6.no_binding',
    value: (o) => o.drops4.not_shared + o.drops4.no_binding + o.drops6.no_binding,
    note: 'drops6.no_binding: a hairpinned packet whose destination port has no binding',
  },
  { theirs: 'drop-no-dest-softwire-ipv4-bytes', ours: '-', note: NO_DROP_BYTES },
  {
    theirs: 'drop-no-source-softwire-ipv6-packets', ours: 'drops6.unknown_cpe + spoofed_ipv6 + port_outside_set + wrong_endpoint',
    value: (o) => o.drops6.unknown_cpe + o.drops6.spoofed_ipv6 + o.drops6.port_outside_set + o.drops6.wrong_endpoint,
  },
  { theirs: 'drop-no-source-softwire-ipv6-bytes', ours: '-', note: NO_DROP_BYTES },
  { theirs: 'drop-in-by-policy-icmpv4-packets', ours: 'drops4.icmp_policy', value: (o) => o.drops4.icmp_policy },
  { theirs: 'drop-in-by-policy-icmpv4-bytes', ours: '-', note: NO_DROP_BYTES },
  { theirs: 'drop-in-by-policy-icmpv6-packets', ours: 'drops6.icmp_policy', value: (o) => o.drops6.icmp_policy },
  { theirs: 'drop-in-by-rfc7596-icmpv4-packets', ours: '-', note: 'counted by reason (not_shared, no_binding), not by protocol' },
  { theirs: 'drop-in-by-rfc7596-icmpv4-bytes', ours: '-', note: 'as above' },
  { theirs: 'drop-bad-checksum-icmpv4-packets', ours: 'drops4.bad_checksum', value: (o) => o.drops4.bad_checksum, note: 'ours also counts bad IPv4 header checksums (Snabb verifies none)' },
  { theirs: 'drop-bad-checksum-icmpv4-bytes', ours: '-', note: NO_DROP_BYTES },
  { theirs: 'drop-out-by-policy-icmpv4-packets', ours: 'icmp4_policy_suppressed', value: (o) => o.global.icmp4_policy_suppressed },
  { theirs: 'drop-out-by-policy-icmpv6-packets', ours: '-', note: NO_ICMP6 },
  {
    theirs: 'drop-over-mtu-but-dont-fragment-ipv4-packets', ours: 'drops4.over_mtu_df + drops6.over_mtu_df',
    value: (o) => o.drops4.over_mtu_df + o.drops6.over_mtu_df,
  },
  { theirs: 'drop-over-mtu-but-dont-fragment-ipv4-bytes', ours: '-', note: NO_DROP_BYTES },
  { theirs: 'drop-ttl-zero-ipv4-packets', ours: 'drops4.ttl_expired + drops6.ttl_expired', value: (o) => o.drops4.ttl_expired + o.drops6.ttl_expired },
  { theirs: 'drop-ttl-zero-ipv4-bytes', ours: '-', note: NO_DROP_BYTES },
  {
    theirs: 'drop-over-time-but-not-hop-limit-icmpv6-packets', ours: 'drops6.icmp_not_for_us', value: (o) => o.drops6.icmp_not_for_us,
    note: 'icmp_not_for_us also counts other ICMPv6 errors the core does not relay (Packet Too Big without DF, unknown types)',
  },
  { theirs: 'drop-over-time-but-not-hop-limit-icmpv6-bytes', ours: '-', note: NO_DROP_BYTES },

  // ---- fragmentation and reassembly ----
  { theirs: 'in-ipv4-frag-needs-reassembly', ours: 'reasm4.fragments', value: (o) => o.reasm4.fragments },
  { theirs: 'in-ipv4-frag-reassembled', ours: 'reasm4.reassembled', value: (o) => o.reasm4.reassembled },
  {
    theirs: 'in-ipv4-frag-reassembly-unneeded', ours: 'in4_packets - reasm4.fragments + (IPv4-side frames the kernel keeps, input fact)',
    value: (o, f) => o.global.in4_packets - o.reasm4.fragments + f.kernelFrames4,
  },
  {
    theirs: 'drop-ipv4-frag-invalid-reassembly', ours: 'reasm4 drops but frag_table_full, frag_timeout',
    value: (o) => rsum(o.reasm4, ['frag_table_full', 'frag_timeout']),
  },
  { theirs: 'drop-ipv4-frag-random-evicted', ours: 'reasm4.drops.frag_table_full', value: (o) => o.reasm4.drops.frag_table_full, note: 'the PRR evicts the oldest, not a random one' },
  { theirs: 'in-ipv6-frag-needs-reassembly', ours: '-', note: KERNEL_FRAG6 },
  { theirs: 'in-ipv6-frag-reassembled', ours: '-', note: KERNEL_FRAG6 },
  { theirs: 'in-ipv6-frag-reassembly-unneeded', ours: '-', note: KERNEL_FRAG6 },
  { theirs: 'drop-ipv6-frag-invalid-reassembly', ours: '-', note: KERNEL_FRAG6 },
  { theirs: 'out-ipv6-frag', ours: '-', note: KERNEL_FRAG6 },
  { theirs: 'out-ipv6-frag-not', ours: '-', note: KERNEL_FRAG6 },
  { theirs: 'out-ipv4-frag', ours: '-', note: KERNEL_FRAG4_OUT },
  { theirs: 'out-ipv4-frag-not', ours: '-', note: KERNEL_FRAG4_OUT },
  { theirs: 'memuse-ipv4-frag-reassembly-buffer', ours: '-', note: 'the size of Snabb\'s static reassembly buffer, not traffic' },
  { theirs: 'memuse-ipv6-frag-reassembly-buffer', ours: '-', note: 'as above' },

  // ---- the kernel's ----
  ...['in-arp-request', 'out-arp-request', 'out-arp-reply', 'in-ndp-ns', 'in-ndp-na', 'out-ndp-ns', 'out-ndp-na'].flatMap((n) => [
    { theirs: `${n}-packets`, ours: '-', note: KERNEL_ND },
    { theirs: `${n}-bytes`, ours: '-', note: KERNEL_ND },
  ]),
  ...['in-icmpv4-echo', 'out-icmpv4-echo', 'in-icmpv6-echo', 'out-icmpv6-echo'].flatMap((n) => [
    { theirs: `${n}-packets`, ours: '-', note: KERNEL_ECHO },
    { theirs: `${n}-bytes`, ours: '-', note: KERNEL_ECHO },
  ]),
];

/** Our counters Snabb has no name for: asserted per case where they matter (DIFFERENCES `ours`). */
export const OURS_ONLY = [
  'icmp4_rate_limited', 'icmp_relayed', 'icmp6_translated', 'pmtu_lowered', 'tx_errors',
  'drops: no_port, tunnel_loop, hairpin_disabled, icmp_unroutable and the codec reasons (truncated, bad_ihl, ...)',
  'reasm6 (IPv4 fragments inside the tunnel: Snabb has no such reassembly; B4s fragment the IPv6 packet)',
] as const;

export const MAPPED = COUNTER_MAP.filter((r) => r.value !== undefined);

export function rowOf(theirs: string): CounterRow | undefined {
  return COUNTER_MAP.find((r) => r.theirs === theirs);
}

const pick = <K extends string>(names: readonly K[], a: Float64Array): Record<K, number> =>
  Object.fromEntries(names.map((n, i) => [n, a[i] ?? 0])) as Record<K, number>;

function reassembly(v: PrrCounters['reassembly']['internet']): OurReassembly {
  const c = v?.counters;
  return { fragments: c?.fragments ?? 0, reassembled: c?.reassembled ?? 0, drops: pick(REASSEMBLY_DROP_NAMES, c?.drops ?? new Float64Array(0)) };
}

/** An OurCounters with every slot present (0 where the data plane counted nothing). */
export function ourCounters(c: PrrCounters, errqueue: number): OurCounters {
  return {
    global: pick(GLOBAL_NAMES, c.global), drops4: pick(DROP_REASON_NAMES, c.drops4), drops6: pick(DROP_REASON_NAMES, c.drops6),
    reasm4: reassembly(c.reassembly.internet), reasm6: reassembly(c.reassembly.tunnel), errqueue,
  };
}

/** Read one of our counters by a dotted name: `global.pmtu_lowered`, `drops6.bad_checksum`, `reasm4.fragments`, `errqueue`. */
export function ourValue(o: OurCounters, name: string): number {
  const [group, key] = name.split('.');
  if (group === 'errqueue' && key === undefined) return o.errqueue;
  const groups: Record<string, Record<string, number>> = {
    global: o.global, drops4: o.drops4, drops6: o.drops6,
    reasm4: { fragments: o.reasm4.fragments, reassembled: o.reasm4.reassembled, ...o.reasm4.drops },
    reasm6: { fragments: o.reasm6.fragments, reassembled: o.reasm6.reassembled, ...o.reasm6.drops },
  };
  const table = group === undefined ? undefined : groups[group];
  const v = table === undefined || key === undefined ? undefined : (table as Record<string, number>)[key];
  if (v === undefined) throw new Error(`no such counter of ours: ${name}`);
  return v;
}
