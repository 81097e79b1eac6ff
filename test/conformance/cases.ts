/**
 * What the harness does with each of Snabb's 84 cases: replay it (the default), call it not
 * applicable (NOT_APPLICABLE, with the reason), replay it against the PRR's deliberate behaviour
 * where that differs from Snabb's (DIFFERENCES: why, and how the expectation changes), or expect
 * it to fail until the PRR changes (KNOWN_FAILING for behaviour, KNOWN_FAILING_CONFS for configs
 * prr.ini cannot express yet). test/conformance/README.md has the same, case by case.
 */
import type { Expected, Input, Out6 } from './replay.js';
import { withId, withNextHopMtu, withQuote, withTtl } from './packets.js';

// ---- not applicable --------------------------------------------------------------------------

const VLAN = '802.1Q tagging is the kernel\'s (a VLAN interface under the PRR); the untagged twin of this case is replayed';
const NDP = 'IPv6 neighbour discovery (NS/NA, next-hop MAC resolution) is the kernel\'s';
const ARP = 'ARP is the kernel\'s';
const ECHO = 'ICMP echo to the PRR host\'s own address is answered by the kernel, not by the PRR';
const FILTER = 'pflang ingress/egress filters are not a PRR feature: packet filtering is nftables\' job on the PRR host '
  + '(the ACCEPT variants behave as the unfiltered cases, which are replayed)';

export const NOT_APPLICABLE: Readonly<Record<string, string>> = {
  "Regression test: make sure ntohl'd high-bit-set fragment IDs do not crash":
    'IPv6 reassembly is the kernel\'s (the raw socket reads reassembled packets), and these packets are addressed to 2a02:587:f700::100, '
    + 'not to the PRR, so the kernel forwards them',
  'from-internet IPv4 packet found in the binding table with vlan tag.': VLAN,
  'NDP: incoming NDP Neighbor Solicitation': NDP,
  'NDP: incoming NDP Neighbor Solicitation, secondary IP': NDP,
  'NDP: incoming NDP Neighbor Solicitation, non-lwAFTR IP': NDP,
  'NDP: IPv6 but not eth addr of next IPv6 hop set, do Neighbor Solicitation': NDP,
  'ARP: incoming ARP request': ARP,
  'ARP: IPv4 but not eth addr of next IPv4 hop set, send an ARP request': ARP,
  'NDP: Without receiving NA, next_hop6_mac not set': `${NDP}: what happens to the data packets depends on neighbour resolution`,
  'NDP: With receiving NA, next_hop6_mac not initially set': `${NDP}: what happens to the data packets depends on neighbour resolution`,
  'IPv6 packet, next hop NA, packet, eth addr not set in configuration.': NDP,
  'IPv6 reassembly (with max frags set to 1).':
    'IPv6 reassembly and its limits are the kernel\'s (net.ipv6.ip6frag_*, which has no fragments-per-packet limit); '
    + 'prr.ini\'s reassembly_max_fragments is at least 2 in any case',
  'from-to-b4 IPv6 packet NOT found in the binding table, no ICMP.':
    'the IPv6 packet is addressed to 127:2:3:4:5:6:7:128 (a B4), not to the PRR: the kernel forwards it, the raw socket never sees it',
  'from-b4 to-internet IPv6 packet found in the binding table with vlan tag.': VLAN,
  'from-to-b4 IPv6 packet, with hairpinning, with vlan tag': VLAN,
  'sending non-IPv6 traffic to the IPv6 interface':
    'an IPv4 frame on the IPv6 side: a raw IPv6 socket receives only IPv6 with next header 4; the kernel routes IPv4 itself',
  'ingress-filter: from-internet (IPv4) packet found in binding table (ACCEPT)': FILTER,
  'ingress-filter: from-internet (IPv4) packet found in binding table (DROP)': FILTER,
  'ingress-filter: from-b4 (IPv6) packet found in binding table (ACCEPT)': FILTER,
  'ingress-filter: from-b4 (IPv6) packet found in binding table (DROP)': FILTER,
  'egress-filter: to-internet (IPv4) (ACCEPT)': FILTER,
  'egress-filter: to-internet (IPv4) (DROP)': FILTER,
  'egress-filter: to-b4 (IPv4) (ACCEPT)': FILTER,
  'egress-filter: to-b4 (IPv4) (DROP)': FILTER,
  'ICMP Echo to AFTR (IPv4)': ECHO,
  'ICMP Echo to AFTR (IPv4) (ttl=32)': ECHO,
  'ICMP Echo to AFTR (IPv6)': ECHO,
  'ICMP Echo to AFTR (IPv6) (hop-limit=32)': ECHO,
};

