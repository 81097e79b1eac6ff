import t from 'tap';
import { csumAdd, pseudoSum6 } from '../../common/codec/checksum.js';
import {
  ICMP6_DEST_UNREACH,
  ICMP6_ECHO_REPLY,
  ICMP6_ECHO_REQUEST,
  ICMP6_PACKET_TOO_BIG,
  ICMP6_PARAM_PROBLEM,
  PROTO_ICMPV6,
  PROTO_UDP,
} from '../../common/codec/constants.js';
import {
  buildIcmp6EchoReply,
  buildIcmp6Error,
  buildIcmp6PacketTooBig,
  buildIcmp6Unreachable,
  decodeIcmp6,
  encodeIcmp6,
  icmp6Checksum,
  isIcmp6Error,
  newIcmp6Header,
  type Icmp6Header,
} from '../../common/codec/icmp6.js';
import { decodeIpv6, newIpv6Header, parseIpv6OrThrow, walkIpv6Ext } from '../../common/codec/ipv6.js';
import { DECODE_NO_VERIFY, DECODE_QUOTED, DecodeError } from '../../common/codec/result.js';
import { decodeUdp, newUdpHeader } from '../../common/codec/udp.js';
import { checkTruncations, fuzz, roundTrip, type Codec } from '../helpers/codec.js';
import { kernelPackets } from '../helpers/fixtures.js';

/** The codec over the ICMPv6 part of `ip` (a whole IPv6 packet: its addresses feed the pseudo header). */
const codecFor = (ip: Buffer): Codec<Icmp6Header> => ({
  name: 'icmp6',
  fresh: newIcmp6Header,
  decode: (buf, off, h, end) => decodeIcmp6(buf, off, h, end, ip, 8, 24),
  encode: (buf, off, h, _wire, len) => encodeIcmp6(buf, off, h, len, ip, 8, 24),
  offsetFields: ['quoteOff'],
});

const [req, rep] = kernelPackets('ping6');
const v6 = kernelPackets('unreach').filter((p) => p[0] >>> 4 === 6);
const [udpSent, portUnreach] = v6;
const A = parseIpv6OrThrow('2001:db8:1::1');
const B = parseIpv6OrThrow('2001:db8:1::2');

t.test('kernel echo request and reply', async (t) => {
  const h = newIcmp6Header();
  t.equal(decodeIcmp6(req, 40, h, req.length, req, 8, 24), 48, 'checksum verifies with the pseudo header');
  t.match(h, { type: ICMP6_ECHO_REQUEST, code: 0, seq: 1, quoteOff: -1, mtu: 0, pointer: 0 });
  const id = h.id;
  t.equal(decodeIcmp6(req, 40, h, req.length, req, 24, 8 + 1), DecodeError.bad_checksum, 'not with other addresses');
  t.equal(decodeIcmp6(rep, 40, h, rep.length, rep, 8, 24), 48);
  t.match(h, { type: ICMP6_ECHO_REPLY, id, seq: 1 });
  t.notOk(isIcmp6Error(h.type));
  roundTrip(t, codecFor(req), req.subarray(40));
  roundTrip(t, codecFor(rep), rep.subarray(40));
  const z = Buffer.from(req);
  const c = z.readUInt16BE(42);
  z.writeUInt16BE(0, 42);
  t.equal(icmp6Checksum(z, 40, z.length - 40, z, 8, 24), c, 'icmp6Checksum recomputes the kernel value');
});

