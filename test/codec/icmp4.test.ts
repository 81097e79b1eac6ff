import t from 'tap';
import { csumAdd } from '../../common/codec/checksum.js';
import {
  ICMP4_DEST_UNREACH,
  ICMP4_ECHO_REPLY,
  ICMP4_ECHO_REQUEST,
  ICMP4_TIME_EXCEEDED,
  ICMP4_UNREACH_FRAG_NEEDED,
  ICMP4_UNREACH_PORT,
  PROTO_ICMP,
  PROTO_UDP,
} from '../../common/codec/constants.js';
import {
  buildIcmp4EchoReply,
  buildIcmp4Error,
  buildIcmp4FragNeeded,
  decodeIcmp4,
  encodeIcmp4,
  icmp4EchoRest,
  icmp4FragNeededRest,
  isIcmp4Error,
  newIcmp4Header,
  type Icmp4Header,
} from '../../common/codec/icmp4.js';
import { decodeIpv4, newIpv4Header } from '../../common/codec/ipv4.js';
import { DECODE_NO_VERIFY, DECODE_QUOTED, DecodeError } from '../../common/codec/result.js';
import { decodeUdp, newUdpHeader } from '../../common/codec/udp.js';
import { checkTruncations, fuzz, roundTrip, type Codec } from '../helpers/codec.js';
import { kernelPackets } from '../helpers/fixtures.js';

const ICMP: Codec<Icmp4Header> = {
  name: 'icmp4',
  fresh: newIcmp4Header,
  decode: (buf, off, h, end) => decodeIcmp4(buf, off, h, end),
  encode: (buf, off, h, _wire, len) => encodeIcmp4(buf, off, h, len),
  offsetFields: ['quoteOff'],
};

const [req, rep] = kernelPackets('ping4');
const unreach = kernelPackets('unreach').filter((p) => p[0] >>> 4 === 4);
const [udpSent, portUnreach] = unreach;
const A = 0xc0000201;
const B = 0xc0000202;

t.test('kernel echo request and reply', async (t) => {
  const h = newIcmp4Header();
  t.equal(decodeIcmp4(req, 20, h), 28, 'checksum verifies');
  t.match(h, { type: ICMP4_ECHO_REQUEST, code: 0, seq: 1, quoteOff: -1, mtu: 0 });
  const id = h.id;
  t.equal(h.rest, icmp4EchoRest(id, 1));
  t.ok(req.subarray(req.length - 40).every((b) => b === 0xa5), 'ping -p a5 pattern at the end');
  t.equal(decodeIcmp4(rep, 20, h), 28);
  t.match(h, { type: ICMP4_ECHO_REPLY, code: 0, id, seq: 1 });
  roundTrip(t, ICMP, req.subarray(20));
  roundTrip(t, ICMP, rep.subarray(20));
});

t.test('echo reply builder matches the kernel reply', async (t) => {
  const out = Buffer.alloc(200, 0xee);
  const n = buildIcmp4EchoReply(out, 7, req, 0, req.length, 64);
  t.equal(n, rep.length);
  t.ok(out.subarray(7 + 20, 7 + n).equals(rep.subarray(20)), 'ICMP part byte-identical to the kernel reply');
  const ip = newIpv4Header();
  t.equal(decodeIpv4(out, 7, ip, 7 + n), 27, 'IPv4 header checksum verifies');
  t.match(ip, { src: B, dst: A, ttl: 64, proto: PROTO_ICMP, totalLen: n, hlen: 20 });
  t.equal(out[6], 0xee, 'byte before untouched');
  t.equal(out[7 + n], 0xee, 'byte after untouched');
  const inPlace = Buffer.from(req);
  t.equal(buildIcmp4EchoReply(inPlace, 0, inPlace, 0, inPlace.length, 64), n);
  t.ok(inPlace.subarray(20).equals(rep.subarray(20)), 'in place too');
  t.equal(buildIcmp4EchoReply(out, 0, rep, 0, rep.length, 64), DecodeError.bad_icmp_type, 'not a request');
  t.equal(buildIcmp4EchoReply(out, 0, udpSent, 0, udpSent.length, 64), DecodeError.bad_icmp_type, 'not ICMP');
  t.equal(buildIcmp4EchoReply(Buffer.alloc(50), 0, req, 0, req.length, 64), DecodeError.no_space);
  const frag = Buffer.from(req);
  frag.writeUInt16BE(0x2000, 6);
  t.equal(buildIcmp4EchoReply(out, 0, frag, 0, frag.length, 64), DecodeError.bad_checksum, 'checksums are verified');
  frag.writeUInt16BE(frag.readUInt16BE(10) - 0x2000 + 0x4000, 10); // fix the header checksum for MF instead of DF
  t.equal(buildIcmp4EchoReply(out, 0, frag, 0, frag.length, 64), DecodeError.fragment, 'a fragment is not answered');
  const badIcmp = Buffer.from(req);
  badIcmp[30] ^= 1;
  t.equal(buildIcmp4EchoReply(out, 0, badIcmp, 0, badIcmp.length, 64), DecodeError.bad_checksum);
});

