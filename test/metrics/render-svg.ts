/**
 * Draw a dashboard as Grafana lays it out (24 columns, gridPos rows of 30 px) into one SVG, from
 * the data its panel queries returned: time series as lines, heatmaps as bucketed cells, stats as
 * a big number, bar gauges as bars, tables as rows. Pure: data in, SVG text out. The picture in
 * the README is this SVG turned into PNG by rsvg-convert (librsvg2-bin), see dashboards.ts.
 */

export interface Series {
  name: string;
  /** [unix seconds, value], in time order. */
  points: Array<[number, number]>;
}

export interface PanelData {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  unit: string | undefined;
  series: Series[];
}

export interface DashboardData {
  title: string;
  /** The time range drawn (unix seconds). */
  from: number;
  to: number;
  panels: PanelData[];
}

const WIDTH = 1600;
const COL = WIDTH / 24;
const ROW = 30;
const HEADER = 44;
const GAP = 6;
const BG = '#111217';
const PANEL = '#181b1f';
const BORDER = '#2c3235';
const TEXT = '#ccccdc';
const DIM = '#8e8e9f';
const PALETTE = ['#73BF69', '#F2CC0C', '#8AB8FF', '#FF780A', '#F2495C', '#5794F2', '#B877D9', '#FADE2A', '#96D98D', '#FFA6B0'];

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** A value as Grafana would print it for `unit`. */
export function formatValue(v: number, unit: string | undefined): string {
  if (!Number.isFinite(v)) return '-';
  if (unit === 'percentunit') return `${(v * 100).toFixed(v < 0.1 ? 1 : 0)}%`;
  const si = (x: number, suffix: string): string => {
    const a = Math.abs(x);
    if (a >= 1e9) return `${(x / 1e9).toFixed(1)} G${suffix}`;
    if (a >= 1e6) return `${(x / 1e6).toFixed(1)} M${suffix}`;
    if (a >= 1e3) return `${(x / 1e3).toFixed(1)} k${suffix}`;
    return `${Number.isInteger(x) ? x : x.toFixed(a < 10 ? 2 : 1)}${suffix ? ` ${suffix}` : ''}`;
  };
  if (unit === 'bps') return si(v, 'b/s');
  if (unit === 'pps') return si(v, 'p/s');
  if (unit === 'bytes') return si(v, 'B');
  return si(v, '');
}

function text(x: number, y: number, s: string, o: { size?: number; fill?: string; anchor?: string; weight?: string } = {}): string {
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" font-family="DejaVu Sans, sans-serif" font-size="${o.size ?? 12}" fill="${o.fill ?? TEXT}"${o.anchor ? ` text-anchor="${o.anchor}"` : ''}${o.weight ? ` font-weight="${o.weight}"` : ''}>${esc(s)}</text>`;
}

