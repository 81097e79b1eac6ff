/**
 * The small-packet source of `npm run bench -- e2e`: bench/gen/udpgen.c (sendmmsg, 64 datagrams
 * per call), compiled at bench time with Debian's gcc (test/lab/debian-packages.txt) into the
 * lab's temp dir, run in the sending namespace. iperf3 (one datagram per syscall) tops out near
 * 70 kpps on this host, under the paths it was measuring; one generator for every contender
 * keeps the ratios fair.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Host } from '../test/lab/lab.js';

/** The C source, from bench/ (tap on the .ts) or from dist/bench/ (npm run bench). */
function source(): string {
  const tries = ['gen/udpgen.c', '../../bench/gen/udpgen.c'].map((p) => fileURLToPath(new URL(p, import.meta.url)));
  const found = tries.find((p) => existsSync(p));
  if (found === undefined) throw new Error(`udpgen: source not found (looked at ${tries.join(', ')})`);
  return found;
}

/** Compile the generator into `dir`; returns the binary's path. */
export function buildUdpGen(dir: string): string {
  const out = join(dir, 'udpgen');
  try {
    execFileSync('gcc', ['-O2', '-Wall', '-o', out, source()], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: Buffer; message: string };
    throw new Error(`udpgen: gcc failed: ${(err.stderr?.toString() ?? err.message).trim().split('\n')[0]}`);
  }
  return out;
}

export interface GenResult {
  /** Datagrams sent, and the seconds the generator really took (a late host stretches it). */
  sent: number;
  seconds: number;
  errors: number;
}

/** Send `pps` datagrams/s of `payload` bytes to dst:port for `seconds` from `from`. */
export async function runUdpGen(bin: string, from: Host, dst: string, port: number, pps: number, seconds: number, payload = 64): Promise<GenResult> {
  const r = await from.exec(bin, [dst, String(port), String(Math.round(pps)), String(seconds), String(payload)], { timeoutMs: (seconds + 15) * 1000 });
  try {
    const j = JSON.parse(r.stdout) as Partial<GenResult>;
    if (typeof j.sent === 'number' && typeof j.seconds === 'number') return { sent: j.sent, seconds: j.seconds, errors: j.errors ?? 0 };
  } catch {
    /* fall through */
  }
  throw new Error(`udpgen in ${from.short}: exit ${r.code}: ${(r.stderr || r.stdout).trim().split('\n')[0] ?? ''}`);
}