t.test('kernel port unreachable: the quote parses', async (t) => {
  const ip = newIpv4Header();
  const h = newIcmp4Header();
  const p = decodeIpv4(portUnreach, 0, ip);
  t.equal(p, 20);
  t.equal(decodeIcmp4(portUnreach, p, h, ip.totalLen), 28);
  t.match(h, { type: ICMP4_DEST_UNREACH, code: ICMP4_UNREACH_PORT, rest: 0, quoteOff: 28, mtu: 0 });
  t.ok(isIcmp4Error(h.type));
  const inner = newIpv4Header();
  const q = decodeIpv4(portUnreach, h.quoteOff, inner, portUnreach.length, DECODE_QUOTED);
  t.equal(q, 48);
  t.match(inner, { src: A, dst: B, proto: PROTO_UDP, totalLen: udpSent.length });
  const udp = newUdpHeader();
  t.equal(decodeUdp(portUnreach, q, udp, portUnreach.length, DECODE_QUOTED), 56);
  t.match(udp, { srcPort: 40004, dstPort: 5399 });
  t.ok(portUnreach.subarray(28).equals(udpSent), 'the whole datagram is quoted');
});

t.test('error builder: byte-identical ICMP to the kernel, 576-byte cap', async (t) => {
  const out = Buffer.alloc(700, 0xee);
  const n = buildIcmp4Error(out, 3, B, A, 64, ICMP4_DEST_UNREACH, ICMP4_UNREACH_PORT, 0, udpSent, 0, udpSent.length);
  t.equal(n, portUnreach.length);
  t.ok(out.subarray(3 + 20, 3 + n).equals(portUnreach.subarray(20)), 'ICMP message equals the kernel one');
  const ip = newIpv4Header();
  t.equal(decodeIpv4(out, 3, ip, 3 + n), 23);
  t.match(ip, { src: B, dst: A, ttl: 64, proto: PROTO_ICMP, df: false, totalLen: n });
  t.equal(out[2], 0xee);
  t.equal(out[3 + n], 0xee);

  const big = kernelPackets('frag')[0]; // 1500 bytes
  const m = buildIcmp4Error(out, 0, B, A, 64, ICMP4_TIME_EXCEEDED, 0, 0, big, 0, big.length);
  t.equal(m, 576, 'RFC 1812: at most 576 bytes');
  const h = newIcmp4Header();
  t.equal(decodeIcmp4(out, 20, h, m), 28);
  t.ok(out.subarray(28, 576).equals(big.subarray(0, 548)), 'as much of the packet as fits');
  t.equal(buildIcmp4Error(out, 0, B, A, 64, 11, 0, 0, big, 0, big.length, 100), 100, 'smaller maxLen');
  t.equal(buildIcmp4Error(out, 0, B, A, 64, 11, 0, 0, big, 0, big.length, 47), DecodeError.no_space, 'no room for the quoted header');
  t.equal(buildIcmp4Error(Buffer.alloc(300), 0, B, A, 64, 11, 0, 0, big, 0, big.length), DecodeError.no_space);
  t.equal(buildIcmp4Error(out, 0, B, A, 64, 11, 0, 0, big, -1, 10), DecodeError.truncated);
  t.equal(buildIcmp4Error(out, 0, B, A, 64, 11, 0, 0, big, 0, 99999), 576, 'origLen clipped to the buffer');

  const inPlace = Buffer.alloc(700);
  udpSent.copy(inPlace, 28);
  t.equal(buildIcmp4Error(inPlace, 0, B, A, 64, 3, 3, 0, inPlace, 28, udpSent.length), n, 'quote already in place (headroom)');
  t.ok(inPlace.subarray(20, n).equals(portUnreach.subarray(20)));
  const same = Buffer.alloc(700);
  udpSent.copy(same, 0);
  t.equal(buildIcmp4Error(same, 0, B, A, 64, 3, 3, 0, same, 0, udpSent.length), n, 'overlapping: the quote moves first');
  t.ok(same.subarray(20, n).equals(portUnreach.subarray(20)));
});

