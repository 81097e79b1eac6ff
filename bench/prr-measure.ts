/**
 * Measurements for `npm run bench -- prr`: the TUN generator as a child process, the rate at
 * no drop as a search that several contenders advance in lockstep (one trial each per round,
 * so the noise of a shared host falls on all of them alike), and an iperf3 UDP trial.
 */
import type { ChildProcess } from 'node:child_process';
import type { Host } from '../test/lab/lab.js';
import { distPath } from '../test/lab/paths.js';
import { cpuSeconds, mainThreadSeconds, sinkCount } from './prr-lab.js';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface Trial {
  offered: number; // pps asked for
  achieved: number; // pps the source really sent
  received: number; // pps the sink counted
  loss: number; // percent of sent
  ok: boolean;
  /** Why not ok: 'loss' (the hop dropped), 'source' (the generator could not offer the rate). */
  why?: 'loss' | 'source';
}

/** bench/prr-gen.ts in a namespace, writing into its TUN `gen0`. */
export class Gen {
  private readonly waiting: Array<(line: string) => void> = [];
  private buf = '';
  private constructor(private readonly child: ChildProcess) {
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      this.buf += d;
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        this.waiting.shift()?.(line);
      }
    });
  }

  static async start(h: Host, packetFile: string): Promise<Gen> {
    const child = h.spawn(process.execPath, [distPath('bench/prr-gen.js'), '--tun', 'gen0', '--packets', packetFile], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-2000)));
    const g = new Gen(child);
    const ready = await Promise.race([g.line(), sleep(20_000).then(() => 'timeout')]);
    if (ready !== 'ready') throw new Error(`generator in ${h.short} did not start: ${ready} ${stderr.trim()}`);
    h.run('ip', 'link', 'set', 'dev', 'gen0', 'up');
    return g;
  }

  private line(): Promise<string> {
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  async run(pps: number, seconds: number): Promise<{ sent: number; seconds: number; pps: number }> {
    const reply = this.line();
    this.child.stdin?.write(JSON.stringify({ pps, seconds }) + '\n');
    return JSON.parse(await reply) as { sent: number; seconds: number; pps: number };
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  close(): void {
    this.child.stdin?.end();
  }
}

/** One generator trial through a hop: offered vs counted at the sink. */
export async function genTrial(gen: Gen, sink: Host, pps: number, seconds: number, lossPercent: number): Promise<Trial> {
  const before = sinkCount(sink);
  const g = await gen.run(pps, seconds);
  await sleep(300); // let queues drain
  const got = sinkCount(sink) - before;
  const loss = g.sent > 0 ? Math.max(0, ((g.sent - got) / g.sent) * 100) : 100;
  const sourceOk = g.pps >= 0.95 * pps;
  const ok = loss <= lossPercent && sourceOk;
  return { offered: pps, achieved: g.pps, received: Math.round(got / g.seconds), loss: +loss.toFixed(3), ok, ...(ok ? {} : { why: loss > lossPercent ? 'loss' : 'source' }) };
}

/**
 * CPU time per packet the sink counted, in µs, of the hop under test (`pid`) and of the
 * generator, at a fixed offered rate below everyone's limit: a figure the other users of a
 * shared host disturb much less than a rate at no drop. (USER_HZ ticks: +-10 ms per reading.)
 */
export async function cpuPerPacket(pid: number | undefined, gen: Gen, sink: Host, pps: number, seconds: number): Promise<{ us: number; genUs: number; loss: number; mainUs: number }> {
  const c0 = cpuSeconds(pid);
  const m0 = mainThreadSeconds(pid);
  const g0 = cpuSeconds(gen.pid);
  const n0 = sinkCount(sink);
  const g = await gen.run(pps, seconds);
  await sleep(300);
  const n = sinkCount(sink) - n0;
  const per = (sec: number): number => +((sec / Math.max(1, n)) * 1e6).toFixed(2);
  return { us: per(cpuSeconds(pid) - c0), mainUs: per(mainThreadSeconds(pid) - m0), genUs: per(cpuSeconds(gen.pid) - g0), loss: g.sent > 0 ? +(((g.sent - n) / g.sent) * 100).toFixed(3) : 100 };
}

interface IperfUdp {
  end?: { sum?: { lost_percent?: number; packets?: number; lost_packets?: number; seconds?: number } };
}

/** One iperf3 UDP trial (as bench/lib.ts's udpRateNoDrop trial, but one step of a lockstep search). */
export async function iperfUdpTrial(client: Host, server: string, pps: number, seconds: number, lossPercent: number, payload = 64): Promise<Trial> {
  const bps = Math.round(pps * payload * 8);
  const r = await client.exec('iperf3', ['-c', server, '-u', '-l', String(payload), '-b', String(bps), '-t', String(seconds), '-J'], { timeoutMs: (seconds + 15) * 1000 });
  let sum: NonNullable<IperfUdp['end']>['sum'];
  try {
    sum = (JSON.parse(r.stdout) as IperfUdp).end?.sum;
  } catch {
    sum = undefined;
  }
  if (sum?.packets === undefined) return { offered: pps, achieved: 0, received: 0, loss: 100, ok: false, why: 'loss' };
  const secs = sum.seconds ?? seconds;
  const loss = sum.lost_percent ?? 100;
  const achieved = Math.round(sum.packets / secs);
  const sourceOk = achieved >= 0.9 * pps;
  const ok = loss <= lossPercent && sourceOk;
  return { offered: pps, achieved, received: Math.round((sum.packets - (sum.lost_packets ?? 0)) / secs), loss, ok, ...(ok ? {} : { why: loss > lossPercent ? 'loss' : 'source' }) };
}

/**
 * Rate at no drop: from `start`, double while trials pass (up to `cap`), halve while they fail,
 * then bisect `steps` times between the best pass and the first fail.
 */
export class NoDropSearch {
  readonly trials: Trial[] = [];
  private lo = 0;
  private hi = 0;
  private rate: number;
  private bisected = 0;
  constructor(
    start: number,
    private readonly steps = 5,
    private readonly cap = 3_200_000,
  ) {
    this.rate = Math.round(start);
  }

  /** The next rate to try, or undefined when done. */
  next(): number | undefined {
    if (this.hi > 0 && this.lo > 0 && this.bisected >= this.steps) return undefined;
    if (this.hi > 0 && this.lo === 0 && this.rate < 1000) return undefined;
    if (this.hi === 0 && this.rate > this.cap) return undefined;
    return this.rate;
  }

  record(t: Trial): void {
    this.trials.push(t);
    if (this.lo > 0 && this.hi > 0) this.bisected++;
    if (t.ok) this.lo = Math.max(this.lo, t.offered);
    else this.hi = this.hi === 0 ? t.offered : Math.min(this.hi, t.offered);
    if (this.hi === 0) this.rate = t.offered * 2; // still climbing
    else if (this.lo === 0) this.rate = Math.round(t.offered / 2); // first trial failed: come down
    else {
      this.rate = Math.round((this.lo + this.hi) / 2);
      if (this.hi - this.lo <= 1000) this.bisected = this.steps;
    }
  }

  /** The best rate that passed (null if none). */
  get result(): number | null {
    return this.lo > 0 ? this.lo : null;
  }

  /** True when every failure was the source not keeping up: the figure is a lower bound. */
  get sourceLimited(): boolean {
    const fails = this.trials.filter((t) => !t.ok);
    return fails.length > 0 && fails.every((t) => t.why === 'source');
  }
}

/** Advance several searches one trial each per round until all are done. */
export async function lockstep<K extends string>(searches: Record<K, NoDropSearch>, trial: (k: K, pps: number) => Promise<Trial>): Promise<void> {
  const keys = Object.keys(searches) as K[];
  for (;;) {
    let any = false;
    for (const k of keys) {
      const pps = searches[k].next();
      if (pps === undefined) continue;
      any = true;
      searches[k].record(await trial(k, pps));
    }
    if (!any) return;
  }
}

export function median(xs: Array<number | null>): number | null {
  const v = xs.filter((x): x is number => x !== null && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = v.length >> 1;
  return v.length % 2 === 1 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}
