/**
 * The PRR forwarding core (prr/core.ts): verdicts for packets from the Internet, from the tunnel,
 * hairpinned between customers, and for ICMPv6 errors about tunnelled packets; the ICMPv4 errors
 * it generates (checked byte by byte); RFC 1812 rules; the rate limit; and random input.
 * Layout: test/prr/helpers/layout.ts (the 2010 experiment plus a PSID customer).
 */
import t, { type Test } from 'tap';
import {
  ICMP4_DEST_UNREACH,
  ICMP4_TIME_EXCEEDED,
  ICMP4_UNREACH_FRAG_NEEDED,
  ICMP4_UNREACH_HOST,
  ICMP4_UNREACH_PORT,
  ICMP6_DEST_UNREACH,
  ICMP6_PACKET_TOO_BIG,
  ICMP6_PARAM_PROBLEM,
  ICMP6_TIME_EXCEEDED,
  PROTO_ICMP,
  TCP_FLAG_ACK,
  TCP_FLAG_SYN,
} from '../../common/codec/constants.js';
import { Action, type Verdict } from '../../prr/core.js';
import { DROP_REASON_NAMES, type DropReasonName } from '../../prr/counters.js';
import {
  BR,
  BR2,
  CPE1,
  CPE2,
  CPE3,
  CPE3_PORT,
  INET,
  PRR4,
  PSID53_PORT,
  SERVER,
  SHARED,
  SHARED2,
  STRANGER,
  makeLab,
  type Lab,
} from './helpers/layout.js';
import {
  echo4,
  fragment,
  ip6,
  icmpError4,
  ip4,
  ipv4,
  prng,
  readIcmp4,
  readIpv4,
  tcp4,
  udp4,
  withHeaderByte,
  withTotalLength,
} from './helpers/packets.js';

type T = Test;

// ---- calling the core the way the data plane does: packets at an offset in a larger slab -----

const HEADROOM = 40;

function fromInternet(lab: Lab, pkt: Buffer, len = pkt.length): Verdict {
  const slab = Buffer.alloc(HEADROOM + pkt.length + 16, 0xa5);
  pkt.copy(slab, HEADROOM);
  lab.core.fromInternet(slab, HEADROOM, len, lab.v);
  return lab.v;
}

function fromTunnel(lab: Lab, src6: Buffer, pkt: Buffer, dst6: Buffer = BR, len = pkt.length): Verdict {
  const addrs = Buffer.alloc(64, 0x5a);
  src6.copy(addrs, 8);
  dst6.copy(addrs, 40);
  const slab = Buffer.alloc(HEADROOM + pkt.length + 16, 0xa5);
  pkt.copy(slab, HEADROOM);
  lab.core.fromTunnel(addrs, 8, addrs, 40, slab, HEADROOM, len, lab.v);
  return lab.v;
}

/** `quoted` as the kernel's error queue hands it over: after the IPv6 and ICMPv6 headers. */
function fromTunnelError(lab: Lab, type: number, code: number, info: number, quoted: Buffer): Verdict {
  const buf = Buffer.alloc(48 + quoted.length + 16, 0xa5);
  quoted.copy(buf, 48);
  lab.core.fromTunnelError(type, code, info, buf, 48, quoted.length, lab.v);
  return lab.v;
}

/** The packet a verdict says to send, copied (a generated one lives in the core's scratch). */
const out = (v: Verdict): Buffer => Buffer.from(v.buf.subarray(v.off, v.off + v.len));
const reasonName = (v: Verdict): string => (v.reason === -1 ? '(none)' : (DROP_REASON_NAMES[v.reason] ?? `?${v.reason}`));
const hex = (b: Buffer): string => b.toString('hex');

function isDrop(t: T, v: Verdict, reason: DropReasonName, msg: string): void {
  t.equal(v.action, Action.Drop, `${msg}: dropped`);
  t.equal(reasonName(v), reason, `${msg}: reason ${reason}`);
}

/** A tunnel packet refused by source validation: dropped, or answered with ICMPv6 1/5 (tested below). */
function isRefused6(t: T, v: Verdict, reason: DropReasonName, msg: string): void {
  t.ok(v.action === Action.Drop || v.action === Action.Icmp6ToCpe, `${msg}: not forwarded`);
  t.equal(reasonName(v), reason, `${msg}: reason ${reason}`);
}

/** Refused with `reason`, and the sender told by a generated ICMPv4 error. */
function isAnswered(t: T, v: Verdict, reason: DropReasonName, msg: string): void {
  t.equal(reasonName(v), reason, `${msg}: reason ${reason}`);
  t.equal(v.action, Action.ToInternet, `${msg}: answered toward the Internet`);
  t.equal(v.generated, true, `${msg}: with a generated ICMP error`);
}

function isForward(t: T, v: Verdict, action: number, pkt: Buffer, msg: string): void {
  t.equal(v.action, action, `${msg}: action`);
  t.equal(v.reason, -1, `${msg}: no drop reason (got ${reasonName(v)})`);
  t.equal(v.generated, false, `${msg}: not generated`);
  t.equal(hex(out(v)), hex(pkt), `${msg}: packet unchanged`);
}

/**
 * The verdict carries an ICMPv4 error the PRR made: from its own address to `dst`, with a
 * correct header and ICMP checksum, quoting the first bytes of `orig` as RFC 1812 allows.
 */
function isIcmpError(t: T, v: Verdict, action: number, dst: number, type: number, code: number, orig: Buffer, msg: string): ReturnType<typeof readIcmp4> {
  t.equal(v.action, action, `${msg}: ICMP sent (action)`);
  t.equal(v.generated, true, `${msg}: generated`);
  const m = readIcmp4(v.buf, v.off, v.len);
  t.equal(m.version, 4, `${msg}: IPv4`);
  t.equal(m.totalLen, v.len, `${msg}: total length is the verdict length`);
  t.equal(m.proto, PROTO_ICMP, `${msg}: ICMP`);
  t.equal(m.src, PRR4, `${msg}: from the PRR's IPv4 address`);
  t.equal(m.dst, dst, `${msg}: to the sender`);
  t.ok(m.headerOk, `${msg}: IPv4 header checksum`);
  t.ok(m.l4Ok, `${msg}: ICMP checksum`);
  t.equal(m.type, type, `${msg}: type`);
  t.equal(m.code, code, `${msg}: code`);
  t.ok(m.ttl > 1, `${msg}: a usable TTL`);
  t.ok(v.len <= 576, `${msg}: at most 576 bytes (RFC 1812 §4.3.2.3)`);
  t.equal(hex(m.quote), hex(orig.subarray(0, Math.min(orig.length, 576 - 28))), `${msg}: quotes the original`);
  return m;
}

/** An Internet host's UDP packet to the shared address. */
const inUdp = (dport: number, o: Partial<Parameters<typeof udp4>[0]> = {}): Buffer =>
  udp4({ src: INET, dst: SHARED, sport: 40000, dport, data: 32, ...o });
/** A customer's UDP packet to an Internet host. */
const outUdp = (sport: number, o: Partial<Parameters<typeof udp4>[0]> = {}): Buffer =>
  udp4({ src: SHARED, dst: INET, sport, dport: 53, data: 32, ...o });

// ---- Internet -> CPE ----------------------------------------------------------------------------



t.test('Internet -> CPE: UDP and TCP to a bound port go to that CPE, unchanged', async (t) => {
  const lab = makeLab();
  const cases: Array<[string, Buffer, number]> = [
    ['udp 10000', inUdp(10000), lab.cpe1],
    ['udp 10500', inUdp(10500), lab.cpe1],
    ['udp 11000', inUdp(11000), lab.cpe1],
    ['udp 11001', inUdp(11001), lab.cpe2],
    ['udp 12000', inUdp(12000), lab.cpe2],
    ['tcp syn+mss 10500', tcp4({ src: INET, dst: SHARED, sport: 443, dport: 10500, mss: 1460, flags: TCP_FLAG_SYN | TCP_FLAG_ACK }), lab.cpe1],
    ['tcp data 11500', tcp4({ src: INET, dst: SHARED, sport: 80, dport: 11500, flags: TCP_FLAG_ACK, data: 200, df: true }), lab.cpe2],
    ['psid set on 198.51.100.7', udp4({ src: INET, dst: SHARED2, sport: 53, dport: CPE3_PORT }), lab.cpe3],
    ['ttl 1 (the kernel handles TTL)', inUdp(10500, { ttl: 1 }), lab.cpe1],
  ];
  for (const [name, pkt, to] of cases) {
    const v = fromInternet(lab, pkt);
    isForward(t, v, Action.ToCpe, pkt, name);
    t.equal(v.to, to, `${name}: to the right binding`);
    t.equal(v.from, -1, `${name}: from no binding`);
    t.equal(v.hairpin, false, `${name}: not hairpinned`);
  }
  isAnswered(t, fromInternet(lab, udp4({ src: INET, dst: SHARED2, sport: 53, dport: PSID53_PORT })), 'no_binding', 'neighbouring PSID');
  isAnswered(t, fromInternet(lab, udp4({ src: INET, dst: SHARED2, sport: 53, dport: 5 * 1024 + 52 * 4 + 4 })), 'no_binding', 'first port past the PSID run');
  isAnswered(t, fromInternet(lab, udp4({ src: INET, dst: SHARED2, sport: 53, dport: 52 * 4 })), 'no_binding', 'PSID 52 with A = 0 (reserved)');
});