t.test('Fragmentation Needed (RFC 1191)', async (t) => {
  const big = kernelPackets('frag')[0];
  const out = Buffer.alloc(600);
  const n = buildIcmp4FragNeeded(out, 0, B, A, 64, 1460, big, 0, big.length);
  t.equal(n, 576);
  const h = newIcmp4Header();
  t.equal(decodeIcmp4(out, 20, h, n), 28);
  t.match(h, { type: ICMP4_DEST_UNREACH, code: ICMP4_UNREACH_FRAG_NEEDED, mtu: 1460, rest: 1460, quoteOff: 28 });
  t.equal(out.readUInt16BE(26), 1460, 'next-hop MTU in the low 16 bits');
  t.equal(out.readUInt16BE(24), 0, 'unused high 16 bits');
  t.equal(icmp4FragNeededRest(0x12345), 0x2345);
  const inner = newIpv4Header();
  t.equal(decodeIpv4(out, h.quoteOff, inner, n, DECODE_QUOTED), 48);
  t.equal(inner.totalLen, 1500, 'the quoted header still says 1500');
});

t.test('errors, truncation, random bytes', async (t) => {
  const h = newIcmp4Header();
  const msg = req.subarray(20);
  // A cut message fails its checksum, unless the bytes cut off happen to sum to zero (they do
  // in one capture, at 30 bytes: a ones'-complement sum cannot catch everything).
  const cut = (n: number): number => (n < 8 ? DecodeError.truncated : csumAdd(msg, 0, n) === 0xffff ? 8 : DecodeError.bad_checksum);
  checkTruncations(t, 'icmp4', msg, (b, end) => decodeIcmp4(b, 0, h, end), cut);
  checkTruncations(t, 'icmp4 quoted', msg.subarray(0, 8), (b, end) => decodeIcmp4(b, 0, h, end, DECODE_QUOTED), () => DecodeError.truncated);
  const bad = Buffer.from(msg);
  bad[10] ^= 0xff;
  t.equal(decodeIcmp4(bad, 0, h), DecodeError.bad_checksum);
  t.equal(decodeIcmp4(bad, 0, h, bad.length, DECODE_NO_VERIFY), 8);
  t.equal(decodeIcmp4(bad, -1, h), DecodeError.truncated);
  t.equal(encodeIcmp4(Buffer.alloc(10), 0, h, 12), DecodeError.no_space);
  t.equal(encodeIcmp4(Buffer.alloc(10), 0, h, 4), DecodeError.no_space);
  const seeds = [msg, portUnreach.subarray(20)];
  for (const flags of [0, DECODE_NO_VERIFY]) t.ok(fuzz(t, `icmp4 flags=${flags}`, (b) => decodeIcmp4(b, 0, h, b.length, flags), seeds, 2000, 1 + flags) > 0);
  const out = Buffer.alloc(200);
  fuzz(t, 'buildIcmp4EchoReply', (b) => buildIcmp4EchoReply(out, 0, b, 0, b.length, 64), [req, portUnreach], 2000, 3, 100);
});
