/**
 * IPv4 fragment reassembly (prr/reassembly.ts): datagrams cut by the project's fragmenter
 * (common/codec/ipv4frag.ts) come back byte for byte in any order; every drop rule returns its
 * code and moves its counter and no other; limits, eviction, timeout (injected clock); memory
 * returns to zero; random input never throws.
 */
import t, { type Test } from 'tap';
import { PROTO_ICMP, PROTO_TCP, PROTO_UDP } from '../../common/codec/constants.js';
import { fragmentIpv4 } from '../../common/codec/ipv4frag.js';
import { ConfigError } from '../../common/errors.js';
import {
  Ipv4Reassembler,
  RD,
  REASSEMBLY_BLOCK_BYTES,
  REASSEMBLY_DROP_NAMES,
  type ReassemblyDropName,
  type ReassemblyLimits,
} from '../../prr/reassembly.js';
import { ip4, ipv4, prng, readIpv4, tcp4, udp4 } from './helpers/packets.js';

const SRC = ip4('198.51.100.7');
const DST = ip4('192.0.2.1');
const LIMITS: ReassemblyLimits = { maxPackets: 64, maxFragmentsPerPacket: 64, timeoutMs: 2000 };

/** A reassembler on a clock the test moves by hand. */
function make(limits: Partial<ReassemblyLimits> = {}): { r: Ipv4Reassembler; clock: { ms: number } } {
  const clock = { ms: 1_000_000 };
  return { r: new Ipv4Reassembler({ ...LIMITS, ...limits }, () => clock.ms), clock };
}

const code = (name: ReassemblyDropName): number => -(1 + RD[name]);

/** The non-zero drop counters, by name. */
function drops(r: Ipv4Reassembler): Record<string, number> {
  const o: Record<string, number> = {};
  REASSEMBLY_DROP_NAMES.forEach((n, i) => {
    if (r.counters.drops[i] !== 0) o[n] = r.counters.drops[i]!;
  });
  return o;
}

function random(n: number, seed: number): Buffer {
  const rand = prng(seed);
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rand() * 256);
  return b;
}

/** A UDP datagram of `total` bytes (random payload, valid checksums). */
function dgram(total: number, o: { src?: number; dst?: number; id?: number; seed?: number; options?: Buffer } = {}): Buffer {
  const hlen = 20 + (o.options?.length ?? 0);
  const data = random(total - hlen - 8, o.seed ?? total);
  return udp4({ src: o.src ?? SRC, dst: o.dst ?? DST, id: o.id ?? 0x4242, sport: 5353, dport: 1234, data, options: o.options });
}

/** Fragments of `pkt` for `mtu`, each a Buffer of its own. */
function frags(pkt: Buffer, mtu: number): Buffer[] {
  const out = Array.from({ length: 9000 }, () => Buffer.alloc(mtu));
  const lens = new Int32Array(out.length);
  const n = fragmentIpv4(pkt, 0, pkt.length, mtu, out, 0, lens);
  if (n < 1) throw new Error(`fragmentIpv4 failed: ${n}`);
  return out.slice(0, n).map((b, i) => b.subarray(0, lens[i]));
}

/** A fragment built by hand: `data` at byte offset `off`. */
function frag(off: number, data: Buffer | number, o: { mf?: boolean; id?: number; proto?: number; src?: number; options?: Buffer } = {}): Buffer {
  const d = typeof data === 'number' ? random(data, off + 1) : data;
  return ipv4({ src: o.src ?? SRC, dst: DST, id: o.id ?? 7, proto: o.proto ?? PROTO_UDP, mf: o.mf ?? true, fragOff: off, options: o.options }, d);
}

function shuffle<T>(a: T[], seed: number): T[] {
  const rand = prng(seed);
  const b = a.slice();
  for (let i = b.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [b[i], b[j]] = [b[j]!, b[i]!];
  }
  return b;
}

/** Push all fragments; every one but the last must be held; returns the last result. */
function pushAll(t: Test, r: Ipv4Reassembler, fs: Buffer[], what: string): number {
  let res = 0;
  let early = 0;
  fs.forEach((f, i) => {
    res = r.push(f, 0, f.length);
    if (i < fs.length - 1 && res !== 0) early++;
  });
  t.equal(early, 0, `${what}: every fragment before the last is held`);
  return res;
}

