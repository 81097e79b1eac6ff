import t from 'tap';
import { csumAdd, internetChecksum } from '../../common/codec/checksum.js';
import { PROTO_ICMP, PROTO_TCP, PROTO_UDP } from '../../common/codec/constants.js';
import {
  decodeIpv4,
  encodeIpv4,
  ipv4DecrementTtl,
  ipv4ToString,
  ipv4UpdateChecksum,
  isValidIpv4,
  newIpv4Header,
  parseIpv4,
  parseIpv4OrThrow,
  type Ipv4Header,
} from '../../common/codec/ipv4.js';
import { DECODE_NO_VERIFY, DECODE_QUOTED, DecodeError } from '../../common/codec/result.js';
import { ConfigError } from '../../common/errors.js';
import { checkTruncations, fuzz, roundTrip, type Codec } from '../helpers/codec.js';
import { kernelPackets } from '../helpers/fixtures.js';

const V4: Codec<Ipv4Header> = {
  name: 'ipv4',
  fresh: newIpv4Header,
  decode: (buf, off, h, end) => decodeIpv4(buf, off, h, end),
  encode: (buf, off, h, wire) => {
    wire.copy(buf, off + 20, 20, h.hlen); // options are the caller's to place
    return encodeIpv4(buf, off, h);
  },
};

/** A header with 8 bytes of options (Router Alert, NOP, EOL padding) and a 12-byte payload. */
function withOptions(): Buffer {
  const p = Buffer.alloc(40);
  p.write('47050028123400004011 0000c0000201c6336401'.replace(' ', ''), 0, 'hex');
  p.write('9404000001000000', 20, 'hex'); // Router Alert (copied), NOP, EOL padding
  p.write('payload-data', 28);
  p.writeUInt16BE(internetChecksum(p, 0, 28), 10);
  return p;
}

t.test('kernel traffic decodes with real field values', async (t) => {
  const h = newIpv4Header();
  const [req, rep] = kernelPackets('ping4');
  t.equal(decodeIpv4(req, 0, h), 20);
  t.match(h, { version: 4, hlen: 20, tos: 0, totalLen: 84, df: true, mf: false, fragOff: 0, ttl: 64, proto: PROTO_ICMP, optLen: 0 });
  t.equal(ipv4ToString(h.src), '192.0.2.1');
  t.equal(ipv4ToString(h.dst), '192.0.2.2');
  t.equal(h.csum, req.readUInt16BE(10));
  t.equal(decodeIpv4(rep, 0, h), 20);
  t.equal(h.src, 0xc0000202, 'reply comes back from 192.0.2.2');

  for (const name of ['udp', 'tcp', 'unreach']) {
    for (const p of kernelPackets(name)) {
      if (p[0] >>> 4 !== 4) continue;
      t.equal(decodeIpv4(p, 0, h), 20, `${name}: decodes with checksum verified`);
      t.ok([PROTO_UDP, PROTO_TCP, PROTO_ICMP].includes(h.proto));
      t.equal(h.totalLen, p.length);
    }
  }

  const frags = kernelPackets('frag').filter((p) => p[0] >>> 4 === 4);
  t.equal(frags.length, 3, 'the 3028-byte datagram went out in 3 fragments');
  const seen = frags.map((p) => {
    t.equal(decodeIpv4(p, 0, h), 20);
    return { mf: h.mf, fragOff: h.fragOff, totalLen: h.totalLen, df: h.df, id: h.id };
  });
  t.match(seen, [
    { mf: true, fragOff: 0, totalLen: 1500, df: false },
    { mf: true, fragOff: 1480, totalLen: 1500, df: false },
    { mf: false, fragOff: 2960, totalLen: 68, df: false },
  ]);
  t.equal(new Set(seen.map((s) => s.id)).size, 1, 'one id for all fragments');
});

t.test('round trip at offsets 0, 40, 37, with and without options', async (t) => {
  for (const p of kernelPackets('ping4')) roundTrip(t, V4, p);
  for (const p of kernelPackets('frag').filter((p) => p[0] >>> 4 === 4)) roundTrip(t, V4, p);
  const h = roundTrip(t, V4, withOptions());
  t.match(h, { hlen: 28, optLen: 8, id: 0x1234, ttl: 64, proto: PROTO_UDP, dst: 0xc6336401 });
});

t.test('validation errors', async (t) => {
  const h = newIpv4Header();
  const p = withOptions();
  const bad = (f: (b: Buffer) => void): Buffer => {
    const b = Buffer.from(p);
    f(b);
    return b;
  };
  t.equal(decodeIpv4(bad((b) => (b[0] = 0x65)), 0, h), DecodeError.bad_version);
  t.equal(decodeIpv4(bad((b) => (b[0] = 0x44)), 0, h), DecodeError.bad_ihl);
  t.equal(decodeIpv4(bad((b) => b.writeUInt16BE(27, 2)), 0, h), DecodeError.bad_total_length);
  t.equal(decodeIpv4(bad((b) => b.writeUInt16BE(41, 2)), 0, h), DecodeError.truncated);
  t.equal(decodeIpv4(bad((b) => (b[8] = 63)), 0, h), DecodeError.bad_checksum);
  t.equal(decodeIpv4(bad((b) => (b[8] = 63)), 0, h, 40, DECODE_NO_VERIFY), 28, 'NO_VERIFY skips the checksum');
  t.equal(decodeIpv4(p, 0, h, 30, DECODE_QUOTED), 28, 'QUOTED: total length may run past the end');
  t.equal(decodeIpv4(p, 0, h, 27, DECODE_QUOTED), DecodeError.truncated, 'QUOTED: the header must be there');
  t.equal(decodeIpv4(p, 0, h, 1000), 28, 'end is clipped to the buffer');
  t.equal(decodeIpv4(p, -1, h), DecodeError.truncated);
  t.equal(decodeIpv4(Buffer.concat([p, Buffer.alloc(6)]), 0, h), 28, 'trailing link padding is fine');
});

