import t from 'tap';
import { PROTO_DSTOPTS, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP } from '../../common/codec/constants.js';
import {
  IPV6_MAX_EXT_HEADERS,
  decodeIpv6,
  encodeIpv6,
  ipv6Equal,
  ipv6ToString,
  isValidIpv6,
  newIpv6Header,
  parseIpv6Into,
  parseIpv6OrThrow,
  walkIpv6Ext,
  type Ipv6Header,
} from '../../common/codec/ipv6.js';
import { DECODE_QUOTED, DecodeError } from '../../common/codec/result.js';
import { ConfigError } from '../../common/errors.js';
import { checkTruncations, fuzz, roundTrip, type Codec } from '../helpers/codec.js';
import { kernelPackets } from '../helpers/fixtures.js';

const V6: Codec<Ipv6Header> = {
  name: 'ipv6',
  fresh: newIpv6Header,
  decode: (buf, off, h, end) => decodeIpv6(buf, off, h, end),
  encode: (buf, off, h, wire) => encodeIpv6(buf, off, h, wire, 8, wire, 24),
  offsetFields: ['srcOff', 'dstOff'],
};

const SRC = '20010db8000100000000000000000001';
const DST = '20010db8000100000000000000000002';

/** IPv6 with `exts` (hex, each starting with its next header), then a 20-byte TCP header. */
function chain(firstNext: number, exts: string[]): Buffer {
  const body = Buffer.from(exts.join('') + '9c4014b5' + '00'.repeat(8) + '5002ffff00000000', 'hex');
  const p = Buffer.alloc(40 + body.length);
  p.write('6' + '0' + '0abcde', 0, 'hex');
  p.writeUInt16BE(body.length, 4);
  p[6] = firstNext;
  p[7] = 64;
  p.write(SRC + DST, 8, 'hex');
  body.copy(p, 40);
  return p;
}
const HBH = '3c00010400000000'; // -> DSTOPTS, PadN
const DSTO = '2b00010400000000'; // -> ROUTING
const RH = '2c00040000000000'; // -> FRAGMENT (routing type 4, segments left 0)
const FRAG1 = '3300000112345678'; // -> AH, offset 0, M=1, id 0x12345678
const AH = '0604000000000100000000070000000000000000000000ff'.slice(0, 48); // -> TCP, 24 bytes
const FULL = chain(0, [HBH, DSTO, RH, FRAG1, AH]);

t.test('extension-header walk', async (t) => {
  const h = newIpv6Header();
  t.equal(decodeIpv6(FULL, 0, h), 40);
  t.equal(walkIpv6Ext(FULL, 40, h), 96);
  t.match(h, { proto: PROTO_TCP, protoOff: 96, extCount: 5, fragHdrOff: 64, fragId: 0x12345678, fragOff: 0, fragMore: true, fragFirst: true });
  t.equal(FULL.readUInt16BE(96), 40000, 'protoOff points at the TCP source port');

  const later = chain(PROTO_DSTOPTS, [DSTO, RH, '06000b9100000042']); // offset 0x0b90 = 2960, M=1
  t.equal(decodeIpv6(later, 0, h), 40);
  t.equal(walkIpv6Ext(later, 40, h), DecodeError.fragment, 'a non-first fragment has no upper layer');
  t.match(h, { proto: PROTO_TCP, protoOff: 64, fragOff: 2960, fragMore: true, fragFirst: false, fragId: 0x42 });

  const none = chain(PROTO_TCP, []);
  decodeIpv6(none, 0, h);
  t.equal(walkIpv6Ext(none, 40, h), 40);
  t.match(h, { proto: PROTO_TCP, extCount: 0, fragHdrOff: -1, fragFirst: true, fragMore: false });
});

