/**
 * IPv4 fragments end to end, in network namespaces, with the real PRR and the real agents: two
 * CPEs share 192.0.2.100 (PSID 5 and 6 of a=6/k=6, test/lab/smap-topology.ts). 4000-byte UDP
 * datagrams go both ways between each LAN host and the Internet host (fragmented by the senders'
 * kernels; reassembled at the PRR before the port lookup, RFC 6333 §6.3; toward a CPE, sent in
 * one IPv6 packet that the kernels fragment and reassemble, RFC 2473 §7.2). Then hand-made
 * fragments from the Internet host (test/lab/fixtures/frag-send.py: raw socket, IP_HDRINCL):
 * out of order and duplicated (delivered once), overlapping, tiny, too many, incomplete and
 * a table's worth of them (dropped and counted by reason); the reassembly memory then returns
 * to nothing held. The PRR's external reassembly bounds are small here: 4 datagrams, 8
 * fragments each, 1 s.
 */
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { parsePortSet } from '../../common/portset.js';
import { labUnavailableReason, waitFor } from './lab.js';
import { FIXTURES, grew, prrStats, smapStatus, type PrrStats } from './e2e.js';
import { buildSmapLab, INET, SHARED, type SmapLab } from './smap-topology.js';

const SETS = ['psid:a=6/k=6/id=5', 'psid:a=6/k=6/id=6'] as const;
const inSet = (i: number, port: number): boolean => parsePortSet(SETS[i]!).has(port);

/** Sends argv[2] datagrams of 4000 bytes to the echo server argv[1]:7007, one at a time; prints how many came back intact. */
const BIG_ECHO = `
const s = require('dgram').createSocket('udp4');
const [host, n] = [process.argv[1], Number(process.argv[2])];
let ok = 0, i = 0;
const next = () => {
  if (i === n) { console.log('echoed ' + ok); process.exit(0); }
  const m = Buffer.alloc(4000, i++);
  const timer = setTimeout(next, 3000);
  s.once('message', (r) => { clearTimeout(timer); if (r.equals(m)) ok++; next(); });
  s.send(m, 7007, host);
};
s.bind(0, next);`;

/** Binds port 4000, sends "hi" to argv[1]:7007 (the NAT mapping), prints each datagram's tag (text before the first "."). */
const LISTENER = `
const s = require('dgram').createSocket('udp4');
s.on('message', (m) => console.log('got ' + m.toString('latin1').split('.')[0]));
s.bind(4000, () => s.send('hi', 7007, process.argv[1]));`;

const inReassembly = (s: PrrStats): number[] => ['in_progress', 'fragments_held', 'bytes_held'].map((k) => s.reassembly.internet[k] ?? -1);