function clip(s: string, px: number, size = 12): string {
  const max = Math.max(3, Math.floor(px / (size * 0.6)));
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

function timeseries(p: PanelData, b: Box, d: DashboardData): string {
  const out: string[] = [];
  const legendRows = Math.min(3, Math.ceil(p.series.length / 3));
  const plot: Box = { x: b.x + 64, y: b.y + 8, w: b.w - 76, h: b.h - 30 - legendRows * 16 };
  const vals = p.series.flatMap((s) => s.points.map((q) => q[1])).filter(Number.isFinite);
  const lo = Math.min(0, ...vals);
  const tick = niceStep((Math.max(...vals, lo + (p.unit === 'percentunit' ? 0.01 : 1)) - lo) / 4);
  const hi = lo + 4 * tick * Math.ceil((Math.max(...vals, lo + tick) - lo) / (4 * tick));
  const sx = (t: number): number => plot.x + ((t - d.from) / Math.max(1, d.to - d.from)) * plot.w;
  const sy = (v: number): number => plot.y + plot.h - ((v - lo) / (hi - lo)) * plot.h;
  for (let i = 0; i <= 4; i++) {
    const v = lo + ((hi - lo) * i) / 4;
    const y = sy(v);
    out.push(`<line x1="${plot.x}" y1="${y.toFixed(1)}" x2="${plot.x + plot.w}" y2="${y.toFixed(1)}" stroke="${BORDER}" stroke-width="1"/>`);
    out.push(text(plot.x - 6, y + 4, formatValue(v, p.unit), { size: 10, fill: DIM, anchor: 'end' }));
  }
  for (let i = 0; i <= 4; i++) {
    const t = d.from + ((d.to - d.from) * i) / 4;
    out.push(text(sx(t), plot.y + plot.h + 14, new Date(t * 1000).toISOString().slice(11, 19), { size: 10, fill: DIM, anchor: i === 0 ? 'start' : i === 4 ? 'end' : 'middle' }));
  }
  p.series.forEach((s, i) => {
    const pts = s.points.filter((q) => Number.isFinite(q[1]));
    if (pts.length === 0) return;
    const path = pts.map((q, j) => `${j === 0 ? 'M' : 'L'}${sx(q[0]).toFixed(1)},${sy(q[1]).toFixed(1)}`).join(' ');
    out.push(`<path d="${path}" fill="none" stroke="${PALETTE[i % PALETTE.length]}" stroke-width="1.6"/>`);
  });
  const per = Math.max(1, Math.floor(b.w / 260));
  p.series.slice(0, per * legendRows).forEach((s, i) => {
    const x = b.x + 10 + (i % per) * (b.w / per);
    const y = plot.y + plot.h + 30 + Math.floor(i / per) * 16;
    out.push(`<rect x="${x}" y="${y - 8}" width="12" height="3" fill="${PALETTE[i % PALETTE.length]}"/>`);
    out.push(text(x + 16, y, clip(s.name, b.w / per - 24, 11), { size: 11 }));
  });
  return out.join('');
}

function heatmap(p: PanelData, b: Box, d: DashboardData): string {
  const out: string[] = [];
  const plot: Box = { x: b.x + 48, y: b.y + 8, w: b.w - 60, h: b.h - 30 };
  const steps = new Map<number, number[]>();
  for (const s of p.series) for (const [t, v] of s.points) if (Number.isFinite(v)) (steps.get(t) ?? steps.set(t, []).get(t)!).push(v);
  const times = [...steps.keys()].sort((a, b2) => a - b2);
  const buckets = 10;
  const cw = plot.w / Math.max(1, times.length);
  const ch = plot.h / buckets;
  let most = 1;
  for (const vs of steps.values()) {
    const c = new Array<number>(buckets).fill(0);
    for (const v of vs) c[Math.min(buckets - 1, Math.max(0, Math.floor(v * buckets)))]!++;
    most = Math.max(most, ...c);
  }
  times.forEach((t, i) => {
    const c = new Array<number>(buckets).fill(0);
    for (const v of steps.get(t)!) c[Math.min(buckets - 1, Math.max(0, Math.floor(v * buckets)))]!++;
    c.forEach((n, k) => {
      if (n === 0) return;
      const a = 0.25 + 0.75 * (n / most);
      out.push(`<rect x="${(plot.x + i * cw).toFixed(1)}" y="${(plot.y + plot.h - (k + 1) * ch).toFixed(1)}" width="${(cw + 0.5).toFixed(1)}" height="${(ch - 1).toFixed(1)}" fill="#FF780A" fill-opacity="${a.toFixed(2)}"/>`);
    });
  });
  for (let k = 0; k <= buckets; k += 5) out.push(text(plot.x - 6, plot.y + plot.h - k * ch + 4, `${k * 10}%`, { size: 10, fill: DIM, anchor: 'end' }));
  out.push(text(plot.x, plot.y + plot.h + 14, new Date(d.from * 1000).toISOString().slice(11, 19), { size: 10, fill: DIM }));
  out.push(text(plot.x + plot.w, plot.y + plot.h + 14, new Date(d.to * 1000).toISOString().slice(11, 19), { size: 10, fill: DIM, anchor: 'end' }));
  return out.join('');
}

/** 1, 2, 2.5 or 5 times a power of ten, at least x. */
function niceStep(x: number): number {
  const p = Math.pow(10, Math.floor(Math.log10(Math.max(x, 1e-9))));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= x) return m * p;
  return 10 * p;
}

const last = (s: Series): number => s.points[s.points.length - 1]?.[1] ?? NaN;

function stat(p: PanelData, b: Box): string {
  const out: string[] = [];
  const shown = p.series.slice(0, 3);
  shown.forEach((s, i) => {
    const cx = b.x + (b.w * (i + 0.5)) / shown.length;
    out.push(text(cx, b.y + b.h / 2 + 8, formatValue(last(s), p.unit), { size: 30, fill: PALETTE[0], anchor: 'middle', weight: 'bold' }));
    out.push(text(cx, b.y + b.h / 2 + 30, clip(s.name, b.w / shown.length - 8, 11), { size: 11, fill: DIM, anchor: 'middle' }));
  });
  if (shown.length === 0) out.push(text(b.x + b.w / 2, b.y + b.h / 2, 'No data', { size: 14, fill: DIM, anchor: 'middle' }));
  return out.join('');
}

