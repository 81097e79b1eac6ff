/**
 * `npm run bench -- metrics [--quick] [--subscribers N] [--bindings N]`: what the PRR's metrics
 * cost.
 *
 *   - scrape: GET /metrics of a PRR registry holding N subscribers (default 100,000, 480-port
 *     ranges on 758 shared addresses, every one with 20 ports active and a usage report), over
 *     HTTP, with per_subscriber = all, top:100 and none, and top:100 without ports active: median
 *     wall and CPU time and response size (the first scrape, which warms the JIT, apart);
 *   - packet rate: two PRRs side by side in one lab, the same bindings (default 100,000, RFC 7597
 *     sets on 510 addresses) and the same generator (bench/prr-gen.ts, bench/prr-measure.ts), one
 *     with `[metrics] ports_active = on` and one with `off`: small-packet rate at no drop and CPU
 *     per packet at a fixed rate, searched in lockstep; the on/off ratio is the cost of tracking.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { Lab } from '../test/lab/lab.js';
import { serveMetrics } from '../common/metrics-server.js';
import { parseIpv4Prefix } from '../common/config/values.js';
import type { PerSubscriber } from '../common/config/prr.js';
import { PortRange } from '../common/portset.js';
import { BindingTable } from '../prr/bindings.js';
import { B, PER_BINDING, PrrCounters } from '../prr/counters.js';
import { prrRegistry } from '../prr/metrics.js';
import { PortActivity } from '../prr/port-activity.js';
import { UsageReports } from '../prr/usage-reports.js';
import { printReport, type Report, type Row } from './lib.js';
import { buildPrr, memoryMb } from './prr-lab.js';
import { cpuPerPacket, Gen, genTrial, lockstep, median, NoDropSearch, sleep } from './prr-measure.js';
import { prrPackets, spread, writePacketFile } from './prr-packets.js';

const POOLS = ['192.0.2.0/24', '198.51.100.0/24', '203.0.113.0/24'].map((p) => parseIpv4Prefix(p)!);
const PER_ADDR = 132; // 480-port ranges from 1024: 132 fit below 65535
const SET = 480;
const ACTIVE_PER_SUB = 20;
const DISTINCT = 65_536;
const LOSS = 0.1;
const FIXED_PPS = 30_000;

function flag(args: string[], name: string, dflt: number): number {
  const i = args.indexOf(name);
  const n = i >= 0 ? Number(args[i + 1]) : dflt;
  if (!Number.isInteger(n) || n < 10) throw new Error(`${name}: expected an integer >= 10`);
  return n;
}

/** A PRR's metrics state with `n` subscribers, traffic, ports active and usage reports. */
function world(n: number): { table: BindingTable; counters: PrrCounters; activity: PortActivity; usage: UsageReports } {
  const addrs = POOLS.flatMap((p) => p.addresses());
  if (n > addrs.length * PER_ADDR) throw new Error(`--subscribers: at most ${addrs.length * PER_ADDR}`);
  const table = new BindingTable(n);
  const counters = new PrrCounters(n);
  const activity = new PortActivity();
  const usage = new UsageReports();
  const v6 = Buffer.alloc(16);
  v6.writeUInt32BE(0x20010db8, 0);
  for (let i = 0; i < n; i++) {
    const ipv4 = addrs[Math.floor(i / PER_ADDR)]!;
    const first = 1024 + (i % PER_ADDR) * SET;
    v6.writeUInt32BE(i + 1, 12);
    const id = table.add({ subscriber: `s${i}`, ipv6: v6, ipv4, ports: new PortRange(first, first + SET - 1) });
    counters.perBinding[id * PER_BINDING + B.from_cpe_bytes] = 1000 + ((i * 7919) % 100_000);
    counters.perBinding[id * PER_BINDING + B.from_cpe_packets] = 10 + (i % 100);
    for (let k = 0; k < ACTIVE_PER_SUB; k++) activity.mark(ipv4, first + ((k * 23) % SET));
    usage.set(`s${i}`, { tcp: ACTIVE_PER_SUB - 2, udp: 2, icmp: 0, other: 0 });
  }
  return { table, counters, activity, usage };
}

