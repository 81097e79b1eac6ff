/**
 * TUN with rawOutput and offloads against the real kernel (fixtures/raw4-offload.mjs): TCP
 * segments of one flow leave as one super-packet through the TUN and the kernel's forwarding
 * path, with the TTL they would have had through the raw socket; everything else through the raw
 * socket (output path), and what it refuses through the TUN behind a zero vnet header.
 */
import t from 'tap';
import { addNs, ensureDist, removeAll, runFixture, skipReason } from './fixtures/netns.js';

interface Counter { packets: number; bytes: number }

t.test('TUN rawOutput with offloads in a namespace', { skip: skipReason() }, async (t) => {
  t.teardown(removeAll);
  ensureDist();
  const ns = addNs('raw4o');
  const r = await runFixture(ns, 'raw4-offload.mjs', 30_000);
  t.equal(r.code, 0, `fixture exits with 0${r.err ? `: ${r.err}` : ''}`);
  const o = JSON.parse(r.out) as {
    offload: boolean; sent: number; stats: Record<string, number>;
    fwdTcpTtl63: Counter; fwdTcp: Counter; fwdUdp: Counter; outTcp: Counter; outUdp: Counter;
  };
  t.equal(o.offload, true, 'the kernel took the offloads');
  t.equal(o.sent, 12, 'every packet of the batch taken');
  t.equal(o.stats.gsoTx, 1, 'one super-packet');
  t.same([o.fwdTcpTtl63.packets, o.fwdTcpTtl63.bytes], [1, 40 + 8 * 1000], 'the eight segments forwarded as one, TTL 63 as sent (raised, then lowered by forwarding)');
  t.equal(o.outTcp.packets, 0, 'no TCP segment went through the raw socket');
  t.equal(o.outUdp.packets, 3, 'the three small datagrams went through the raw socket (output path)');
  t.equal(o.stats.txFallback, 1, 'the one over the route MTU went through the TUN');
  t.equal(o.fwdUdp.packets, 1, '... behind a zero vnet header, and the kernel forwarded it');
  t.equal(o.stats.txErrors + o.stats.txEagain, 0);
});
