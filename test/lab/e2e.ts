/**
 * What the end-to-end lab tests on buildSmapLab (ICMP, fragments, SIP) share: the PRR's and the
 * agents' counters read through their CLIs, tcpdump captures, and the fixture scripts.
 */
import { join } from 'node:path';
import type { SmapStatus } from '../../smap/daemon.js';
import { waitFor, type Host } from './lab.js';
import { REPO_ROOT } from './paths.js';
import type { Cpe, SmapLab } from './smap-topology.js';

export const FIXTURES = join(REPO_ROOT, 'test/lab/fixtures');

/** `prr subscribers stats --json`: global counters, drops by reason, reassembly. */
export interface PrrStats {
  global: Record<string, number>;
  drops4: Record<string, number>;
  drops6: Record<string, number>;
  reassembly: { internet: Record<string, number>; tunnel: Record<string, number> };
}

export async function prrStats(l: SmapLab): Promise<PrrStats> {
  const r = await l.cli(l.prr, 'prr', ['subscribers', 'stats', '--config', l.prrConfig, '--json']);
  if (r.code !== 0) throw new Error(`prr subscribers stats: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout) as PrrStats;
}

/** Poll the PRR's counters until `side`.`key` has grown by `n` since `before`; return them. */
export function prrAfter(l: SmapLab, before: PrrStats, side: 'global' | 'drops4' | 'drops6', key: string, n: number): Promise<PrrStats> {
  return waitFor(`${n} more ${side} ${key}`, async () => {
    const s = await prrStats(l);
    return grew(before[side], s[side], key) >= n ? s : undefined;
  }, 15_000, 200);
}

/** One subscriber's counters (`prr subscribers show NAME --json`). */
export async function prrSubscriber(l: SmapLab, name: string): Promise<Record<string, number>> {
  const r = await l.cli(l.prr, 'prr', ['subscribers', 'show', name, '--config', l.prrConfig, '--json']);
  if (r.code !== 0) throw new Error(`prr subscribers show ${name}: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout) as Record<string, number>;
}

export async function smapStatus(l: SmapLab, cpe: Cpe): Promise<SmapStatus> {
  const r = await l.cli(cpe.host, 'smap', ['status', '--config', cpe.config, '--json']);
  if (r.code !== 0) throw new Error(`smap status in ${cpe.host.short}: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout) as SmapStatus;
}

/** A counter's growth between two snapshots (missing = 0). */
export const grew = (before: Record<string, number>, after: Record<string, number>, key: string): number => (after[key] ?? 0) - (before[key] ?? 0);

export interface Capture {
  /** The lines tcpdump printed so far (one per packet with -l). */
  lines(): string[];
  /** Stop tcpdump and return every line it printed. */
  stop(): Promise<string[]>;
  /** What tcpdump said on stderr (after stop: how many packets it captured). */
  log(): string;
}

/** tcpdump on `dev` of `h` with `filter`, one line per packet, ready once it says it is listening. */
export async function capture(h: Host, dev: string, filter: string, extra: string[] = []): Promise<Capture> {
  // --immediate-mode: otherwise packets wait in a ring block (up to a second) and a capture
  // stopped soon after them never prints them.
  const p = h.spawn('tcpdump', ['-i', dev, '-n', '-l', '--immediate-mode', ...extra, filter], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  p.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
  p.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
  await waitFor(`tcpdump on ${h.short} ${dev}`, () => {
    if (p.exitCode !== null) throw new Error(`tcpdump on ${h.short} exited ${p.exitCode}: ${err.trim()}`);
    return err.includes('listening on') ? true : undefined;
  });
  const lines = (): string[] => out.split('\n').filter((x) => x.trim() !== '');
  return {
    lines,
    log: () => err.trim().replaceAll('\n', ' | '),
    async stop() {
      // 'close', not 'exit': only then has everything tcpdump printed been read.
      const closed = new Promise((r) => (p.stdout?.closed === true ? r(null) : p.once('close', r)));
      p.kill('SIGINT');
      await closed;
      return lines();
    },
  };
}
