/**
 * TUN device against the real kernel: fixtures/tun.mjs runs in its own namespace, reads what the
 * kernel routes into the TUN in batches, writes crafted IPv4 through tunWrite, and closes.
 */
import t from 'tap';
import { addNs, ensureDist, removeAll, runFixture, skipReason } from './fixtures/netns.js';

t.test('TUN device in a namespace', { skip: skipReason() }, async (t) => {
  t.teardown(removeAll);
  ensureDist();
  const ns = addNs('tun');
  const r = await runFixture(ns, 'tun.mjs', 30_000);
  t.equal(r.code, 0, `fixture exits by itself with 0${r.err ? `: ${r.err}` : ''}`);
  const o = JSON.parse(r.out) as {
    name: string;
    batches: number[];
    fromKernel: Array<{ len: number; totalLen: number; off: number; dst: string; dport: number; text: string }>;
    echoReplies: Array<{ id: number; seq: number; dst: string }>;
    toKernel: Array<{ text: string; from: string; port: number }>;
    uncaught: string[];
    written: number;
    echoWritten: number;
    stats: Record<string, number>;
    fdGone: boolean;
    deviceGone: boolean;
  };
  t.match(o.name, /^aptest\d+$/, 'the kernel filled in %d');

  const k = o.fromKernel;
  t.same(k.slice(0, 20).map((p) => p.text), [...Array(20).keys()].map((i) => `hello ${i}`), 'kernel -> TUN, in order');
  t.ok(k.every((p) => p.len === p.totalLen), 'lens[i] equals the IPv4 total length');
  t.ok(k.every((p) => (p.off - 40) % 2048 === 0), 'each packet starts at slot + headroom 40');
  t.ok(k.every((p) => p.dst === '192.0.2.2' && p.dport === 9999), 'headers where expected');
  t.equal(k[20]?.text, 'after big', 'the packet after an over-slot one arrives');
  t.ok(o.batches.every((n) => n >= 1 && n <= 8), 'batches of at most 8');
  t.equal(o.stats.rxTruncated, 1, 'the 5000-byte packet counted as truncated');

  t.equal(o.written, 10, 'tunWrite wrote the 10 good packets');
  t.same(o.toKernel.map((m) => m.text.length), Array(10).fill(60 - 28), 'TUN -> kernel: delivered to the UDP socket');
  t.ok(o.toKernel.every((m) => m.from === '192.0.2.2' && m.port === 5555), 'with the crafted source');
  t.equal(o.echoWritten, 3);
  t.same(o.echoReplies, [0, 1, 2].map((seq) => ({ id: 0x4242, seq, dst: '192.0.2.2' })), 'echo replies come back');
  t.same(o.uncaught, ['thrown by onBatch'], 'a throw in onBatch surfaces as uncaughtException');
  t.equal(k[21]?.text, 'after throw', 'and the poller keeps going');

  const s = o.stats;
  t.equal(s.txPackets, 13);
  t.equal(s.txErrors, 1, 'the out-of-slab entry');
  t.equal(s.txBatches, 2);
  t.equal(s.rxBatches, o.batches.length);
  t.ok(s.rxPackets >= 25, 'rx_packets counts everything delivered');
  t.ok(o.fdGone, 'fd closed');
  t.ok(o.deviceGone, 'the TUN device went with its fd');
});