t.test('Internet -> CPE with ttlByKernel false: the core is the IPv4 hop', async (t) => {
  const lab = makeLab({ core: { ttlByKernel: false } });
  for (const ttl of [64, 2, 255]) {
    const pkt = inUdp(10500, { ttl });
    const v = fromInternet(lab, pkt);
    t.equal(v.action, Action.ToCpe, `ttl ${ttl}: forwarded`);
    t.equal(v.to, lab.cpe1);
    const o = out(v);
    const ip = readIpv4(o, 0, o.length);
    t.equal(ip.ttl, ttl - 1, `ttl ${ttl}: decremented`);
    t.ok(ip.headerOk, `ttl ${ttl}: header checksum still valid`);
    t.ok(ip.l4Ok, `ttl ${ttl}: UDP checksum untouched and valid`);
    o[8] = pkt[8]!;
    o.writeUInt16BE(pkt.readUInt16BE(10), 10);
    t.equal(hex(o), hex(pkt), `ttl ${ttl}: nothing else changed`);
  }
  for (const ttl of [1, 0]) {
    const pkt = inUdp(10500, { ttl });
    const before = lab.core.events.icmpGenerated;
    const v = fromInternet(lab, pkt);
    t.equal(reasonName(v), 'ttl_expired', `ttl ${ttl}: ttl_expired`);
    isIcmpError(t, v, Action.ToInternet, INET, ICMP4_TIME_EXCEEDED, 0, pkt, `ttl ${ttl}`);
    t.equal(v.to, -1, `ttl ${ttl}: not to a CPE`);
    t.equal(lab.core.events.icmpGenerated, before + 1, `ttl ${ttl}: counted`);
  }
});

t.test('Internet -> CPE: unbound port is no_binding + host unreachable, unless ICMP errors are off', async (t) => {
  const lab = makeLab();
  for (const port of [9999, 12001, 1, 65535]) {
    const pkt = inUdp(port);
    const v = fromInternet(lab, pkt);
    t.equal(reasonName(v), 'no_binding', `port ${port}: no_binding`);
    isIcmpError(t, v, Action.ToInternet, INET, ICMP4_DEST_UNREACH, ICMP4_UNREACH_HOST, pkt, `port ${port}`);
  }
  t.equal(lab.core.events.icmpGenerated, 4);
  t.equal(lab.core.events.icmpSuppressed, 0);

  const off = makeLab({ policy: (p) => (p.external.generateIcmpErrors = false) });
  const v = fromInternet(off, inUdp(9999));
  isDrop(t, v, 'no_binding', 'errors off');
  t.equal(v.generated, false, 'nothing generated');
  t.equal(off.core.events.icmpSuppressed, 1, 'counted as suppressed');
  t.equal(off.core.events.icmpGenerated, 0);
  isForward(t, fromInternet(off, inUdp(10500)), Action.ToCpe, inUdp(10500), 'errors off: bound port still forwarded');
});

t.test('Internet -> CPE: not a shared address', async (t) => {
  const lab = makeLab();
  for (const dst of ['192.0.2.101', '192.0.2.1', '198.51.100.8', '0.0.0.0', '255.255.255.255']) {
    const v = fromInternet(lab, udp4({ src: INET, dst: ip4(dst), sport: 1, dport: 10500 }));
    isDrop(t, v, 'not_shared', dst);
    t.equal(v.generated, false, `${dst}: no ICMP`);
  }
  t.equal(lab.core.events.icmpGenerated + lab.core.events.icmpSuppressed, 0, 'no ICMP attempted');
});

t.test('Internet -> CPE: ICMP echo routed by identifier', async (t) => {
  const lab = makeLab();
  const req = echo4({ src: INET, dst: SHARED, id: 10500 });
  isForward(t, fromInternet(lab, req), Action.ToCpe, req, 'request id 10500');
  t.equal(lab.v.to, lab.cpe1);
  const rep = echo4({ src: INET, dst: SHARED, id: 11500, reply: true, data: 56 });
  isForward(t, fromInternet(lab, rep), Action.ToCpe, rep, 'reply id 11500');
  t.equal(lab.v.to, lab.cpe2);
  const psid = echo4({ src: INET, dst: SHARED2, id: CPE3_PORT, reply: true });
  isForward(t, fromInternet(lab, psid), Action.ToCpe, psid, 'reply to the PSID customer');
  t.equal(lab.v.to, lab.cpe3);
  const stray = echo4({ src: INET, dst: SHARED, id: 9000 });
  const v = fromInternet(lab, stray);
  t.equal(reasonName(v), 'no_binding', 'id 9000: no_binding');
  isIcmpError(t, v, Action.ToInternet, INET, ICMP4_DEST_UNREACH, ICMP4_UNREACH_HOST, stray, 'id 9000');
  const tstamp = ipv4({ src: INET, dst: SHARED, proto: PROTO_ICMP }, icmpBody(13, 0, 20));
  isDrop(t, fromInternet(lab, tstamp), 'no_port', 'timestamp request (no identifier we route by)');
});