function bars(p: PanelData, b: Box): string {
  const out: string[] = [];
  const rows = p.series.slice().sort((a, c) => last(c) - last(a)).slice(0, Math.max(1, Math.floor((b.h - 8) / 22)));
  const max = p.unit === 'percentunit' ? 1 : Math.max(1, ...rows.map(last));
  rows.forEach((s, i) => {
    const y = b.y + 8 + i * 22;
    const lw = Math.min(180, b.w * 0.35);
    out.push(text(b.x + 8, y + 14, clip(s.name, lw - 8, 11), { size: 11 }));
    const bw = (b.w - lw - 90) * Math.min(1, Math.max(0, last(s) / max));
    out.push(`<rect x="${b.x + lw}" y="${y + 3}" width="${(b.w - lw - 90).toFixed(1)}" height="14" fill="${BORDER}"/>`);
    out.push(`<rect x="${b.x + lw}" y="${y + 3}" width="${bw.toFixed(1)}" height="14" fill="${PALETTE[0]}"/>`);
    out.push(text(b.x + b.w - 8, y + 14, formatValue(last(s), p.unit), { size: 11, anchor: 'end' }));
  });
  return out.join('');
}

function table(p: PanelData, b: Box): string {
  const out: string[] = [];
  out.push(text(b.x + 8, b.y + 14, 'series', { size: 11, fill: DIM, weight: 'bold' }));
  out.push(text(b.x + b.w - 8, b.y + 14, 'value', { size: 11, fill: DIM, anchor: 'end', weight: 'bold' }));
  const rows = p.series.slice(0, Math.max(1, Math.floor((b.h - 24) / 18)));
  rows.forEach((s, i) => {
    const y = b.y + 34 + i * 18;
    out.push(`<line x1="${b.x + 4}" y1="${y - 13}" x2="${b.x + b.w - 4}" y2="${y - 13}" stroke="${BORDER}"/>`);
    out.push(text(b.x + 8, y, clip(s.name, b.w - 100, 11), { size: 11 }));
    out.push(text(b.x + b.w - 8, y, formatValue(last(s), p.unit), { size: 11, anchor: 'end' }));
  });
  return out.join('');
}

/** The whole dashboard as one SVG document. */
export function renderDashboard(d: DashboardData): string {
  const rows = Math.max(...d.panels.map((p) => p.gridPos.y + p.gridPos.h));
  const height = HEADER + rows * ROW + GAP;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}">`,
    `<rect width="${WIDTH}" height="${height}" fill="${BG}"/>`,
    text(12, 28, d.title, { size: 18, weight: 'bold' }),
    text(WIDTH - 12, 28, `${new Date(d.from * 1000).toISOString().slice(0, 19)}Z to ${new Date(d.to * 1000).toISOString().slice(11, 19)}Z, rendered from the panel queries`, { size: 12, fill: DIM, anchor: 'end' }),
  ];
  for (const p of d.panels) {
    const g = p.gridPos;
    const box: Box = { x: g.x * COL + GAP, y: HEADER + g.y * ROW + GAP, w: g.w * COL - GAP, h: g.h * ROW - GAP };
    out.push(`<rect x="${box.x}" y="${box.y}" width="${box.w}" height="${box.h}" rx="3" fill="${PANEL}" stroke="${BORDER}"/>`);
    out.push(text(box.x + 8, box.y + 18, clip(p.title, box.w - 16, 13), { size: 13, weight: 'bold' }));
    const inner: Box = { x: box.x, y: box.y + 24, w: box.w, h: box.h - 24 };
    if (p.series.length === 0) out.push(text(inner.x + inner.w / 2, inner.y + inner.h / 2, 'No data', { size: 14, fill: DIM, anchor: 'middle' }));
    else if (p.type === 'timeseries') out.push(timeseries(p, inner, d));
    else if (p.type === 'heatmap') out.push(heatmap(p, inner, d));
    else if (p.type === 'stat') out.push(stat(p, inner));
    else if (p.type === 'bargauge') out.push(bars(p, inner));
    else out.push(table(p, inner));
  }
  out.push('</svg>');
  return out.join('\n');
}