function checkWhole(t: Test, r: Ipv4Reassembler, res: number, want: Buffer, what: string): void {
  t.equal(res, want.length, `${what}: complete, ${want.length} bytes`);
  t.ok(r.out.subarray(0, res).equals(want), `${what}: the original bytes`);
  const v = readIpv4(r.out, 0, Math.max(res, 20));
  t.ok(v.headerOk && v.l4Ok, `${what}: header and UDP checksums verify`);
}

function checkEmpty(t: Test, r: Ipv4Reassembler, what: string): void {
  t.same([r.inProgress, r.fragmentsHeld, r.bytesHeld()], [0, 0, 0], `${what}: nothing held`);
}

t.test('in order, reversed, shuffled: 2..45 fragments come back byte for byte', async (t) => {
  const { r } = make();
  let done = 0;
  for (let n = 2; n <= 45; n++) {
    const k = Math.max(1, Math.floor(3980 / (8 * n))); // 8k data bytes per fragment
    const pkt = dgram(20 + 8 * k * (n - 1) + 5, { seed: n, id: n });
    const fs = frags(pkt, 20 + 8 * k);
    t.equal(fs.length, n, `${n} fragments`);
    for (const [order, list] of [['in order', fs], ['reversed', fs.slice().reverse()], ['shuffled', shuffle(fs, n)]] as const) {
      checkWhole(t, r, pushAll(t, r, list, `${n} ${order}`), pkt, `${n} fragments ${order}`);
      done++;
    }
  }
  t.equal(r.counters.reassembled, done);
  t.same(drops(r), {});
  checkEmpty(t, r, 'afterwards');
});

t.test('the 4000-byte UDP datagram of the issue, at several MTUs, with options, at an offset', async (t) => {
  const { r } = make();
  const opts = Buffer.from('940400000107040a0000010083070000000001', 'hex'); // RA, NOP, RR, LSRR
  const withOpts = Buffer.concat([opts, Buffer.alloc(20 - opts.length)]);
  for (const mtu of [576, 1280, 1500]) {
    for (const options of [undefined, withOpts]) {
      const pkt = dgram(4000, { options, seed: mtu });
      const fs = shuffle(frags(pkt, mtu), mtu);
      const what = `mtu ${mtu}${options ? ' with options' : ''}`;
      let res = 0;
      for (const f of fs) {
        const slab = Buffer.alloc(f.length + 77, 0xee); // the fragment at offset 40 of a larger buffer
        f.copy(slab, 40);
        res = r.push(slab, 40, f.length);
      }
      checkWhole(t, r, res, pkt, what);
    }
  }
  checkEmpty(t, r, 'afterwards');
});

t.test('the header is the first fragment\'s: MF cleared, offset 0, length and checksum fixed, DF kept', async (t) => {
  const { r } = make();
  const first = ipv4({ src: SRC, dst: DST, id: 9, proto: PROTO_UDP, mf: true, df: true, ttl: 33, tos: 0x10 }, random(16, 1));
  const last = ipv4({ src: SRC, dst: DST, id: 9, proto: PROTO_UDP, fragOff: 16, ttl: 99 }, random(5, 2));
  t.equal(r.push(last, 0, last.length), 0);
  const n = r.push(first, 0, first.length);
  t.equal(n, 20 + 21);
  const v = readIpv4(r.out, 0, n);
  t.same([v.totalLen, v.ttl, r.out[1], r.out.readUInt16BE(6), v.headerOk], [41, 33, 0x10, 0x4000, true]);
  t.ok(r.out.subarray(20, n).equals(Buffer.concat([first.subarray(20), last.subarray(20)])), 'data in offset order');
});

t.test('interleaved datagrams: several sources with the same id, other protocols, tunnel contexts', async (t) => {
  const { r } = make();
  const pkts = [1, 2, 3, 4, 5].map((i) => dgram(2000 + 100 * i, { src: SRC + i, id: 0x1111, seed: i }));
  const tagged = pkts.flatMap((p, i) => frags(p, 576).map((f) => ({ f, i, ctx: 0 })));
  // Same addresses and id from two CPEs behind one shared address: told apart by ctx.
  const cpe = [dgram(1800, { id: 0x2222, seed: 50 }), dgram(1800, { id: 0x2222, seed: 51 })];
  cpe.forEach((p, k) => frags(p, 600).forEach((f) => tagged.push({ f, i: 5 + k, ctx: k + 1 })));
  const all = [...pkts, ...cpe];
  const got: number[] = [];
  let wrong = 0;
  for (const { f, i, ctx } of shuffle(tagged, 99)) {
    const n = r.push(f, 0, f.length, ctx);
    if (n < 0) wrong++;
    if (n > 0) {
      got.push(i);
      if (!r.out.subarray(0, n).equals(all[i]!)) wrong++;
    }
  }
  t.equal(wrong, 0, 'no drop, every datagram the right bytes');
  t.same(got.sort(), [0, 1, 2, 3, 4, 5, 6]);
  checkEmpty(t, r, 'afterwards');
});

