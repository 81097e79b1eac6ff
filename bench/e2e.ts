/**
 * `npm run bench -- e2e [--quick] [--tayga-txqueuelen N] [--perf] [--offload-off]`: LAN host -> SMAP -> PRR -> Internet host, end to end, beside
 * kernel forwarding and beside tayga (464XLAT) over the same namespaces, in the same run
 * (paths in bench/e2e-lab.ts):
 *
 *   aplus   lan1 -> cpe1 (`smap run`) => prr node (`prr run`) -> inet      two user-space hops
 *   kernel  lan2 -> cpe2 (same SNAT, native IPv4) -> prr node (kernel) -> inet
 *   tayga   lan2 -> cpe2 (same SNAT, tayga CLAT) -> prr node (tayga PLAT) -> inet   two C hops
 *
 * Rows: iperf3 TCP throughput (1 stream; and toward the LAN, -R), 64-byte UDP rate at no drop (bench/gen/udpgen.c, sendmmsg), ping RTT; ratios
 * to kernel, to tayga and to the goal (twice a naive one-syscall-per-packet C tunnel here:
 * 0.8 Gbit/s, 100 kpps). Contenders alternate inside each measurement, so a shared host's noise
 * falls on all alike. The busiest lab processes are sampled during TCP and during a UDP trial at
 * 1.25x each contender's no-drop rate, to say what limited each figure; --perf adds where the
 * SMAP's own CPU goes (bench/e2e-perf.ts). --offload-off runs the SMAP and the PRR with `[tunnel]
 * offload = off` (one packet per TUN read and write), to compare with TUN offloads (the default).
 */
import os from 'node:os';
import type { Host } from '../test/lab/lab.js';
import { waitFor } from '../test/lab/lab.js';
import { buildSmapLab, INET } from '../test/lab/smap-topology.js';
import { buildUdpGen } from './udpgen.js';
import { perfAvailable, profile } from './e2e-perf.js';
import { iperfServer, pingRtt, tcpThroughput, type Report, type Row } from './lib.js';
import { busiest, buildCpe2Paths, txqlen, countArrivals, dropCounters, dropDelta, PORTS, udpNoDropLockstep, udpTrial } from './e2e-lab.js';

const GOAL = { tcp: 0.8e9, pps: 100_000 };
const WHO = ['kernel', 'tayga', 'aplus'] as const;
type Who = (typeof WHO)[number];

const median = (xs: Array<number | null>): number | null => {
  const v = xs.filter((x): x is number => x !== null).sort((a, b) => a - b);
  return v.length === 0 ? null : v.length % 2 === 1 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
};

function fmt(v: number | null | undefined, unit: string): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return 'n/a';
  if (unit === 'bit/s') return `${(v / 1e9).toFixed(3)} Gbit/s`;
  if (unit === 'pps') return `${(v / 1e3).toFixed(1)} kpps`;
  if (unit === 'ms') return `${v.toFixed(3)} ms`;
  return `${v.toFixed(2)} ${unit}`;
}

const ratio = (a: number | null | undefined, b: number | null | undefined): string =>
  a !== null && a !== undefined && b !== null && b !== undefined && b > 0 ? (a / b).toFixed(3) : 'n/a';

