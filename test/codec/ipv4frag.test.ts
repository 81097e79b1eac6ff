import t, { type Test } from 'tap';
import { internetChecksum } from '../../common/codec/checksum.js';
import { decodeIpv4, ipv4UpdateChecksum, newIpv4Header } from '../../common/codec/ipv4.js';
import { copyCopiedOptions, fragmentIpv4 } from '../../common/codec/ipv4frag.js';
import { DecodeError } from '../../common/codec/result.js';
import { fuzz, rng } from '../helpers/codec.js';
import { kernelPackets } from '../helpers/fixtures.js';

const RA = '94040000'; // Router Alert: copied
const RR = '0707040a000001'; // Record Route, room for one address: not copied
const LSRR = '83070 4c6336401'.replace(' ', ''); // Loose Source Route: copied
const LATER_OPTS = Buffer.from(RA + LSRR + '00', 'hex'); // what later fragments must carry

/** An IPv4 packet with 20 bytes of options (RA, NOP, RR, LSRR, EOL) and `n` payload bytes. */
function packet(n: number, df = false): Buffer {
  const p = Buffer.alloc(40 + n);
  p.write('4a000000abcd00004011 0000c0000201c6336401'.replace(' ', ''), 0, 'hex');
  p.writeUInt16BE(40 + n, 2);
  if (df) p.writeUInt16BE(0x4000, 6);
  p.write(RA + '01' + RR + LSRR + '00', 20, 'hex');
  const rand = rng(n);
  for (let i = 40; i < p.length; i++) p[i] = rand() & 0xff;
  ipv4UpdateChecksum(p, 0);
  return p;
}

interface Piece {
  off: number;
  mf: boolean;
  hlen: number;
  data: Buffer;
  opts: Buffer;
}

/** Decode fragments (checksums verified), checking the RFC 791 rules along the way. */
function pieces(t: Test, out: Buffer[], outOff: number, lens: ArrayLike<number>, count: number, mtu: number): Piece[] {
  const h = newIpv4Header();
  const res: Piece[] = [];
  for (let i = 0; i < count; i++) {
    t.ok(lens[i] <= mtu, `fragment ${i}: ${lens[i]} <= mtu ${mtu}`);
    const p = decodeIpv4(out[i], outOff, h, outOff + lens[i]);
    t.equal(p, outOff + h.hlen, `fragment ${i} decodes, checksum ok`);
    t.equal(h.totalLen, lens[i]);
    t.equal(h.fragOff % 8, 0, `fragment ${i}: offset ${h.fragOff} is a multiple of 8`);
    t.notOk(h.df);
    res.push({
      off: h.fragOff,
      mf: h.mf,
      hlen: h.hlen,
      data: out[i].subarray(p, outOff + h.totalLen),
      opts: out[i].subarray(outOff + 20, p),
    });
  }
  for (let i = 0; i + 1 < res.length; i++) {
    t.equal(res[i].data.length % 8, 0, `fragment ${i}: data length is a multiple of 8`);
    t.equal(res[i].off + res[i].data.length, res[i + 1].off, `fragment ${i + 1} follows on`);
    t.ok(res[i].mf, `fragment ${i}: More Fragments`);
  }
  return res;
}

const bufs = (n: number, size = 2000): Buffer[] => Array.from({ length: n }, () => Buffer.alloc(size));

t.test('fragments reassemble; only copied options go into later fragments', async (t) => {
  for (const mtu of [1500, 576, 68, 100]) {
    const p = packet(3000);
    const out = bufs(128);
    const lens: number[] = [];
    const n = fragmentIpv4(p, 0, p.length, mtu, out, 40, lens);
    t.ok(n > 1, `mtu ${mtu}: ${n} fragments`);
    const ps = pieces(t, out, 40, lens, n, mtu);
    t.ok(Buffer.concat(ps.map((x) => x.data)).equals(p.subarray(40)), `mtu ${mtu}: payload reassembles`);
    t.notOk(ps[n - 1].mf, 'the last fragment ends the datagram');
    t.ok(ps[0].opts.equals(p.subarray(20, 40)), 'the first fragment keeps every option');
    for (const x of ps.slice(1)) t.ok(x.opts.equals(LATER_OPTS), 'later ones: RA + LSRR + EOL pad');
    t.ok(out.every((o) => o.subarray(0, 40).every((b) => b === 0)), 'headroom before outOff untouched');
  }
});

t.test('byte-identical to the kernel fragmenting the same datagram', async (t) => {
  const kfr = kernelPackets('frag').filter((p) => p[0] >>> 4 === 4);
  t.equal(kfr.length, 3);
  // Reassemble the kernel's fragments into the datagram the socket sent.
  const whole = Buffer.concat([kfr[0], ...kfr.slice(1).map((f) => f.subarray(20))]);
  whole.writeUInt16BE(whole.length, 2);
  whole.writeUInt16BE(0, 6);
  ipv4UpdateChecksum(whole, 0);
  t.equal(whole.length, 20 + 8 + 3000);
  const out = bufs(4);
  const lens = new Uint16Array(4);
  t.equal(fragmentIpv4(whole, 0, whole.length, 1500, out, 0, lens), 3);
  for (let i = 0; i < 3; i++) t.ok(out[i].subarray(0, lens[i]).equals(kfr[i]), `fragment ${i} equals the kernel's`);
});

