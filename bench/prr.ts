/**
 * `npm run bench -- prr [--quick] [--bindings N]`: the PRR as one user-space hop beside tayga
 * (Debian's C user-space NAT64 on a TUN) and kernel IPv4 forwarding, in one lab and one run
 * (topologies in bench/prr-lab.ts):
 *
 *   - small-packet rate at no drop, single hop: the same TUN generator (bench/prr-gen.ts) in each
 *     contender's source namespace offers 64-byte-payload UDP (IPv4-in-IPv6 to the PRR, IPv6 to
 *     tayga, IPv4 to the kernel router); an nftables counter at the IPv4 sink counts what arrives;
 *   - iperf3 TCP throughput, iperf3 UDP 64-byte rate at no drop and ping RTT, end to end. The
 *     PRR's path then has a second user-space hop: the CPE namespace's test-only pipe forwarder
 *     (TUN -> raw IPv6), behind nftables SNAT into the CPE's port range;
 *   - CPU time per packet of the hop under test at a fixed 30 kpps (from schedstat): on a
 *     shared 2-core host the rate at no drop mostly measures how long other users keep the hop
 *     off the CPU (see the "waiting" figures in the notes); CPU per packet is the steadier figure;
 *   - scale: the same single-hop figures through a second PRR holding 1,000,000 bindings
 *     (traffic spread over 65,536 of them), its config load time and memory (after load and at
 *     the end of the run), control-socket bind rate;
 *   - output: the same single hop through a third PRR with `ipv4_output = tun` (one TUN write()
 *     per packet, the kernel forwards) beside the default raw socket output (sendmmsg per batch).
 *
 * Flags: --quick (1 repetition, shorter trials), --bindings N (default 1000000),
 * --tayga-txqueuelen N (default 10000; 500 is the kernel's default for a TUN).
 *
 * Every search advances all contenders one trial per round (lockstep), so the noise of a shared
 * host falls on all alike; repeated figures are medians.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { Lab } from '../test/lab/lab.js';
import { controlRequest } from '../prr/control.js';
import { iperfServer, pingRtt, printReport, tcpThroughput, type Report, type Row } from './lib.js';
import { buildKernel, buildPrr, buildTayga, hostCpu, schedSeconds, memoryMb, hugePagesMb, gcSummary, TAYGA_GEN6, TAYGA_DST6, type Contender } from './prr-lab.js';
import { cpuPerPacket, Gen, genTrial, iperfUdpTrial, lockstep, median, NoDropSearch, sleep, type Trial } from './prr-measure.js';
import { kernelPackets, prrPackets, spread, taygaPackets, writePacketFile } from './prr-packets.js';

const DISTINCT = 65_536; // distinct packets per generator (distinct bindings for the PRRs)
const LOSS = 0.1; // percent: "no drop"
const FIXED_PPS = 30_000; // offered rate of the CPU-per-packet trials
type Who = 'prr' | 'prrtun' | 'prr1m' | 'tayga' | 'kernel';

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

/** Sequential control-socket binds (one connection each, as `prr subscribers bind` does): binds/s. */
async function bindRate(control: string, n: number): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const r = await controlRequest(control, { cmd: 'bind', name: `benchbind${i}`, ipv6: `2001:db8:d::${(i + 1).toString(16)}`, ipv4: '203.0.113.250', ports: `psid:a=4/k=11/id=${i}` }, 60_000);
    if (r['ok'] !== true) throw new Error(`bind refused: ${String(r['error'])}`);
  }
  return n / ((performance.now() - t0) / 1000);
}

/** CPU share (percent of one core) of each pid, and host-wide, while `fn` runs. */
async function cpuDuring<T>(pids: Record<string, number | undefined>, fn: () => Promise<T>): Promise<{ value: T; cpu: Record<string, number> }> {
  const before = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, schedSeconds(p)]));
  const h0 = hostCpu();
  const t0 = performance.now();
  const value = await fn();
  const dt = (performance.now() - t0) / 1000;
  const h1 = hostCpu();
  const cpu: Record<string, number> = {};
  for (const [k, p] of Object.entries(pids)) {
    const now = schedSeconds(p);
    cpu[k] = Math.round(((now.run - before[k]!.run) / dt) * 100);
    cpu[`${k}_wait`] = Math.round(((now.wait - before[k]!.wait) / dt) * 100);
  }
  for (const k of ['user', 'system', 'softirq', 'idle'] as const) cpu[`host_${k}`] = Math.round(((h1[k] - h0[k]) / dt) * 100);
  return { value, cpu };
}