t.test('echo reply builder matches the kernel reply', async (t) => {
  const out = Buffer.alloc(200, 0xee);
  const n = buildIcmp6EchoReply(out, 5, req, 0, req.length, 64);
  t.equal(n, rep.length);
  t.ok(out.subarray(5 + 40, 5 + n).equals(rep.subarray(40)), 'ICMPv6 part byte-identical');
  const ip = newIpv6Header();
  t.equal(decodeIpv6(out, 5, ip, 5 + n), 45);
  t.ok(out.subarray(5 + 8, 5 + 40).equals(rep.subarray(8, 40)), 'addresses swapped');
  t.match(ip, { nextHeader: PROTO_ICMPV6, hopLimit: 64, payloadLen: n - 40 });
  t.equal(out[4], 0xee);
  t.equal(out[5 + n], 0xee);
  const inPlace = Buffer.from(req);
  t.equal(buildIcmp6EchoReply(inPlace, 0, inPlace, 0, inPlace.length, 64), n);
  t.ok(inPlace.subarray(8).equals(rep.subarray(8)), 'in place: addresses and message');

  // With an extension header in the request: it is dropped, the checksum still holds.
  const withExt = Buffer.concat([req.subarray(0, 40), Buffer.from('3a00010400000000', 'hex'), req.subarray(40)]);
  withExt[6] = 60;
  withExt.writeUInt16BE(req.length - 40 + 8, 4);
  const m = buildIcmp6EchoReply(out, 0, withExt, 0, withExt.length, 64);
  t.equal(m, n);
  t.equal(decodeIcmp6(out, 40, newIcmp6Header(), m, out, 8, 24), 48);
  const inPlaceExt = Buffer.from(withExt);
  t.equal(buildIcmp6EchoReply(inPlaceExt, 0, inPlaceExt, 0, inPlaceExt.length, 64), n);
  t.ok(inPlaceExt.subarray(8, n).equals(rep.subarray(8)), 'in place with the header dropped');

  t.equal(buildIcmp6EchoReply(out, 0, rep, 0, rep.length, 64), DecodeError.bad_icmp_type, 'not a request');
  t.equal(buildIcmp6EchoReply(out, 0, udpSent, 0, udpSent.length, 64), DecodeError.bad_icmp_type, 'not ICMPv6');
  t.equal(buildIcmp6EchoReply(Buffer.alloc(60), 0, req, 0, req.length, 64), DecodeError.no_space);
  t.equal(buildIcmp6EchoReply(out, 0, req, 0, 50, 64), DecodeError.truncated);
  const bad = Buffer.from(req);
  bad[60] ^= 1;
  t.equal(buildIcmp6EchoReply(out, 0, bad, 0, bad.length, 64), DecodeError.bad_checksum);
});

t.test('kernel port unreachable: the quote parses', async (t) => {
  const ip = newIpv6Header();
  const h = newIcmp6Header();
  t.equal(decodeIpv6(portUnreach, 0, ip), 40);
  t.equal(walkIpv6Ext(portUnreach, 40, ip), 40);
  t.equal(decodeIcmp6(portUnreach, 40, h, portUnreach.length, portUnreach, ip.srcOff, ip.dstOff), 48);
  t.match(h, { type: ICMP6_DEST_UNREACH, code: 4, rest: 0, quoteOff: 48 });
  t.ok(isIcmp6Error(h.type));
  const inner = newIpv6Header();
  const q = decodeIpv6(portUnreach, h.quoteOff, inner, portUnreach.length, DECODE_QUOTED);
  t.equal(q, 88);
  t.equal(walkIpv6Ext(portUnreach, q, inner, portUnreach.length), 88);
  t.equal(inner.proto, PROTO_UDP);
  t.ok(portUnreach.subarray(inner.srcOff, inner.srcOff + 16).equals(A));
  const udp = newUdpHeader();
  t.equal(decodeUdp(portUnreach, 88, udp, portUnreach.length, DECODE_QUOTED), 96);
  t.match(udp, { srcPort: 40004, dstPort: 5399 });
  t.ok(portUnreach.subarray(48).equals(udpSent), 'the whole packet is quoted');
});