t.test('a packet that is not a fragment is copied through', async (t) => {
  const { r } = make();
  const p = dgram(300);
  t.equal(r.push(p, 0, p.length), 300);
  t.ok(r.out.subarray(0, 300).equals(p));
  checkEmpty(t, r, 'nothing kept');
});

t.test('exact duplicate: only the copy is dropped', async (t) => {
  const { r } = make();
  const pkt = dgram(1400);
  const [a, b, c] = frags(pkt, 576);
  t.equal(r.push(a!, 0, a!.length), 0);
  t.equal(r.push(a!, 0, a!.length), code('frag_duplicate'));
  t.equal(r.push(b!, 0, b!.length), 0);
  t.equal(r.push(b!, 0, b!.length), code('frag_duplicate'));
  t.same([r.inProgress, r.fragmentsHeld], [1, 2], 'the datagram keeps its fragments');
  checkWhole(t, r, r.push(c!, 0, c!.length), pkt, 'then complete');
  t.same(drops(r), { frag_duplicate: 2 });
});

t.test('overlaps drop the whole datagram', async (t) => {
  const cases: [string, Buffer[]][] = [
    ['same range, other bytes', [frag(0, 16), frag(0, random(16, 99))]],
    ['starts inside the previous', [frag(0, 16), frag(8, 16)]],
    ['ends inside the next', [frag(16, 16), frag(8, 16)]],
    ['covers a held one', [frag(16, 8), frag(8, 24)]],
    ['inside a held one', [frag(0, 32), frag(8, 8)]],
    ['same start, longer', [frag(0, 8), frag(0, 16)]],
  ];
  for (const [what, fs] of cases) {
    const { r } = make();
    const before = frag(64, 8); // an unrelated fragment of the same datagram
    t.equal(r.push(before, 0, before.length), 0);
    t.equal(r.push(fs[0]!, 0, fs[0]!.length), 0, `${what}: first held`);
    t.equal(r.push(fs[1]!, 0, fs[1]!.length), code('frag_overlap'), what);
    t.same(drops(r), { frag_overlap: 1 }, `${what}: counted once`);
    checkEmpty(t, r, `${what}: the whole datagram is gone`);
  }
});

t.test('maxFragmentsPerPacket: one more drops the datagram (Snabb: "with max frags set to 1")', async (t) => {
  const { r } = make({ maxFragmentsPerPacket: 1 });
  const fs = frags(dgram(1000), 576);
  t.equal(r.push(fs[0]!, 0, fs[0]!.length), 0);
  t.equal(r.push(fs[1]!, 0, fs[1]!.length), code('frag_too_many'));
  t.same(drops(r), { frag_too_many: 1 });
  checkEmpty(t, r, 'dropped');
  const r4 = make({ maxFragmentsPerPacket: 4 }).r;
  const five = frags(dgram(2400), 576);
  t.equal(five.length, 5);
  t.same(five.map((f) => r4.push(f, 0, f.length)), [0, 0, 0, 0, code('frag_too_many')]);
  const four = dgram(1900);
  checkWhole(t, r4, pushAll(t, r4, frags(four, 576), 'four'), four, 'four fragments still fit');
});

t.test('maxPackets: a new datagram evicts the oldest (frag_table_full)', async (t) => {
  const { r, clock } = make({ maxPackets: 2 });
  const [a, b, c] = [1, 2, 3].map((i) => frags(dgram(1000, { id: i, seed: i }), 576));
  t.equal(r.push(a![0]!, 0, a![0]!.length), 0);
  clock.ms += 1;
  t.equal(r.push(b![0]!, 0, b![0]!.length), 0);
  t.equal(r.push(c![0]!, 0, c![0]!.length), 0, 'the new one is kept');
  t.same(drops(r), { frag_table_full: 1 });
  t.equal(r.inProgress, 2);
  t.ok(r.push(b![1]!, 0, b![1]!.length) > 0, 'b completes');
  t.ok(r.push(c![1]!, 0, c![1]!.length) > 0, 'c completes');
  t.equal(r.push(a![1]!, 0, a![1]!.length), 0, 'a was evicted: its last fragment starts over');
  t.same([r.inProgress, r.fragmentsHeld], [1, 1]);
});

