/**
 * Shared checks for every codec: one round-trip helper (decode, encode at several offsets inside
 * a larger buffer, compare bytes and surroundings, decode again), truncation at every length,
 * and a bounded random-input loop with a seeded generator so a failure can be replayed.
 */
import { isDecodeError, decodeErrorName } from '../../common/codec/result.js';

/** The subset of a tap Test these helpers use (so they can be tested with a fake). */
export interface Checker {
  ok(v: unknown, msg: string): unknown;
  equal(a: unknown, b: unknown, msg: string): unknown;
  same(a: unknown, b: unknown, msg: string): unknown;
}

/**
 * A codec as the round-trip helper sees it. `decode` reads buf[off, end); `encode` writes the
 * header at buf[off] from `h` and returns the next offset: when the header needs bytes the object
 * does not hold (IPv4/TCP options, IPv6 addresses), the adapter copies them from `wire`, the
 * original packet, as a real caller would.
 */
export interface Codec<H> {
  name: string;
  fresh(): H;
  decode(buf: Buffer, off: number, h: H, end: number): number;
  encode(buf: Buffer, off: number, h: H, wire: Buffer, len: number): number;
  /** Fields of H that hold absolute offsets into the buffer (-1: none): rebased before comparing. */
  offsetFields?: readonly (keyof H)[];
}

const SENTINEL = 0xa5;

/**
 * Decode `wire` (one packet at offset 0, all of it valid), then for each offset build a buffer of
 * sentinel bytes, put the bytes after the header in place, encode the header there, and check:
 * the packet bytes equal `wire`, every byte around them is untouched, and decoding at that
 * offset gives the same object and next offset. Returns the decoded object.
 */
export function roundTrip<H>(t: Checker, codec: Codec<H>, wire: Buffer, offsets: readonly number[] = [0, 40, 37]): H {
  const h0 = codec.fresh();
  const next0 = codec.decode(wire, 0, h0, wire.length);
  t.ok(next0 >= 0, `${codec.name}: decodes (${decodeErrorName(next0)})`);
  if (next0 < 0) return h0;
  const rebased = (h: H, off: number): H => {
    const copy = { ...h };
    for (const f of codec.offsetFields ?? []) {
      const v = h[f] as unknown as number;
      if (v >= 0) (copy[f] as unknown as number) = v - off; // negative: "none"
    }
    return copy;
  };
  for (const off of offsets) {
    const buf = Buffer.alloc(off + wire.length + 23, SENTINEL);
    wire.copy(buf, off + next0, next0);
    const h = { ...h0 };
    const next = codec.encode(buf, off, h, wire, wire.length);
    t.equal(next, off + next0, `${codec.name} @${off}: encode returns the next offset`);
    t.ok(buf.subarray(off, off + wire.length).equals(wire), `${codec.name} @${off}: encoded bytes equal the original`);
    const before = buf.subarray(0, off);
    const after = buf.subarray(off + wire.length);
    t.ok(before.every((b) => b === SENTINEL), `${codec.name} @${off}: bytes before untouched`);
    t.ok(after.every((b) => b === SENTINEL), `${codec.name} @${off}: bytes after untouched`);
    const h1 = codec.fresh();
    t.equal(codec.decode(buf, off, h1, off + wire.length), off + next0, `${codec.name} @${off}: decodes again`);
    t.same(rebased(h1, off), rebased(h0, 0), `${codec.name} @${off}: same fields`);
  }
  return h0;
}

/**
 * Decode every prefix wire[0, n) for n in [0, wire.length) (inside a larger buffer, so a decoder
 * that reads past `end` would see valid-looking bytes) and check the result is a negative code
 * and the one `expect(n)` names. Never lets an exception escape unnoticed.
 */
export function checkTruncations(
  t: Checker,
  name: string,
  wire: Buffer,
  decode: (buf: Buffer, end: number) => number,
  expect: (n: number) => number,
): void {
  const buf = Buffer.concat([wire, wire]);
  let bad = 0;
  for (let n = 0; n < wire.length; n++) {
    let r: number;
    try {
      r = decode(buf, n);
    } catch (e) {
      t.ok(false, `${name}: threw at length ${n}: ${String(e)}`);
      return;
    }
    if (r !== expect(n)) {
      if (bad++ < 3) t.equal(decodeErrorName(r), decodeErrorName(expect(n)), `${name}: cut to ${n} bytes`);
    }
  }
  t.equal(bad, 0, `${name}: every truncation 0..${wire.length - 1} gives the expected code`);
}

/** xorshift32: a small seeded generator, so a failing random case can be replayed. */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

/**
 * Feed `iterations` buffers to `decode`: half purely random (0..maxLen bytes), half one of the
 * `seeds` (valid packets) with a few random bytes changed and a random length. Every result must
 * be >= 0 or a known error code, and nothing may throw. Returns how many decoded (>= 0).
 */
export function fuzz(
  t: Checker,
  name: string,
  decode: (buf: Buffer) => number,
  seeds: readonly Buffer[],
  iterations = 2000,
  seed = 0x5eed,
  maxLen = 128,
): number {
  const rand = rng(seed);
  let good = 0;
  let bad = 0;
  for (let i = 0; i < iterations; i++) {
    let buf: Buffer;
    if (i % 2 === 0 || seeds.length === 0) {
      buf = Buffer.alloc(rand() % (maxLen + 1));
      for (let j = 0; j < buf.length; j++) buf[j] = rand() & 0xff;
    } else {
      const src = seeds[rand() % seeds.length];
      buf = Buffer.from(src.subarray(0, rand() % 4 === 0 ? rand() % (src.length + 1) : src.length));
      const flips = 1 + (rand() % 4);
      for (let j = 0; j < flips && buf.length > 0; j++) buf[rand() % buf.length] = rand() & 0xff;
    }
    let r: number;
    try {
      r = decode(buf);
    } catch (e) {
      t.ok(false, `${name}: threw on ${buf.toString('hex')} (seed ${seed}, iteration ${i}): ${String(e)}`);
      return good;
    }
    if (r >= 0) good++;
    else if (!isDecodeError(r) && bad++ < 3) t.ok(false, `${name}: unknown result ${r} on ${buf.toString('hex')}`);
  }
  t.equal(bad, 0, `${name}: ${iterations} random inputs give offsets or known codes`);
  return good;
}