t.test('encode errors never throw', async (t) => {
  const h = newIpv4Header();
  const b = Buffer.alloc(60);
  t.equal(encodeIpv4(b, 0, { ...h, hlen: 22 }), DecodeError.bad_ihl);
  t.equal(encodeIpv4(b, 0, { ...h, hlen: 64 }), DecodeError.bad_ihl);
  t.equal(encodeIpv4(b, 0, { ...h, hlen: 16 }), DecodeError.bad_ihl);
  t.equal(encodeIpv4(b, 0, { ...h, totalLen: 19 }), DecodeError.bad_total_length);
  t.equal(encodeIpv4(b, 0, { ...h, totalLen: 65536 }), DecodeError.bad_total_length);
  t.equal(encodeIpv4(b, 41, h), DecodeError.no_space);
  t.equal(encodeIpv4(b, -1, h), DecodeError.no_space);
  t.ok(b.every((x) => x === 0), 'nothing written');
  const wild = { ...h, id: 0x12345, ttl: 300, tos: 0x1ff, src: -1, dst: 2 ** 32 - 1, fragOff: 8 * 0x2001 };
  t.equal(encodeIpv4(b, 0, wild), 20, 'out-of-range fields are masked, not thrown');
  const back = newIpv4Header();
  t.equal(decodeIpv4(b, 0, back, 20), 20);
  t.match(back, { id: 0x2345, ttl: 44, tos: 0xff, src: 0xffffffff, dst: 0xffffffff, fragOff: 8 });
});

t.test('every truncation of every header returns truncated', async (t) => {
  const h = newIpv4Header();
  const dec = (b: Buffer, end: number): number => decodeIpv4(b, 0, h, end);
  checkTruncations(t, 'ipv4+options', withOptions(), dec, () => DecodeError.truncated);
  for (const p of kernelPackets('unreach').filter((p) => p[0] >>> 4 === 4)) {
    checkTruncations(t, 'ipv4 kernel', p, dec, () => DecodeError.truncated);
  }
});

t.test('random bytes never throw', async (t) => {
  const h = newIpv4Header();
  const seeds = [withOptions(), ...kernelPackets('ping4'), ...kernelPackets('unreach').filter((p) => p[0] >>> 4 === 4)];
  for (const flags of [0, DECODE_NO_VERIFY, DECODE_QUOTED]) {
    const good = fuzz(t, `ipv4 flags=${flags}`, (b) => decodeIpv4(b, 0, h, b.length, flags), seeds, 3000, 4 + flags);
    t.ok(good > 0, 'some inputs decode');
  }
});

t.test('TTL decrement with incremental checksum', async (t) => {
  const p = Buffer.from(kernelPackets('ping4')[0]);
  t.equal(p[8], 64);
  for (let ttl = 63; ttl >= 1; ttl--) {
    t.equal(ipv4DecrementTtl(p, 0), ttl);
    if (csumAdd(p, 0, 20) !== 0xffff) t.fail(`checksum wrong at ttl ${ttl}`);
  }
  const copy = Buffer.from(p);
  t.equal(ipv4DecrementTtl(p, 0), 0, 'TTL 1: expired');
  t.ok(p.equals(copy), 'and the packet is untouched');
  const full = Buffer.from(p);
  full[8] = 0;
  t.equal(ipv4DecrementTtl(full, 0), 0, 'TTL 0 too');
  const q = Buffer.from(kernelPackets('ping4')[0]);
  ipv4DecrementTtl(q, 0);
  const inc = q.readUInt16BE(10);
  t.equal(ipv4UpdateChecksum(q, 0), inc, 'equals full recomputation');
});

t.test('address text', async (t) => {
  const good: Array<[string, number]> = [
    ['0.0.0.0', 0],
    ['192.0.2.1', 0xc0000201],
    ['255.255.255.255', 0xffffffff],
    ['10.0.0.255', 0x0a0000ff],
  ];
  for (const [s, n] of good) {
    t.equal(parseIpv4(s), n, s);
    t.equal(ipv4ToString(n), s);
    t.ok(isValidIpv4(s));
  }
  t.equal(ipv4ToString(-1), '255.255.255.255');
  const bad = ['', '1.2.3', '1.2.3.4.5', '256.0.0.1', '01.2.3.4', '1..2.3', '1.2.3.4.', '.1.2.3', ' 1.2.3.4', '1.2.3.a', '1234.1.1.1', '1.2.3.-4', '::1'];
  for (const s of bad) t.equal(parseIpv4(s), DecodeError.bad_address, `rejects "${s}"`);
  t.equal(parseIpv4OrThrow('198.51.100.7'), 0xc6336407);
  t.throws(() => parseIpv4OrThrow('198.51.100'), ConfigError);
  t.throws(() => parseIpv4OrThrow('x'), { message: 'not an IPv4 address: "x"' });
});