t.test('fragment memory (maxBytes): the oldest datagrams make room, one maximum datagram always fits', async (t) => {
  // maxBytes 0 is raised to the minimum: 65535 bytes of blocks plus one per fragment (256 + 45).
  const { r, clock } = make({ maxBytes: 0, maxFragmentsPerPacket: 45 });
  const small = [1, 2, 3, 4, 5, 6, 7, 8].map((i) => frags(dgram(3000, { id: i, seed: i }), 1500));
  for (const fs of small) {
    t.equal(r.push(fs[0]!, 0, fs[0]!.length), 0);
    clock.ms += 1;
  }
  t.same([r.inProgress, r.bytesHeld()], [8, 8 * 6 * REASSEMBLY_BLOCK_BYTES], '8 fragments of 1480 bytes: 6 blocks each');
  const big = dgram(65535, { id: 99 });
  const bigFrags = frags(big, 1500);
  t.equal(bigFrags.length, 45);
  // 44 * 6 + 2 = 266 blocks wanted, 301 - 48 = 253 free: the 3 oldest go (18 blocks).
  checkWhole(t, r, pushAll(t, r, bigFrags, 'big'), big, 'a 65535-byte datagram in 45 fragments');
  t.same(drops(r), { frag_table_full: 3 }, 'the three oldest were evicted for it');
  t.equal(r.inProgress, 5);
  t.equal(r.push(small[0]![1]!, 0, small[0]![1]!.length), 0, 'the oldest is gone: its rest starts over');
  const newest = dgram(3000, { id: 8, seed: 8 });
  checkWhole(t, r, pushAll(t, r, small[7]!.slice(1), 'newest'), newest, 'the newest completes');
});

t.test('timeout: injected clock, push() and expire() both drop', async (t) => {
  const { r, clock } = make({ timeoutMs: 2000 });
  const fs = frags(dgram(1000), 576);
  t.equal(r.push(fs[0]!, 0, fs[0]!.length), 0);
  clock.ms += 1999;
  t.equal(r.expire(), 0, 'not yet at 1999 ms');
  t.equal(r.inProgress, 1);
  clock.ms += 1;
  t.equal(r.expire(), 1, 'gone at 2000 ms');
  t.same(drops(r), { frag_timeout: 1 });
  checkEmpty(t, r, 'expired');
  t.equal(r.push(fs[1]!, 0, fs[1]!.length), 0, 'the late fragment starts a new datagram');

  const other = frags(dgram(1000, { id: 5 }), 576);
  for (let i = 0; i < 3; i++) r.push(frag(0, 16, { id: 100 + i }), 0, 36);
  clock.ms += 2000;
  t.equal(r.push(other[0]!, 0, other[0]!.length), 0, 'push() expires on its way');
  t.same(drops(r), { frag_timeout: 5 }, 'counted per datagram');
  t.same([r.inProgress, r.fragmentsHeld], [1, 1]);
  t.ok(r.push(other[1]!, 0, other[1]!.length) > 0, 'the fresh one completes');
});

t.test('too big (ping of death, maxPacketBytes) drops the datagram', async (t) => {
  const { r } = make();
  t.equal(r.push(frag(0, 64), 0, 84), 0);
  const pod = frag(65472, 64, { mf: false }); // 20 + 65536 bytes
  t.equal(r.push(pod, 0, pod.length), code('frag_too_big'));
  checkEmpty(t, r, 'the datagram is gone');
  const edge = frag(65472, 43, { mf: false }); // exactly 65535 with a 20-byte header
  t.equal(r.push(edge, 0, edge.length), 0, '65535 is allowed');
  const opts = Buffer.alloc(40, 1); // NOPs: a 60-byte first header no longer fits
  const first = frag(0, 64, { options: opts });
  t.equal(r.push(first, 0, first.length), code('frag_too_big'), 'a first fragment with a longer header');
  checkEmpty(t, r, 'gone again');
  const small = make({ maxPacketBytes: 1500 }).r;
  const fs = frags(dgram(4000), 576);
  t.equal(fs.length, 8);
  const want = [0, 0, ...Array<number>(6).fill(code('frag_too_big'))]; // 20 + 3 * 552 > 1500
  t.same(fs.map((f) => small.push(f, 0, f.length)), want, 'from the third fragment on');
  t.same(drops(r), { frag_too_big: 2 });
  t.same(drops(small), { frag_too_big: 6 });
  checkEmpty(t, small, 'maxPacketBytes 1500');
});