/** A bare ICMP message with a correct checksum. */
function icmpBody(type: number, code: number, len: number): Buffer {
  const m = Buffer.alloc(len);
  m[0] = type;
  m[1] = code;
  let s = 0;
  for (let i = 0; i < len; i += 2) s += (m[i]! << 8) | (m[i + 1] ?? 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  m.writeUInt16BE(~s & 0xffff, 2);
  return m;
}

t.test('Internet -> CPE: ICMP errors are relayed by the quoted port', async (t) => {
  const lab = makeLab();
  const sent = udp4({ src: SHARED, dst: SERVER, sport: 10500, dport: 53, ttl: 60 });
  const err = icmpError4({ src: SERVER, dst: SHARED, type: ICMP4_DEST_UNREACH, code: ICMP4_UNREACH_PORT, quote: sent });
  isForward(t, fromInternet(lab, err), Action.ToCpe, err, 'port unreachable about 192.0.2.100:10500');
  t.equal(lab.v.to, lab.cpe1, 'to cpe1');
  t.equal(lab.core.events.icmpRelayed, 1, 'counted as relayed');
  t.equal(lab.core.events.icmpGenerated, 0, 'nothing generated');

  const cases: Array<[string, Buffer, number]> = [
    ['RFC 792 8-byte quote', icmpError4({ src: SERVER, dst: SHARED, type: 3, code: 3, quote: sent, quoteLen: 28 }), lab.cpe1],
    ['frag needed about TCP 11500', icmpError4({ src: ip4('198.51.100.1'), dst: SHARED, type: 3, code: 4, rest: 1400, quote: tcp4({ src: SHARED, dst: SERVER, sport: 11500, dport: 443, df: true, data: 1400 }) }), lab.cpe2],
    ['time exceeded about UDP 11999', icmpError4({ src: ip4('198.51.100.1'), dst: SHARED, type: 11, code: 0, quote: outUdp(11999, { ttl: 1 }) }), lab.cpe2],
    ['host unreachable about echo id 10700', icmpError4({ src: SERVER, dst: SHARED, type: 3, code: 1, quote: echo4({ src: SHARED, dst: SERVER, id: 10700 }) }), lab.cpe1],
    ['port unreachable to the PSID customer', icmpError4({ src: SERVER, dst: SHARED2, type: 3, code: 3, quote: udp4({ src: SHARED2, dst: SERVER, sport: CPE3_PORT, dport: 53 }) }), lab.cpe3],
  ];
  for (const [name, pkt, to] of cases) {
    isForward(t, fromInternet(lab, pkt), Action.ToCpe, pkt, name);
    t.equal(lab.v.to, to, `${name}: to the right CPE`);
  }
  t.equal(lab.core.events.icmpRelayed, 1 + cases.length);
});

t.test('Internet -> CPE: forged or unroutable ICMP errors are dropped without an answer', async (t) => {
  const lab = makeLab();
  const q = (o: Partial<Parameters<typeof udp4>[0]>): Buffer => udp4({ src: SHARED, dst: SERVER, sport: 10500, dport: 53, ...o });
  const err = (quote: Buffer, o: Partial<Parameters<typeof icmpError4>[0]> = {}): Buffer =>
    icmpError4({ src: SERVER, dst: SHARED, type: 3, code: 3, quote, ...o });
  const cases: Array<[string, Buffer]> = [
    ['quotes a port nobody holds', err(q({ sport: 20000 }))],
    ['quotes another source address', err(q({ src: ip4('192.0.2.77') }))],
    ['quotes the other shared address', err(q({ src: SHARED2, sport: CPE3_PORT }))],
    ['quotes a packet with no ports (GRE)', err(ipv4({ src: SHARED, dst: SERVER, proto: 47 }, Buffer.alloc(8)))],
    ['quotes only 10 bytes', err(q({}), { quoteLen: 10 })],
    ['quotes an IPv6 header', err(Buffer.from('6000000000081140' + '00'.repeat(32), 'hex'))],
    ['quotes an ICMP error (no errors about errors)', err(icmpError4({ src: SHARED, dst: SERVER, type: 3, code: 3, quote: udp4({ src: SERVER, dst: SHARED, sport: 53, dport: 10500 }) }))],
    ['time exceeded quoting an unbound echo id', icmpError4({ src: SERVER, dst: SHARED, type: 11, code: 0, quote: echo4({ src: SHARED, dst: SERVER, id: 9000 }) })],
  ];
  for (const [name, pkt] of cases) {
    const v = fromInternet(lab, pkt);
    isDrop(t, v, 'icmp_unroutable', name);
    t.equal(v.generated, false, `${name}: nothing generated`);
  }
  const e = lab.core.events;
  t.equal(e.icmpGenerated + e.icmpSuppressed + e.icmpRateLimited, 0, 'no ICMP error was even considered');
  t.equal(e.icmpRelayed, 0, 'nothing relayed');
});

t.test('Internet -> CPE: incoming ICMP refused by policy', async (t) => {
  const lab = makeLab({ policy: (p) => (p.external.allowIncomingIcmp = false) });
  isDrop(t, fromInternet(lab, echo4({ src: INET, dst: SHARED, id: 10500 })), 'icmp_policy', 'echo request');
  const err = icmpError4({ src: SERVER, dst: SHARED, type: 3, code: 3, quote: outUdp(10500) });
  isDrop(t, fromInternet(lab, err), 'icmp_policy', 'error');
  t.equal(lab.core.events.icmpRelayed, 0);
  const u = inUdp(10500);
  isForward(t, fromInternet(lab, u), Action.ToCpe, u, 'UDP still passes');
});

t.test('Internet -> CPE: malformed packets are drops with the codec reason, never a throw', async (t) => {
  const lab = makeLab();
  const udp = inUdp(10500);
  const tcp = tcp4({ src: INET, dst: SHARED, sport: 80, dport: 11500, mss: 1400 });
  const ping = echo4({ src: INET, dst: SHARED, id: 10500 });
  const err = icmpError4({ src: SERVER, dst: SHARED, type: 3, code: 3, quote: outUdp(10500) });

  isDrop(t, fromInternet(lab, inUdp(10500, { corrupt: 'ipv4' })), 'bad_checksum', 'bad IPv4 checksum');
  isDrop(t, fromInternet(lab, echo4({ src: INET, dst: SHARED, id: 10500, corrupt: 'l4' })), 'bad_checksum', 'bad ICMP checksum (echo)');
  const badErr = icmpError4({ src: SERVER, dst: SHARED, type: 3, code: 3, quote: outUdp(10500), corrupt: 'l4' });
  isDrop(t, fromInternet(lab, badErr), 'bad_checksum', 'bad ICMP checksum (error)');
  t.equal(lab.core.events.icmpRelayed, 0, 'a bad error is not relayed');

  for (const [name, pkt] of [['udp', udp], ['tcp', tcp], ['echo', ping], ['icmp error', err]] as const) {
    let wrong = 0;
    let first = '';
    for (let len = 0; len < pkt.length; len++) {
      const v = fromInternet(lab, pkt, len);
      if (v.action !== Action.Drop || reasonName(v) !== 'truncated') {
        wrong++;
        first ||= `len ${len}: action ${v.action} reason ${reasonName(v)}`;
      }
    }
    t.equal(wrong, 0, `${name} cut at every length 0..${pkt.length - 1} is truncated ${first}`);
  }
  // The IPv4 header is whole, but its total length leaves too little for the port / ICMP header.
  for (const tl of [20, 21, 22, 23]) isDrop(t, fromInternet(lab, withTotalLength(udp, tl)), 'truncated', `udp, total length ${tl}`);
  for (const tl of [20, 24, 27]) isDrop(t, fromInternet(lab, withTotalLength(ping, tl)), 'truncated', `echo, total length ${tl}`);
  // A wrong version on the TUN is "not IPv4" (same reason as from the tunnel).
  for (const ver of [0, 5, 6, 15]) {
    isDrop(t, fromInternet(lab, withHeaderByte(udp, 0, (ver << 4) | 5)), 'not_ipv4', `version ${ver}`);
  }
  for (const ihl of [0, 1, 4]) isDrop(t, fromInternet(lab, withHeaderByte(udp, 0, 0x40 | ihl)), 'bad_ihl', `IHL ${ihl}`);
  isDrop(t, fromInternet(lab, withHeaderByte(udp, 0, 0x4f)), 'truncated', 'IHL 15 on a 60-byte packet');
  isDrop(t, fromInternet(lab, withTotalLength(udp, 19)), 'bad_total_length', 'total length below the header');
  const bigger = withTotalLength(udp, udp.length + 1);
  isDrop(t, fromInternet(lab, bigger), 'truncated', 'total length past the data');
  // Trailing bytes past the total length (Ethernet padding) are not forwarded.
  const v = fromInternet(lab, Buffer.concat([udp, Buffer.alloc(6)]));
  isForward(t, v, Action.ToCpe, udp, 'padded packet: only total length bytes forwarded');
  t.equal(lab.core.events.icmpGenerated, 0, 'no ICMP about malformed packets');
});

t.test('Internet -> CPE: over the tunnel MTU', async (t) => {
  const lab = makeLab(); // internal.mtu 1500: tunnel MTU 1460
  const big = (n: number, df: boolean, dport = 10500): Buffer => inUdp(dport, { data: n - 28, df });
  const fits = big(1460, true);
  isForward(t, fromInternet(lab, fits), Action.ToCpe, fits, '1460 bytes with DF');
  const over = big(1461, true);
  let v = fromInternet(lab, over);
  t.equal(reasonName(v), 'over_mtu_df', '1461 with DF: over_mtu_df');
  let m = isIcmpError(t, v, Action.ToInternet, INET, ICMP4_DEST_UNREACH, ICMP4_UNREACH_FRAG_NEEDED, over, '1461 with DF');
  t.equal(m.mtu, 1460, 'next-hop MTU = internal MTU - 40');
  t.equal(m.rest >>> 16, 0, 'unused half is zero');
  const noDf = big(1461, false);
  isForward(t, fromInternet(lab, noDf), Action.ToCpe, noDf, '1461 without DF: forwarded (fragmented after encapsulation)');

  lab.table.setMtu(lab.cpe1, 1400);
  v = fromInternet(lab, big(1401, true));
  t.equal(reasonName(v), 'over_mtu_df', 'per-binding MTU 1400: 1401 with DF dropped');
  m = isIcmpError(t, v, Action.ToInternet, INET, ICMP4_DEST_UNREACH, ICMP4_UNREACH_FRAG_NEEDED, big(1401, true), 'per-binding');
  t.equal(m.mtu, 1400, 'next-hop MTU is the binding MTU');
  const other = big(1401, true, 11500);
  isForward(t, fromInternet(lab, other), Action.ToCpe, other, 'cpe2 keeps the default MTU');

  const small = makeLab({ policy: (p) => (p.internal.mtu = 1320) });
  m = isIcmpError(t, fromInternet(small, big(1281, true)), Action.ToInternet, INET, 3, 4, big(1281, true), 'internal mtu 1320');
  t.equal(m.mtu, 1280, 'next-hop MTU 1320 - 40');

  // ttlByKernel false: the error quotes the packet as it arrived (TTL not yet decremented).
  const hop = makeLab({ core: { ttlByKernel: false } });
  const arrived = big(1461, true);
  v = fromInternet(hop, arrived);
  t.equal(reasonName(v), 'over_mtu_df');
  m = isIcmpError(t, v, Action.ToInternet, INET, 3, 4, arrived, 'ttlByKernel false: quote as arrived');
  t.equal(m.quote[8], 64, 'quoted TTL 64');
});

t.test('Internet -> CPE: protocols without ports, and fragments', async (t) => {
  const lab = makeLab();
  isDrop(t, fromInternet(lab, ipv4({ src: INET, dst: SHARED, proto: 47 }, Buffer.alloc(24))), 'no_port', 'GRE');
  isDrop(t, fromInternet(lab, ipv4({ src: INET, dst: SHARED, proto: 50 }, Buffer.alloc(24))), 'no_port', 'ESP');
  t.equal(lab.v.generated, false, 'no ICMP for a portless protocol');
});

t.test('Internet -> CPE: fragments are reassembled before the port lookup', async (t) => {
  const lab = makeLab();
  // A UDP datagram to cpe1's port 10500 in two fragments, the second first.
  const whole = inUdp(10500, { data: 1600 });
  const frags = fragment(whole, 1000);
  t.equal(frags.length, 2, 'two fragments');
  let v = fromInternet(lab, frags[1]!);
  t.equal(v.action, Action.Drop, 'last fragment first: held');
  t.equal(v.reason, -1, 'held, not a drop');
  t.equal(lab.core.reasm4.inProgress, 1, 'one datagram in reassembly');
  v = fromInternet(lab, frags[0]!);
  t.equal(v.action, Action.ToCpe, 'the whole datagram goes to the CPE');
  t.equal(v.to, lab.cpe1);
  t.ok(v.foreign, 'from the reassembly buffer');
  const out = Buffer.from(v.buf.subarray(v.off, v.off + v.len));
  t.equal(out.length, whole.length, 'reassembled length');
  t.same(out.subarray(20), whole.subarray(20), 'reassembled payload');
  t.equal(lab.core.reasm4.inProgress, 0, 'nothing left in reassembly');
  // A fragment of a datagram to a port nobody holds: reassembled, then no_binding.
  const unbound = fragment(inUdp(12500, { data: 1600 }), 1000);
  fromInternet(lab, unbound[0]!);
  v = fromInternet(lab, unbound[1]!);
  t.equal(v.reason, DROP_REASON_NAMES.indexOf('no_binding'), 'reassembled, unbound port: no_binding');
  t.ok(v.generated, 'reassembled, unbound port: host unreachable to the sender');
});

// ---- CPE -> Internet ----------------------------------------------------------------------------

t.test('CPE -> Internet: a CPE sending from its own set goes out unchanged', async (t) => {
  const lab = makeLab();
  const cases: Array<[string, Buffer, Buffer, number]> = [
    ['cpe1 udp 10000', CPE1, outUdp(10000), lab.cpe1],
    ['cpe1 udp 11000', CPE1, outUdp(11000), lab.cpe1],
    ['cpe2 tcp 11999', CPE2, tcp4({ src: SHARED, dst: INET, sport: 11999, dport: 443, mss: 1420 }), lab.cpe2],
    ['cpe3 psid', CPE3, udp4({ src: SHARED2, dst: INET, sport: CPE3_PORT, dport: 123 }), lab.cpe3],
    ['cpe1 ttl 2 (the kernel decrements it)', CPE1, outUdp(10500, { ttl: 2 }), lab.cpe1],
  ];
  for (const [name, src6, pkt, from] of cases) {
    const v = fromTunnel(lab, src6, pkt);
    isForward(t, v, Action.ToInternet, pkt, name);
    t.equal(v.from, from, `${name}: from the right binding`);
    t.equal(v.to, -1, `${name}: not to a CPE`);
    t.equal(v.srcPort, pkt.readUInt16BE(20), `${name}: the validated source port, for ports active`);
  }
});

t.test('CPE -> Internet: TTL 1 or 0 is answered by the core under the internal rate limit, not left to the kernel', async (t) => {
  const lab = makeLab({ policy: (p) => (p.internal.errorRateLimit = { packets: 2, seconds: 1 }) });
  for (const [name, src6, pkt, to] of [
    ['cpe1 udp ttl 1', CPE1, outUdp(10500, { ttl: 1 }), lab.cpe1],
    ['cpe2 echo ttl 0', CPE2, echo4({ src: SHARED, dst: INET, id: 11500, ttl: 0 }), lab.cpe2],
  ] as Array<[string, Buffer, Buffer, number]>) {
    const v = fromTunnel(lab, src6, pkt);
    t.equal(reasonName(v), 'ttl_expired', `${name}: ttl_expired`);
    isIcmpError(t, v, Action.ToCpe, SHARED, ICMP4_TIME_EXCEEDED, 0, pkt, name);
    t.equal(v.to, to, `${name}: back to the sending CPE`);
    t.equal(v.from, to, `${name}: counted against it`);
  }
  const third = fromTunnel(lab, CPE1, outUdp(10501, { ttl: 1 }));
  t.equal(reasonName(third), 'ttl_expired', 'a third one: still dropped');
  t.equal(third.action, Action.Drop, 'but not answered: the internal bucket (2/s) is empty');
  t.equal(lab.core.events.icmpRateLimited, 1, 'counted as rate limited');
  const err = fromTunnel(lab, CPE1, icmpError4({ src: SHARED, dst: INET, type: 3, code: 3, ttl: 1, quote: udp4({ src: INET, dst: SHARED, sport: 53, dport: 10500 }) }));
  t.equal(err.generated, false, 'no time exceeded about an ICMP error');
  const hop = makeLab({ core: { ttlByKernel: false } });
  const pkt = outUdp(10500, { ttl: 1 });
  isForward(t, fromTunnel(hop, CPE1, pkt), Action.ToInternet, pkt, 'ttlByKernel false (conformance): unchanged, as before');
});

t.test('CPE -> Internet: source validation', async (t) => {
  const lab = makeLab();
  const cases: Array<[string, Buffer, Buffer, DropReasonName]> = [
    ['cpe1 from port 12500 (nobody\'s)', CPE1, outUdp(12500), 'port_outside_set'],
    ['cpe1 from port 9999', CPE1, outUdp(9999), 'port_outside_set'],
    ['cpe1 from cpe2\'s port 11500', CPE1, outUdp(11500), 'port_outside_set'],
    ['cpe2 from cpe1\'s port 10500', CPE2, outUdp(10500), 'port_outside_set'],
    ['cpe1 from another IPv4 address', CPE1, outUdp(10500, { src: ip4('192.0.2.101') }), 'port_outside_set'],
    ['cpe1 from cpe3\'s PSID port on the other address', CPE1, udp4({ src: SHARED2, dst: INET, sport: CPE3_PORT, dport: 53 }), 'port_outside_set'],
    ['cpe3 from PSID 53', CPE3, udp4({ src: SHARED2, dst: INET, sport: PSID53_PORT, dport: 53 }), 'port_outside_set'],
    ['unknown IPv6, bound port', STRANGER, outUdp(10500), 'spoofed_ipv6'],
    ['unknown IPv6, bound port of cpe2', STRANGER, outUdp(11500), 'spoofed_ipv6'],
    ['unknown IPv6, unbound port', STRANGER, outUdp(13000), 'unknown_cpe'],
    ['unknown IPv6, unshared address', STRANGER, outUdp(10500, { src: ip4('10.0.0.1') }), 'unknown_cpe'],
  ];
  for (const [name, src6, pkt, reason] of cases) {
    const v = fromTunnel(lab, src6, pkt);
    isRefused6(t, v, reason, name);
    // A known CPE sending outside its set is charged for the drop; a stranger is nobody's.
    const cpe = lab.table.lookupIpv6(src6, 0);
    t.equal(v.from, reason === 'port_outside_set' ? cpe : -1, `${name}: attributed to ${reason === 'port_outside_set' ? 'the sending CPE' : 'no binding'}`);
    if (reason === 'port_outside_set') t.ok(cpe >= 0, `${name}: the sender is a known CPE`);
    t.equal(v.srcPort, -1, `${name}: no port marked active`);
  }
});

t.test('CPE -> Internet: two tunnel endpoints, each CPE must use its own', async (t) => {
  const lab = makeLab({ twoBrs: true });
  isForward(t, fromTunnel(lab, CPE1, outUdp(10500), BR), Action.ToInternet, outUdp(10500), 'cpe1 -> BR');
  isForward(t, fromTunnel(lab, CPE2, outUdp(11500), BR2), Action.ToInternet, outUdp(11500), 'cpe2 -> BR2');
  let v = fromTunnel(lab, CPE1, outUdp(10500), BR2);
  isRefused6(t, v, 'wrong_endpoint', 'cpe1 -> BR2');
  t.equal(v.from, lab.cpe1, 'the drop is counted against cpe1');
  v = fromTunnel(lab, CPE2, outUdp(11500), BR);
  isRefused6(t, v, 'wrong_endpoint', 'cpe2 -> BR');
  isRefused6(t, fromTunnel(lab, CPE1, outUdp(10500), STRANGER), 'wrong_endpoint', 'cpe1 -> not an endpoint at all');
});

/** RFC 1071 over the ICMPv6 pseudo header and `msg`: 0xffff when its checksum is right (independent of the codec). */
function icmp6SumOk(msg: Buffer, src: Buffer, dst: Buffer): boolean {
  const ph = Buffer.alloc(40);
  src.copy(ph, 0);
  dst.copy(ph, 16);
  ph.writeUInt32BE(msg.length, 32);
  ph[39] = 58;
  const all = Buffer.concat([ph, msg]);
  let sum = 0;
  for (let i = 0; i + 1 < all.length; i += 2) sum += all.readUInt16BE(i);
  if (all.length % 2 === 1) sum += all[all.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum === 0xffff;
}

/** An Icmp6ToCpe verdict: Destination Unreachable 5 from `br` to `cpe` quoting the rebuilt outer header and `pkt` (cut at 1280). */
function isIcmp6Policy(t: T, v: Verdict, reason: DropReasonName, cpe: Buffer, br: Buffer, pkt: Buffer, msg: string): void {
  t.equal(reasonName(v), reason, `${msg}: reason ${reason}`);
  t.equal(v.action, Action.Icmp6ToCpe, `${msg}: answered with ICMPv6`);
  t.ok(v.generated && v.foreign, `${msg}: generated, in the core's buffer`);
  t.equal(v.to, -1, `${msg}: not to a binding`);
  const src = v.ip6.subarray(v.ip6Off + 8, v.ip6Off + 24);
  const dst = v.ip6.subarray(v.ip6Off + 24, v.ip6Off + 40);
  t.same(hex(src), hex(br), `${msg}: from the BR address the CPE used`);
  t.same(hex(dst), hex(cpe), `${msg}: to the outer source`);
  const m = v.buf.subarray(v.off, v.off + v.len);
  t.equal(m[0], ICMP6_DEST_UNREACH, `${msg}: type 1`);
  t.equal(m[1], 5, `${msg}: code 5 (source address failed ingress/egress policy)`);
  t.equal(m.readUInt32BE(4), 0, `${msg}: unused word 0`);
  t.ok(icmp6SumOk(m, br, cpe), `${msg}: checksum over the pseudo header`);
  t.equal(m.length, Math.min(1280 - 40, 8 + 40 + pkt.length), `${msg}: at most 1280 bytes with the IPv6 header`);
  t.equal(m.readUInt32BE(8), 0x60000000, `${msg}: quoted version 6, traffic class 0, flow label 0`);
  t.equal(m.readUInt16BE(12), pkt.length, `${msg}: quoted payload length`);
  t.equal(m[14], 4, `${msg}: quoted next header 4`);
  t.equal(m[15], 64, `${msg}: quoted hop limit 64 (documented: unknown)`);
  t.equal(hex(m.subarray(16, 32)), hex(cpe), `${msg}: quoted source`);
  t.equal(hex(m.subarray(32, 48)), hex(br), `${msg}: quoted destination`);
  t.equal(hex(m.subarray(48)), hex(pkt.subarray(0, m.length - 48)), `${msg}: quoted inner packet`);
}

t.test('CPE -> Internet: source validation failures answered with ICMPv6 1/5 (RFC 7596 §5.2)', async (t) => {
  const lab = makeLab({ twoBrs: true });
  const cases: Array<[DropReasonName, Buffer, Buffer, Buffer]> = [
    ['port_outside_set', CPE1, outUdp(12500), BR],
    ['spoofed_ipv6', STRANGER, outUdp(10500), BR],
    ['unknown_cpe', STRANGER, outUdp(13000), BR],
    ['wrong_endpoint', CPE1, outUdp(10500), BR2],
    ['unknown_cpe', STRANGER, outUdp(13000, { data: 1400 }), BR2],
  ];
  for (const [reason, src6, pkt, br] of cases) {
    isIcmp6Policy(t, fromTunnel(lab, src6, pkt, br), reason, src6, br, pkt, `${reason} (${pkt.length} bytes)`);
  }
  t.equal(lab.core.events.icmp6Generated, cases.length, 'icmp6Generated');
  t.equal(lab.core.events.icmpGenerated, 0, 'no ICMPv4 counted');

  const off = makeLab({ policy: (p) => (p.internal.generateIcmpErrors = false) });
  isDrop(t, fromTunnel(off, CPE1, outUdp(12500)), 'port_outside_set', 'generate_icmp_errors off: dropped');
  isDrop(t, fromTunnel(off, STRANGER, outUdp(13000)), 'unknown_cpe', 'generate_icmp_errors off: unknown CPE dropped');
  t.equal(off.core.events.icmp6Generated, 0, 'none generated');

  const nonUnicast = makeLab();
  for (const a of ['ff02::1', '::', '::1', 'ff0e::5']) {
    isDrop(t, fromTunnel(nonUnicast, ip6(a), outUdp(13000)), 'unknown_cpe', `from ${a}: dropped, never answered`);
  }
  t.equal(nonUnicast.core.events.icmp6Generated + nonUnicast.core.events.icmp6RateLimited, 0, 'no ICMPv6, no token used');

  const limited = makeLab({ policy: (p) => (p.internal.errorRateLimit = { packets: 2, seconds: 1 }) });
  let sent = 0;
  for (let i = 0; i < 5; i++) if (fromTunnel(limited, STRANGER, outUdp(13000)).action === Action.Icmp6ToCpe) sent++;
  t.equal(sent, 2, 'internal bucket: 2 of 5');
  t.equal(limited.core.events.icmp6RateLimited, 3, 'icmp6RateLimited');
  limited.clock.t = 1000;
  t.equal(fromTunnel(limited, CPE1, outUdp(12500)).action, Action.Icmp6ToCpe, 'a second later: answered again');
});

t.test('CPE -> Internet: what the tunnel must not carry', async (t) => {
  const lab = makeLab();
  const six = ipv4({ src: SHARED, dst: INET, proto: 41 }, Buffer.from('6000000000003b40' + '00'.repeat(32), 'hex'));
  isDrop(t, fromTunnel(lab, CPE1, six), 'tunnel_loop', 'inner protocol 41 (IPv6 in IPv4 in IPv6)');
  const v6 = Buffer.from('6000000000083a40' + hex(CPE1) + hex(BR) + '8000000000000000', 'hex');
  isDrop(t, fromTunnel(lab, CPE1, v6), 'not_ipv4', 'inner IPv6 packet');
  isDrop(t, fromTunnel(lab, CPE1, withHeaderByte(outUdp(10500), 0, 0x05)), 'not_ipv4', 'version 0');
  isDrop(t, fromTunnel(lab, CPE1, outUdp(10500, { corrupt: 'ipv4' })), 'bad_checksum', 'bad inner checksum');
  let held = fromTunnel(lab, CPE1, outUdp(10500, { mf: true }));
  t.equal(held.action, Action.Drop, 'inner fragment: held for reassembly');
  t.equal(held.reason, -1, 'inner fragment: not a drop');
  held = fromTunnel(lab, STRANGER, outUdp(10500, { mf: true }));
  isDrop(t, held, 'unknown_cpe', 'inner fragment from a stranger: no reassembly state for it');
  isDrop(t, fromTunnel(lab, CPE1, outUdp(10500), BR, 27), 'truncated', 'inner packet cut short');
  isDrop(t, fromTunnel(lab, CPE1, withHeaderByte(outUdp(10500), 0, 0x43)), 'bad_ihl', 'IHL 3');
  isDrop(t, fromTunnel(lab, CPE1, ipv4({ src: SHARED, dst: INET, proto: 47 }, Buffer.alloc(8))), 'no_port', 'GRE from a CPE');
});

t.test('CPE -> Internet: ICMP from LAN hosts', async (t) => {
  const lab = makeLab();
  const ping = echo4({ src: SHARED, dst: INET, id: 10700 });
  isForward(t, fromTunnel(lab, CPE1, ping), Action.ToInternet, ping, 'echo request, id in the set');
  t.equal(lab.v.from, lab.cpe1);
  const reply = echo4({ src: SHARED, dst: INET, id: 11002, reply: true });
  isForward(t, fromTunnel(lab, CPE2, reply), Action.ToInternet, reply, 'echo reply, id in the set');
  isRefused6(t, fromTunnel(lab, CPE1, echo4({ src: SHARED, dst: INET, id: 9000 })), 'port_outside_set', 'echo id outside the set');
  isDrop(t, fromTunnel(lab, CPE1, echo4({ src: SHARED, dst: INET, id: 10700, corrupt: 'l4' })), 'bad_checksum', 'echo with a bad checksum');

  // A LAN host's port unreachable about a packet an Internet host sent to 192.0.2.100:10500.
  const arrived = udp4({ src: INET, dst: SHARED, sport: 40000, dport: 10500, ttl: 50 });
  const err = icmpError4({ src: SHARED, dst: INET, type: 3, code: 3, quote: arrived });
  isForward(t, fromTunnel(lab, CPE1, err), Action.ToInternet, err, 'port unreachable quoting 192.0.2.100:10500');
  t.equal(lab.v.from, lab.cpe1);
  const err2 = icmpError4({ src: SHARED, dst: INET, type: 3, code: 3, quote: udp4({ src: INET, dst: SHARED, sport: 40000, dport: 11500 }) });
  isRefused6(t, fromTunnel(lab, CPE1, err2), 'port_outside_set', 'cpe1 sending an error about cpe2\'s port');
  const err3 = icmpError4({ src: SHARED, dst: INET, type: 3, code: 3, quote: udp4({ src: INET, dst: ip4('192.0.2.55'), sport: 40000, dport: 10500 }) });
  isDrop(t, fromTunnel(lab, CPE1, err3), 'icmp_unroutable', 'error quoting a packet to another address');
});

// ---- Hairpinning ------------------------------------------------------------------------------

t.test('hairpinning: customer to customer on the shared address', async (t) => {
  const lab = makeLab();
  const pkt = udp4({ src: SHARED, dst: SHARED, sport: 10500, dport: 11500, ttl: 64, data: 40 });
  const v = fromTunnel(lab, CPE1, pkt);
  t.equal(v.action, Action.ToCpe, 'to a CPE');
  t.equal(v.reason, -1);
  t.equal(v.to, lab.cpe2, 'to cpe2');
  t.equal(v.from, lab.cpe1, 'from cpe1');
  t.equal(v.hairpin, true, 'hairpin');
  t.equal(v.generated, false);
  const o = out(v);
  const ip = readIpv4(o, 0, o.length);
  t.equal(ip.ttl, 63, 'TTL decremented by one');
  t.ok(ip.headerOk, 'header checksum valid');
  t.ok(ip.l4Ok, 'UDP checksum valid');
  o[8] = 64;
  o.writeUInt16BE(pkt.readUInt16BE(10), 10);
  t.equal(hex(o), hex(pkt), 'nothing else changed');

  const cross = udp4({ src: SHARED, dst: SHARED2, sport: 10500, dport: CPE3_PORT });
  t.equal(fromTunnel(lab, CPE1, cross).to, lab.cpe3, 'to the PSID customer on the other shared address');
  t.equal(lab.v.hairpin, true);
  const ping = echo4({ src: SHARED2, dst: SHARED, id: CPE3_PORT });
  isDrop(t, fromTunnel(lab, CPE3, ping), 'no_binding', 'echo whose id is bound on the source address only');

  isDrop(t, fromTunnel(lab, CPE1, udp4({ src: SHARED, dst: SHARED, sport: 10500, dport: 12500 })), 'no_binding', 'to an unbound port');
  t.equal(lab.v.generated, false, 'no ICMP for it');

  const off = makeLab({ policy: (p) => (p.hairpinning = false) });
  isDrop(t, fromTunnel(off, CPE1, pkt), 'hairpin_disabled', 'hairpinning off');
});

t.test('hairpinning: TTL expiry and MTU answer the sending customer', async (t) => {
  const lab = makeLab();
  const pkt = udp4({ src: SHARED, dst: SHARED, sport: 10500, dport: 11500, ttl: 1 });
  let v = fromTunnel(lab, CPE1, pkt);
  t.equal(reasonName(v), 'ttl_expired', 'ttl_expired');
  isIcmpError(t, v, Action.ToCpe, SHARED, ICMP4_TIME_EXCEEDED, 0, pkt, 'hairpin TTL 1');
  t.equal(v.to, lab.cpe1, 'time exceeded goes back to cpe1');

  lab.table.setMtu(lab.cpe2, 1300);
  const big = udp4({ src: SHARED, dst: SHARED, sport: 10500, dport: 11500, df: true, data: 1301 - 28 });
  v = fromTunnel(lab, CPE1, big);
  t.equal(reasonName(v), 'over_mtu_df', 'over cpe2\'s MTU with DF');
  const m = isIcmpError(t, v, Action.ToCpe, SHARED, ICMP4_DEST_UNREACH, ICMP4_UNREACH_FRAG_NEEDED, big, 'hairpin frag needed');
  t.equal(v.to, lab.cpe1, 'frag needed goes back to cpe1');
  t.equal(m.mtu, 1300, 'with cpe2\'s tunnel MTU');
  t.equal(m.quote[8], 64, 'quoted TTL is as sent');
  t.equal(readIpv4(m.quote, 0, 20).headerOk, true, 'quoted header checksum is valid');
  const noDf = udp4({ src: SHARED, dst: SHARED, sport: 10500, dport: 11500, data: 1301 - 28 });
  t.equal(fromTunnel(lab, CPE1, noDf).action, Action.ToCpe, 'without DF: forwarded');
});

t.test('CPE -> Internet with ttlToInternet (raw IPv4 output): the core is the IPv4 hop', async (t) => {
  const lab = makeLab({ core: { ttlToInternet: true } });
  for (const ttl of [64, 2]) {
    const pkt = udp4({ src: SHARED, dst: INET, sport: 10500, dport: 53, ttl });
    const v = fromTunnel(lab, CPE1, pkt);
    t.equal(v.action, Action.ToInternet, `ttl ${ttl}: forwarded`);
    const o = out(v);
    const ip = readIpv4(o, 0, o.length);
    t.equal(ip.ttl, ttl - 1, `ttl ${ttl}: decremented`);
    t.ok(ip.headerOk, `ttl ${ttl}: header checksum still valid`);
  }
  const pkt = udp4({ src: SHARED, dst: INET, sport: 10500, dport: 53, ttl: 1 });
  const v = fromTunnel(lab, CPE1, pkt);
  t.equal(reasonName(v), 'ttl_expired', 'ttl 1: ttl_expired');
  isIcmpError(t, v, Action.ToCpe, SHARED, ICMP4_TIME_EXCEEDED, 0, pkt, 'ttl 1');
  t.equal(v.to, lab.cpe1, 'time exceeded goes back to the sending CPE');

  const kernel = makeLab();
  const o = out(fromTunnel(kernel, CPE1, udp4({ src: SHARED, dst: INET, sport: 10500, dport: 53, ttl: 64 })));
  t.equal(readIpv4(o, 0, o.length).ttl, 64, 'with TUN output the kernel is that hop: TTL left as it came');
});

// ---- ICMPv6 errors about tunnelled packets -----------------------------------------------------

t.test('fromTunnelError: Packet Too Big lowers the tunnel MTU and tells the sender', async (t) => {
  const lab = makeLab();
  const sent = udp4({ src: INET, dst: SHARED, sport: 53, dport: 10500, df: true, data: 1400 - 28, ttl: 63 });
  const quoted = sent.subarray(0, 1280 - 48); // what fits in the ICMPv6 error
  let v = fromTunnelError(lab, ICMP6_PACKET_TOO_BIG, 0, 1300, quoted);
  let m = isIcmpError(t, v, Action.ToInternet, INET, ICMP4_DEST_UNREACH, ICMP4_UNREACH_FRAG_NEEDED, quoted, 'PTB 1300');
  t.equal(m.mtu, 1260, 'next-hop MTU 1300 - 40');
  t.equal(v.pmtuLowered, lab.cpe1, 'cpe1 lowered');
  t.equal(lab.table.mtuOf(lab.cpe1), 1260, 'table MTU 1260');
  t.equal(lab.table.mtuOf(lab.cpe2), 0, 'cpe2 untouched');
  t.equal(lab.core.events.icmp6Translated, 1);
  m = isIcmpError(t, fromInternet(lab, inUdp(10500, { df: true, data: 1261 - 28 })), Action.ToInternet, INET, 3, 4, inUdp(10500, { df: true, data: 1261 - 28 }), 'next packet');
  t.equal(m.mtu, 1260, 'the next big DF packet learns 1260 from the PRR');

  v = fromTunnelError(lab, ICMP6_PACKET_TOO_BIG, 0, 1400, quoted);
  t.equal(lab.table.mtuOf(lab.cpe1), 1260, 'a larger PTB does not raise the MTU');
  t.equal(v.pmtuLowered, -1, 'nothing lowered');
  t.equal(isIcmpError(t, v, Action.ToInternet, INET, 3, 4, quoted, 'PTB 1400').mtu, 1360, 'the sender still learns this hop');

  const lab2 = makeLab();
  const noDf = udp4({ src: INET, dst: SHARED, sport: 53, dport: 11500, data: 1400 - 28 });
  v = fromTunnelError(lab2, ICMP6_PACKET_TOO_BIG, 0, 1300, noDf.subarray(0, 1232));
  t.equal(v.action, Action.Drop, 'without DF: nothing sent');
  t.equal(v.generated, false);
  t.equal(lab2.core.events.icmpGenerated, 0);
  t.equal(v.pmtuLowered, lab2.cpe2, 'but the MTU is lowered');
  t.equal(lab2.table.mtuOf(lab2.cpe2), 1260);

  const lab3 = makeLab();
  v = fromTunnelError(lab3, ICMP6_PACKET_TOO_BIG, 0, 1500, quoted);
  t.equal(v.pmtuLowered, -1, 'PTB 1500 on a 1460 tunnel lowers nothing');
  t.equal(lab3.table.mtuOf(lab3.cpe1), 0);
});

t.test('a learnt path MTU expires after pmtu_timeout, checked when a packet goes to the binding (RFC 8201 §4)', async (t) => {
  const raised: Array<[number, number]> = [];
  const lab = makeLab({ core: { pmtuTimeoutMs: 600_000, onPmtuRaised: (id, mtu) => raised.push([id, mtu]) } });
  const quoted = udp4({ src: INET, dst: SHARED, sport: 53, dport: 10500, df: true, data: 1400 - 28 }).subarray(0, 1232);
  const big = inUdp(10500, { df: true, data: 1400 - 28 });
  const fragNeeded = (what: string): number => isIcmpError(t, fromInternet(lab, big), Action.ToInternet, INET, 3, 4, big, what).mtu;
  t.equal(fromTunnelError(lab, ICMP6_PACKET_TOO_BIG, 0, 1300, quoted).pmtuLowered, lab.cpe1, 'PTB 1300 at 0 s: lowered');
  t.equal(lab.core.events.fragNeeded, 1, 'the translated PTB counts as a Fragmentation Needed sent');
  lab.clock.t = 300_000;
  t.equal(fragNeeded('at 300 s'), 1260, 'at 300 s: still 1260');
  t.equal(fromTunnelError(lab, ICMP6_PACKET_TOO_BIG, 0, 1300, quoted).pmtuLowered, -1, 'PTB 1300 again at 300 s: nothing lower...');
  lab.clock.t = 600_000;
  t.equal(fragNeeded('at 600 s'), 1260, '...but the timer restarted: still 1260 at 600 s');
  t.equal(lab.core.events.pmtuRaised, 0, 'nothing raised yet');
  t.equal(lab.core.events.fragNeeded, 4, 'every Fragmentation Needed counted');
  lab.clock.t = 900_000;
  isForward(t, fromInternet(lab, big), Action.ToCpe, big, 'at 900 s: the full MTU again, the packet is the probe');
  t.equal(lab.table.mtuOf(lab.cpe1), 0, 'back to the tunnel MTU of the policy');
  t.equal(lab.core.events.pmtuRaised, 1, 'counted once');
  t.same(raised, [[lab.cpe1, 1460]], 'reported with the full MTU');
  t.equal(lab.core.learntMtus, 0, 'nothing left to check');
  isForward(t, fromInternet(lab, big), Action.ToCpe, big, 'the next one too');
  t.equal(lab.core.events.pmtuRaised, 1, 'not counted again');
  t.equal(fromTunnelError(lab, ICMP6_PACKET_TOO_BIG, 0, 1280, quoted).pmtuLowered, lab.cpe1, 'the probe draws a PTB: lowered again');
  t.equal(fragNeeded('after the probe'), 1240, 'to 1240');
  t.equal(lab.table.mtuOf(lab.cpe2), 0, 'cpe2 never touched');
});

t.test('an expired learnt MTU restores an MTU the binding had before, and leaves a reused id alone', async (t) => {
  const lab = makeLab({ core: { pmtuTimeoutMs: 1000 } });
  lab.table.setMtu(lab.cpe1, 1400); // e.g. the binding's own MTU
  const quoted = udp4({ src: INET, dst: SHARED, sport: 53, dport: 10500, df: true, data: 1400 - 28 }).subarray(0, 1232);
  fromTunnelError(lab, ICMP6_PACKET_TOO_BIG, 0, 1300, quoted);
  fromTunnelError(lab, ICMP6_PACKET_TOO_BIG, 0, 1290, quoted);
  t.equal(lab.core.tunnelMtu(lab.cpe1), 1250, 'lowered twice');
  lab.clock.t = 1000;
  t.equal(lab.core.tunnelMtu(lab.cpe1), 1400, 'back to 1400, not to the policy MTU');
  const q2 = udp4({ src: INET, dst: SHARED, sport: 53, dport: 11500, df: true, data: 1400 - 28 }).subarray(0, 1232);
  fromTunnelError(lab, ICMP6_PACKET_TOO_BIG, 0, 1300, q2);
  lab.table.setMtu(lab.cpe2, 1300); // the id now holds something else (a binding change)
  lab.clock.t = 5000;
  t.equal(lab.core.tunnelMtu(lab.cpe2), 1300, 'an MTU set since is kept');
  t.equal(lab.core.events.pmtuRaised, 1, 'only the first counted as raised');
  fromTunnelError(lab, ICMP6_PACKET_TOO_BIG, 0, 1300, q2); // learnt at 5 s: 1260 over the 1300
  lab.table.setMtu(lab.cpe2, 1350); // the id changes hands again, before that expires
  fromTunnelError(lab, ICMP6_PACKET_TOO_BIG, 0, 1280, q2);
  lab.clock.t = 7000;
  t.equal(lab.core.tunnelMtu(lab.cpe2), 1350, 'the stale entry is not what comes back: the MTU before the last PTB is');
});

t.test('fromTunnelError: PTB about a large echo (quote cut short) still lowers the MTU', async (t) => {
  const lab = makeLab();
  const ping = echo4({ src: INET, dst: SHARED, id: 10700, reply: true, data: 1400 - 28, df: true });
  const v = fromTunnelError(lab, ICMP6_PACKET_TOO_BIG, 0, 1300, ping.subarray(0, 1232));
  t.equal(v.pmtuLowered, lab.cpe1, 'echo id 10700 -> cpe1 lowered');
  t.equal(lab.table.mtuOf(lab.cpe1), 1260);
  t.equal(isIcmpError(t, v, Action.ToInternet, INET, 3, 4, ping.subarray(0, 1232), 'echo PTB').mtu, 1260);
});

t.test('fromTunnelError: a PTB below the IPv6 minimum MTU does not lower the tunnel below 1240', async (t) => {
  const lab = makeLab();
  const sent = udp4({ src: INET, dst: SHARED, sport: 53, dport: 10500, df: true, data: 1300 });
  for (const info of [1000, 68, 0]) {
    const v = fromTunnelError(lab, ICMP6_PACKET_TOO_BIG, 0, info, sent);
    t.equal(lab.table.mtuOf(lab.cpe1), 1240, `PTB ${info}: tunnel MTU 1240 (RFC 8201 §4)`);
    t.equal(isIcmpError(t, v, Action.ToInternet, INET, 3, 4, sent, `PTB ${info}`).mtu, 1240, `PTB ${info}: sender told 1240`);
  }
});

t.test('fromTunnelError: [internal] allow_incoming_icmp = false refuses ICMPv6 errors', async (t) => {
  const lab = makeLab({ policy: (p) => void (p.internal.allowIncomingIcmp = false) });
  const sent = udp4({ src: INET, dst: SHARED, sport: 53, dport: 10500, df: true, data: 1300 });
  const v = fromTunnelError(lab, ICMP6_PACKET_TOO_BIG, 0, 1300, sent);
  isDrop(t, v, 'icmp_policy', 'PTB refused by policy');
  t.equal(v.pmtuLowered, -1, 'the MTU is not lowered');
  t.equal(lab.table.mtuOf(lab.cpe1), 0, 'no learnt MTU');
});

t.test('fromTunnelError: other errors become host unreachable to the sender', async (t) => {
  const lab = makeLab();
  const sent = tcp4({ src: INET, dst: SHARED, sport: 443, dport: 11500, flags: TCP_FLAG_ACK, data: 100, ttl: 55 });
  const cases: Array<[string, number, number]> = [
    ['unreachable: no route', ICMP6_DEST_UNREACH, 0],
    ['unreachable: admin', ICMP6_DEST_UNREACH, 1],
    ['unreachable: address', ICMP6_DEST_UNREACH, 3],
    ['unreachable: port', ICMP6_DEST_UNREACH, 4],
    ['hop limit exceeded', ICMP6_TIME_EXCEEDED, 0],
    ['parameter problem', ICMP6_PARAM_PROBLEM, 0],
  ];
  for (const [name, type, code] of cases) {
    const v = fromTunnelError(lab, type, code, 0, sent);
    isIcmpError(t, v, Action.ToInternet, INET, ICMP4_DEST_UNREACH, ICMP4_UNREACH_HOST, sent, name);
    t.equal(v.pmtuLowered, -1, `${name}: no MTU change`);
  }
  t.equal(lab.core.events.icmp6Translated, cases.length);
  isDrop(t, fromTunnelError(lab, ICMP6_TIME_EXCEEDED, 1, 0, sent), 'icmp_not_for_us', 'fragment reassembly time exceeded');
  isDrop(t, fromTunnelError(lab, 128, 0, 0, sent), 'icmp_not_for_us', 'an echo request is not an error');
  isDrop(t, fromTunnelError(lab, ICMP6_DEST_UNREACH, 0, 0, sent.subarray(0, 12)), 'truncated', 'quote shorter than an IPv4 header');
  isDrop(t, fromTunnelError(lab, ICMP6_DEST_UNREACH, 0, 0, Buffer.from('60000000', 'hex')), 'truncated', 'garbage quote');
  const notOurs = udp4({ src: INET, dst: ip4('192.0.2.200'), sport: 1, dport: 10500 });
  isDrop(t, fromTunnelError(lab, ICMP6_DEST_UNREACH, 0, 0, notOurs), 'icmp_unroutable', 'quote of a packet we never tunnelled (not to a shared address)');
  t.equal(lab.v.generated, false, 'no ICMPv4 toward its claimed source');
});

t.test('fromTunnelError: an error about a hairpinned packet goes to the sending customer', async (t) => {
  const lab = makeLab();
  const sent = udp4({ src: SHARED, dst: SHARED, sport: 10500, dport: 11500, ttl: 63, df: true, data: 1400 - 28 });
  const quoted = sent.subarray(0, 1232);
  let v = fromTunnelError(lab, ICMP6_DEST_UNREACH, 3, 0, quoted);
  isIcmpError(t, v, Action.ToCpe, SHARED, ICMP4_DEST_UNREACH, ICMP4_UNREACH_HOST, quoted, 'unreachable about a hairpinned packet');
  t.equal(v.to, lab.cpe1, 'to cpe1, the sender');
  v = fromTunnelError(lab, ICMP6_PACKET_TOO_BIG, 0, 1300, quoted);
  const m = isIcmpError(t, v, Action.ToCpe, SHARED, ICMP4_DEST_UNREACH, ICMP4_UNREACH_FRAG_NEEDED, quoted, 'PTB about a hairpinned packet');
  t.equal(v.to, lab.cpe1, 'frag needed to cpe1');
  t.equal(m.mtu, 1260);
  t.equal(v.pmtuLowered, lab.cpe2, 'cpe2\'s tunnel (the one that was too small) lowered');
  t.equal(lab.table.mtuOf(lab.cpe2), 1260);
  t.equal(lab.table.mtuOf(lab.cpe1), 0);
  const stale = udp4({ src: SHARED, dst: SHARED, sport: 12500, dport: 11500 });
  isDrop(t, fromTunnelError(lab, ICMP6_DEST_UNREACH, 0, 0, stale), 'icmp_unroutable', 'hairpinned sender port nobody holds');
});

// ---- rate limit ----------------------------------------------------------------------------

t.test('ICMP errors are rate limited per side (token bucket, injected clock)', async (t) => {
  const lab = makeLab({
    policy: (p) => {
      p.external.errorRateLimit = { packets: 5, seconds: 1 };
      p.internal.errorRateLimit = { packets: 2, seconds: 1 };
    },
  });
  const burst = (n: number): number => {
    let sent = 0;
    for (let i = 0; i < n; i++) {
      const v = fromInternet(lab, inUdp(20000 + i));
      if (reasonName(v) !== 'no_binding') return -1;
      if (v.action === Action.ToInternet && v.generated) sent++;
    }
    return sent;
  };
  t.equal(burst(20), 5, '20 unbound packets: 5 errors');
  t.equal(lab.core.events.icmpGenerated, 5);
  t.equal(lab.core.events.icmpRateLimited, 15, '15 rate-limited');
  t.equal(burst(1), 0, 'the same instant: still empty');
  lab.clock.t = 100;
  t.equal(burst(1), 0, '100 ms: half a token is not enough');
  lab.clock.t = 300;
  t.equal(burst(2), 1, '300 ms: 1.5 tokens, one error');
  lab.clock.t = 1300;
  t.equal(burst(20), 5, 'a second later: 5 again (the bucket holds no more than 5)');
  lab.clock.t = 10_000;
  t.equal(burst(20), 5, 'a long quiet spell still refills only to 5');
  t.equal(lab.core.events.icmpRateLimited, 15 + 1 + 1 + 1 + 15 + 15);

  // The tunnel side has its own bucket: the Internet side being empty does not matter.
  const hair = udp4({ src: SHARED, dst: SHARED, sport: 10500, dport: 11500, ttl: 1 });
  let toCpe = 0;
  for (let i = 0; i < 4; i++) if (fromTunnel(lab, CPE1, hair).action === Action.ToCpe) toCpe++;
  t.equal(toCpe, 2, 'internal bucket: 2 of 4 hairpin TTL errors');
});

// ---- RFC 1812 §4.3.2.7 ---------------------------------------------------------------------

t.test('RFC 1812: no ICMP error about an ICMP error, a non-first fragment, or to a non-unicast source', async (t) => {
  const lab = makeLab({ core: { ttlByKernel: false } });
  const relayed = icmpError4({ src: SERVER, dst: SHARED, type: 3, code: 3, ttl: 1, quote: outUdp(10500) });
  let v = fromInternet(lab, relayed);
  isDrop(t, v, 'ttl_expired', 'an ICMP error with TTL 1');
  t.equal(v.generated, false, 'no time exceeded about an ICMP error');
  t.equal(lab.core.events.icmpRelayed, 0, 'and it was not relayed');
  const bigErr = icmpError4({ src: SERVER, dst: SHARED, type: 3, code: 3, df: true, quote: outUdp(10500, { data: 1500 }), quoteLen: 1500 });
  v = fromInternet(lab, bigErr);
  isDrop(t, v, 'over_mtu_df', 'an ICMP error over the MTU with DF');
  t.equal(v.generated, false, 'no frag needed about an ICMP error');
  const echo = echo4({ src: INET, dst: SHARED, id: 10500, ttl: 1 });
  isIcmpError(t, fromInternet(lab, echo), Action.ToInternet, INET, ICMP4_TIME_EXCEEDED, 0, echo, 'an echo request is not an error: answered');

  const errAbout = icmpError4({ src: SERVER, dst: SHARED, type: 3, code: 3, quote: outUdp(10500) });
  v = fromTunnelError(lab, ICMP6_DEST_UNREACH, 0, 0, errAbout);
  t.equal(v.action, Action.Drop, 'ICMPv6 error about a relayed ICMPv4 error: nothing sent');
  t.equal(v.generated, false);
  const frag = ipv4({ src: INET, dst: SHARED, proto: 17, fragOff: 1480 }, Buffer.alloc(64));
  v = fromTunnelError(lab, ICMP6_DEST_UNREACH, 0, 0, frag);
  t.equal(v.action, Action.Drop, 'ICMPv6 error about a non-first fragment: nothing sent');
  t.equal(v.generated, false);

  const before = { ...lab.core.events };
  for (const src of ['0.0.0.0', '224.0.0.5', '239.1.2.3', '240.0.0.1', '255.255.255.255', '127.0.0.1']) {
    v = fromInternet(lab, udp4({ src: ip4(src), dst: SHARED, sport: 5, dport: 9999 }));
    isDrop(t, v, 'no_binding', `from ${src}`);
    t.equal(v.generated, false, `from ${src}: no host unreachable`);
    v = fromTunnelError(lab, ICMP6_DEST_UNREACH, 0, 0, udp4({ src: ip4(src), dst: SHARED, sport: 5, dport: 10500 }));
    t.equal(v.generated, false, `from ${src}: no translated ICMPv6 error either`);
  }
  t.equal(lab.core.events.icmpGenerated, before.icmpGenerated, 'nothing generated');
  t.equal(lab.core.events.icmpRateLimited, before.icmpRateLimited, 'nor did they use up the rate limit');
  t.equal(fromInternet(lab, udp4({ src: INET, dst: SHARED, sport: 5, dport: 9999 })).generated, true, 'a unicast source is answered');
});

// ---- random input ----------------------------------------------------------------------------

const ROUNDS = 20000;

/** Random bytes, often shaped into something close to a packet the core would look deeper into. */
function randomPacket(rnd: () => number, toShared: boolean): Buffer {
  const len = Math.floor(rnd() * 96);
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = Math.floor(rnd() * 256);
  if (len >= 20 && rnd() < 0.7) {
    b[0] = rnd() < 0.9 ? 0x45 : 0x40 | Math.floor(rnd() * 16);
    if (rnd() < 0.7) b.writeUInt16BE(rnd() < 0.8 ? len : Math.floor(rnd() * 100), 2);
    if (rnd() < 0.7) b[6] = rnd() < 0.5 ? 0x40 : 0;
    if (rnd() < 0.7) b[7] = 0;
    if (rnd() < 0.8) b[9] = [1, 6, 17, 41, 47][Math.floor(rnd() * 5)]!;
    const shared = rnd() < 0.5 ? SHARED : SHARED2;
    if (toShared && rnd() < 0.8) b.writeUInt32BE(shared, 16);
    if (!toShared && rnd() < 0.8) b.writeUInt32BE(shared, 12);
    if (rnd() < 0.5) b.writeUInt32BE(rnd() < 0.5 ? SHARED : INET, toShared ? 12 : 16);
    const hlen = (b[0]! & 0x0f) * 4;
    if (len >= hlen + 8 && rnd() < 0.6) {
      const port = 10000 + Math.floor(rnd() * 2001);
      b.writeUInt16BE(port, hlen + (toShared ? 2 : 0));
      if (b[9] === 1) b.writeUInt16BE(port, hlen + 4);
    }
    if (b[9] === 1 && len > hlen && rnd() < 0.6) b[hlen] = [0, 3, 8, 11][Math.floor(rnd() * 4)]!;
    if (hlen >= 20 && hlen <= len && rnd() < 0.8) {
      b.writeUInt16BE(0, 10);
      let s = 0;
      for (let i = 0; i < hlen; i += 2) s += (b[i]! << 8) | b[i + 1]!;
      while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
      b.writeUInt16BE(~s & 0xffff, 10);
    }
  }
  return b;
}

interface FuzzTally {
  bad: number;
  first: string;
  actions: number[];
}

/** Check one verdict; `noneOk`: a Drop may carry no reason (fromTunnelError: nothing to send). */
function checkVerdict(lab: Lab, v: Verdict, noneOk: boolean, tally: FuzzTally, what: string): void {
  const fail = (why: string): void => {
    tally.bad++;
    tally.first ||= `${what}: ${why}`;
  };
  tally.actions[v.action] = (tally.actions[v.action] ?? 0) + 1;
  if (v.action === Action.Drop) {
    // -1: held for reassembly, refused by the reassembler (it counts that), or (fromTunnelError) nothing to say.
    const ok = Number.isInteger(v.reason) && v.reason < DROP_REASON_NAMES.length && (v.reason >= 0 || v.reason === -1 || noneOk);
    if (!ok) fail(`drop reason ${v.reason}`);
    return;
  }
  if (v.action === Action.Icmp6ToCpe) {
    if (v.len < 48 || v.len > 1240 || v.off < 0 || v.off + v.len > v.buf.length) return fail(`ICMPv6 range ${v.off}+${v.len} of ${v.buf.length}`);
    const m = v.buf.subarray(v.off, v.off + v.len);
    const a = v.ip6.subarray(v.ip6Off + 8, v.ip6Off + 40);
    if (m[0] !== 1 || m[1] !== 5 || !icmp6SumOk(m, a.subarray(0, 16), a.subarray(16, 32))) return fail('not a valid ICMPv6 1/5');
    return;
  }
  if (v.action !== Action.ToCpe && v.action !== Action.ToInternet) return fail(`action ${v.action}`);
  if (v.len < 20 || v.off < 0 || v.off + v.len > v.buf.length) return fail(`packet range ${v.off}+${v.len} of ${v.buf.length}`);
  if (v.action === Action.ToCpe && !lab.table.isLive(v.to)) return fail(`to ${v.to}`);
  const ip = readIpv4(v.buf, v.off, v.len);
  if (ip.version !== 4 || !ip.headerOk || ip.totalLen !== v.len) return fail('output is not a well-formed IPv4 packet');
  if (v.generated && (ip.src !== PRR4 || ip.proto !== PROTO_ICMP || !ip.l4Ok)) return fail('generated packet is not a valid ICMPv4 error from the PRR');
}

t.test('random bytes to all three entry points: never a throw, always a well-formed verdict', async (t) => {
  const rnd = prng(0x2010);
  const v6 = [CPE1, CPE2, CPE3, STRANGER, BR];
  const entries: Array<[string, (lab: Lab, pkt: Buffer) => Verdict, boolean]> = [
    ['fromInternet', (lab, pkt) => fromInternet(lab, pkt), true],
    ['fromTunnel', (lab, pkt) => {
      const src = rnd() < 0.8 ? v6[Math.floor(rnd() * v6.length)]! : randomPacket(rnd, false).subarray(0, 16);
      return fromTunnel(lab, src.length === 16 ? src : CPE1, pkt, rnd() < 0.9 ? BR : STRANGER);
    }, false],
    ['fromTunnelError', (lab, pkt) => {
      const type = rnd() < 0.8 ? 1 + Math.floor(rnd() * 4) : Math.floor(rnd() * 256);
      const info = rnd() < 0.5 ? 1200 + Math.floor(rnd() * 400) : Math.floor(rnd() * 2 ** 32);
      return fromTunnelError(lab, type, Math.floor(rnd() * 4), info, pkt);
    }, true],
  ];
  for (const [name, call, toShared] of entries) {
    const lab = makeLab({ core: { ttlByKernel: rnd() < 0.5 } });
    const tally: FuzzTally = { bad: 0, first: '', actions: [] };
    let threw = '';
    for (let i = 0; i < ROUNDS && threw === ''; i++) {
      const pkt = randomPacket(rnd, toShared || name === 'fromTunnelError');
      try {
        checkVerdict(lab, call(lab, pkt), name === 'fromTunnelError', tally, `${name} #${i} ${hex(pkt)}`);
      } catch (e) {
        threw = `#${i} ${hex(pkt)}: ${(e as Error).stack}`;
      }
    }
    t.equal(threw, '', `${name}: never throws`);
    t.equal(tally.bad, 0, `${name}: every verdict well-formed ${tally.first}`);
    t.ok((tally.actions[Action.Drop] ?? 0) > 0, `${name}: some drops`);
    t.ok(ROUNDS - (tally.actions[Action.Drop] ?? 0) > 0, `${name}: the shaped input also reaches forwarding or ICMP`);
  }
});
