/**
 * `npm run bench -- pmtu [runs]`: path-MTU convergence in the lab of test/lab/mtu-topology.ts,
 * a fresh lab per run (nothing learnt yet). For cpe2 (a 1280-byte link at a router further on):
 * how long a DF-set UDP sender takes to adapt to the Fragmentation Needed its first 1400-byte
 * datagram draws, upstream (the SMAP learns from r2's Packet Too Big) and downstream (the PRR
 * learns from r1's); then a 20 MB download on each LAN, cpe1 (1500 all the way) beside cpe2,
 * which one first alternating from run to run. Medians over the runs.
 */
import os from 'node:os';
import { bigSha256, buildMtuLab, INET, UDP_CLIENT, type MtuCpe } from '../test/lab/mtu-topology.js';
import { printReport, type Report } from './lib.js';

const BIG = 20 * 1024 * 1024;

function median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function adaptMs(cpe: MtuCpe, mode: 'up' | 'down'): Promise<number | null> {
  const r = await cpe.lan.exec('python3', ['-c', UDP_CLIENT, mode, INET, '1400'], { timeoutMs: 30_000 });
  const j = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}') as { learnt?: { mtu: number; ms: number } | null };
  return j.learnt?.mtu === 1240 ? j.learnt.ms : null;
}

async function downloadBps(cpe: MtuCpe, sha: string): Promise<number | null> {
  const t0 = process.hrtime.bigint();
  const r = await cpe.lan.exec('sh', ['-c', `curl -sS --max-time 120 'http://${INET}/big?n=${BIG}' | sha256sum`], { timeoutMs: 130_000 });
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  return r.stdout.split(' ')[0] === sha ? (BIG * 8) / s : null;
}

export async function main(args: string[]): Promise<void> {
  const runs = Math.max(1, Math.min(10, Number(args[0] ?? 3)));
  const sha = bigSha256(BIG);
  const up: number[] = [];
  const down: number[] = [];
  const dl: Record<'path1500' | 'path1280', number[]> = { path1500: [], path1280: [] };
  let failed = 0;
  for (let i = 0; i < runs; i++) {
    const l = await buildMtuLab('bpmtu');
    try {
      const [cpe1, cpe2] = l.cpes;
      const u = await adaptMs(cpe2, 'up');
      const d = await adaptMs(cpe2, 'down');
      if (u !== null) up.push(u);
      if (d !== null) down.push(d);
      // Alternate which LAN downloads first: the first big flow through a fresh PRR warms it up.
      let a: number | null;
      let b: number | null;
      if (i % 2 === 0) {
        a = await downloadBps(cpe1, sha);
        b = await downloadBps(cpe2, sha);
      } else {
        b = await downloadBps(cpe2, sha);
        a = await downloadBps(cpe1, sha);
      }
      if (a !== null) dl.path1500.push(a);
      if (b !== null) dl.path1280.push(b);
      failed += [u, d, a, b].filter((x) => x === null).length;
    } finally {
      l.destroy();
    }
  }
  const report: Report = {
    bench: 'pmtu',
    when: new Date().toISOString(),
    host: { cpus: os.cpus().length, kernel: os.release() },
    notes: [
      `${runs} fresh labs; medians. path1500 = cpe1 (1500-byte links, tunnel MTU 1460); path1280 = cpe2 (a 1280-byte link past its own, settles at 1240)`,
      'adapt = ms from the first 1400-byte DF datagram to the sender reading path MTU 1240 after an EMSGSIZE; the upstream sender wakes on the socket error at once; the downstream one sends every 5 ms (its granularity)',
      `measurements that failed (no 1240 learnt, or a bad sha256): ${failed}`,
      `samples: ${JSON.stringify({ up, down, dl })}`,
    ],
    rows: [
      { metric: 'DF UDP sender adapts, upstream (SMAP learns)', unit: 'ms', values: { path1500: null, path1280: median(up) } },
      { metric: 'DF UDP sender adapts, downstream (PRR learns)', unit: 'ms', values: { path1500: null, path1280: median(down) } },
      { metric: '20 MB TCP download after convergence', unit: 'bit/s', values: { path1500: median(dl.path1500), path1280: median(dl.path1280) } },
    ],
  };
  printReport(report, 'path1500');
}
