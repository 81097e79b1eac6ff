/**
 * Helpers of the metrics tests: read samples out of a text exposition, and run the real
 * `promtool` (Debian package prometheus) on text.
 */
import { spawnSync } from 'node:child_process';

/** Labels as `{a="x",b="y"}` in the order given, or '' for none. */
function labelText(labels: Record<string, string>): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

/** Every sample of the exposition: `name{labels}` exactly as printed -> value. */
export function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    out.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return out;
}

/** The value of one sample; labels must be given in the order prom-client prints them (labelNames order). */
export function value(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  return samples(text).get(name + labelText(labels));
}

/** Label values of `label` over the samples of metric `name`. */
export function labelValues(text: string, name: string, label: string): string[] {
  const re = new RegExp(`${label}="([^"]*)"`);
  const out: string[] = [];
  for (const key of samples(text).keys()) {
    if (!key.startsWith(name + '{') && key !== name) continue;
    const m = re.exec(key);
    if (m?.[1] !== undefined) out.push(m[1]);
  }
  return out;
}

/** Where promtool is, or undefined. */
export function promtoolPath(): string | undefined {
  const r = spawnSync('sh', ['-c', 'command -v promtool'], { encoding: 'utf8' });
  // In CI the package is installed by .ci/run: run (and fail) rather than skip if it is missing.
  if (process.env['CI'] !== undefined) return r.stdout.trim() || 'promtool';
  return r.status === 0 ? r.stdout.trim() : undefined;
}

export const NO_PROMTOOL = 'promtool is not installed (apt-get install -y prometheus; test/lab/debian-packages.txt)';

/** `promtool check metrics` on `text`: its exit code and output (lint problems are printed). */
export function promtoolCheckMetrics(text: string): { code: number | null; output: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, output: `${r.stdout}${r.stderr}`.trim() };
}
