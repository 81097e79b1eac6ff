/**
 * TUN offloads against the real kernel (fixtures/tun-offload.mjs): the kernel hands a TUN opened
 * with offloads TCP super-packets bigger than its MTU, which the reader cuts into segments of the
 * MTU, and takes the coalesced super-packets written to the other TUN; a 16 MiB TCP transfer
 * through both arrives whole.
 */
import t from 'tap';
import { addNs, ensureDist, removeAll, runFixture, skipReason } from './fixtures/netns.js';

t.test('TUN with offloads in two namespaces', { skip: skipReason() }, async (t) => {
  t.teardown(removeAll);
  ensureDist();
  const ns = addNs('gsoa');
  addNs('gsob');
  const r = await runFixture(ns, 'tun-offload.mjs', 90_000);
  t.equal(r.code, 0, `fixture exits by itself with 0${r.err ? `: ${r.err}` : ''}`);
  const o = JSON.parse(r.out) as {
    offload: boolean[];
    sent: { bytes: number; sha: string };
    got: { bytes: number; sha: string };
    seen: { maxLen: number; packets: number; tcpPayloadSegments: number };
    a: Record<string, number>;
    b: Record<string, number>;
  };
  t.same(o.offload, [true, true], 'the kernel took the offloads on both TUNs');
  t.same(o.got, o.sent, 'the receiver got every byte, in order');
  t.ok(o.a.gsoRx > 0, `the kernel handed super-packets to the reader (${o.a.gsoRx}), cut in user space`);
  t.ok(o.a.rxPackets / o.a.gsoRx > 16, `super-packets bigger than the 16-slot ring, cut over several batches (${(o.a.rxPackets / o.a.gsoRx).toFixed(1)} packets per super-packet)`);
  t.ok(o.seen.maxLen <= 1400, `every packet handed on fits the MTU (largest ${o.seen.maxLen})`);
  t.ok(o.a.rxPackets > o.a.rxSyscalls, `more packets than reads (${o.a.rxPackets} packets from ${o.a.rxSyscalls} reads)`);
  t.ok(o.b.gsoTx > 0, `coalesced super-packets written to the other TUN (${o.b.gsoTx})`);
  t.ok(o.b.txSyscalls < o.b.txPackets, `fewer writes than packets (${o.b.txSyscalls} writes for ${o.b.txPackets} packets)`);
  t.equal(o.b.txErrors + o.b.txEagain + o.b.txEmsgsize, 0, 'the kernel refused no write');
  t.equal(o.a.gsoBad + o.a.rxTruncated, 0, 'nothing read was refused or truncated');
});