// ---- known failing ---------------------------------------------------------------------------

/**
 * Configs prr.ini cannot express yet: parsePrrModel refuses them (the test asserts it still does).
 * Their cases are replayed anyway (replay.ts loadSnabbModel) and count as failing on config.
 */
/** The same, in a few words, for the per-case status line. */
export const SHARED_B4_SHORT = 'prr.ini takes one [subscriber.X] per B4 address, this conf gives some B4s several softwires';

export const SHARED_B4 =
  'a B4 with several softwires cannot be configured: common/config/prr.ts checkPrr refuses two [subscriber.X] sections with one ipv6 '
  + '("is also the address of"), while Snabb\'s table has 6 softwires for 127:11:12:13:14:15:16:128 (single ports on 178.79.150.233) '
  + 'and 2 for 127:22:33:44:55:66:77:128 (PSIDs 0 and 1 of 178.79.150.15); prr/bindings.ts already chains several bindings per CPE address';

export const KNOWN_FAILING_CONFS: Readonly<Record<string, string>> = {};

/** Cases whose replay fails because the PRR lacks something (the test asserts they still fail). */
export const KNOWN_FAILING: Readonly<Record<string, string>> = {};

// ---- deliberate differences --------------------------------------------------------------------

export interface Ctx {
  input: Input;
  exp: Expected;
}

export interface Difference {
  why: string;
  /** Turn Snabb's expected output into what the PRR sends (edits ctx.exp). */
  expect?: (c: Ctx) => void;
  /** Snabb counters as the PRR counts them in this case (overriding the expected deltas). */
  counters?: Record<string, number> | ((c: Ctx) => Record<string, number>);
  /** Our counters with no Snabb name that the case must show (`drops6.bad_checksum`, `global.pmtu_lowered`). */
  ours?: Record<string, number>;
}

const tunIn = (c: Ctx, i = 0): Buffer => {
  const it = c.input.items.filter((x) => x.kind === 'tun')[i];
  if (it?.kind !== 'tun') throw new Error(`case input has no TUN packet #${i + 1}`);
  return it.pkt;
};
const tunnelIn = (c: Ctx, i = 0): Buffer => {
  const it = c.input.items.filter((x) => x.kind === 'tunnel')[i];
  if (it?.kind !== 'tunnel') throw new Error(`case input has no tunnel packet #${i + 1}`);
  return it.inner;
};
const only4 = (c: Ctx): Buffer => {
  const e = c.exp.out4[0];
  if (e === undefined) throw new Error('no expected IPv4 output to edit');
  return e.pkt;
};
const only6 = (c: Ctx): Out6 => {
  const e = c.exp.out6[0];
  if (e === undefined) throw new Error('no expected tunnel output to edit');
  return e;
};
/** The hairpinned copy of the input the PRR sends to `dst`: TTL - 1, from the first BR address. */
const hairpinned = (c: Ctx, dst: string): Out6 => {
  const p = tunnelIn(c);
  return { src: '8:9:a:b:c:d:e:f', dst, nh: 4, pkt: withTtl(p, p[8]! - 1), fragments: 1 };
};
/** in-ipv4 as the PRR counts it: every fragment read from the TUN. */
const tunReads = (c: Ctx): Record<string, number> => {
  const pk = c.input.items.flatMap((x) => (x.kind === 'tun' ? [x.pkt] : []));
  return { 'in-ipv4-packets': pk.length, 'in-ipv4-bytes': pk.reduce((n, p) => n + p.length + 14, 0) };
};

const QUOTE_AS_ARRIVED = 'the ICMPv4 error quotes the packet as it arrived (RFC 1812 §4.3.2.3), Snabb quotes it after decrementing its TTL';
const NOT_SHARED =
  'the destination 17.79.150.233 is in no binding: the PRR drops it as not_shared without any ICMP (outside the shared pools the kernel '
  + 'would not even route it into prr0, and answers from its own routing table); Snabb answers every unbound destination';
