import t from 'tap';
import { csumAdd, pseudoSum4 } from '../../common/codec/checksum.js';
import { PROTO_UDP } from '../../common/codec/constants.js';
import { parseIpv6OrThrow } from '../../common/codec/ipv6.js';
import { DECODE_QUOTED, DecodeError } from '../../common/codec/result.js';
import {
  decodeUdp,
  encodeUdp,
  newUdpHeader,
  udpRewriteDstPort,
  udpRewriteSrcPort,
  udpSetChecksum4,
  udpSetChecksum6,
  udpVerify4,
  udpVerify6,
  type UdpHeader,
} from '../../common/codec/udp.js';
import { checkTruncations, fuzz, roundTrip, type Codec } from '../helpers/codec.js';
import { kernelPackets } from '../helpers/fixtures.js';

const UDP: Codec<UdpHeader> = {
  name: 'udp',
  fresh: newUdpHeader,
  decode: (buf, off, h, end) => decodeUdp(buf, off, h, end),
  encode: (buf, off, h) => encodeUdp(buf, off, h),
};

const [udp4, udp6] = kernelPackets('udp');
const SRC4 = 0xc0000201;
const DST4 = 0xc0000202;

t.test('kernel datagrams: ports, length, checksums over both pseudo headers', async (t) => {
  const h = newUdpHeader();
  t.equal(decodeUdp(udp4, 20, h), 28);
  t.match(h, { srcPort: 40001, dstPort: 5300, length: 8 + 13 });
  t.equal(udp4.toString('latin1', 28), 'aplus udp v4\n');
  t.ok(udpVerify4(udp4, 20, h.length, SRC4, DST4), 'IPv4 checksum verifies');
  t.notOk(udpVerify4(udp4, 20, h.length, SRC4, DST4 + 1), 'and not with another address');
  const c = h.csum;
  const copy = Buffer.from(udp4);
  t.equal(udpSetChecksum4(copy, 20, h.length, SRC4, DST4), c, 'recomputes to the kernel value');

  t.equal(decodeUdp(udp6, 40, h), 48);
  t.match(h, { srcPort: 40001, dstPort: 5300, length: 21 });
  t.ok(udpVerify6(udp6, 40, h.length, udp6, 8, 24), 'IPv6 checksum verifies');
  t.notOk(udpVerify6(udp6, 40, h.length, udp6, 24, 8 + 1));
  const c6 = h.csum;
  const copy6 = Buffer.from(udp6);
  t.equal(udpSetChecksum6(copy6, 40, h.length, copy6, 8, 24), c6);

  roundTrip(t, UDP, udp4.subarray(20));
  roundTrip(t, UDP, udp6.subarray(40));
});

t.test('the first fragment of a big datagram: length covers all fragments', async (t) => {
  const h = newUdpHeader();
  const first = kernelPackets('frag')[0];
  t.equal(decodeUdp(first, 20, h), DecodeError.bad_udp_length, 'strict: length past the packet');
  t.equal(decodeUdp(first, 20, h, first.length, DECODE_QUOTED), 28, 'QUOTED accepts it');
  t.match(h, { srcPort: 40005, dstPort: 5302, length: 3008 });
});

t.test('checksum 0 cases', async (t) => {
  const d = Buffer.from(udp4.subarray(20));
  d.writeUInt16BE(0, 6);
  t.ok(udpVerify4(d, 0, d.length, SRC4, DST4), 'IPv4: 0 means no checksum');
  t.equal(udpRewriteSrcPort(d, 0, 1234), 40001);
  t.equal(d.readUInt16BE(6), 0, 'a rewrite keeps "no checksum"');
  const a = parseIpv6OrThrow('2001:db8::1');
  t.notOk(udpVerify6(d, 0, d.length, a, 0, 0), 'IPv6: 0 is invalid');
  // A datagram whose checksum computes to 0 gets 0xffff.
  const z = Buffer.alloc(10);
  z.writeUInt16BE(8, 0);
  z.writeUInt16BE(10, 4);
  const s = csumAdd(z, 0, 10, pseudoSum4(SRC4, DST4, PROTO_UDP, 10));
  z.writeUInt16BE(0xffff - s, 8); // the data now sums to 0xffff: checksum 0
  t.equal(udpSetChecksum4(z, 0, 10, SRC4, DST4), 0xffff);
  t.ok(udpVerify4(z, 0, 10, SRC4, DST4));
  t.notOk(udpVerify4(z, 5, 10, SRC4, DST4), 'cut off');
  t.notOk(udpVerify6(z, 5, 10, a, 0, 0));
});

t.test('port rewrites keep the checksum valid', async (t) => {
  const p = Buffer.from(udp6);
  t.equal(udpRewriteSrcPort(p, 40, 1024), 40001);
  t.equal(udpRewriteDstPort(p, 40, 65535), 5300);
  t.ok(udpVerify6(p, 40, 21, p, 8, 24));
  const h = newUdpHeader();
  decodeUdp(p, 40, h);
  t.match(h, { srcPort: 1024, dstPort: 65535 });
  for (let port = 0; port < 65536; port += 257) udpRewriteSrcPort(p, 40, port);
  t.ok(udpVerify6(p, 40, 21, p, 8, 24), 'after many rewrites');
});

t.test('errors, truncation, random bytes', async (t) => {
  const h = newUdpHeader();
  const d = Buffer.from(udp4.subarray(20));
  d.writeUInt16BE(7, 4);
  t.equal(decodeUdp(d, 0, h), DecodeError.bad_udp_length, 'length below 8');
  t.equal(encodeUdp(Buffer.alloc(7), 0, h), DecodeError.no_space);
  t.equal(encodeUdp(Buffer.alloc(9), -1, h), DecodeError.no_space);
  t.equal(decodeUdp(d, -1, h), DecodeError.truncated);
  const wire = udp4.subarray(20);
  checkTruncations(t, 'udp', wire, (b, end) => decodeUdp(b, 0, h, end), (n) => (n < 8 ? DecodeError.truncated : DecodeError.bad_udp_length));
  checkTruncations(t, 'udp quoted', wire.subarray(0, 8), (b, end) => decodeUdp(b, 0, h, end, DECODE_QUOTED), () => DecodeError.truncated);
  for (const flags of [0, DECODE_QUOTED]) {
    t.ok(fuzz(t, `udp flags=${flags}`, (b) => decodeUdp(b, 0, h, b.length, flags), [wire], 2000, 17 + flags, 40) > 0);
  }
  const a = Buffer.alloc(32);
  t.doesNotThrow(() => {
    for (let n = 0; n < 40; n++) {
      const b = Buffer.alloc(n, 0xab);
      udpVerify4(b, 0, 8, 1, 2);
      udpVerify6(b, 0, 8, a, 0, 16);
    }
  }, 'verifiers on short buffers');
});
