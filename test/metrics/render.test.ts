/**
 * The dashboard pictures (test/metrics/render-svg.ts, test/metrics/dashboards.ts): every panel
 * type draws, rsvg-convert turns the SVG into a valid PNG; and a short run of the real thing (the
 * lab, a real Prometheus, the dashboards' own queries) produces both PNGs with data in every
 * port-consumption panel.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { labUnavailableReason } from '../lab/lab.js';
import { distMissingReason } from '../lab/prr-topology.js';
import { formatValue, renderDashboard, type PanelData } from './render-svg.js';
import { DASHBOARD_FILES, noRsvgReason, pngSize, renderDashboards } from './dashboards.js';
import { noPrometheusReason } from './prometheus.js';

const isPng = (b: Buffer): boolean => pngSize(b) !== undefined && b.toString('latin1', b.length - 8, b.length - 4) === 'IEND';

t.test('formatValue: units as Grafana prints them', async (t) => {
  t.equal(formatValue(0.724, 'percentunit'), '72%');
  t.equal(formatValue(0.05, 'percentunit'), '5.0%');
  t.equal(formatValue(35100, 'bps'), '35.1 kb/s');
  t.equal(formatValue(2.5e6, 'short'), '2.5 M');
  t.equal(formatValue(40, 'short'), '40');
  t.equal(formatValue(NaN, 'short'), '-');
});

t.test('every panel type draws; rsvg-convert makes a PNG of the stated size', { skip: noRsvgReason() }, async (t) => {
  const series = (name: string, f: (i: number) => number) => ({ name, points: Array.from({ length: 20 }, (_, i) => [1000 + i * 10, f(i)] as [number, number]) });
  const panels: PanelData[] = [
    { id: 1, type: 'stat', title: 'Bindings', gridPos: { x: 0, y: 0, w: 6, h: 5 }, unit: undefined, series: [series('prr', () => 2)] },
    { id: 2, type: 'bargauge', title: 'Per address', gridPos: { x: 6, y: 0, w: 6, h: 5 }, unit: 'percentunit', series: [series('192.0.2.100', () => 0.4)] },
    { id: 3, type: 'table', title: 'Nearest <exhaustion> & co', gridPos: { x: 12, y: 0, w: 12, h: 5 }, unit: 'percentunit', series: [series('cpe1', () => 0.7)] },
    { id: 4, type: 'timeseries', title: 'Ports', gridPos: { x: 0, y: 5, w: 12, h: 8 }, unit: 'short', series: [series('cpe1 observed', (i) => i * 10), series('cpe1 reported', (i) => i * 9)] },
    { id: 5, type: 'heatmap', title: 'Utilisation', gridPos: { x: 12, y: 5, w: 12, h: 8 }, unit: 'percentunit', series: [series('a', (i) => i / 20), series('b', () => 0.1)] },
    { id: 6, type: 'timeseries', title: 'Empty', gridPos: { x: 0, y: 13, w: 24, h: 4 }, unit: 'short', series: [] },
  ];
  const svg = renderDashboard({ title: 'test', from: 1000, to: 1190, panels });
  t.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" width="1600" height="560"/);
  t.match(svg, 'Nearest &lt;exhaustion&gt; &amp; co', 'titles escaped');
  t.match(svg, /No data/, 'an empty panel says so');
  t.equal((svg.match(/<path /g) ?? []).length, 2, 'one line per series');
  const dir = mkdtempSync(join(tmpdir(), 'aplus-render-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'd.svg'), svg);
  const r = spawnSync('rsvg-convert', ['--format', 'png', '--output', join(dir, 'd.png'), join(dir, 'd.svg')], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  const png = readFileSync(join(dir, 'd.png'));
  t.ok(isPng(png), 'a PNG from signature to IEND');
  t.same(pngSize(png), { width: 1600, height: 560 });
  t.equal(pngSize(Buffer.from('not a png at all, not at all')), undefined);
});

t.test('npm run dashboards, short: both PNGs from the lab through a real Prometheus', { skip: labUnavailableReason() ?? distMissingReason() ?? noPrometheusReason() ?? noRsvgReason(), timeout: 240_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'aplus-dashboards-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const out = await renderDashboards({ seconds: 12, outDir: dir, log: (m) => t.comment(m) });
  t.same(out.map((o) => o.png), DASHBOARD_FILES.map((f) => join(dir, f.replace('.json', '.png'))));
  for (const o of out) {
    const png = readFileSync(o.png);
    t.ok(isPng(png), `${o.png}: a PNG`);
    t.equal(pngSize(png)?.width, 1600, `${o.png}: 1600 px wide`);
    t.ok(o.panels >= 15, `${o.png}: ${o.panels} panels drawn`);
  }
  t.same(out[0]!.empty, [], 'port consumption: every panel found data (ports active, reports, pools, CPEs)');
});
