/**
 * A real Prometheus for the metrics tests: its config made from grafana/prometheus.yml (the
 * shipped scrape config, with the test's targets and 1-second intervals), and its HTTP API,
 * reached with fetch (same network namespace) or with curl run inside a lab namespace.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { Host } from '../lab/lab.js';
import { REPO_ROOT } from '../lab/paths.js';

export const GRAFANA = join(REPO_ROOT, 'grafana');

/** Why a Prometheus cannot run here, or undefined. */
export function noPrometheusReason(): string | undefined {
  const r = spawnSync('sh', ['-c', 'command -v prometheus && command -v promtool'], { encoding: 'utf8' });
  // In CI the package is installed by .ci/run: run (and fail) rather than skip if it is missing.
  if (process.env['CI'] !== undefined) return undefined;
  return r.status === 0 ? undefined : 'prometheus/promtool are not installed (apt-get install -y prometheus; listed in test/lab/debian-packages.txt)';
}

/** grafana/prometheus.yml with the test's targets, the rules at `rules`, and 1-second intervals. */
export function testConfig(opts: { prr: string; smap: string; rules: string }): string {
  const text = readFileSync(join(GRAFANA, 'prometheus.yml'), 'utf8');
  const out = text
    .replace(/scrape_interval: 15s/, 'scrape_interval: 1s')
    .replace(/evaluation_interval: 15s/, 'evaluation_interval: 1s')
    .replace(/- alerts\.yml/, `- ${opts.rules}`)
    .replace(`'127.0.0.1:9150'`, `'${opts.prr}'`)
    .replace(`'127.0.0.1:9151'`, `'${opts.smap}'`);
  for (const must of ['1s', opts.rules, opts.prr, opts.smap]) if (!out.includes(must)) throw new Error(`grafana/prometheus.yml: cannot put ${must} in`);
  return out;
}

/** Arguments of `prometheus` for a test run. */
export function prometheusArgs(config: string, dataDir: string, listen: string): string[] {
  return [`--config.file=${config}`, `--storage.tsdb.path=${dataDir}`, `--web.listen-address=${listen}`, '--log.level=warn'];
}

/** A TCP port free right now on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a !== null ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** The Prometheus HTTP API: GET a path with query parameters, the parsed JSON body. */
export type PromGet = (path: string, params?: Record<string, string>) => Promise<PromResponse>;

export interface PromResponse {
  status: 'success' | 'error';
  data?: unknown;
  errorType?: string;
  error?: string;
}

export function fetchApi(base: string): PromGet {
  return async (path, params = {}) => {
    const r = await fetch(`${base}${path}?${new URLSearchParams(params)}`);
    return (await r.json()) as PromResponse;
  };
}

/** The API through `curl` in a lab namespace (the Prometheus there is not reachable from here). */
export function curlApi(host: Host, base: string): PromGet {
  return async (path, params = {}) => {
    const args = ['-sS', '--max-time', '10', '--get', `${base}${path}`];
    for (const [k, v] of Object.entries(params)) args.push('--data-urlencode', `${k}=${v}`);
    const r = await host.exec('curl', args, { timeoutMs: 15_000 });
    if (r.code !== 0) throw new Error(`curl ${path}: exit ${r.code}: ${r.stderr.trim()}`);
    return JSON.parse(r.stdout) as PromResponse;
  };
}

export interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

/** An instant query; throws with Prometheus's error when it fails. */
export async function instant(get: PromGet, expr: string): Promise<Sample[]> {
  const r = await get('/api/v1/query', { query: expr });
  if (r.status !== 'success') throw new Error(`query ${expr}: ${r.errorType}: ${r.error}`);
  const d = r.data as { resultType: string; result: unknown };
  if (d.resultType === 'scalar') return [{ metric: {}, value: d.result as [number, string] }];
  return d.result as Sample[];
}

/** Grafana's built-in and dashboard variables replaced by what a dashboard would send. */
export function grafanaToPromQL(expr: string): string {
  return expr
    .replaceAll('$__rate_interval', '1m')
    .replaceAll('$__interval', '15s')
    .replaceAll('$__range', '1h')
    .replaceAll('$instance', '.*')
    .replaceAll('$subscriber', '.*');
}

/** Every query of a dashboard: panel targets and `label_values(metric, label)` variables. */
export function dashboardQueries(dash: DashboardJson): Array<{ where: string; expr: string }> {
  const out: Array<{ where: string; expr: string }> = [];
  for (const p of dash.panels) for (const tg of p.targets ?? []) out.push({ where: `panel ${p.id} "${p.title}" ${tg.refId}`, expr: tg.expr });
  for (const v of dash.templating?.list ?? []) {
    const q = typeof v.query === 'string' ? v.query : v.query?.query;
    if (q !== undefined) out.push({ where: `variable ${v.name}`, expr: q });
  }
  return out;
}

export interface DashboardJson {
  uid: string;
  title: string;
  panels: Array<{ id: number; title: string; type: string; datasource?: { type: string; uid: string }; targets?: Array<{ refId: string; expr: string; datasource?: { type: string; uid: string } }> }>;
  templating?: { list: Array<{ name: string; query?: string | { query: string }; datasource?: { uid: string } }> };
}

export function loadDashboard(name: string): DashboardJson {
  return JSON.parse(readFileSync(join(GRAFANA, 'dashboards', name), 'utf8')) as DashboardJson;
}

/** `label_values(metric, label)` (a Grafana function) as the API call Grafana makes for it, else a plain query. */
export async function evaluate(get: PromGet, expr: string): Promise<Sample[] | string[]> {
  const m = /^label_values\(\s*([^,]+?)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$/.exec(expr);
  if (m !== null) {
    const r = await get(`/api/v1/label/${m[2]}/values`, { 'match[]': grafanaToPromQL(m[1]!) });
    if (r.status !== 'success') throw new Error(`${expr}: ${r.errorType}: ${r.error}`);
    return r.data as string[];
  }
  return instant(get, grafanaToPromQL(expr));
}
