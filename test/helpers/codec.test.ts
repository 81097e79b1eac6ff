import t from 'tap';
import { DecodeError } from '../../common/codec/result.js';
import { checkTruncations, fuzz, rng, roundTrip, type Checker, type Codec } from './codec.js';

/** A Checker that records failures instead of reporting them. */
function recorder(): Checker & { failures: string[] } {
  const failures: string[] = [];
  return {
    failures,
    ok: (v, msg) => (v ? true : (failures.push(msg), false)),
    equal: (a, b, msg) => (a === b ? true : (failures.push(msg), false)),
    same: (a, b, msg) => (JSON.stringify(a) === JSON.stringify(b) ? true : (failures.push(msg), false)),
  };
}

interface Pair {
  a: number;
  b: number;
  at: number;
}

/** A 4-byte header of two 16-bit fields; `at` is an absolute offset field. */
const good: Codec<Pair> = {
  name: 'pair',
  fresh: () => ({ a: 0, b: 0, at: -1 }),
  decode: (buf, off, h, end) => {
    if (off + 4 > end) return DecodeError.truncated;
    h.a = buf.readUInt16BE(off);
    h.b = buf.readUInt16BE(off + 2);
    h.at = off + 2;
    return off + 4;
  },
  encode: (buf, off, h) => {
    buf.writeUInt16BE(h.a, off);
    buf.writeUInt16BE(h.b, off + 2);
    return off + 4;
  },
  offsetFields: ['at'],
};
const wire = Buffer.from('12345678abcd', 'hex');

t.test('roundTrip passes a correct codec', async (t) => {
  const r = recorder();
  const h = roundTrip(r, good, wire);
  t.same(r.failures, []);
  t.same(h, { a: 0x1234, b: 0x5678, at: 2 });
});

t.test('roundTrip catches broken codecs', async (t) => {
  const clobber = recorder();
  roundTrip(clobber, { ...good, encode: (buf, off, h) => (buf.writeUInt16BE(0, off - 1 < 0 ? 0 : off - 1), good.encode(buf, off, h, wire, 0)) }, wire);
  t.ok(clobber.failures.some((f) => f.includes('bytes before untouched')), 'writes before the header');
  const lazy = recorder();
  roundTrip(lazy, { ...good, encode: (buf, off, h) => (buf.writeUInt16BE(h.a, off), off + 4) }, wire);
  t.ok(lazy.failures.some((f) => f.includes('encoded bytes equal')), 'leaves a field unwritten');
  const wrongNext = recorder();
  roundTrip(wrongNext, { ...good, encode: (buf, off, h) => good.encode(buf, off, h, wire, 0) - off }, wire);
  t.ok(wrongNext.failures.some((f) => f.includes('next offset')), 'returns a relative offset');
  const noRebase = recorder();
  roundTrip(noRebase, { ...good, offsetFields: [] }, wire);
  t.ok(noRebase.failures.some((f) => f.includes('same fields')), 'absolute offsets differ unless rebased');
  const undecodable = recorder();
  roundTrip(undecodable, good, Buffer.alloc(2));
  t.ok(undecodable.failures.some((f) => f.includes('decodes (truncated)')));
});

t.test('checkTruncations catches over-reads and throws', async (t) => {
  const ok = recorder();
  checkTruncations(ok, 'pair', wire.subarray(0, 4), (b, end) => good.decode(b, 0, good.fresh(), end), () => DecodeError.truncated);
  t.same(ok.failures, []);
  const overRead = recorder();
  checkTruncations(overRead, 'pair', wire.subarray(0, 4), (b) => good.decode(b, 0, good.fresh(), b.length), () => DecodeError.truncated);
  t.ok(overRead.failures.length > 0, 'a decoder that ignores end reads the bytes behind it');
  const thrower = recorder();
  checkTruncations(thrower, 'pair', wire.subarray(0, 4), (b, end) => b.readUInt32BE(end + b.length), () => DecodeError.truncated);
  t.ok(thrower.failures.some((f) => f.includes('threw')));
});

t.test('fuzz catches throws and unknown codes; rng is deterministic', async (t) => {
  const clean = recorder();
  t.ok(fuzz(clean, 'pair', (b) => good.decode(b, 0, good.fresh(), b.length), [wire], 500) > 0);
  t.same(clean.failures, []);
  const thrower = recorder();
  fuzz(thrower, 'throws', (b) => b.readUInt32BE(0), [wire], 500);
  t.ok(thrower.failures.some((f) => f.includes('threw')));
  const unknown = recorder();
  fuzz(unknown, 'unknown', () => -999, [wire], 10);
  t.ok(unknown.failures.length > 0);
  const a = rng(42);
  const b = rng(42);
  const xs = [a(), a(), a()];
  t.same([b(), b(), b()], xs);
  t.ok(xs.every((x) => Number.isInteger(x) && x >= 0 && x < 2 ** 32));
  t.not(rng(0)(), 0, 'seed 0 still moves');
});