t.test('malformed chains', async (t) => {
  const h = newIpv6Header();
  const walk = (p: Buffer): number => {
    const r = decodeIpv6(p, 0, h);
    return r < 0 ? r : walkIpv6Ext(p, r, h);
  };
  t.equal(walk(chain(PROTO_DSTOPTS, ['0000010400000000', '0600010400000000'])), DecodeError.bad_ext_header, 'Hop-by-Hop not first');
  t.equal(walk(chain(44, ['2c00000100000001', FRAG1.replace(/^33/, '06')])), DecodeError.bad_ext_header, 'two Fragment headers');
  const dst = (n: number): string[] => Array.from({ length: n }, (_, i) => (i === n - 1 ? '06' : '3c') + '00010400000000');
  t.equal(walk(chain(PROTO_DSTOPTS, dst(IPV6_MAX_EXT_HEADERS))), 40 + 8 * IPV6_MAX_EXT_HEADERS, `${IPV6_MAX_EXT_HEADERS} headers walk`);
  t.equal(walk(chain(PROTO_DSTOPTS, dst(IPV6_MAX_EXT_HEADERS + 1))), DecodeError.bad_ext_header, 'one more is refused');
  const long = chain(PROTO_DSTOPTS, ['06ff010400000000']); // claims 2048 bytes
  t.equal(walk(long), DecodeError.truncated);
  const bad = Buffer.from(FULL);
  bad[0] = 0x40;
  t.equal(decodeIpv6(bad, 0, h), DecodeError.bad_version);
  t.equal(decodeIpv6(FULL, 0, h, FULL.length - 1), DecodeError.truncated, 'payload length past the end');
  t.equal(decodeIpv6(FULL, 0, h, 41, DECODE_QUOTED), 40, 'QUOTED: only the fixed header is needed');
  t.equal(walkIpv6Ext(FULL, 40, h, 1000), 96, 'end is clipped to the buffer');
});

t.test('every truncation returns truncated', async (t) => {
  const h = newIpv6Header();
  checkTruncations(t, 'ipv6 fixed', FULL, (b, end) => decodeIpv6(b, 0, h, end), () => DecodeError.truncated);
  // The walk alone, given an end inside the chain: truncated until the upper layer starts.
  decodeIpv6(FULL, 0, h);
  checkTruncations(t, 'ipv6 ext walk', FULL, (b, end) => walkIpv6Ext(b, 40, h, end), (n) => (n < 96 ? DecodeError.truncated : 96));
});

t.test('kernel traffic', async (t) => {
  const h = newIpv6Header();
  const [req, rep] = kernelPackets('ping6');
  t.equal(decodeIpv6(req, 0, h), 40);
  t.match(h, { version: 6, trafficClass: 0, payloadLen: 64, nextHeader: PROTO_ICMPV6, hopLimit: 64, srcOff: 8, dstOff: 24 });
  t.equal(ipv6ToString(req, h.srcOff), '2001:db8:1::1');
  t.equal(ipv6ToString(req, h.dstOff), '2001:db8:1::2');
  t.equal(walkIpv6Ext(req, 40, h), 40);
  t.ok(ipv6Equal(req, 8, rep, 24) && ipv6Equal(req, 24, rep, 8), 'the reply swaps the addresses');
  roundTrip(t, V6, req);
  roundTrip(t, V6, rep);

  const v6 = (name: string): Buffer[] => kernelPackets(name).filter((p) => p[0] >>> 4 === 6);
  const [udp] = v6('udp');
  t.equal(decodeIpv6(udp, 0, h), 40);
  t.equal(walkIpv6Ext(udp, 40, h), 40);
  t.equal(h.proto, PROTO_UDP);
  t.equal(h.payloadLen, 8 + 13);

  const frags = v6('frag');
  t.equal(frags.length, 3);
  const got = frags.map((p) => {
    t.equal(decodeIpv6(p, 0, h), 40);
    const r = walkIpv6Ext(p, 40, h);
    return { r, proto: h.proto, off: h.fragOff, more: h.fragMore, first: h.fragFirst, id: h.fragId, len: h.payloadLen };
  });
  t.match(got, [
    { r: 48, proto: PROTO_UDP, off: 0, more: true, first: true, len: 1456 },
    { r: DecodeError.fragment, proto: PROTO_UDP, off: 1448, more: true, first: false, len: 1456 },
    { r: DecodeError.fragment, proto: PROTO_UDP, off: 2896, more: false, first: false, len: 120 },
  ]);
  t.equal(new Set(got.map((g) => g.id)).size, 1, 'one identification');
  for (const p of frags) roundTrip(t, V6, p);
});

