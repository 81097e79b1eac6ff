/**
 * `npm run bench -- store [--bindings N]`: the PRR's durable registration store at scale.
 *
 * N registered bindings (default 1,000,000: 16,384 shared addresses x 64 sets of 1000 ports, the
 * allocator's slots) are written to a fresh SQLite store in one transaction; then the PRR's real
 * start path for registration runs over it (prr/registration-start.ts: authorized keys, store,
 * every row into the allocator and the binding table, SSH listener up), and its time and memory
 * are printed beside two floors: the store reading the rows in its blocks alone (the floor of this
 * start), and better-sqlite3 handing the same rows over one at a time (as starts read them before).
 * The issue's target is at most 5 s for 1,000,000. Pool addresses are 10.0.0.0/18 here: nothing
 * leaves the process.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { collectGarbage } from '../common/gc.js';
import { memoryLogger } from '../common/log.js';
import { parseIpv6OrThrow } from '../common/codec/ipv6.js';
import { BindingTable } from '../prr/bindings.js';
import type { PrrModel } from '../prr/model.js';
import { startPrrRegistration, type RegistrationSection } from '../prr/registration-start.js';
import { RegistrationStore } from '../prr/store.js';
import { printReport } from './lib.js';

const SLOT = 1000;
const SLOTS = 64;
const BASE = 0x0a000000;

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

function write(file: string, n: number): number {
  const store = new RegistrationStore(file);
  const t0 = performance.now();
  const expires = Math.floor(Date.now() / 1000) + 86400;
  store.putAll((function* () {
    for (let i = 0; i < n; i++) {
      const first = 1024 + (i % SLOTS) * SLOT;
      yield {
        fingerprint: `SHA256:${Buffer.from(`key-${i}`).toString('base64').padEnd(43, 'A')}`, subscriber: `cpe${i}`,
        ipv6: `2001:db8:${(i >>> 16).toString(16)}:${(i & 0xffff).toString(16)}::2`, ipv4: BASE + Math.floor(i / SLOTS),
        ports: `${first}-${first + SLOT - 1}`, expires,
      };
    }
  })());
  store.close();
  return performance.now() - t0;
}

/** CPU milliseconds (user + system) of this process so far: steadier than wall time on a shared machine. */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** The floors: SQLite handing over the rows a start reads, one at a time, and in the store's blocks (prr/store.ts). */
function rawReads(file: string): { rows: { ms: number; cpu: number }; blocks: { ms: number; cpu: number } } {
  const db = new Database(file, { readonly: true });
  const timed = (f: () => number): { ms: number; cpu: number } => {
    const t0 = performance.now();
    const c0 = cpuMs();
    const n = f();
    return n > 0 ? { ms: performance.now() - t0, cpu: cpuMs() - c0 } : { ms: NaN, cpu: NaN };
  };
  const rows = timed(() => {
    let n = 0;
    // The four columns the start read one row at a time before (with the address in hex then).
    for (const row of db.prepare('SELECT subscriber, ipv6, ipv4, ports FROM bindings ORDER BY rowid').raw().iterate()) if (row !== undefined) n++;
    return n;
  });
  db.close();
  const store = new RegistrationStore(file);
  const blocks = timed(() => {
    let n = 0;
    for (const b of store.loadBlocks()) n += b.n;
    return n;
  });
  store.close();
  return { rows, blocks };
}