t.test('a fragment fragments again: offsets add, the last keeps MF', async (t) => {
  const kfr = kernelPackets('frag').filter((p) => p[0] >>> 4 === 4);
  const mid = kfr[1]; // offset 1480, MF set, 1500 bytes
  const out = bufs(8);
  const lens: number[] = [];
  const n = fragmentIpv4(mid, 0, mid.length, 576, out, 0, lens);
  t.equal(n, 3);
  const ps = pieces(t, out, 0, lens, n, 576);
  t.equal(ps[0].off, 1480);
  t.ok(ps[n - 1].mf, 'MF stays set: more of the datagram follows');
  t.ok(Buffer.concat(ps.map((x) => x.data)).equals(mid.subarray(20)));
  const last = kfr[2]; // offset 2960, MF clear, 48 data bytes: split at mtu 36 (16 data bytes each)
  const m = fragmentIpv4(last, 0, last.length, 36, out, 0, lens);
  const ql = pieces(t, out, 0, lens, m, 36);
  t.equal(m, 3);
  t.same(ql.map((x) => x.off), [2960, 2976, 2992]);
  t.notOk(ql[m - 1].mf);
});

t.test('DF, small MTUs, too little room, bad options', async (t) => {
  const lens: number[] = [];
  const big = packet(1000, true);
  t.equal(fragmentIpv4(big, 0, big.length, 576, bufs(4), 0, lens), DecodeError.dont_fragment, 'DF: cannot fragment');
  const fits = packet(100, true);
  const out = bufs(1);
  t.equal(fragmentIpv4(fits, 0, fits.length, 576, out, 3, lens), 1, 'a packet that fits is copied');
  t.ok(out[0].subarray(3, 3 + fits.length).equals(fits));
  t.equal(lens[0], fits.length);
  const p = packet(1000);
  t.equal(fragmentIpv4(p, 0, p.length, 47, bufs(200), 0, lens), DecodeError.bad_mtu, 'mtu 47: no room for 8 bytes');
  t.ok(fragmentIpv4(p, 0, p.length, 48, bufs(200), 0, lens) > 1, 'mtu 48: 8 bytes per fragment');
  t.equal(fragmentIpv4(p, 0, p.length, 576, bufs(1), 0, lens), DecodeError.no_space, 'too few buffers');
  t.equal(fragmentIpv4(p, 0, p.length, 576, bufs(4, 500), 0, lens), DecodeError.no_space, 'buffers too small');
  t.equal(fragmentIpv4(p, 0, p.length, 576, bufs(4), -1, lens), DecodeError.no_space);
  t.equal(fragmentIpv4(p, 0, p.length, 576, [], 0, lens), DecodeError.no_space);
  t.equal(fragmentIpv4(p, 0, 30, 576, bufs(4), 0, lens), DecodeError.truncated, 'decode errors pass through');
  const broken = Buffer.from(p);
  broken[26] = 0; // RR option length 0
  ipv4UpdateChecksum(broken, 0);
  t.equal(fragmentIpv4(broken, 0, broken.length, 576, bufs(4), 0, lens), DecodeError.bad_option);
  broken[26] = 40; // RR runs past the header
  t.equal(fragmentIpv4(broken, 0, broken.length, 576, bufs(4), 0, lens), DecodeError.bad_option);
});

t.test('copyCopiedOptions', async (t) => {
  const o = Buffer.from(RA + '01' + RR + LSRR + '00', 'hex');
  t.equal(copyCopiedOptions(o, 0, o.length, null, 0), 11);
  const d = Buffer.alloc(12, 0xee);
  t.equal(copyCopiedOptions(o, 0, o.length, d, 1), 11);
  t.equal(d.subarray(1).toString('hex'), RA + LSRR);
  t.equal(copyCopiedOptions(Buffer.from('0000', 'hex'), 0, 2, null, 0), 0, 'EOL ends the list');
  t.equal(copyCopiedOptions(Buffer.from('94', 'hex'), 0, 1, null, 0), DecodeError.bad_option, 'type without length');
  t.equal(copyCopiedOptions(Buffer.from('9401', 'hex'), 0, 2, null, 0), DecodeError.bad_option);
});

t.test('random packets never throw', async (t) => {
  const out = bufs(16, 600);
  const lens = new Int32Array(16);
  const rand = rng(791);
  let count = 0;
  fuzz(
    t,
    'fragmentIpv4',
    (b) => {
      if (b.length >= 20) b.writeUInt16BE(internetChecksum(b, 0, 0), 10); // any checksum will do
      const r = fragmentIpv4(b, 0, b.length, 28 + (rand() % 600), out, rand() % 8, lens);
      if (r > 0) count++;
      return r;
    },
    [packet(200), packet(60), packet(1200)],
    3000,
    791,
    1300,
  );
  t.ok(count > 0, `${count} random inputs fragmented`);
});