const ECHO_ID =
  'ICMP echo: the PRR takes the port of an echo request or reply from its identifier in both directions (RFC 7596 §8.1; the CPE\'s SNAT '
  + 'keeps identifiers in its range), Snabb looks up port 0 for echo requests from the Internet and for echo replies from B4s';
const HAIRPIN_COUNT = 'Snabb counts a packet as hairpinned before its TTL check; the PRR counts forwarded hairpins only (the drop counts as ttl_expired)';
const REASM_ID = 'the reassembled datagram keeps its IPv4 id (16963); Snabb\'s reassembly writes id 0. And the PRR counts every fragment it reads in in4_*';
const BAD_CSUM =
  'the inner IPv4 header checksum of this capture is wrong (0xb508, should be 0xb608): the PRR verifies it (RFC 1812 §5.2.2) and drops the '
  + 'packet as bad_checksum before source validation; Snabb verifies no IPv4 header checksum and drops it as no-source-softwire';

export const DIFFERENCES: Readonly<Record<string, Difference>> = {
  'traffic class mapping': {
    why: 'the outer traffic class: Snabb copies the inner TOS (0x89) into it; the PRR leaves the outer header to the kernel (the raw socket '
      + 'sets no IPV6_TCLASS, so it is 0). The inner TOS is kept, which is what is compared; the outer traffic class is not compared',
  },
  'from-internet IPv4 packet found in the binding table, original TTL=1.': {
    why: `${QUOTE_AS_ARRIVED} (TTL 1, not 0)`,
    expect: (c) => void (c.exp.out4[0]!.pkt = withQuote(only4(c), tunIn(c))),
  },
  'from-internet IPv4 packet found in the binding table, needs IPv6 fragmentation, DF set, ICMP-3,4, allow policy.': {
    why: `${QUOTE_AS_ARRIVED} (TTL 64, not 63)`,
    expect: (c) => void (c.exp.out4[0]!.pkt = withQuote(only4(c), tunIn(c))),
  },
  'from-internet IPv4 packet NOT found in the binding table, no ICMP.': {
    why: `${NOT_SHARED}; so no ICMP is suppressed by policy either`,
    counters: { 'drop-out-by-policy-icmpv4-packets': 0 },
    ours: { 'drops4.not_shared': 1 },
  },
  'from-internet IPv4 packet NOT found in the binding table (ICMP-on-fail).': {
    why: NOT_SHARED,
    expect: (c) => void (c.exp.out4 = []),
    counters: { 'out-icmpv4-error-packets': 0, 'out-ipv4-packets': 0, 'out-ipv4-bytes': 0 },
    ours: { 'drops4.not_shared': 1 },
  },
  'from-b4 to-internet IPv6 packet NOT found in the binding table, (IPv4 matches, but port doesn\'t), no ICMP': {
    why: BAD_CSUM,
    counters: { 'drop-no-source-softwire-ipv6-packets': 0 },
    ours: { 'drops6.bad_checksum': 1 },
  },
  'from-b4 to-internet IPv6 packet NOT found in the binding table (IPv4 matches, but port doesn\'t) (ICMP-on-fail)': {
    why: `${BAD_CSUM}, and so sends no ICMPv6 about it`,
    expect: (c) => void (c.exp.out6 = []),
    counters: { 'drop-no-source-softwire-ipv6-packets': 0, 'out-ipv6-packets': 0, 'out-ipv6-bytes': 0 },
    ours: { 'drops6.bad_checksum': 1 },
  },
  'from-to-b4 IPv6 packet, no hairpinning': {
    why: 'with hairpinning = false the PRR refuses customer-to-customer traffic (hairpin_disabled); Snabb sends it out of its IPv4 side. On the '
      + 'PRR host the IPv4 side is the kernel, whose pool route would send it straight back into prr0, i.e. hairpin it anyway',
    expect: (c) => void (c.exp.out4 = []),
    counters: { 'out-ipv4-packets': 0, 'out-ipv4-bytes': 0, 'drop-all-ipv6-iface-packets': 1 },
    ours: { 'drops6.hairpin_disabled': 1 },
  },
  'from-to-b4 tunneled ICMPv4 ping, with hairpinning, unbound': {
    why: `${ECHO_ID}. Identifier 7850 of 178.79.150.233 is bound (to 127:11:12:13:14:15:16:128), so the PRR hairpins this echo request `
      + 'to that B4, where Snabb finds no softwire for port 0 and drops it',
    expect: (c) => void (c.exp.out6 = [hairpinned(c, '127:11:12:13:14:15:16:128')]),
    counters: { 'drop-all-ipv6-iface-packets': 0, 'drop-no-dest-softwire-ipv4-packets': 0, 'out-ipv6-packets': 1, 'out-ipv6-bytes': 138 },
  },
  'from-to-b4 tunneled ICMPv4 ping reply, with hairpinning, port 0 not bound': {
    why: `${ECHO_ID}. The reply from 178.79.150.233 with identifier 7850 passes source validation (7850 is that B4's port) and goes to `
      + 'the B4 holding 178.79.150.1 port 7850 (127:10:20:30:40:50:60:128); Snabb validates port 0, fails and answers with ICMPv6 1/5',
    expect: (c) => void (c.exp.out6 = [hairpinned(c, '127:10:20:30:40:50:60:128')]),
    counters: {
      'drop-all-ipv6-iface-packets': 0, 'drop-no-source-softwire-ipv6-packets': 0, 'hairpin-ipv4-packets': 1, 'hairpin-ipv4-bytes': 98,
      'out-ipv6-packets': 1, 'out-ipv6-bytes': 138,
    },
  },
  'from-to-b4 TCP packet, with hairpinning, TTL 1': {
    why: `${HAIRPIN_COUNT}. The Time Exceeded the PRR originates toward the B4 has TTL 255 (Snabb makes it with 255, then passes it through `
      + `its own hairpin path: 254), and ${QUOTE_AS_ARRIVED} (TTL 1, not 0)`,
    expect: (c) => {
      const o = only6(c);
      o.pkt = withQuote(withTtl(o.pkt, 255), tunnelIn(c));
    },
    counters: { 'hairpin-ipv4-packets': 0, 'hairpin-ipv4-bytes': 0 },
  },
  'from-to-b4 TCP packet, with hairpinning, TTL 1, drop policy': {
    why: HAIRPIN_COUNT,
    counters: { 'hairpin-ipv4-packets': 0, 'hairpin-ipv4-bytes': 0 },
  },
  'sending non-IPv4 traffic to the IPv4 interface': {
    why: 'the IPv6 packet is fed to the core as a TUN read (a TUN without packet info carries whatever is routed into it; the daemon turns '
      + 'IPv6 off on prr0): the core drops it as not_ipv4, and the PRR counts every TUN read in in4_*, where Snabb counts IPv4 only',
    counters: { 'in-ipv4-packets': 1, 'in-ipv4-bytes': 106 },
  },
  'from-internet IPv4 fragmented packets found in the binding table.': {
    why: REASM_ID,
    expect: (c) => void (only6(c).pkt = withId(only6(c).pkt, tunIn(c).readUInt16BE(4))),
    counters: tunReads,
  },
  'from-internet IPv4 fragmented packets found in the binding table, reversed.': {
    why: REASM_ID,
    expect: (c) => void (only6(c).pkt = withId(only6(c).pkt, tunIn(c).readUInt16BE(4))),
    counters: tunReads,
  },
  'IPv4 incoming UDP fragments -> outgoing IPv6 UDP fragments': {
    why: REASM_ID,
    expect: (c) => void (only6(c).pkt = withId(only6(c).pkt, tunIn(c).readUInt16BE(4))),
    counters: tunReads,
  },
  "incoming ICMPv6 2,0 'too big' notification, OPE from internet": {
    why: 'a Packet Too Big below 1280 is taken as 1280 (RFC 8201 §4: the IPv6 minimum MTU), so the tunnel MTU becomes 1240 and the '
      + 'Fragmentation Needed says 1240; Snabb passes on 777 - 40 = 737',
    expect: (c) => void (c.exp.out4[0]!.pkt = withNextHopMtu(only4(c), 1240)),
    ours: { 'global.pmtu_lowered': 1 },
  },
  'incoming ICMPv6 3,0 hop limit exceeded, OPE hairpinned': {
    why: 'the ICMPv4 error for a hairpinned sender is originated by the PRR straight toward that sender\'s B4 with TTL 255; Snabb makes it '
      + 'and then passes it through its own hairpin path (TTL 254)',
    expect: (c) => void (only6(c).pkt = withTtl(only6(c).pkt, 255)),
  },
};
