/**
 * `npm run dashboards [-- --seconds N --out DIR]`: the pictures of the dashboards in the README,
 * made from the dashboards' own panel queries against the lab (not drawn by hand):
 *
 *   1. the SMAP lab (test/lab/smap-topology.ts): the real PRR with metrics on, two real SMAPs
 *      registering over SSH (60 s lease: they renew and report their conntrack counts), each with
 *      its own /metrics on its WAN address;
 *   2. a real Prometheus in the PRR's namespace, configured from grafana/prometheus.yml and
 *      grafana/alerts.yml, scraping the PRR and both SMAPs every second;
 *   3. traffic for N seconds (default 180): lan1 opens TCP connections in three steps (60, then
 *      +120, then +180) and lan2 holds 40, each connection sending a line every 5 s; lan2 fetches a
 *      page every 2 s; the Internet host sends datagrams to a port no one holds (drops);
 *   4. every panel target of grafana/dashboards/*.json is asked of Prometheus (query_range over the
 *      run for time series and heatmaps, an instant query for the others), legends filled in as
 *      Grafana would, drawn by render-svg.ts and turned into PNG by rsvg-convert (librsvg2-bin).
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from '../lab/lab.js';
import { buildSmapLab, INET, type Cpe, type SmapLab } from '../lab/smap-topology.js';
import { REPO_ROOT } from '../lab/paths.js';
import type { SmapStatus } from '../../smap/daemon.js';
import { renderDashboard, type PanelData, type Series } from './render-svg.js';
import { curlApi, GRAFANA, grafanaToPromQL, loadDashboard, prometheusArgs, testConfig, type PromGet } from './prometheus.js';

const METRICS = '127.0.0.1:9150';
const PROM = '127.0.0.1:9090';
/** Why rsvg-convert cannot run here, or undefined (in CI it must: no skip). */
export function noRsvgReason(): string | undefined {
  if (process.env['CI'] !== undefined) return undefined;
  return spawnSync('sh', ['-c', 'command -v rsvg-convert'], { encoding: 'utf8' }).status === 0 ? undefined : 'rsvg-convert is not installed (apt-get install -y librsvg2-bin; test/lab/debian-packages.txt)';
}

/** Width and height of a PNG, or undefined when `b` is not one (signature, then the IHDR chunk). */
export function pngSize(b: Buffer): { width: number; height: number } | undefined {
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  if (b.length < 24 || !b.subarray(0, 8).equals(sig) || b.toString('latin1', 12, 16) !== 'IHDR') return undefined;
  return { width: b.readUInt32BE(16), height: b.readUInt32BE(20) };
}

export const DASHBOARD_FILES = ['port-consumption.json', 'tunnel-health.json'];

/** Holds TCP connections to argv[1]:argv[2]; a line "open N" on stdin opens N more; each sends a line every 5 s. */
const HOLDER = `
const net = require('net');
const [host, port] = [process.argv[1], Number(process.argv[2])];
const socks = [];
setInterval(() => { for (const s of socks) if (!s.destroyed) s.write('p\\n'); }, 5000);
let buf = '';
process.stdin.setEncoding('utf8').on('data', (d) => {
  buf += d;
  let nl;
  while ((nl = buf.indexOf('\\n')) >= 0) {
    const m = /^open (\\d+)$/.exec(buf.slice(0, nl)); buf = buf.slice(nl + 1);
    if (m) for (let i = 0; i < Number(m[1]); i++) { const s = net.connect({ host, port }); s.on('error', () => {}); s.on('data', () => {}); socks.push(s); }
  }
});
process.stdin.on('end', () => process.exit(0));`;

/** A panel target's legend with `{{label}}` filled in from the series' labels. */
function legend(format: string | undefined, labels: Record<string, string>): string {
  if (format === undefined || format === '') return JSON.stringify(labels);
  return format.replace(/\{\{\s*(\w+)\s*\}\}/g, (_, k: string) => labels[k] ?? '').trim();
}

interface Target {
  refId: string;
  expr: string;
  legendFormat?: string;
}