t.test('error builders: byte-identical ICMPv6 to the kernel, 1280-byte cap', async (t) => {
  const out = Buffer.alloc(1400, 0xee);
  const n = buildIcmp6Unreachable(out, 2, B, 0, A, 0, 64, 4, udpSent, 0, udpSent.length);
  t.equal(n, portUnreach.length);
  t.ok(out.subarray(2 + 40, 2 + n).equals(portUnreach.subarray(40)), 'ICMPv6 message equals the kernel one');
  t.ok(out.subarray(2 + 8, 2 + 40).equals(portUnreach.subarray(8, 40)), 'addresses');
  t.equal(out[1], 0xee);
  t.equal(out[2 + n], 0xee);

  const big = kernelPackets('frag').filter((p) => p[0] >>> 4 === 6)[0]; // 1496 bytes
  const m = buildIcmp6PacketTooBig(out, 0, B, 0, A, 0, 64, 1280, big, 0, big.length);
  t.equal(m, 1280, 'RFC 4443: at most the minimum MTU');
  const h = newIcmp6Header();
  t.equal(decodeIcmp6(out, 40, h, m, out, 8, 24), 48);
  t.match(h, { type: ICMP6_PACKET_TOO_BIG, code: 0, mtu: 1280, rest: 1280, quoteOff: 48 });
  t.ok(out.subarray(48, 1280).equals(big.subarray(0, 1232)));
  const inner = newIpv6Header();
  t.equal(decodeIpv6(out, 48, inner, m, DECODE_QUOTED), 88);
  t.equal(walkIpv6Ext(out, 88, inner, m), 96, 'the quoted Fragment header walks');
  t.match(inner, { fragFirst: true, fragMore: true, proto: PROTO_UDP });

  const pp = buildIcmp6Error(out, 0, B, 0, A, 0, 64, ICMP6_PARAM_PROBLEM, 0, 6, udpSent, 0, udpSent.length);
  t.equal(decodeIcmp6(out, 40, h, pp, out, 8, 24), 48);
  t.match(h, { type: ICMP6_PARAM_PROBLEM, pointer: 6, mtu: 0 });

  t.equal(buildIcmp6Error(out, 0, B, 0, A, 0, 64, 1, 0, 0, big, 0, big.length, 100), 100, 'smaller maxLen');
  t.equal(buildIcmp6Error(out, 0, B, 0, A, 0, 64, 1, 0, 0, big, 0, big.length, 87), DecodeError.no_space);
  t.equal(buildIcmp6Error(Buffer.alloc(1000), 0, B, 0, A, 0, 64, 1, 0, 0, big, 0, big.length), DecodeError.no_space);
  t.equal(buildIcmp6Error(out, 0, B, 0, A, 0, 64, 1, 0, 0, big, 2000, 1), DecodeError.truncated);
  const head = Buffer.alloc(1400);
  udpSent.copy(head, 48);
  t.equal(buildIcmp6Unreachable(head, 0, B, 0, A, 0, 64, 4, head, 48, udpSent.length), n, 'quote already in place');
  t.ok(head.subarray(40, n).equals(portUnreach.subarray(40)));
});

t.test('errors, truncation, random bytes', async (t) => {
  const h = newIcmp6Header();
  const msg = req.subarray(40);
  const cut = (n: number): number =>
    n < 8 ? DecodeError.truncated : csumAdd(msg, 0, n, pseudoSum6(req, 8, 24, PROTO_ICMPV6, n)) === 0xffff ? 8 : DecodeError.bad_checksum;
  checkTruncations(t, 'icmp6', msg, (b, end) => decodeIcmp6(b, 0, h, end, req, 8, 24), cut);
  checkTruncations(t, 'icmp6 quoted', msg.subarray(0, 8), (b, end) => decodeIcmp6(b, 0, h, end, req, 8, 24, DECODE_QUOTED), () => DecodeError.truncated);
  t.equal(decodeIcmp6(msg, -1, h, msg.length, req, 8, 24), DecodeError.truncated);
  t.equal(decodeIcmp6(msg, 0, h, msg.length, Buffer.alloc(0), 8, 24), DecodeError.bad_checksum, 'missing addresses: no throw');
  t.equal(encodeIcmp6(Buffer.alloc(10), 0, h, 12, req, 8, 24), DecodeError.no_space);
  t.equal(encodeIcmp6(Buffer.alloc(10), 0, h, 7, req, 8, 24), DecodeError.no_space);
  const seeds = [msg, portUnreach.subarray(40)];
  for (const flags of [0, DECODE_NO_VERIFY]) {
    t.ok(fuzz(t, `icmp6 flags=${flags}`, (b) => decodeIcmp6(b, 0, h, b.length, req, 8, 24, flags), seeds, 2000, 9 + flags) > 0);
  }
  const out = Buffer.alloc(200);
  fuzz(t, 'buildIcmp6EchoReply', (b) => buildIcmp6EchoReply(out, 0, b, 0, b.length, 64), [req, portUnreach], 2000, 11, 140);
});