t.test('tiny fragments (RFC 1858): TCP needs 16 bytes first and nothing at offset 8', async (t) => {
  const { r } = make();
  const syn = tcp4({ src: SRC, dst: DST, sport: 1000, dport: 80, data: 20, id: 3 });
  const tcp = (off: number, d: Buffer, mf = true) => ipv4({ src: SRC, dst: DST, id: 3, proto: PROTO_TCP, mf, fragOff: off }, d);
  const seg = syn.subarray(20);
  t.equal(r.push(tcp(0, seg.subarray(0, 8)), 0, 28), code('frag_tiny'), 'TCP first fragment of 8 bytes');
  t.equal(r.push(tcp(8, seg.subarray(8), false), 0, 20 + seg.length - 8), code('frag_tiny'), 'TCP at offset 8');
  t.equal(r.inProgress, 0);
  t.equal(r.push(tcp(16, seg.subarray(16), false), 0, 20 + seg.length - 16), 0);
  t.equal(r.push(tcp(0, seg.subarray(0, 16)), 0, 36), syn.length, '16 bytes are enough');
  t.ok(readIpv4(r.out, 0, syn.length).l4Ok, 'TCP checksum verifies');
  const u = make().r;
  const udp8 = frag(0, 8);
  t.equal(u.push(udp8, 0, 28), 0, 'UDP: 8 bytes hold the ports');
  t.ok(u.push(frag(8, 4, { mf: false }), 0, 24) > 0);
  const icmp = make().r;
  t.equal(icmp.push(frag(8, 8, { proto: PROTO_ICMP }), 0, 28), 0, 'ICMP at offset 8 is fine');
  t.same(drops(r), { frag_tiny: 2 });
});

t.test('bad lengths: empty, or a non-last fragment not a multiple of 8', async (t) => {
  const { r } = make();
  t.equal(r.push(frag(0, 12), 0, 32), code('frag_bad_length'));
  t.equal(r.push(frag(8, 0), 0, 20), code('frag_bad_length'), 'empty middle');
  t.equal(r.push(frag(8, 0, { mf: false }), 0, 20), code('frag_bad_length'), 'empty last');
  t.equal(r.push(frag(8, 5, { mf: false }), 0, 25), 0, 'a last fragment may have any length');
  t.same(drops(r), { frag_bad_length: 3 });
  t.same([r.inProgress, r.fragmentsHeld], [1, 1], 'refused fragments hold nothing');
});

t.test('inconsistent ends drop the datagram', async (t) => {
  const cases: [string, Buffer, Buffer][] = [
    ['two different last fragments', frag(16, 8, { mf: false }), frag(24, 8, { mf: false })],
    ['data past the last fragment', frag(16, 8, { mf: false }), frag(24, 8)],
    ['a last fragment before held data', frag(32, 8), frag(16, 8, { mf: false })],
    ['a copy of the last with MF', frag(16, 8, { mf: false }), frag(16, 8)],
    ['a copy with MF cleared', frag(16, 8), frag(16, 8, { mf: false })],
  ];
  for (const [what, a, b] of cases) {
    const { r } = make();
    t.equal(r.push(a, 0, a.length), 0, `${what}: first held`);
    t.equal(r.push(b, 0, b.length), code('frag_inconsistent'), what);
    t.same(drops(r), { frag_inconsistent: 1 });
    checkEmpty(t, r, what);
  }
});

