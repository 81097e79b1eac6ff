/**
 * `npm run bench -- prr-memory [--bindings N]`: the memory of a real `prr run` holding N bindings
 * (default 1,000,000; issue target: well under 512 MB), loaded two ways, each PRR alone in a lab
 * namespace:
 *
 *   - static: N `[subscriber.X]` sections in prr.ini (the prr bench's config, bench/prr-packets.ts);
 *   - registered: N rows in the SQLite registration store ([registration] enabled), 32-port
 *     ranges on the 512 addresses of 192.0.2.0/24 and 203.0.113.0/24 (the allocator's slot shape,
 *     so each row takes one slot, as registration hands them out).
 *
 * For each: time from spawn to "prr: running", VmRSS right then and again after a settle (the
 * garbage of loading collected, as V8's memory reducer does on an idle process), and VmHWM (peak).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { Lab, type Host } from '../test/lab/lab.js';
import { distPath } from '../test/lab/paths.js';
import { RegistrationStore } from '../prr/store.js';
import { printReport, type Row } from './lib.js';
import { collect, memoryMb } from './prr-lab.js';
import { BR6, genIpv6, prrIni } from './prr-packets.js';
import { sleep } from './prr-measure.js';

const SETTLE_MS = 15_000;
const REG_PORTS = 32; // (65536 - 1024) / 32 = 2016 slots per address, 1,032,192 on 512 addresses
const REG_SLOTS = (65536 - 1024) / REG_PORTS;

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

/** A store with n registered bindings, written in one transaction (as the PRR writes them: RegistrationStore.putAll). */
function writeStore(file: string, n: number): void {
  const store = new RegistrationStore(file);
  const expires = Math.floor(Date.now() / 1000) + 86_400;
  store.putAll((function* () {
    for (let i = 0; i < n; i++) {
      const a = Math.floor(i / REG_SLOTS);
      const ipv4 = a < 256 ? (0xc0000200 | a) >>> 0 : (0xcb007100 | (a - 256)) >>> 0;
      const first = 1024 + (i % REG_SLOTS) * REG_PORTS;
      yield { fingerprint: `SHA256:bench${i}`, subscriber: `r${i}`, ipv6: genIpv6(i), ipv4, ports: `${first}-${first + REG_PORTS - 1}`, expires };
    }
  })());
  store.close();
}

function registrationIni(dir: string, control: string): string {
  return `[prr]
ipv4 = 198.51.100.1
tunnel_ipv6 = ${BR6}
tun = prr0
shared_ipv4 = 192.0.2.0/24, 203.0.113.0/24
control_socket = ${control}
log_level = warn

[registration]
enabled = true
listen = [::1]:2222
host_key = ${join(dir, 'host_key')}
authorized_keys = ${join(dir, 'authorized_keys')}
database = ${join(dir, 'registrations.db')}
default_ports = ${REG_PORTS}
min_ports = 16
`;
}

async function measure(h: Host, ini: string): Promise<{ loadS: number; rss: number; settled: number; peak: number }> {
  const t0 = performance.now();
  const prr = h.spawn(process.execPath, [distPath('prr/cli.js'), 'run', '--config', ini], { stdio: ['ignore', 'pipe', 'pipe'] });
  const io = collect(prr);
  const deadline = Date.now() + 900_000;
  while (!io.out().includes('prr: running')) {
    if (prr.exitCode !== null) throw new Error(`prr exited ${prr.exitCode}: ${io.err().trim().split('\n').slice(-3).join(' | ')}`);
    if (Date.now() > deadline) throw new Error('prr did not start in 900 s');
    await sleep(100);
  }
  const loadS = (performance.now() - t0) / 1000;
  const rss = memoryMb(prr.pid!).rss;
  await sleep(SETTLE_MS);
  const m = memoryMb(prr.pid!);
  prr.kill('SIGTERM');
  await new Promise((resolve) => (prr.exitCode !== null ? resolve(null) : prr.once('exit', resolve)));
  return { loadS, rss, settled: m.rss, peak: m.peak };
}

export async function main(args: string[]): Promise<void> {
  const n = Number(flag(args, '--bindings') ?? 1_000_000);
  if (!Number.isInteger(n) || n < 10 || n > 512 * REG_SLOTS) throw new Error(`--bindings: expected an integer 10..${512 * REG_SLOTS}`);
  const dir = mkdtempSync(join(os.tmpdir(), 'aplus-bench-prrmem-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const lab = Lab.create('bprrm');
  try {
    const h = lab.host('prr');
    h.forwarding();
    h.addAddress('lo', `${BR6}/128`);
    const res: Record<string, Awaited<ReturnType<typeof measure>>> = {};

    process.stderr.write(`bench prr-memory: ${n} static bindings (prr.ini) ...\n`);
    const s = join(dir, 'static');
    mkdirSync(s);
    writeFileSync(join(s, 'prr.ini'), prrIni(n, join(s, 'control.sock')));
    res['static'] = await measure(h, join(s, 'prr.ini'));
    rmSync(join(s, 'prr.ini'));

    process.stderr.write(`bench prr-memory: ${n} registered bindings (SQLite store) ...\n`);
    const r = join(dir, 'registered');
    mkdirSync(r);
    writeStore(join(r, 'registrations.db'), n);
    writeFileSync(join(r, 'authorized_keys'), '');
    writeFileSync(join(r, 'prr.ini'), registrationIni(r, join(r, 'control.sock')));
    res['registered'] = await measure(h, join(r, 'prr.ini'));

    const row = (metric: string, unit: string, f: (x: Awaited<ReturnType<typeof measure>>) => number): Row => ({
      metric,
      unit,
      values: { static: f(res['static']!), registered: f(res['registered']!) },
    });
    const rows: Row[] = [
      row(`load to forwarding, ${n} bindings`, 's', (x) => x.loadS),
      row('RSS at "running"', 'MB', (x) => x.rss),
      row(`RSS after ${SETTLE_MS / 1000} s idle`, 'MB', (x) => x.settled),
      row('peak RSS (VmHWM)', 'MB', (x) => x.peak),
    ];
    printReport(
      {
        bench: 'prr-memory',
        when: new Date().toISOString(),
        host: { cpus: os.cpus().length, kernel: os.release() },
        notes: [`target: ${n} bindings in well under 512 MB; load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`],
        rows,
      },
      'static',
    );
  } finally {
    lab.destroy();
  }
}