/**
 * Median wall and CPU ms (this process: the server and the client reading the body) and bytes of
 * `reps` GETs of /metrics (250 ms apart: past the row cache), and the first (JIT warm-up) apart.
 * On a busy shared host the CPU time is the steadier figure.
 */
async function scrapes(w: ReturnType<typeof world>, mode: PerSubscriber, withActivity: boolean, reps: number): Promise<{ firstMs: number; ms: number | null; cpuMs: number | null; bytes: number }> {
  const src = { table: w.table, counters: w.counters, pools: POOLS, allowSystemPorts: false, usage: w.usage, ...(withActivity ? { activity: w.activity } : {}) };
  const server = await serveMetrics(prrRegistry(src, { perSubscriber: mode }), { host: '127.0.0.1', port: 0 });
  try {
    const times: number[] = [];
    const cpu: number[] = [];
    let bytes = 0;
    for (let r = 0; r <= reps; r++) {
      await sleep(250);
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const res = await fetch(`http://127.0.0.1:${server.address.port}/metrics`);
      bytes = (await res.arrayBuffer()).byteLength;
      times.push(performance.now() - t0);
      const c = process.cpuUsage(c0);
      cpu.push((c.user + c.system) / 1000);
    }
    return { firstMs: times[0]!, ms: median(times.slice(1)), cpuMs: median(cpu.slice(1)), bytes };
  } finally {
    await server.close();
  }
}

