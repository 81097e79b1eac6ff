/**
 * `npm run bench -- bundle [--seconds N]`: what the SMAP costs a small CPE, bundled
 * (provisioning/bundle.ts: one file + the addon) beside the unbundled agent (dist/ + node_modules),
 * in the same run:
 *
 *   disk     bytes and gzip bytes of what a router must carry: the bundle and the addon, against
 *            dist/{smap,common,provisioning} JS plus every node_modules package the agent loads
 *   memory   resident set (VmRSS, and its peak VmHWM) of an idle agent N seconds after it
 *            registered, both running side by side in the SMAP lab (one per CPE namespace)
 *   start    time from spawn to "smap: running"
 *
 * Sizes are exact; RSS and start time move with the machine's load: read them as ratios.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';
import { bundleSmap } from '../provisioning/bundle.js';
import { waitFor } from '../test/lab/lab.js';
import { distPath, REPO_ROOT } from '../test/lab/paths.js';
import { buildSmapLab, INET } from '../test/lab/smap-topology.js';
import { printReport, type Row } from './lib.js';

function files(dir: string, keep: (f: string) => boolean): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...files(p, keep));
    else if (e.isFile() && keep(p)) out.push(p);
  }
  return out;
}

/** Bytes, and the sum of each file gzipped (what a compressed image or .ipk roughly holds). */
function sizeOf(list: string[]): { bytes: number; gzip: number } {
  let bytes = 0;
  let gzip = 0;
  for (const f of list) {
    const b = readFileSync(f);
    bytes += b.length;
    gzip += gzipSync(b, { level: 9 }).length;
  }
  return { bytes, gzip };
}

/** VmRSS, its peak, and RssAnon: the private memory (the rest is mostly node's own binary, shared). */
function procStatus(pid: number): { rss: number; hwm: number; anon: number } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN) * 1024;
    return { rss: kb('VmRSS'), hwm: kb('VmHWM'), anon: kb('RssAnon') };
  } catch {
    return undefined;
  }
}

export async function main(args: string[]): Promise<void> {
  const i = args.indexOf('--seconds');
  const seconds = i >= 0 ? Number(args[i + 1]) : 10;
  if (!Number.isFinite(seconds) || seconds < 1 || seconds > 300) throw new Error('--seconds: expected 1..300');

  const tmp = mkdtempSync(join(os.tmpdir(), 'aplus-bench-bundle-'));
  try {
    const t0 = Date.now();
    const b = await bundleSmap(tmp);
    const buildSeconds = (Date.now() - t0) / 1000;
    const bundle = sizeOf([b.bundle]);
    const addon = sizeOf([b.addon!]);
    const ownJs = ['smap', 'common', 'provisioning'].flatMap((d) => files(distPath(d), (f) => f.endsWith('.js')));
    const pkgs = b.packages.map((d) => join(REPO_ROOT, d));
    const deps = sizeOf(pkgs.flatMap((d) => files(d, () => true)));
    const own = sizeOf(ownJs);

    const l = await buildSmapLab('benchbundle', [{ ports: '', register: {} }, { ports: '', register: {} }]);
    const rows: Row[] = [];
    try {
      const [bundled, unbundled] = l.cpes;
      const start: Record<string, number> = {};
      const contenders: Array<[typeof bundled, string | undefined, 'bundle' | 'dist']> = [[bundled, b.bundle, 'bundle'], [unbundled, undefined, 'dist']];
      await Promise.all(contenders.map(async ([cpe, script, who]) => {
        const s = Date.now();
        l.startAgent(cpe, script);
        await l.agentRunning(cpe);
        start[who] = Date.now() - s;
        await waitFor(`traffic through ${cpe.host.short}`, async () => ((await cpe.lan.exec('curl', ['-sS', '--max-time', '3', `http://${INET}/`])).code === 0 ? true : undefined), 60_000, 500);
      }));
      // For scale: node itself, idle, doing nothing.
      const bare = l.inet.spawn(process.execPath, ['-e', 'setInterval(() => {}, 60000)'], { stdio: 'ignore' });
      // Idle: registered, one flow done, nothing else for N seconds; then three samples.
      await new Promise((r) => setTimeout(r, seconds * 1000));
      const WHO = ['bundle', 'dist', 'node'] as const;
      const samples = { bundle: [] as number[], dist: [] as number[], node: [] as number[] };
      const anon = { bundle: [] as number[], dist: [] as number[], node: [] as number[] };
      const hwm = { bundle: 0, dist: 0, node: 0 };
      for (let k = 0; k < 3; k++) {
        for (const who of WHO) {
          const pid = who === 'bundle' ? bundled.agent!.pid! : who === 'dist' ? unbundled.agent!.pid! : bare.pid!;
          const st = procStatus(pid);
          if (st === undefined) throw new Error(`the ${who} process is gone`);
          samples[who].push(st.rss);
          anon[who].push(st.anon);
          hwm[who] = Math.max(hwm[who], st.hwm);
        }
        await new Promise((r) => setTimeout(r, 1000));
      }
      bare.kill();
      const med = (xs: number[]): number => [...xs].sort((x, y) => x - y)[1]!;
      const MiB = 1024 * 1024;
      rows.push(
        { metric: 'JS on the router', unit: 'KiB', values: { bundle: bundle.bytes / 1024, dist: (own.bytes + deps.bytes) / 1024 } },
        { metric: 'JS on the router, gzip', unit: 'KiB', values: { bundle: bundle.gzip / 1024, dist: (own.gzip + deps.gzip) / 1024 } },
        { metric: 'addon (aplus_native.node)', unit: 'KiB', values: { bundle: addon.bytes / 1024, dist: addon.bytes / 1024 } },
        { metric: `idle RSS after ${seconds} s`, unit: 'MiB', values: { bundle: med(samples.bundle) / MiB, dist: med(samples.dist) / MiB, node: med(samples.node) / MiB } },
        { metric: 'idle private memory (RssAnon)', unit: 'MiB', values: { bundle: med(anon.bundle) / MiB, dist: med(anon.dist) / MiB, node: med(anon.node) / MiB } },
        { metric: 'peak RSS (VmHWM)', unit: 'MiB', values: { bundle: hwm.bundle / MiB, dist: hwm.dist / MiB, node: hwm.node / MiB } },
        { metric: 'start to "smap: running"', unit: 'ms', values: { bundle: start['bundle'] ?? null, dist: start['dist'] ?? null } },
      );
    } finally {
      l.destroy();
    }
    printReport({
      bench: 'bundle',
      when: new Date().toISOString(),
      host: { cpus: os.cpus().length, kernel: os.release() },
      notes: [
        `bundle: ${b.inputs.length} modules, built in ${buildSeconds.toFixed(1)} s (esbuild-wasm); node_modules packages the agent loads: ${pkgs.map((p) => relative(join(REPO_ROOT, 'node_modules'), p)).join(', ')}`,
        'dist = the unbundled agent: its own compiled JS plus those whole packages (what a router would carry without the bundle)',
        'both agents registered with the PRR over SSH and forwarded one HTTP request, then idled; RSS is the median of three samples 1 s apart',
        'node = a bare `node -e setInterval(...)` beside them, for scale: most of any node process\'s RSS is node\'s own binary (file-backed, shared); RssAnon is what the process adds',
        `node ${process.version}; the size of node itself (the OpenWrt node package) is not counted`,
      ],
      rows,
    }, 'dist');
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