/** JSON first, then the table: figures, ours over kernel, over tayga, over the goal. */
function print(r: Report): void {
  process.stdout.write(JSON.stringify(r, null, 2) + '\n\n');
  const head = ['metric', 'aplus', 'kernel', 'tayga', 'aplus/kernel', 'aplus/tayga', 'goal', 'aplus/goal'];
  const lines = r.rows.map((row) => {
    const v = row.values;
    return [row.metric, fmt(v['aplus'], row.unit), fmt(v['kernel'], row.unit), fmt(v['tayga'], row.unit), ratio(v['aplus'], v['kernel']), ratio(v['aplus'], v['tayga']),
      fmt(v['goal'], row.unit), ratio(v['aplus'], v['goal'])];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const out = [head, ...lines].map((l) => l.map((c, i) => c.padEnd(widths[i]!)).join('  '));
  out.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  process.stdout.write(out.join('\n') + '\n');
  for (const n of r.notes) process.stdout.write(`note: ${n}\n`);
}

export async function main(args: string[]): Promise<void> {
  const quick = args.includes('--quick');
  const reps = quick ? 1 : 2;
  const tcpSec = quick ? 2 : 5;
  const udpSec = quick ? 1 : 2;
  const pings = quick ? 10 : 20;
  const say = (s: string): void => void process.stderr.write(`bench e2e: ${s}\n`);

  say('building the SMAP lab (PRR, cpe1 running smap, cpe2 kernel/tayga) ...');
  const offload = args.includes('--offload-off') ? 'off' : 'auto';
  const l = await buildSmapLab('be2e', [{ ports: PORTS, offload }, { ports: '11000-11999' }], { prrIni: ['[tunnel]', `offload = ${offload}`] });
  try {
    const cpe1 = l.cpes[0];
    l.startAgent(cpe1);
    await l.agentRunning(cpe1);
    await waitFor('aplus path answers a ping', async () => ((await cpe1.lan.exec('ping', ['-c', '1', '-W', '1', INET])).code === 0 ? true : undefined), 20_000);
    const ourQlen = { smap0: txqlen(cpe1.host, 'smap0'), prr0: txqlen(l.prr, 'prr0') };
    const qi = args.indexOf('--tayga-txqueuelen');
    const taygaQlen = qi >= 0 ? Number(args[qi + 1]) : ourQlen.smap0;
    const paths = await buildCpe2Paths(l, taygaQlen);
    await iperfServer(l.inet);
    const client = (w: Who): Host => {
      if (w === 'aplus') return cpe1.lan;
      paths.use(w);
      return l.cpes[1].lan;
    };

    const rtt: Record<Who, Array<number | null>> = { kernel: [], tayga: [], aplus: [] };
    const tcp: Record<Who, Array<number | null>> = { kernel: [], tayga: [], aplus: [] };
    const tcpDown: Record<Who, Array<number | null>> = { kernel: [], tayga: [], aplus: [] };
    const tcpCpu: Partial<Record<Who, string>> = {};
    const pingCpu: Partial<Record<Who, string>> = {};
    for (let r = 0; r < reps; r++) {
      say(`ping RTT and TCP, repetition ${r + 1}/${reps} ...`);
      for (const w of WHO) {
        const c = client(w);
        const m = await busiest(l, () => pingRtt(c, INET, pings));
        rtt[w].push(m.value);
        if (r === 0) pingCpu[w] = m.cpu;
      }
      for (const w of WHO) {
        const c = client(w);
        const m = await busiest(l, () => tcpThroughput(c, INET, tcpSec));
        tcp[w].push(m.value);
        if (r === 0) tcpCpu[w] = m.cpu;
      }
      for (const w of WHO) tcpDown[w].push(await tcpThroughput(client(w), INET, tcpSec, 5201, true));
    }

    say('UDP 64-byte rate at no drop ...');
    const gen = buildUdpGen(l.dir);
    const count = countArrivals(l.inet, l.dir);
    const search = await udpNoDropLockstep(WHO, (w, rate) => udpTrial(gen, client(w), count, rate, udpSec), { bisect: quick ? 4 : 5 });
    const pps = Object.fromEntries(WHO.map((w) => [w, search[w].pps])) as Record<Who, number | null>;
    const trials = Object.fromEntries(WHO.map((w) => [w, search[w].trials.map((t) => `${Math.round(t.offered / 100) / 10}k:${Math.round(t.received / 100) / 10}k/${t.loss.toFixed(2)}%`)]));
    // Source-limited: every failed trial failed because the generator could not send the rate (not path loss).
    const sourceLimited = Object.fromEntries(WHO.map((w) => {
      const failed = search[w].trials.filter((t) => !(t.loss <= 0.1 && t.sent >= 0.9 * t.offered));
      return [w, failed.length > 0 && failed.every((t) => t.loss <= 0.1)];
    }));
    say('CPU at 1.25x each no-drop rate ...');
    const udpCpu: Partial<Record<Who, string>> = {};
    for (const w of WHO) {
      const at = Math.round((pps[w] ?? 25_000) * 1.25);
      const c = client(w);
      const d0 = dropCounters(l);
      const m = await busiest(l, () => udpTrial(gen, c, count, at, udpSec));
      udpCpu[w] = `offered ${Math.round(at / 1000)}k sent ${Math.round(m.value.sent / 1000)}k arrived ${Math.round(m.value.received / 1000)}k: ${m.cpu}; drops: ${dropDelta(d0, dropCounters(l))}`;
    }
    let perfNote: string | undefined;
    if (args.includes('--perf')) {
      const pid = cpe1.agent?.pid;
      if (!perfAvailable() || pid === undefined) perfNote = 'SMAP profile: perf not installed (Debian linux-perf) or smap not running';
      else {
        say('profiling smap run (perf record) ...');
        const down = await profile(pid, l.dir, 'tcp-down', tcpSec, () => cpe1.lan.exec('iperf3', ['-c', INET, '-R', '-t', String(tcpSec)], { timeoutMs: (tcpSec + 15) * 1000 }));
        const up = await profile(pid, l.dir, 'tcp-up', tcpSec, () => tcpThroughput(cpe1.lan, INET, tcpSec));
        const udp = await profile(pid, l.dir, 'udp-up', udpSec, () => udpTrial(gen, cpe1.lan, count, pps.aplus ?? 25_000, udpSec));
        perfNote = `SMAP profile (perf record -g of smap run, share of its samples): TCP toward the LAN (iperf3 -R): ${down}; TCP toward the Internet: ${up}; 64B UDP toward the Internet at its no-drop rate: ${udp}`;
      }
    }
    if (cpe1.agent?.exitCode !== null) throw new Error(`smap exited during the run: ${cpe1.log().trim().split('\n').slice(-3).join(' | ')}`);

    const rows: Row[] = [
      { metric: 'TCP throughput (1 stream)', unit: 'bit/s', values: { aplus: median(tcp.aplus), kernel: median(tcp.kernel), tayga: median(tcp.tayga), goal: GOAL.tcp } },
      { metric: 'TCP toward the LAN (-R)', unit: 'bit/s', values: { aplus: median(tcpDown.aplus), kernel: median(tcpDown.kernel), tayga: median(tcpDown.tayga) } },
      { metric: 'UDP 64B rate at no drop', unit: 'pps', values: { aplus: pps.aplus, kernel: pps.kernel, tayga: pps.tayga, goal: GOAL.pps } },
      { metric: 'ping RTT (median)', unit: 'ms', values: { aplus: median(rtt.aplus), kernel: median(rtt.kernel), tayga: median(rtt.tayga) } },
    ];
    const report: Report = {
      bench: 'e2e',
      when: new Date().toISOString(),
      host: { cpus: os.cpus().length, kernel: os.release() },
      notes: [
        `aplus = lan1 -> cpe1 (smap run: nftables SNAT + TUN smap0, IPv4-in-IPv6) -> prr node (prr run) -> inet: two user-space hops; [tunnel] offload = ${offload} on both`,
        'kernel = lan2 -> cpe2 (the same smap SNAT table, out the WAN veth as plain IPv4) -> prr node (kernel routing) -> inet',
        'tayga = 464XLAT: lan2 -> cpe2 (same SNAT table, tayga CLAT on TUN) -> prr node (tayga PLAT, NAT64 2001:db8:64::/96) -> inet: two C user-space hops',
        `TUN TX queue lengths: smap0 ${ourQlen.smap0}, prr0 ${ourQlen.prr0}, tayga's clat and nat64 ${taygaQlen} (--tayga-txqueuelen N; bench prr uses 10000)`,
        'goal = twice a naive one-syscall-per-packet C tunnel through two user-space hops here (0.4 Gbit/s, 50 kpps)',
        `TCP ${tcpSec} s x ${reps} (median); UDP: 64-byte datagrams from bench/gen/udpgen.c (sendmmsg, 64 per call, paced in 1 ms ticks; iperf3 tops out near 70 kpps here), no drop = path loss <= 0.1% (the generator's sent count vs. an nftables counter at the Internet host's prerouting, which drops them there) and >= 90% of the rate really sent, ${udpSec} s trials doubling from 25 kpps then bisected, contenders in lockstep; ping ${pings} x 50 ms (median of ${reps})`,
        `busiest during ping (RTT at 20 pps is wake-up latency: on a shared, busy host it follows the host's load): ${JSON.stringify(pingCpu)}`,
        `busiest during TCP (% of one core): ${JSON.stringify(tcpCpu)}`,
        `UDP search source-limited (every failed trial: the generator sent < 90% of the rate, no path loss; the figure is then a floor): ${JSON.stringify(sourceLimited)}`,
        `busiest during UDP at 1.25x no-drop rate: ${JSON.stringify(udpCpu)}`,
        `UDP trials (offered:arrived/path loss): ${JSON.stringify(trials)}`,
        ...(perfNote !== undefined ? [perfNote] : []),
      ],
      rows,
    };
    (report as Report & { raw?: unknown }).raw = { tcp, tcpDown, rtt };
    print(report);
  } finally {
    l.destroy();
  }
}
