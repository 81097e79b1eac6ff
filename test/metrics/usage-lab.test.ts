/**
 * Port usage end to end: two real SMAPs register with the real PRR over SSH (lease 60 s, so they
 * renew every 24-36 s), LAN hosts hold known numbers of TCP connections through them, and the PRR
 * exports both figures: ports active (observed in its data plane) and ports in use (what each
 * SMAP counted in conntrack and reported with its renewal). A real Prometheus in the PRR's
 * namespace scrapes it and the dashboard's panel queries return the same figures.
 *
 * Tolerance: each figure must be within [N, N + 2] for N connections held. The LAN hosts open
 * nothing else, so the figures should be exact; the slack is for a stray flow (a retransmitted
 * SYN of a connection being set up, a DHCP or neighbour probe the kernel NATs) and is stated here
 * rather than hidden.
 */
import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { labUnavailableReason, waitFor } from '../lab/lab.js';
import { distMissingReason } from '../lab/prr-topology.js';
import { buildSmapLab, HOLD_CLIENT, INET, type Cpe } from '../lab/smap-topology.js';
import type { SmapStatus } from '../../smap/daemon.js';
import { value } from './helpers.js';
import { curlApi, GRAFANA, grafanaToPromQL, instant, loadDashboard, noPrometheusReason, prometheusArgs, testConfig } from './prometheus.js';

const METRICS = '127.0.0.1:9150';
const PROM = '127.0.0.1:9090';
const SLACK = 2;
const HELD = { cpe1: 40, cpe2: 15 } as const;

