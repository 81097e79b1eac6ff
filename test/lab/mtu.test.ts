/**
 * The 2010 experiment's MTU table, found automatically (issue 6): with no MTU in any config, a
 * CPE behind 1500-byte links settles at a tunnel MTU of 1460, one behind a 1280-byte link further
 * on (test/lab/mtu-topology.ts) at 1240; DF-set UDP senders on both sides get Fragmentation
 * Needed with the right MTU and adapt; 20 MB TCP downloads complete on both; after pmtu_timeout
 * the larger MTU is tried again and the narrow path is found again. Convergence times are
 * printed (no timing assertion). The subtests run in order on one lab.
 */
import { readFileSync } from 'node:fs';
import t from 'tap';
import type { SmapStatus } from '../../smap/daemon.js';
import { labUnavailableReason, waitFor } from './lab.js';
import { bigSha256, buildMtuLab, INET, PMTU_TIMEOUT, UDP_CLIENT, type MtuCpe, type MtuLab } from './mtu-topology.js';

const BIG = 20 * 1024 * 1024;

interface UdpResult {
  first: number;
  learnt: { mtu: number; ms: number } | null;
  acked: number | null;
  sent: number;
}

t.test('path MTU: 1460 and 1240 found without configuration', { skip: labUnavailableReason() }, async (t) => {
  const l: MtuLab = await buildMtuLab('pmtu');
  t.teardown(() => l.destroy());
  const [cpe1, cpe2] = l.cpes;
  const figures: string[] = [];
  let prrLearntAt = 0;
  let smapLearntAt = 0;
  const smapStatus = async (cpe: MtuCpe): Promise<SmapStatus> => {
    const r = await l.cli(cpe.host, 'smap', ['status', '--config', cpe.config, '--json']);
    if (r.code !== 0) throw new Error(`smap status in ${cpe.host.short}: ${r.stderr.trim()}`);
    return JSON.parse(r.stdout) as SmapStatus;
  };
  const prrAsk = async (args: string[]): Promise<Record<string, unknown>> => {
    const r = await l.cli(l.prr, 'prr', ['subscribers', ...args, '--config', l.prrConfig]);
    if (r.code !== 0) throw new Error(`prr subscribers ${args.join(' ')}: ${r.stderr.trim()}`);
    return JSON.parse(r.stdout) as Record<string, unknown>;
  };
  const prrMtu = async (name: string): Promise<number> => (await prrAsk(['show', name, '--json']))['mtu'] as number;
  const prrGlobal = async (): Promise<Record<string, number>> => (await prrAsk(['stats']))['global'] as Record<string, number>;
  const udp = async (cpe: MtuCpe, mode: 'up' | 'down', size: number): Promise<UdpResult> => {
    const r = await cpe.lan.exec('python3', ['-c', UDP_CLIENT, mode, INET, String(size)], { timeoutMs: 30_000 });
    if (r.code !== 0) throw new Error(`udp ${mode} from ${cpe.lan.short} exited ${r.code}: ${r.stderr.trim()} ${r.stdout.trim()}`);
    return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as UdpResult;
  };

  // cpe1 first: the Internet host keeps one IPv4 path MTU per destination address, and both CPEs
  // share 192.0.2.100 (A+P: the smallest customer path becomes every sharer's, for that host).
  await t.test('cpe1, 1500 all the way: 1400-byte DF datagrams pass both ways, nothing is lowered', async (t) => {
    const up = await udp(cpe1, 'up', 1400);
    t.same(up, { ...up, learnt: null, acked: 1400 }, `up: echoed at 1400, no Fragmentation Needed (${JSON.stringify(up)})`);
    const down = await udp(cpe1, 'down', 1400);
    t.same(down, { ...down, learnt: null, acked: 1400 }, `down: received at 1400 (${JSON.stringify(down)})`);
    t.equal((await smapStatus(cpe1)).tunnel.mtu, 1460, 'cpe1 tunnel MTU 1460 (auto: WAN 1500 - 40)');
    t.equal(await prrMtu('cpe1'), 0, "the PRR learnt nothing for cpe1 (its tunnel MTU: [internal] 1500 - 40)");
  });

  await t.test('cpe2, 1280 link past r2: the SMAP and the PRR each learn 1240 from a Packet Too Big', async (t) => {
    const up = await udp(cpe2, 'up', 1400);
    t.equal(up.learnt?.mtu, 1240, `up: the LAN sender got Fragmentation Needed 1240 (${JSON.stringify(up)})`);
    t.equal(up.acked, 1212, 'and its 1212-byte datagram came back');
    figures.push(`cpe2 upstream (SMAP, PTB from r2): DF sender adapted ${up.learnt?.ms} ms after its first 1400-byte datagram (it wakes at once on the error)`);
    smapLearntAt = Date.now();
    const st = await smapStatus(cpe2);
    t.equal(st.tunnel.mtu, 1240, 'cpe2 tunnel MTU 1240');
    t.equal(st.tunnel.learnt_mtu, 1240, 'learnt from the Packet Too Big');
    t.equal(st.tunnel.base_mtu, 1460, 'its own link still says 1460');
    t.ok(st.counters.global['pmtu_lowered']! >= 1, 'SMAP pmtu_lowered counted');
    t.ok(st.counters.global['frag_needed_sent']! >= 1, 'SMAP frag_needed_sent counted');
    t.match(cpe2.log(), /tunnel MTU 1460 -> 1240: Packet Too Big \(MTU 1280\) from 2001:db8:2::1/, 'logged, naming r2 (by its address toward cpe2)');
    t.match(l.cpes[1].host.run('ip', '-j', 'link', 'show', 'dev', 'smap0'), /"mtu":1240/, 'smap0 MTU 1240');
    t.match(cpe2.host.run('nft', 'list', 'table', 'ip', 'smap'), /maxseg size set 1200/, 'MSS clamp 1200');
    t.match(readFileSync(cpe2.snippet, 'utf8'), /dhcp-option=option:mtu,1240\n/, 'DHCP option 26: 1240');
    t.equal(readFileSync(`${cpe2.snippet}.reloads`, 'utf8'), 'mtu,1460\nmtu,1240\n', 'dnsmasq_reload ran at start and after the rewrite');
    t.match(cpe1.host.run('nft', 'list', 'table', 'ip', 'smap'), /maxseg size set 1420/, 'cpe1 untouched: MSS 1420');
    t.match(readFileSync(cpe1.snippet, 'utf8'), /dhcp-option=option:mtu,1460\n/, 'cpe1 untouched: DHCP 1460');

    const down = await udp(cpe2, 'down', 1400);
    t.equal(down.learnt?.mtu, 1240, `down: the Internet sender got Fragmentation Needed 1240 from the PRR (${JSON.stringify(down)})`);
    t.equal(down.acked, 1212, 'and its 1212-byte datagram arrived');
    figures.push(`cpe2 downstream (PRR, PTB from r1): DF sender adapted ${down.learnt?.ms} ms after its first 1400-byte datagram (it sends every 5 ms)`);
    t.equal(await prrMtu('cpe2'), 1240, "the PRR's binding for cpe2: 1240");
    prrLearntAt = Date.now();
    t.equal(await prrMtu('cpe1'), 0, 'cpe1 untouched');
    const g = await prrGlobal();
    t.ok(g['pmtu_lowered']! >= 1, `PRR pmtu_lowered ${g['pmtu_lowered']}`);
    t.ok(g['frag_needed_sent']! >= 1, `PRR frag_needed_sent ${g['frag_needed_sent']}`);
    t.match(l.prrLog(), /path MTU toward cpe2 lowered: tunnel MTU 1240/, 'logged');
  });

  await t.test('a 20 MB TCP download from the Internet completes on both LANs', async (t) => {
    const want = bigSha256(BIG);
    for (const cpe of l.cpes) {
      const t0 = Date.now();
      const r = await cpe.lan.exec('sh', ['-c', `curl -sS --max-time 240 'http://${INET}/big?n=${BIG}' | sha256sum`], { timeoutMs: 250_000 });
      const s = (Date.now() - t0) / 1000;
      t.equal(r.stdout.split(' ')[0], want, `${cpe.lan.short}: 20 MB, sha256 matches (${r.stderr.trim()})`);
      figures.push(`${cpe.lan.short}: 20 MB download in ${s.toFixed(1)} s (${((BIG * 8) / s / 1e6).toFixed(0)} Mbit/s)`);
    }
  });

  await t.test(`after pmtu_timeout (${PMTU_TIMEOUT} s) the larger MTU is tried again, and the narrow path found again`, async (t) => {
    const raised = await waitFor('cpe2 back at 1460', async () => {
      const st = await smapStatus(cpe2);
      return st.tunnel.mtu === 1460 ? st : undefined;
    }, (PMTU_TIMEOUT + 90) * 1000, 1000);
    figures.push(`cpe2 SMAP back at 1460 about ${((Date.now() - smapLearntAt) / 1000).toFixed(0)} s after it learnt 1240 (pmtu_timeout ${PMTU_TIMEOUT} s; status polled every second)`);
    t.ok(raised.counters.global['pmtu_raised']! >= 1, 'SMAP pmtu_raised counted');
    t.match(readFileSync(cpe2.snippet, 'utf8'), /option:mtu,1460\n/, 'DHCP 1460 again');
    t.match(cpe2.host.run('nft', 'list', 'table', 'ip', 'smap'), /maxseg size set 1420/, 'MSS 1420 again');
    const up = await udp(cpe2, 'up', 1400);
    t.equal(up.learnt?.mtu, 1240, `the probe draws a Packet Too Big again: Fragmentation Needed 1240 (${JSON.stringify(up)})`);
    figures.push(`cpe2 upstream after the raise: adapted again in ${up.learnt?.ms} ms`);
    const st = await smapStatus(cpe2);
    t.equal(st.tunnel.mtu, 1240, 'back at 1240');
    t.ok(st.counters.global['pmtu_lowered']! >= 2, 'lowered a second time');

    // The PRR raises lazily, when a packet goes to the binding after its timeout.
    const wait = prrLearntAt + (PMTU_TIMEOUT + 1) * 1000 - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const before = (await prrGlobal())['pmtu_lowered']!;
    const down = await udp(cpe2, 'down', 1400);
    const g = await prrGlobal();
    t.ok(g['pmtu_raised']! >= 1, `PRR pmtu_raised ${g['pmtu_raised']}`);
    t.match(l.prrLog(), /path MTU toward cpe2: \d+ s since the last Packet Too Big, trying tunnel MTU 1460 again/, 'logged');
    t.equal(down.acked, 1212, `down: still delivered at 1212 (${JSON.stringify(down)})`);
    t.ok(g['pmtu_lowered']! > before, `the PRR found 1240 again (pmtu_lowered ${before} -> ${g['pmtu_lowered']})`);
    t.equal(await prrMtu('cpe2'), 1240, "the PRR's binding for cpe2: 1240 again");
  });

  t.comment(`convergence:\n  ${figures.join('\n  ')}`);
  console.log(`# path MTU convergence\n#   ${figures.join('\n#   ')}`);
});