t.test('malformed input (caller misuse) is a drop, never a throw', async (t) => {
  const { r } = make();
  const good = frag(0, 16);
  const bad = (f: (b: Buffer) => void) => {
    const b = Buffer.from(good);
    f(b);
    return b;
  };
  t.equal(r.push(good, 0, 19), code('frag_malformed'), 'shorter than a header');
  t.equal(r.push(good, -1, 36), code('frag_malformed'), 'negative offset');
  t.equal(r.push(good, 1, 36), code('frag_malformed'), 'past the buffer');
  t.equal(r.push(bad((b) => (b[0] = 0x65)), 0, 36), code('frag_malformed'), 'version 6');
  t.equal(r.push(bad((b) => (b[0] = 0x44)), 0, 36), code('frag_malformed'), 'IHL 4');
  t.equal(r.push(bad((b) => b.writeUInt16BE(37, 2)), 0, 36), code('frag_malformed'), 'total length > len');
  t.same(drops(r), { frag_malformed: 6 });
  t.equal(r.counters.fragments, 6);
});

t.test('config is checked once, at construction', async (t) => {
  const bad: Partial<ReassemblyLimits>[] = [
    { maxPackets: 0 },
    { maxPackets: 1.5 },
    { maxFragmentsPerPacket: 8193 },
    { timeoutMs: 0 },
    { maxPacketBytes: 70000 },
    { maxPackets: 1 << 16, maxFragmentsPerPacket: 128 }, // 8M preallocated fragment records
  ];
  for (const l of bad) t.throws(() => make(l), ConfigError, JSON.stringify(l));
});

t.test('a flood of bad and incomplete fragments: memory returns to zero', async (t) => {
  const { r, clock } = make({ maxPackets: 128, maxFragmentsPerPacket: 8, maxBytes: 65536 });
  const rand = prng(7);
  for (let i = 0; i < 20000; i++) {
    const off = Math.floor(rand() * 64) * 8;
    const mf = rand() < 0.8;
    const n = mf ? 8 * (1 + Math.floor(rand() * 40)) : 1 + Math.floor(rand() * 300);
    const f = frag(off, n, { id: Math.floor(rand() * 300), src: SRC + Math.floor(rand() * 3), mf, proto: rand() < 0.3 ? PROTO_TCP : PROTO_UDP });
    r.push(f, 0, f.length);
    if (i % 1000 === 0) clock.ms += 100;
  }
  t.ok(r.inProgress > 0 && r.inProgress <= 128, `at most maxPackets in progress (${r.inProgress})`);
  t.ok(r.fragmentsHeld <= 128 * 8, 'at most maxFragmentsPerPacket each');
  t.ok(r.bytesHeld() <= 65536 + 256 * 8, `within the memory budget (${r.bytesHeld()})`);
  t.equal(r.bytesHeld() % REASSEMBLY_BLOCK_BYTES, 0);
  const held = r.inProgress;
  clock.ms += 2000;
  t.equal(r.expire(), held, 'expire() drops them all');
  checkEmpty(t, r, 'after expire()');
  t.ok(r.counters.drops[RD.frag_overlap]! > 0 && r.counters.drops[RD.frag_timeout]! > 0, 'overlaps and timeouts seen');
  t.equal(r.counters.fragments, 20000);
  const big = dgram(8000, { id: 1 });
  checkWhole(t, r, pushAll(t, r, frags(big, 1500), 'after'), big, 'still reassembles');
});

t.test('random bytes as fragments never throw', async (t) => {
  const { r, clock } = make({ maxPackets: 16, maxFragmentsPerPacket: 4, maxBytes: 16384 });
  const rand = prng(11);
  const seeds = frags(dgram(3000), 576);
  let threw = 0;
  let outOfRange = 0;
  for (let i = 0; i < 20000; i++) {
    let b: Buffer;
    if (i % 2 === 0) b = random(Math.floor(rand() * 120), i);
    else {
      b = Buffer.from(seeds[i % seeds.length]!);
      for (let k = 0; k < 3; k++) b[Math.floor(rand() * Math.min(b.length, 40))] = Math.floor(rand() * 256);
      if (rand() < 0.5) b[0] = 0x45; // often keep a plausible header
    }
    const off = rand() < 0.1 ? Math.floor(rand() * 8) - 4 : 0;
    const len = rand() < 0.2 ? Math.floor(rand() * 200) : b.length;
    try {
      const n = r.push(b, off, len);
      if (n < -REASSEMBLY_DROP_NAMES.length || n > r.out.length) outOfRange++;
    } catch {
      threw++;
    }
    if (i % 500 === 0) clock.ms += 1000;
  }
  t.equal(threw, 0, 'nothing thrown');
  t.equal(outOfRange, 0, 'every result is a length or a known drop');
  clock.ms += 10_000;
  r.expire();
  checkEmpty(t, r, 'after expire()');
});
