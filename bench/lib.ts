/**
 * Benchmark helpers: measurements with real tools (iperf3) inside lab namespaces, and the
 * report every benchmark prints: one JSON document, then a table of figures and ratios.
 * Benchmarks are never part of `npm test`: these machines are shared and noisy.
 */
import type { Host } from '../test/lab/lab.js';
import { waitFor } from '../test/lab/lab.js';

export interface Row {
  metric: string;
  unit: string;
  /** Figures by contender, e.g. { aplus: 1.2e9, kernel: 3.4e9 }. */
  values: Record<string, number | null>;
}

export interface Report {
  bench: string;
  when: string;
  host: { cpus: number; kernel: string };
  notes: string[];
  rows: Row[];
}

function fmt(v: number | null, unit: string): string {
  if (v === null || !Number.isFinite(v)) return 'n/a';
  if (unit === 'bit/s') return `${(v / 1e9).toFixed(3)} Gbit/s`;
  if (unit === 'pps') return `${(v / 1e3).toFixed(1)} kpps`;
  if (unit === 'ms') return `${v.toFixed(3)} ms`;
  return `${v.toFixed(2)} ${unit}`;
}

/** Print the report: JSON first (for machines), then a table with ratios to `base`. */
export function printReport(r: Report, base: string): void {
  process.stdout.write(JSON.stringify(r, null, 2) + '\n\n');
  const contenders = [...new Set(r.rows.flatMap((row) => Object.keys(row.values)))];
  const head = ['metric', ...contenders, ...contenders.filter((c) => c !== base).map((c) => `${c}/${base}`)];
  const lines = r.rows.map((row) => {
    const b = row.values[base] ?? null;
    return [
      row.metric,
      ...contenders.map((c) => fmt(row.values[c] ?? null, row.unit)),
      ...contenders
        .filter((c) => c !== base)
        .map((c) => {
          const v = row.values[c] ?? null;
          return v !== null && b !== null && b > 0 ? (v / b).toFixed(3) : 'n/a';
        }),
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const out = [head, ...lines].map((l) => l.map((c, i) => c.padEnd(widths[i]!)).join('  '));
  out.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  process.stdout.write(out.join('\n') + '\n');
  for (const n of r.notes) process.stdout.write(`note: ${n}\n`);
}

/** Start `iperf3 -s` in a host and wait until it listens. */
export async function iperfServer(h: Host, port = 5201): Promise<void> {
  h.spawn('iperf3', ['-s', '-p', String(port)], { stdio: 'ignore' });
  await waitFor(`iperf3 server in ${h.short}`, () => (h.run('ss', '-ltnH', `sport = :${port}`).trim() !== '' ? true : undefined));
}

interface IperfJson {
  end?: { sum_received?: { bits_per_second: number }; sum?: { lost_percent?: number; packets?: number; lost_packets?: number; seconds?: number } };
  error?: string;
}

async function iperf(h: Host, args: string[], seconds: number): Promise<IperfJson> {
  const r = await h.exec('iperf3', [...args, '-J'], { timeoutMs: (seconds + 15) * 1000 });
  try {
    return JSON.parse(r.stdout) as IperfJson;
  } catch {
    return { error: `iperf3 exited ${r.code}: ${r.stderr.trim() || r.stdout.slice(0, 200)}` };
  }
}

/** TCP throughput (bit/s received) from client host to server address, one stream; `reverse`: server to client (-R). */
export async function tcpThroughput(client: Host, server: string, seconds = 5, port = 5201, reverse = false): Promise<number | null> {
  const j = await iperf(client, ['-c', server, '-p', String(port), '-t', String(seconds), '-O', '1', ...(reverse ? ['-R'] : [])], seconds);
  return j.end?.sum_received?.bits_per_second ?? null;
}

export interface RateResult {
  /** Highest offered rate with loss at or under the threshold. */
  pps: number | null;
  /** Loss threshold that counts as "no drop". */
  lossPercent: number;
  trials: Array<{ offered: number; received: number; loss: number }>;
}

/**
 * Small-packet rate at no drop: UDP datagrams of `payload` bytes offered by iperf3 at a rate,
 * raised until loss exceeds `lossPercent` or the generator cannot keep up, then bisected.
 */
export async function udpRateNoDrop(client: Host, server: string, opts: { payload?: number; seconds?: number; lossPercent?: number; port?: number } = {}): Promise<RateResult> {
  const payload = opts.payload ?? 64;
  const seconds = opts.seconds ?? 2;
  const lossPercent = opts.lossPercent ?? 0.1;
  const trials: RateResult['trials'] = [];
  const trial = async (pps: number): Promise<boolean> => {
    const bps = Math.round(pps * payload * 8);
    const j = await iperf(client, ['-c', server, '-p', String(opts.port ?? 5201), '-u', '-l', String(payload), '-b', String(bps), '-t', String(seconds)], seconds);
    const sum = j.end?.sum;
    if (sum === undefined || sum.packets === undefined) return false;
    const received = (sum.packets - (sum.lost_packets ?? 0)) / (sum.seconds ?? seconds);
    const loss = sum.lost_percent ?? 100;
    trials.push({ offered: pps, received: Math.round(received), loss });
    // "Achieved" also requires the generator to have really offered the rate.
    return loss <= lossPercent && sum.packets / (sum.seconds ?? seconds) >= 0.9 * pps;
  };
  let lo = 0;
  let hi = 0;
  for (let pps = 25_000; pps <= 3_200_000; pps *= 2) {
    if (await trial(pps)) lo = pps;
    else {
      hi = pps;
      break;
    }
  }
  if (hi === 0) return { pps: lo || null, lossPercent, trials };
  for (let i = 0; i < 5; i++) {
    const mid = Math.round((lo + hi) / 2);
    if (await trial(mid)) lo = mid;
    else hi = mid;
  }
  return { pps: lo || null, lossPercent, trials };
}

/** Median ping RTT in ms over `count` echoes. */
export async function pingRtt(client: Host, dst: string, count = 20): Promise<number | null> {
  const r = await client.exec('ping', ['-c', String(count), '-i', '0.05', '-q', dst], { timeoutMs: 30_000 });
  const m = /= [\d.]+\/([\d.]+)\//.exec(r.stdout);
  return m ? Number(m[1]) : null;
}