t.test('ports active (observed) and ports in use (reported) match the connections LAN hosts hold', { skip: labUnavailableReason() ?? distMissingReason() ?? noPrometheusReason(), timeout: 240_000 }, async (t) => {
  const l = await buildSmapLab('usagelab', [{ ports: '', register: {} }, { ports: '', register: {} }]);
  t.teardown(() => l.destroy());
  // The topology's PRR runs without metrics and with a day-long lease: metrics on, lease 60 s.
  const ini = readFileSync(l.prrConfig, 'utf8');
  t.match(ini, /\[metrics\]\nenabled = false\n/);
  writeFileSync(l.prrConfig, ini
    .replace('[metrics]\nenabled = false\n', `[metrics]\nenabled = true\nlisten = ${METRICS}\nper_subscriber = all\nports_active = on\n`)
    .replace('[registration]\n', '[registration]\nlease = 60\n'));
  await l.restartPrr();

  const status = async (cpe: Cpe): Promise<SmapStatus> => {
    const r = await l.cli(cpe.host, 'smap', ['status', '--config', cpe.config, '--json']);
    if (r.code !== 0) throw new Error(`smap status in ${cpe.host.short}: ${r.stderr.trim()}`);
    return JSON.parse(r.stdout) as SmapStatus;
  };
  for (const cpe of l.cpes) l.startAgent(cpe);
  for (const cpe of l.cpes) {
    await l.agentRunning(cpe);
    await waitFor(`${cpe.host.short} registered`, async () => ((await status(cpe)).state === 'running' ? true : undefined), 30_000, 200);
  }
  const scrape = async (): Promise<string> => {
    const r = await l.prr.exec('curl', ['-sS', '--max-time', '5', `http://${METRICS}/metrics`]);
    if (r.code !== 0) throw new Error(`curl /metrics: ${r.stderr.trim()}`);
    return r.stdout;
  };
  const first = await scrape();
  t.equal(value(first, 'prr_subscriber_ports_active', { subscriber: 'cpe1' }), 0, 'nothing active before the LAN hosts open anything');
  const reportedAt = (text: string, sub: string): number => value(text, 'prr_subscriber_usage_report_timestamp_seconds', { subscriber: sub }) ?? 0;
  // (The first registration carries no report: before its lease the SMAP has no set to count in.)

  // Prometheus, from the shipped scrape config, in the PRR's namespace.
  const promConfig = join(l.dir, 'prometheus.yml');
  writeFileSync(promConfig, testConfig({ prr: METRICS, smap: '127.0.0.1:9151', rules: join(GRAFANA, 'alerts.yml') }));
  const prom = l.prr.spawn('prometheus', prometheusArgs(promConfig, join(l.dir, 'tsdb'), PROM), { stdio: ['ignore', 'ignore', 'pipe'] });
  let promErr = '';
  prom.stderr?.setEncoding('utf8').on('data', (d: string) => (promErr += d));
  const api = curlApi(l.prr, `http://${PROM}`);

  // The LAN hosts open their connections (each echoes once, then holds it).
  const holders: Array<{ c: ChildProcess; exit: Promise<unknown> }> = [];
  t.teardown(async () => {
    for (const h of holders) {
      h.c.stdin?.end();
      await h.exit;
    }
  });
  const heldSince = Date.now() / 1000;
  await Promise.all(l.cpes.map(async (cpe, i) => {
    const n = i === 0 ? HELD.cpe1 : HELD.cpe2;
    const c = cpe.lan.spawn(process.execPath, ['-e', HOLD_CLIENT, INET, String(n), '7000', '0'], { stdio: ['pipe', 'pipe', 'inherit'] });
    holders.push({ c, exit: new Promise((r) => c.once('exit', r)) });
    let out = '';
    c.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
    await waitFor(`${n} connections from ${cpe.lan.short}`, () => (out.includes('\n') ? true : undefined), 60_000, 200);
    const r = JSON.parse(out) as { connected: number; echoed: number };
    t.equal(r.connected, n, `${cpe.lan.short}: ${n} connected`);
    t.equal(r.echoed, n, `${cpe.lan.short}: ${n} echoed`);
  }));

  // Observed: at once (the window is 60 s; the connections were busy just now).
  const within = (x: number | undefined, n: number): boolean => x !== undefined && x >= n && x <= n + SLACK;
  const observed = await scrape();
  for (const [sub, n] of Object.entries(HELD)) {
    const x = value(observed, 'prr_subscriber_ports_active', { subscriber: sub });
    t.ok(within(x, n), `${sub}: ports active ${x}, holding ${n} (tolerance +${SLACK})`);
  }
  const pool = Number(/prr_pool_ports_active\{pool="[^"]+",address="192\.0\.2\.100"\} (\d+)/.exec(observed)?.[1]);
  t.ok(within(pool, HELD.cpe1 + HELD.cpe2), `shared address: ${pool} ports active, ${HELD.cpe1 + HELD.cpe2} held`);

  // Prometheus sees the same through the dashboard's own panel query.
  await waitFor('prometheus scraped the PRR', async () => {
    if (prom.exitCode !== null) throw new Error(`prometheus exited ${prom.exitCode}: ${promErr.trim()}`);
    try {
      return (await instant(api, 'prr_subscriber_ports_active{subscriber="cpe1"} > 0')).length === 1 ? true : undefined;
    } catch {
      return undefined;
    }
  }, 30_000, 250);
  const panel = loadDashboard('port-consumption.json').panels.find((p) => p.title.startsWith('Ports in use per subscriber'))!;
  const series = await instant(api, grafanaToPromQL(panel.targets![0]!.expr));
  const bySub = Object.fromEntries(series.map((s) => [s.metric['subscriber'], Number(s.value[1])]));
  t.ok(within(bySub['cpe1'], HELD.cpe1) && within(bySub['cpe2'], HELD.cpe2), `panel "${panel.title}" A: ${JSON.stringify(bySub)}`);

  // Reported: the next renewal of each SMAP (24-36 s after its registration) carries its conntrack count.
  for (const [sub, n] of Object.entries(HELD)) {
    const text = await waitFor(`${sub} renewed with its count`, async () => {
      const s = await scrape();
      return reportedAt(s, sub) >= heldSince ? s : undefined;
    }, 60_000, 1000);
    const tcp = value(text, 'prr_subscriber_ports_in_use', { subscriber: sub, protocol: 'tcp' });
    t.ok(within(tcp, n), `${sub}: reported ${tcp} TCP ports in use, holding ${n} (tolerance +${SLACK})`);
  }
  const reported = await waitFor('Prometheus has both reports', async () => {
    const r = await instant(api, grafanaToPromQL(panel.targets![1]!.expr));
    const m = Object.fromEntries(r.map((s) => [s.metric['subscriber'], Number(s.value[1])]));
    return within(m['cpe1'], HELD.cpe1) && within(m['cpe2'], HELD.cpe2) ? m : undefined;
  }, 15_000, 500);
  t.pass(`panel "${panel.title}" B (reported): ${JSON.stringify(reported)}`);
});