export async function main(args: string[]): Promise<void> {
  const quick = args.includes('--quick');
  const nSubs = flag(args, '--subscribers', 100_000);
  const nBind = flag(args, '--bindings', 100_000);
  const reps = quick ? 1 : 3;
  const rows: Row[] = [];
  const notes: string[] = [];

  // ---- scrape cost, in process ------------------------------------------------------------------
  process.stderr.write(`bench metrics: ${nSubs} subscribers, scrapes ...\n`);
  const w = world(nSubs);
  const modes: Array<[string, PerSubscriber, boolean]> = [
    ['all', { mode: 'all' }, true],
    ['top:100', { mode: 'top', n: 100 }, true],
    ['none', { mode: 'none' }, true],
    ['top:100, ports_active off', { mode: 'top', n: 100 }, false],
  ];
  for (const [name, mode, act] of modes) {
    // `all` at this size takes seconds of CPU per scrape: fewer repetitions.
    const n = mode.mode === 'all' ? (quick ? 1 : 3) : quick ? 3 : 7;
    const s = await scrapes(w, mode, act, n);
    rows.push({ metric: `scrape ${nSubs} subscribers, per_subscriber=${name}, wall`, unit: 'ms', values: { prr: s.ms } });
    rows.push({ metric: `scrape ${nSubs} subscribers, per_subscriber=${name}, CPU`, unit: 'ms', values: { prr: s.cpuMs } });
    rows.push({ metric: `scrape size, per_subscriber=${name}`, unit: 'MB', values: { prr: s.bytes / 1e6 } });
    notes.push(`per_subscriber=${name}: first scrape ${s.firstMs.toFixed(0)} ms wall (JIT warm-up), then medians of ${n}`);
  }
  rows.push({ metric: `ports-active bitmaps, ${nSubs} subscribers on ${Math.ceil(nSubs / PER_ADDR)} addresses`, unit: 'MB', values: { prr: w.activity.bytes() / 1e6 } });

  // ---- packet rate, ports active on vs off -------------------------------------------------------
  const dir = mkdtempSync(join(os.tmpdir(), 'aplus-bench-metrics-'));
  const lab = Lab.create('bmet');
  const gens: Gen[] = [];
  try {
    process.stderr.write(`bench metrics: two PRRs with ${nBind} bindings (ports_active on, off) ...\n`);
    const on = await buildPrr(lab, 'a', nBind, dir, false, { extraIni: '\n[metrics]\nports_active = on\n' });
    const off = await buildPrr(lab, 'b', nBind, dir, false, { extraIni: '\n[metrics]\nports_active = off\n' });
    const sides = { on, off };
    const gen = {} as Record<'on' | 'off', Gen>;
    for (const k of ['on', 'off'] as const) {
      const f = join(dir, `${k}.pkts`);
      writePacketFile(f, prrPackets(DISTINCT, spread(nBind - 1)));
      gen[k] = await Gen.start(sides[k].gen, f);
      gens.push(gen[k]);
    }
    process.stderr.write('bench metrics: rate searches and CPU per packet ...\n');
    const rates: Record<'on' | 'off', Array<number | null>> = { on: [], off: [] };
    const per: Record<'on' | 'off', number[]> = { on: [], off: [] };
    for (let r = 0; r < reps; r++) {
      const searches = { on: new NoDropSearch(25_000, quick ? 3 : 5), off: new NoDropSearch(25_000, quick ? 3 : 5) };
      await lockstep(searches, (k, pps) => genTrial(gen[k], sides[k].sink, pps, quick ? 0.5 : 1, LOSS));
      for (const k of ['on', 'off'] as const) rates[k].push(searches[k].result);
      for (const k of ['on', 'off'] as const) per[k].push((await cpuPerPacket(sides[k].prr.pid, gen[k], sides[k].sink, FIXED_PPS, quick ? 1 : 2)).us);
    }
    const rate = { on: median(rates.on), off: median(rates.off) };
    const us = { on: median(per.on), off: median(per.off) };
    const ratio = (a: number | null, b: number | null): number | null => (a !== null && b !== null && b > 0 ? a / b : null);
    const tracker = await lab.host('aprr').exec('curl', ['-sS', '--max-time', '10', 'http://127.0.0.1:9150/metrics']);
    const trackerBytes = Number(/^prr_ports_active_tracker_bytes (\d+)/m.exec(tracker.stdout)?.[1] ?? NaN);
    rows.push(
      { metric: `PRR 64B UDP rate at no drop, ${nBind} bindings`, unit: 'pps', values: { on: rate.on, off: rate.off } },
      { metric: `PRR CPU per packet at ${FIXED_PPS / 1000}k pps`, unit: 'us', values: { on: us.on, off: us.off } },
      { metric: 'rate, ports_active on/off', unit: 'x', values: { on: ratio(rate.on, rate.off) } },
      { metric: 'CPU per packet, ports_active on/off', unit: 'x', values: { on: ratio(us.on, us.off) } },
      { metric: 'PRR RSS', unit: 'MB', values: { on: memoryMb(on.prr.pid!).rss, off: memoryMb(off.prr.pid!).rss } },
      { metric: 'ports-active bitmaps (prr_ports_active_tracker_bytes)', unit: 'MB', values: { on: trackerBytes / 1e6 } },
    );
    notes.push(
      `rates per repetition: ${JSON.stringify(rates)}; CPU per packet (us): ${JSON.stringify(per)}`,
      `generator: ${DISTINCT} distinct IPv4-in-IPv6 packets spread over ${nBind - 1} bindings (RFC 7597 sets a=4/k=11 on up to 510 addresses), so the ports-active address cache mostly misses (worst case)`,
      `no drop = loss <= ${LOSS}%; ${reps} repetition(s), medians; a shared 2-core host: compare on and off, measured in lockstep, not the absolute figures`,
    );
  } finally {
    for (const g of gens) g.close();
    await sleep(100);
    lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
  const report: Report = { bench: 'metrics', when: new Date().toISOString(), host: { cpus: os.cpus().length, kernel: os.release() }, notes, rows };
  printReport(report, 'off');
}