t.test('IPv4 fragments through the SMAP and the PRR', { skip: labUnavailableReason() }, async (t) => {
  const l: SmapLab = await buildSmapLab('fragse2e', [{ ports: SETS[0] }, { ports: SETS[1] }], {
    prrIni: ['[external]', 'reassembly_max_packets = 4', 'reassembly_max_fragments = 8', 'reassembly_timeout = 1s'],
  });
  t.teardown(() => l.destroy());
  const [cpe1] = l.cpes;
  for (const c of l.cpes) l.startAgent(c);
  for (const c of l.cpes) await l.agentRunning(c);

  await t.test('4000-byte UDP datagrams, both ways, from both LANs at once', async (t) => {
    const before = await prrStats(l);
    const smapBefore = await Promise.all(l.cpes.map((c) => smapStatus(l, c)));
    const runs = await Promise.all(l.cpes.map((c) => c.lan.exec(process.execPath, ['-e', BIG_ECHO, INET, '5'], { timeoutMs: 60_000 })));
    for (const [i, r] of runs.entries()) t.equal(r.stdout.trim(), 'echoed 5', `lan${i + 1}: 5 of 5 datagrams came back intact ${r.stderr.trim()}`);
    const peers = JSON.parse((await l.inet.exec('curl', ['-sS', `http://${INET}/udp-peers`])).stdout) as Array<{ addr: string; port: number }>;
    t.ok(peers.length >= 10 && peers.every((p) => p.addr === SHARED && (inSet(0, p.port) || inSet(1, p.port))), 'the server saw them from the shared address, in the sets');
    t.ok([0, 1].every((i) => peers.some((p) => inSet(i, p.port))), 'from both sets');
    const after = await prrStats(l);
    t.equal(grew(before.reassembly.tunnel, after.reassembly.tunnel, 'reassembled'), 10, 'PRR: 10 datagrams from the CPEs reassembled (tunnel side)');
    t.equal(grew(before.reassembly.internet, after.reassembly.internet, 'reassembled'), 10, 'PRR: 10 datagrams from the Internet reassembled before the port lookup');
    t.ok(grew(before.global, after.global, 'out6_bytes') >= 10 * 4028, 'PRR: sent to the CPEs whole (the kernel fragments the IPv6 packets)');
    t.same([after.drops4, after.drops6], [{}, {}], 'PRR: no drops');
    for (const [i, c] of l.cpes.entries()) {
      const s = await smapStatus(l, c);
      t.equal(grew(smapBefore[i]!.counters.global, s.counters.global, 'fragments_out'), 10, `${c.host.short}: 10 non-first fragments sent (2 per datagram)`);
      t.ok(grew(smapBefore[i]!.counters.global, s.counters.global, 'tunnel_bytes') >= 5 * 4028, `${c.host.short}: received the 5 echoes whole, reassembled by its kernel`);
      t.same([s.counters.drops_in, s.counters.drops_out], [{}, {}], `${c.host.short}: no drops`);
    }
  });

  await t.test('hand-made fragments: out of order and duplicates delivered once; the rest dropped and counted', async (t) => {
    const lis: ChildProcess = cpe1.lan.spawn(process.execPath, ['-e', LISTENER, INET], { stdio: ['ignore', 'pipe', 'inherit'] });
    let got = '';
    lis.stdout?.setEncoding('utf8').on('data', (d: string) => (got += d));
    await waitFor('the listener\'s echo', () => (got.includes('got hi') ? true : undefined));
    const peers = JSON.parse((await l.inet.exec('curl', ['-sS', `http://${INET}/udp-peers`])).stdout) as Array<{ addr: string; port: number }>;
    const port = peers.at(-1)!.port;
    t.ok(inSet(0, port), `lan1's port 4000 is ${SHARED}:${port}, in its set`);
    const send = async (c: string, n = 1): Promise<void> => {
      const r = await l.inet.exec('python3', [join(FIXTURES, 'frag-send.py'), INET, SHARED, '7007', String(port), c, c, String(n)]);
      if (r.code !== 0) throw new Error(`frag-send.py ${c}: ${r.stderr.trim()}`);
    };
    const settled = async (what: string, check: (s: PrrStats) => boolean): Promise<PrrStats> =>
      waitFor(what, async () => {
        const s = await prrStats(l);
        return check(s) ? s : undefined;
      }, 15_000, 200);

    const before = await prrStats(l);
    for (const c of ['reverse', 'duplicate', 'overlap', 'tiny', 'many']) await send(c);
    await waitFor('the two good datagrams at lan1', () => (got.includes('got reverse') && got.includes('got duplicate') ? true : undefined));
    let s = await settled('reassembly empty', (x) => inReassembly(x).every((v) => v === 0));
    t.equal(grew(before.reassembly.internet, s.reassembly.internet, 'reassembled'), 2, 'PRR: the reversed and the duplicated datagram reassembled');
    t.equal(grew(before.drops4, s.drops4, 'frag_duplicate'), 1, 'frag_duplicate: the copy only');
    t.equal(grew(before.drops4, s.drops4, 'frag_overlap'), 1, 'frag_overlap: the datagram');
    t.equal(grew(before.drops4, s.drops4, 'frag_tiny'), 2, 'frag_tiny: the 8-byte TCP first fragment and the one at offset 8');
    t.equal(grew(before.drops4, s.drops4, 'frag_too_many'), 1, 'frag_too_many: the 9th of 12 fragments drops the datagram');
    t.ok(grew(before.drops4, s.drops4, 'frag_timeout') >= 2, 'frag_timeout: what followed the overlap and the 9th fragment timed out');

    const mid = s;
    await send('incomplete', 10);
    s = await settled('10 incomplete datagrams gone', (x) => grew(mid.drops4, x.drops4, 'frag_table_full') + grew(mid.drops4, x.drops4, 'frag_timeout') >= 10 && inReassembly(x).every((v) => v === 0));
    t.equal(grew(mid.drops4, s.drops4, 'frag_table_full'), 6, 'frag_table_full: 10 datagrams in a table of 4 evict the 6 oldest');
    t.equal(grew(mid.drops4, s.drops4, 'frag_timeout'), 4, 'frag_timeout: the last 4');
    t.same(inReassembly(s), [0, 0, 0], 'the reassembly holds nothing any more: packets, fragments, bytes');

    await new Promise((r) => setTimeout(r, 500));
    const tags = got.split('\n').filter((x) => x.startsWith('got ')).map((x) => x.slice(4));
    t.same(tags, ['hi', 'reverse', 'duplicate'], 'lan1 received the echo and the two good datagrams, once each, nothing else');
    lis.kill();
  });
});