export async function main(args: string[]): Promise<void> {
  const quick = args.includes('--quick');
  const loadStart = os.loadavg().map((x) => x.toFixed(1)).join(' ');
  const nBig = Number(flag(args, '--bindings') ?? 1_000_000);
  const reps = quick ? 1 : 3;
  const trialSec = quick ? 0.5 : 1;
  const iperfSec = quick ? 1 : 2;
  const tcpSec = quick ? 2 : 4;
  const taygaQlen = Number(flag(args, '--tayga-txqueuelen') ?? 10_000);
  if (!Number.isInteger(nBig) || nBig < 10) throw new Error('--bindings: expected an integer >= 10');
  if (!Number.isInteger(taygaQlen) || taygaQlen < 1) throw new Error('--tayga-txqueuelen: expected a positive integer');
  const notes: string[] = [];
  const dir = mkdtempSync(join(os.tmpdir(), 'aplus-bench-prr-'));
  const cleanDir = (): void => rmSync(dir, { recursive: true, force: true });
  process.once('exit', cleanDir); // also when interrupted: the 1M-binding prr.ini is ~110 MB
  const lab = Lab.create('bprr');
  const gens: Gen[] = [];
  try {
    // The big table first, alone on the host (but for other users): load time and memory.
    process.stderr.write(`bench prr: loading ${nBig} bindings ...\n`);
    const big = await buildPrr(lab, 'q', nBig, dir, false);
    const memBig = memoryMb(big.prr.pid!);
    rmSync(join(dir, 'q', 'prr.ini')); // read once at start; the bench never sends SIGHUP
    process.stderr.write(`bench prr: loaded in ${(big.loadMs / 1000).toFixed(1)} s, RSS ${memBig.rss.toFixed(0)} MB\n`);
    const small = await buildPrr(lab, 'p', 10, dir, true);
    const memSmall = memoryMb(small.prr.pid!);
    // The same PRR sending decapsulated IPv4 the old way, one TUN write() per packet (single hop only).
    const tunOut = await buildPrr(lab, 'r', 10, dir, false, { ipv4Output: 'tun' });
    const kernel = buildKernel(lab);
    const tayga = await buildTayga(lab, dir, taygaQlen);
    const sides: Record<Who, Contender> = { prr: small, prrtun: tunOut, prr1m: big, tayga, kernel };

    const files: Record<Who, Buffer[]> = {
      prr: prrPackets(DISTINCT, spread(9)),
      prrtun: prrPackets(DISTINCT, spread(9)),
      prr1m: prrPackets(DISTINCT, spread(nBig - 1)),
      tayga: taygaPackets(DISTINCT, TAYGA_GEN6, TAYGA_DST6),
      kernel: kernelPackets(DISTINCT),
    };
    const gen = {} as Record<Who, Gen>;
    for (const who of Object.keys(files) as Who[]) {
      const f = join(dir, `${who}.pkts`);
      writePacketFile(f, files[who]);
      gen[who] = await Gen.start(sides[who].gen, f);
      gens.push(gen[who]);
    }
    for (const h of [small.sink, tayga.sink, kernel.sink]) await iperfServer(h);

    // Control plane at scale: binds/s with 10 and with 1M bindings in the table.
    process.stderr.write('bench prr: control-socket binds ...\n');
    const nBinds = quick ? 20 : 100;
    const bind10 = await bindRate(small.control, nBinds);
    const bindBig = await bindRate(big.control, nBinds);

    // End to end: RTT and TCP, interleaved repetitions.
    process.stderr.write('bench prr: RTT and TCP ...\n');
    const e2e: Array<Exclude<Who, 'prr1m'>> = ['kernel', 'tayga', 'prr'];
    const rtt: Record<string, Array<number | null>> = { kernel: [], tayga: [], prr: [] };
    const tcp: Record<string, Array<number | null>> = { kernel: [], tayga: [], prr: [] };
    const tcpCpu: Record<string, Record<string, number>> = {};
    for (let r = 0; r < reps; r++) {
      for (const who of e2e) rtt[who]!.push(await pingRtt(sides[who].client, sides[who].target, 20));
      for (const who of e2e) {
        const pids = who === 'prr' ? { cpe_forwarder: small.forwarder?.pid, prr: small.prr.pid } : who === 'tayga' ? { tayga: tayga.tayga.pid } : {};
        const m = await cpuDuring(pids, () => tcpThroughput(sides[who].client, sides[who].target, tcpSec));
        tcp[who]!.push(m.value);
        if (r === 0) tcpCpu[who] = m.cpu;
      }
    }

    // Single hop, small packets, through the same generator: medians of `reps` searches.
    process.stderr.write('bench prr: single-hop rate searches ...\n');
    const gcFrom = { prr: small.out().length, prr1m: big.out().length };
    const hop: Who[] = ['kernel', 'tayga', 'prr', 'prrtun', 'prr1m'];
    const rates: Record<Who, Array<number | null>> = { kernel: [], tayga: [], prr: [], prrtun: [], prr1m: [] };
    const limited: Record<Who, boolean[]> = { kernel: [], tayga: [], prr: [], prrtun: [], prr1m: [] };
    const hopTrials: Record<string, Trial[]> = {};
    for (let r = 0; r < reps; r++) {
      const searches = Object.fromEntries(hop.map((w) => [w, r === 0 ? new NoDropSearch(25_000) : new NoDropSearch(0.6 * (rates[w][0] ?? 41_667), 4)])) as Record<Who, NoDropSearch>;
      await lockstep(searches, (w, pps) => genTrial(gen[w], sides[w].sink, pps, trialSec, LOSS));
      for (const w of hop) {
        rates[w].push(searches[w].result);
        limited[w].push(searches[w].sourceLimited);
        hopTrials[`${w}#${r}`] = searches[w].trials;
      }
    }
    const hopRate = Object.fromEntries(hop.map((w) => [w, median(rates[w])])) as Record<Who, number | null>;

    // CPU per packet at a fixed rate (robust to the host's other users), interleaved repetitions.
    process.stderr.write('bench prr: CPU per packet ...\n');
    const gcMid = { prr: small.out().length, prr1m: big.out().length };
    const dutPid = (w: Who): number | undefined => (w === 'tayga' ? tayga.tayga.pid : w === 'kernel' ? undefined : (w === 'prr' ? small : w === 'prrtun' ? tunOut : big).prr.pid);
    const perPkt: Record<Who, Array<{ us: number; genUs: number; loss: number; mainUs: number }>> = { kernel: [], tayga: [], prr: [], prrtun: [], prr1m: [] };
    for (let r = 0; r < reps; r++) {
      for (const w of hop) perPkt[w].push(await cpuPerPacket(dutPid(w), gen[w], sides[w].sink, FIXED_PPS, quick ? 1 : 2));
    }
    const usPer = (w: Who): number | null => (w === 'kernel' ? null : median(perPkt[w].map((x) => x.us)));
    const gcHop = {
      rates: { prr: gcSummary(small.out().slice(gcFrom.prr, gcMid.prr)), prr1m: gcSummary(big.out().slice(gcFrom.prr1m, gcMid.prr1m)) },
      cpu: { prr: gcSummary(small.out().slice(gcMid.prr)), prr1m: gcSummary(big.out().slice(gcMid.prr1m)) },
    };

    // What limits the rate at no drop: CPU while offering 1.25x the found rate for 2 s.
    const hopCpu: Record<string, string> = {};
    for (const w of hop) {
      const at = Math.round((hopRate[w] ?? 50_000) * 1.25);
      const m = await cpuDuring({ gen: gen[w].pid, dut: dutPid(w) }, () => genTrial(gen[w], sides[w].sink, at, 2, LOSS));
      const c = m.cpu;
      hopCpu[w] = `offered ${Math.round(at / 1000)}k sent ${Math.round(m.value.achieved / 1000)}k recv ${Math.round(m.value.received / 1000)}k; cpu gen ${c['gen']}% (waiting ${c['gen_wait']}%) dut ${Number.isNaN(c['dut']) ? '-' : `${c['dut']}% (waiting ${c['dut_wait']}%)`} host idle ${c['host_idle']}% of 200`;
    }

    // End to end, iperf3 UDP 64-byte payload (the PRR path has the CPE forwarder too).
    process.stderr.write('bench prr: iperf3 UDP searches ...\n');
    const udpSearch = Object.fromEntries(e2e.map((w) => [w, new NoDropSearch(25_000, quick ? 3 : 5)])) as Record<(typeof e2e)[number], NoDropSearch>;
    await lockstep(udpSearch, (w, pps) => iperfUdpTrial(sides[w].client, sides[w].target, pps, iperfSec, LOSS));

    const stats: Record<string, unknown> = {};
    const memBigAfter = memoryMb(big.prr.pid!);
    const hugeBig = hugePagesMb(big.prr.pid!);
    for (const [w, s] of [['prr', small], ['prrtun', tunOut], ['prr1m', big]] as const) {
      const st = await controlRequest(s.control, { cmd: 'stats' });
      const drops = (d: unknown): Record<string, number> => Object.fromEntries(Object.entries((d ?? {}) as Record<string, number>).filter(([, v]) => v > 0));
      stats[w] = { bindings: st['bindings'], global: drops(st['global']), drops6: drops(st['drops6']), drops4: drops(st['drops4']) };
    }

    const ratioN = (a: number | null, b: number | null): number | null => (a !== null && b !== null && b > 0 ? a / b : null);
    const perCore = (us: number | null): number | null => (us !== null && us > 0 ? 1e6 / us : null);
    const v3 = (f: (w: Exclude<Who, 'prr1m'>) => number | null): Record<string, number | null> => ({ prr: f('prr'), tayga: f('tayga'), kernel: f('kernel') });
    const rows: Row[] = [
      { metric: 'single hop: 64B UDP rate at no drop', unit: 'pps', values: v3((w) => hopRate[w]) },
      { metric: `single hop: CPU/packet at ${FIXED_PPS / 1000}k pps (lower=better)`, unit: 'us', values: v3((w) => usPer(w)) },
      { metric: 'single hop: pps per core (1e6/CPU per packet)', unit: 'pps', values: v3((w) => perCore(usPer(w))) },
      { metric: 'e2e iperf3 UDP 64B rate at no drop', unit: 'pps', values: v3((w) => udpSearch[w].result) },
      { metric: 'e2e iperf3 TCP throughput, 1 stream', unit: 'bit/s', values: v3((w) => median(tcp[w]!)) },
      { metric: 'e2e ping RTT', unit: 'ms', values: v3((w) => median(rtt[w]!)) },
      { metric: 'PRR single hop, 10 bindings', unit: 'pps', values: { prr: hopRate.prr } },
      { metric: 'PRR single hop, 10 bindings, ipv4_output = tun', unit: 'pps', values: { prr: hopRate.prrtun } },
      { metric: 'PRR rate raw/tun output', unit: 'x', values: { prr: ratioN(hopRate.prr, hopRate.prrtun) } },
      { metric: 'PRR CPU per packet, ipv4_output = tun', unit: 'us', values: { prr: usPer('prrtun') } },
      { metric: `PRR single hop, ${nBig} bindings`, unit: 'pps', values: { prr: hopRate.prr1m } },
      { metric: `PRR rate ${nBig}/10 bindings`, unit: 'x', values: { prr: ratioN(hopRate.prr1m, hopRate.prr) } },
      { metric: 'PRR CPU per packet, 10 bindings', unit: 'us', values: { prr: usPer('prr') } },
      { metric: `PRR CPU per packet, ${nBig} bindings`, unit: 'us', values: { prr: usPer('prr1m') } },
      { metric: `PRR pps per core ${nBig}/10`, unit: 'x', values: { prr: ratioN(perCore(usPer('prr1m')), perCore(usPer('prr'))) } },
      { metric: 'PRR load to forwarding, 10 bindings', unit: 's', values: { prr: small.loadMs / 1000 } },
      { metric: `PRR load to forwarding, ${nBig} bindings`, unit: 's', values: { prr: big.loadMs / 1000 } },
      { metric: 'PRR RSS, 10 bindings', unit: 'MB', values: { prr: memSmall.rss } },
      { metric: `PRR RSS after load, ${nBig} bindings`, unit: 'MB', values: { prr: memBig.rss } },
      { metric: `PRR RSS at the end of the run, ${nBig} bindings`, unit: 'MB', values: { prr: memBigAfter.rss } },
      { metric: `PRR peak RSS (VmHWM), ${nBig} bindings`, unit: 'MB', values: { prr: memBigAfter.peak } },
      { metric: `PRR memory in transparent huge pages (AnonHugePages), ${nBig} bindings`, unit: 'MB', values: { prr: hugeBig } },
      { metric: 'PRR control bind rate, 10 bindings', unit: 'binds/s', values: { prr: bind10 } },
      { metric: `PRR control bind rate, ${nBig} bindings`, unit: 'binds/s', values: { prr: bindBig } },
    ];
    const ratio = (a: number | null, b: number | null): string => (a !== null && b !== null && b > 0 ? (a / b).toFixed(3) : 'n/a');
    notes.push(
      `load average at the start ${loadStart}`,
      `load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} (2 cores shared with other users: compare the ratios)`,
      'prr = ipv4_output raw (decapsulated IPv4 out through a raw socket, one sendmmsg per batch); the 10-binding "tun" PRR writes each packet to its TUN (the kernel forwards it), single hop only',
      `prr/kernel: single hop ${ratio(hopRate.prr, hopRate.kernel)}, iperf3 UDP ${ratio(udpSearch.prr.result, udpSearch.kernel.result)}, TCP ${ratio(median(tcp['prr']!), median(tcp['kernel']!))}`,
      `no drop = loss <= ${LOSS}% and the source really offered the rate (>= 95% generator, >= 90% iperf3); single-hop trials ${trialSec} s, iperf3 UDP ${iperfSec} s, TCP ${tcpSec} s; ${reps} repetition(s), medians`,
      'single hop: generator TUN -> kernel routing in the source netns -> hop under test -> IPv4 sink (nftables counter, drop at prerouting). Packets: IPv4-in-IPv6 (prr, 132 B), IPv6 UDP (tayga, 112 B), IPv4 UDP (kernel, 92 B)',
      'e2e prr path = LAN host -> CPE netns (nftables SNAT + test-only pipe forwarder, a 2nd user-space hop) -> PRR -> Internet host; tayga path = IPv6 host -> tayga -> IPv4 host; kernel = IPv4 host -> router -> IPv4 host',
      `${nBig}-binding PRR: RFC 7597 PSID sets a=4/k=11 on 510 shared addresses, generator spread over ${DISTINCT} of them; loaded from a prr.ini`,
      `single-hop rates per repetition: ${JSON.stringify(rates)}; source-limited (every failed trial was the generator falling short): ${JSON.stringify(limited)}`,
      `CPU per packet (us) per repetition, hop under test / generator: ${JSON.stringify(Object.fromEntries(hop.map((w) => [w, perPkt[w].map((x) => `${x.us}/${x.genUs}${x.loss > LOSS ? ` loss ${x.loss}%` : ''}`)])))}`,
      `of it in the PRRs' main (JavaScript) thread, the rest being GC/compiler helper threads (us): ${JSON.stringify(Object.fromEntries((['prr', 'prrtun', 'prr1m'] as const).map((w) => [w, perPkt[w].map((x) => x.mainUs)])))}`,
      `at 1.25x the found rate: ${JSON.stringify(hopCpu)}`,
      `tayga's TUN txqueuelen ${taygaQlen} (kernel default 500; --tayga-txqueuelen N); the kernel's forwarding runs in the generator's write(), so its rate is the generator's limit`,
      `CPU % during TCP (first repetition): ${JSON.stringify(tcpCpu)}`,
      `iperf3 UDP source-limited: ${JSON.stringify(Object.fromEntries(e2e.map((w) => [w, udpSearch[w].sourceLimited])))}`,
      `PRR counters (non-zero): ${JSON.stringify(stats)}`,
      `garbage collections in the PRRs during the single-hop rate searches and the CPU-per-packet trials (--trace-gc; count, pause ms): ${JSON.stringify(gcHop)}`,
    );
    const report: Report = {
      bench: 'prr',
      when: new Date().toISOString(),
      host: { cpus: os.cpus().length, kernel: os.release() },
      notes,
      rows,
    };
    (report as Report & { trials?: unknown }).trials = { hop: hopTrials, iperfUdp: Object.fromEntries(e2e.map((w) => [w, udpSearch[w].trials])), tcp, rtt };
    printReport(report, 'tayga');
  } finally {
    for (const g of gens) g.close();
    await sleep(100);
    lab.destroy();
    cleanDir();
  }
}
