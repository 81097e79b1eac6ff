/**
 * TUN with rawOutput against the real kernel: IPv4 leaves through a raw IPPROTO_RAW socket, a batch
 * per sendmmsg(), routed by the kernel (fixtures/raw4.mjs, in its own namespace); packets the raw
 * socket refuses (over the route MTU) go through the TUN and the kernel's forwarding path instead.
 */
import t from 'tap';
import { addNs, ensureDist, removeAll, runFixture, skipReason } from './fixtures/netns.js';

t.test('TUN rawOutput in a namespace', { skip: skipReason() }, async (t) => {
  t.teardown(removeAll);
  ensureDist();
  const ns = addNs('raw4');
  const r = await runFixture(ns, 'raw4.mjs', 30_000);
  t.equal(r.code, 0, `fixture exits with 0${r.err ? `: ${r.err}` : ''}`);
  const o = JSON.parse(r.out) as {
    written: number;
    batchSyscalls: number;
    toKernel: Array<{ len: number; from: string; port: number }>;
    routed: number;
    narrowTx: number;
    fallback: number;
    fragNeeded: Array<{ mtu: number; dst: string }>;
    stats: Record<string, number>;
  };
  t.equal(o.written, 10, 'all 10 packets taken');
  t.equal(o.batchSyscalls, 1, 'one sendmmsg for the batch of 10');
  t.equal(o.toKernel.length, 10, 'delivered to the local UDP socket');
  t.ok(o.toKernel.every((m) => m.from === '198.51.100.9' && m.port === 5555 && m.len === 32), 'with the crafted (non-local) source kept');
  t.equal(o.routed, 5, 'the 5 routed packets all taken, 2 of them by the TUN');
  t.equal(o.fallback, 2, 'the two packets over the route MTU went through the TUN');
  t.equal(o.narrowTx, 3 + 2, 'three small packets plus the two fragments of the one without DF left by the route');
  t.same(o.fragNeeded, [{ mtu: 1280, dst: '192.0.2.2' }], 'the DF one was answered with Fragmentation Needed (MTU 1280) by the forwarding path');
  t.equal(o.stats.txErrors, 0);
});