async function panelSeries(api: PromGet, type: string, targets: Target[], from: number, to: number, step: number): Promise<Series[]> {
  const out: Series[] = [];
  const range = type === 'timeseries' || type === 'heatmap';
  for (const tg of targets) {
    const query = grafanaToPromQL(tg.expr);
    const r = range
      ? await api('/api/v1/query_range', { query, start: String(from), end: String(to), step: String(step) })
      : await api('/api/v1/query', { query, time: String(to) });
    if (r.status !== 'success') throw new Error(`${query}: ${r.errorType}: ${r.error}`);
    const d = r.data as { resultType: string; result: Array<{ metric: Record<string, string>; values?: Array<[number, string]>; value?: [number, string] }> };
    for (const s of d.result) {
      const pts = (s.values ?? (s.value ? [s.value] : [])).map(([t, v]) => [t, Number(v)] as [number, number]);
      out.push({ name: legend(tg.legendFormat, s.metric), points: pts });
    }
  }
  return out;
}

export interface Rendered {
  png: string;
  panels: number;
  /** Titles of the panels whose queries returned nothing. */
  empty: string[];
}

/** Run the lab for `seconds`, then render every dashboard into `outDir`. */
export async function renderDashboards(o: { seconds: number; outDir: string; log?: (m: string) => void }): Promise<Rendered[]> {
  const log = o.log ?? ((m: string) => process.stderr.write(`dashboards: ${m}\n`));
  const l: SmapLab = await buildSmapLab('dash', [{ ports: '', register: {} }, { ports: '', register: {} }]);
  const children: ChildProcess[] = [];
  try {
    const ini = readFileSync(l.prrConfig, 'utf8');
    writeFileSync(l.prrConfig, ini
      .replace('[metrics]\nenabled = false\n', `[metrics]\nenabled = true\nlisten = ${METRICS}\nper_subscriber = all\n`)
      .replace('[registration]\n', '[registration]\nlease = 60\n'));
    await l.restartPrr();
    for (const cpe of l.cpes) {
      const c = readFileSync(cpe.config, 'utf8');
      writeFileSync(cpe.config, c.replace('[metrics]\nenabled = false', `[metrics]\nenabled = true\nlisten = [${cpe.wan6}]:9151`));
      l.startAgent(cpe);
    }
    const status = async (cpe: Cpe): Promise<SmapStatus> => JSON.parse((await l.cli(cpe.host, 'smap', ['status', '--config', cpe.config, '--json'])).stdout) as SmapStatus;
    for (const cpe of l.cpes) {
      await l.agentRunning(cpe);
      await waitFor(`${cpe.host.short} registered`, async () => ((await status(cpe)).state === 'running' ? true : undefined), 30_000, 200);
    }
    log('PRR and two SMAPs running; starting Prometheus');

    const promConfig = join(l.dir, 'prometheus.yml');
    const [c1, c2] = l.cpes;
    writeFileSync(promConfig, testConfig({ prr: METRICS, smap: `[${c1.wan6}]:9151`, rules: join(GRAFANA, 'alerts.yml') })
      .replace(/( {6}- targets: \['\[[^\]]+\]:9151'\]\n {8}labels:\n {10}subscriber: cpe1\n)/, `$1      - targets: ['[${c2.wan6}]:9151']\n        labels:\n          subscriber: cpe2\n`));
    if (!readFileSync(promConfig, 'utf8').includes(c2.wan6)) throw new Error('grafana/prometheus.yml: cannot add the second SMAP target');
    const prom = l.prr.spawn('prometheus', prometheusArgs(promConfig, join(l.dir, 'tsdb'), PROM), { stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(prom);
    let promErr = '';
    prom.stderr?.setEncoding('utf8').on('data', (d: string) => (promErr += d));
    const api = curlApi(l.prr, `http://${PROM}`);
    await waitFor('prometheus scraping all three targets', async () => {
      if (prom.exitCode !== null) throw new Error(`prometheus exited ${prom.exitCode}: ${promErr.trim()}`);
      try {
        const r = await api('/api/v1/query', { query: 'sum(up)' });
        return (r.data as { result: Array<{ value: [number, string] }> }).result[0]?.value[1] === '3' ? true : undefined;
      } catch {
        return undefined;
      }
    }, 30_000, 250);

    // Traffic, bounded by `seconds`.
    const from = Math.floor(Date.now() / 1000);
    const holder = (cpe: Cpe, port: number): ChildProcess => {
      const c = cpe.lan.spawn(process.execPath, ['-e', HOLDER, INET, String(port)], { stdio: ['pipe', 'ignore', 'inherit'] });
      children.push(c);
      return c;
    };
    const h1 = holder(c1, 7000);
    const h2 = holder(c2, 7001);
    h1.stdin?.write('open 60\n');
    h2.stdin?.write('open 40\n');
    const end = Date.now() + o.seconds * 1000;
    const steps = [end - (o.seconds * 2000) / 3, end - (o.seconds * 1000) / 3];
    const sizes = [120, 180];
    log(`traffic for ${o.seconds} s`);
    for (let tick = 0; Date.now() < end; tick++) {
      if (steps.length > 0 && Date.now() >= steps[0]!) {
        steps.shift();
        h1.stdin?.write(`open ${sizes.shift()}\n`);
      }
      await c2.lan.exec('curl', ['-sS', '-o', '/dev/null', '--max-time', '2', `http://${INET}/`]);
      if (tick % 3 === 0) await l.inet.exec('curl', ['-sS', '-o', '/dev/null', '--max-time', '2', `http://${INET}/blast?port=30000&n=${5 + (tick % 7)}`]);
      await new Promise((r) => setTimeout(r, 2000));
    }
    const to = Math.floor(Date.now() / 1000);
    const step = Math.max(1, Math.round((to - from) / 200));

    const outs: Rendered[] = [];
    mkdirSync(o.outDir, { recursive: true });
    for (const file of DASHBOARD_FILES) {
      const dash = loadDashboard(file);
      const panels: PanelData[] = [];
      for (const p of dash.panels) {
        const full = p as typeof p & { gridPos: PanelData['gridPos']; fieldConfig?: { defaults?: { unit?: string } } };
        panels.push({ id: p.id, type: p.type, title: p.title.replace('$subscriber', 'all'), gridPos: full.gridPos, unit: full.fieldConfig?.defaults?.unit, series: await panelSeries(api, p.type, (p.targets ?? []) as Target[], from, to, step) });
      }
      const svg = renderDashboard({ title: dash.title, from, to, panels });
      const base = join(o.outDir, file.replace(/\.json$/, ''));
      const r = spawnSync('rsvg-convert', ['--format', 'png', '--output', `${base}.png`], { input: svg, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`rsvg-convert ${base}.png: ${(r.stderr || r.error?.message || '').trim()} (apt-get install librsvg2-bin)`);
      const empty = panels.filter((x) => x.series.length === 0).map((x) => x.title);
      outs.push({ png: `${base}.png`, panels: panels.length, empty });
      log(`${base}.png: ${panels.length} panels${empty.length > 0 ? `; no data (nothing of that kind happened): ${empty.join(', ')}` : ''}`);
    }
    return outs;
  } finally {
    for (const c of children) {
      c.stdin?.end();
      c.kill('SIGTERM');
    }
    l.destroy();
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const at = (k: string): string | undefined => (args.indexOf(k) >= 0 ? args[args.indexOf(k) + 1] : undefined);
  const seconds = Number(at('--seconds') ?? 180);
  if (!Number.isInteger(seconds) || seconds < 10 || seconds > 3600) throw new Error('--seconds: expected 10-3600');
  const outDir = at('--out') ?? join(REPO_ROOT, 'docs');
  const pngs = await renderDashboards({ seconds, outDir });
  for (const p of pngs) process.stdout.write(`${p.png}\n`);
}

if (process.argv[1]?.endsWith('dashboards.js')) {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`dashboards: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