t.test('encode', async (t) => {
  const h = newIpv6Header();
  h.trafficClass = 0x1ff;
  h.flowLabel = 0x1fffff;
  h.payloadLen = 0x10000;
  const a = parseIpv6OrThrow('2001:db8::a');
  const b = Buffer.alloc(60);
  t.equal(encodeIpv6(b, 10, h, a, 0, a, 0), 50);
  t.equal(decodeIpv6(b, 10, h, 60, DECODE_QUOTED), 50);
  t.match(h, { trafficClass: 0xff, flowLabel: 0xfffff, payloadLen: 0 });
  t.equal(ipv6ToString(b, 18), '2001:db8::a');
  t.equal(encodeIpv6(b, 21, h, a, 0, a, 0), DecodeError.no_space);
  t.equal(encodeIpv6(b, -1, h, a, 0, a, 0), DecodeError.no_space);
});

t.test('address text (RFC 4291, RFC 5952)', async (t) => {
  const cases: Array<[string, string]> = [
    ['2001:db8::1', '2001:db8::1'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['2001:DB8::A', '2001:db8::a'],
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
    ['fe80::1:2', 'fe80::1:2'],
    ['::ffff:192.0.2.1', '::ffff:192.0.2.1'],
    ['::ffff:c000:0201', '::ffff:192.0.2.1'],
    ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
    ['1:2:3:4:5:6:192.0.2.1', '1:2:3:4:5:6:c000:201'],
  ];
  const buf = Buffer.alloc(20, 0xee);
  for (const [input, text] of cases) {
    t.ok(parseIpv6Into(input, buf, 3), `parses ${input}`);
    t.equal(ipv6ToString(buf, 3), text);
    t.ok(isValidIpv6(text), `${text} parses back`);
  }
  t.equal(buf[0], 0xee, 'bytes around the address untouched');
  t.equal(buf[19], 0xee);
  const bad = ['', ':', ':::', '1:2:3:4:5:6:7:8:9', '1::2::3', '12345::', 'g::', '1:2:3:4:5:6:7', '::ffff:1.2.3',
    '1.2.3.4::', 'fe80::1%eth0', '2001:db8::/32', ' ::1', ':1::', '1::2:', '1:2:3:4:5:6:7:8::', '::1.2.3.4:1', '192.0.2.1'];
  const keep = Buffer.alloc(16, 0x77);
  for (const s of bad) t.notOk(parseIpv6Into(s, keep, 0), `rejects "${s}"`);
  t.ok(keep.every((x) => x === 0x77), 'a failed parse writes nothing');
  t.notOk(parseIpv6Into('::1', Buffer.alloc(15), 0), 'too little room');
  t.notOk(parseIpv6Into('::1', Buffer.alloc(16), -1));
  t.equal(ipv6ToString(Buffer.alloc(15), 0), '');
  t.throws(() => parseIpv6OrThrow('2001:db8::g'), ConfigError);
  t.equal(parseIpv6OrThrow('2001:db8:1::2').toString('hex'), DST);
});

t.test('ipv6Equal', async (t) => {
  const a = Buffer.from('00' + SRC + DST, 'hex');
  t.ok(ipv6Equal(a, 1, a, 1));
  t.notOk(ipv6Equal(a, 1, a, 17));
  const b = Buffer.from(SRC, 'hex');
  t.ok(ipv6Equal(a, 1, b, 0));
  b[15] ^= 1;
  t.notOk(ipv6Equal(a, 1, b, 0), 'last byte differs');
  t.notOk(ipv6Equal(a, 20, a, 1), 'cut off');
  t.notOk(ipv6Equal(a, -1, a, 1));
});

t.test('random bytes never throw', async (t) => {
  const h = newIpv6Header();
  const seeds = [FULL, chain(PROTO_DSTOPTS, [DSTO, RH, '06000b9100000042']), ...kernelPackets('frag').filter((p) => p[0] >>> 4 === 6).map((p) => p.subarray(0, 120))];
  for (const flags of [0, DECODE_QUOTED]) {
    const good = fuzz(t, `ipv6 flags=${flags}`, (b) => {
      const r = decodeIpv6(b, 0, h, b.length, flags);
      return r < 0 ? r : walkIpv6Ext(b, r, h, b.length);
    }, seeds, 3000, 6 + flags);
    t.ok(good > 0, 'some inputs decode');
  }
});