export async function main(args: string[]): Promise<void> {
  const n = Number(flag(args, '--bindings') ?? 1_000_000);
  const addresses = Math.ceil(n / SLOTS);
  const dir = mkdtempSync(path.join(tmpdir(), 'aplus-bench-store-'));
  try {
    const file = path.join(dir, 'registrations.db');
    process.stderr.write(`bench store: writing ${n} bindings ...\n`);
    const writeMs = write(file, n);
    const raw = rawReads(file);
    writeFileSync(path.join(dir, 'authorized_keys'), '');
    const section: RegistrationSection = {
      enabled: true, listen: { host: '127.0.0.1', port: 0 }, host_key: path.join(dir, 'host_key'),
      authorized_keys: path.join(dir, 'authorized_keys'), database: file, lease: 86400, default_ports: SLOT,
      min_ports: 200, max_ports: 4000, psid_length: 0, psid_offset: 6, rate_per_key: { packets: 10, seconds: 60 }, rate_total: { packets: 1000, seconds: 1 },
    };
    const pool = Array.from({ length: addresses }, (_, i) => BASE + i);
    const model = {
      source: 'ini', file: 'bench', tunnelMtu: 1460, allowSystemPorts: false,
      pools: [{ addresses: () => pool }], policy: { brAddresses: [parseIpv6OrThrow('2001:db8:ffff::1')] },
    } as unknown as PrrModel;
    // Writing the rows above left ~1M rows of garbage that a restarted PRR does not have: collect
    // it first, so that the start is not charged for the bench's own setup.
    collectGarbage();
    const rss0 = process.memoryUsage().rss;
    const table = new BindingTable();
    const t0 = performance.now();
    const c0 = cpuMs();
    const reg = await startPrrRegistration(model, table, memoryLogger('bench'), section);
    const startMs = performance.now() - t0;
    const startCpu = cpuMs() - c0;
    const rss = process.memoryUsage().rss;
    // What `prr run` does next after a big load (prr/verbs.ts): a full collection, timed apart.
    const g0 = performance.now();
    const gc0 = cpuMs();
    collectGarbage();
    const gcMs = performance.now() - g0;
    const gcCpu = cpuMs() - gc0;
    const rssGc = process.memoryUsage().rss;
    const loaded = table.size;
    await reg?.close();
    if (loaded !== n) throw new Error(`loaded ${loaded} of ${n} bindings`);
    printReport({
      bench: 'store',
      when: new Date().toISOString(),
      host: { cpus: cpus().length, kernel: release() },
      notes: [
        `${n} bindings on ${addresses} addresses; start = the PRR's registration start path (prr/registration-start.ts) up to the SSH listener; target at most 5 s`,
        `blocks = the store reading the rows as the start does (RegistrationStore.loadBlocks: SQLite concatenates thousands of rows per call) and nothing else, the floor of this start; rows = better-sqlite3 handing over subscriber, ipv6, ipv4 and ports one row at a time (as starts read them before)`,
        `load average ${loadavg()[0]!.toFixed(1)} on ${cpus().length} CPUs during the run: wall time is inflated when it is above the CPU count; CPU time is not`,
        `writing them in one transaction took ${(writeMs / 1000).toFixed(1)} s; RSS grew ${((rss - rss0) / 2 ** 20).toFixed(0)} MiB during the start (table's typed arrays ${(table.bytes() / 2 ** 20).toFixed(0)} MiB)`,
        `then the full GC that prr run makes after a big load (common/gc.ts): ${(gcMs / 1000).toFixed(2)} s wall, ${(gcCpu / 1000).toFixed(2)} s CPU; RSS after it ${((rssGc - rss0) / 2 ** 20).toFixed(0)} MiB above the start's`,
      ],
      rows: [
        { metric: `load ${n} bindings, wall`, unit: 's', values: { start: startMs / 1000, blocks: raw.blocks.ms / 1000, rows: raw.rows.ms / 1000 } },
        { metric: `load ${n} bindings, CPU`, unit: 's', values: { start: startCpu / 1000, blocks: raw.blocks.cpu / 1000, rows: raw.rows.cpu / 1000 } },
        { metric: 'CPU per binding', unit: 'us', values: { start: (startCpu * 1000) / n, blocks: (raw.blocks.cpu * 1000) / n, rows: (raw.rows.cpu * 1000) / n } },
      ],
    }, 'blocks');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
