/**
 * `npm run bench -- prr-core [--bindings N] [--seconds S] [--no-huge-pages]`: the PRR's per-packet work, in one
 * process, with 10 and with N (default 1,000,000) bindings: the real PrrDataplane (core, counters,
 * "ports active") driven over stub ports, no kernel, no lab. Far less noisy than the `prr` lab
 * bench on a shared host, so it shows what the size of the table costs per packet.
 *
 * Bindings and packets are the `prr` bench's (bench/prr-packets.ts): PSID sets a=4/k=11 on 510
 * addresses, 65,536 distinct packets spread over 9 (the 10-binding table) or N-1 bindings.
 *   - tunnel: IPv4-in-IPv6 from CPEs to the Internet (what the `prr` bench sends);
 *   - internet: the replies, IPv4 from the Internet to the CPEs' ports.
 * Each batch of 64 packets is copied into the stub's receive ring first, as the kernel does; the
 * copy alone is timed too and taken out ("net" figures). Times are the process's CPU time (time
 * spent waiting for a core on a busy host is not counted); the two tables alternate over several
 * rounds and the best round of each is kept (the least disturbed by other processes).
 */
import { PsidSet, PortRange } from '../common/portset.js';
import { parseIpv4 } from '../common/codec/ipv4.js';
import { parseIpv6OrThrow } from '../common/codec/ipv6.js';
import type { RxRing, TunDevice, Tunnel6Socket, TxBatch } from '../common/native/types.js';
import { memoryLogger } from '../common/log.js';
import { BindingTable } from '../prr/bindings.js';
import { PrrCore } from '../prr/core.js';
import { PrrCounters } from '../prr/counters.js';
import { PrrDataplane } from '../prr/dataplane.js';
import { defaultPolicy } from '../prr/policy.js';
import { PortActivity } from '../prr/port-activity.js';
import { readFileSync } from 'node:fs';
import { adviseHugePages } from '../common/native/index.js';
import { printReport, type Row } from './lib.js';
import { BR6, CPE6, CPE_V4, INET4, MAX_GENERATED, genIpv4, genIpv6, genPsid, prrPackets, spread } from './prr-packets.js';

const DISTINCT = 65_536;
const BATCH = 64;
const SLOT = 256;
const HEADROOM = 48;

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

/** As `prr run` does (prr/verbs.ts): the big tables in transparent huge pages, unless --no-huge-pages. */
let advise: ((buf: ArrayBuffer) => void) | undefined = (buf) => {
  adviseHugePages(buf);
};

function buildTable(total: number): BindingTable {
  const t = new BindingTable(total, { ...(advise !== undefined ? { adviseMemory: advise } : {}) });
  t.add({ subscriber: 'cpe', ipv6: parseIpv6OrThrow(CPE6), ipv4: parseIpv4(CPE_V4), ports: new PortRange(10000, 11023, { allowSystemPorts: true }) });
  for (let i = 0; i < total - 1; i++) {
    t.add({ subscriber: `s${i}`, ipv6: parseIpv6OrThrow(genIpv6(i)), ipv4: parseIpv4(genIpv4(i)) >>> 0, ports: new PsidSet(4, 11, genPsid(i), { allowSystemPorts: true }) }, true);
  }
  return t;
}

/** A receive ring and a port that takes every packet sent to it. */
function stubPort(tunnel: boolean): { ring: RxRing; port: TunDevice & Tunnel6Socket } {
  const ring: RxRing = {
    slab: Buffer.alloc(BATCH * SLOT),
    slotSize: SLOT,
    headroom: HEADROOM,
    batch: BATCH,
    lens: new Int32Array(BATCH),
    srcs: Buffer.alloc(tunnel ? 16 * BATCH : 0),
    dsts: Buffer.alloc(tunnel ? 16 * BATCH : 0),
  };
  const port = { ring, counters: new Float64Array(32), send: (tx: TxBatch) => tx.count, start: () => {}, close: () => {}, onError: () => {} };
  return { ring, port: port as unknown as TunDevice & Tunnel6Socket };
}

interface Setup {
  dp: PrrDataplane;
  tun: RxRing;
  tunnel: RxRing;
  up: Buffer[]; // IPv4-in-IPv6 from CPEs
  down: Buffer[]; // IPv4 replies from the Internet
}

function setup(total: number): Setup {
  const table = buildTable(total);
  const br = parseIpv6OrThrow(BR6);
  const core = new PrrCore(table, defaultPolicy(parseIpv4('198.51.100.1'), [br]), { ttlToInternet: true });
  const counters = new PrrCounters(table.idLimit);
  counters.attach(table); // as prr run does
  const tun = stubPort(false);
  const tunnel = stubPort(true);
  const dp = new PrrDataplane(core, counters, tun.port, tunnel.port, { log: memoryLogger('prr'), activity: new PortActivity(advise !== undefined ? { adviseMemory: advise } : {}) });
  const up = prrPackets(DISTINCT, spread(total - 1));
  // The reply to each: IPv4 from the sink back to the CPE's port (swap addresses and ports).
  const down = up.map((p) => {
    const ip = Buffer.from(p.subarray(40));
    const s = ip.readUInt32BE(12);
    ip.writeUInt32BE(ip.readUInt32BE(16), 12);
    ip.writeUInt32BE(s, 16);
    const sp = ip.readUInt16BE(20);
    ip.writeUInt16BE(ip.readUInt16BE(22), 20);
    ip.writeUInt16BE(sp, 22);
    return ip;
  });
  return { dp, tun: tun.ring, tunnel: tunnel.ring, up, down };
}

/** ns per packet over `count` packets (whole batches), or the copy alone when `run` is false. */
function pass(s: Setup, dir: 'up' | 'down', count: number, run: boolean): number {
  const ring = dir === 'up' ? s.tunnel : s.tun;
  const pkts = dir === 'up' ? s.up : s.down;
  const dp = s.dp as unknown as { onTunnelBatch(n: number): void; onTunBatch(n: number): void };
  let k = 0;
  const t0 = process.cpuUsage();
  for (let done = 0; done < count; done += BATCH) {
    for (let i = 0; i < BATCH; i++, k = (k + 1) & (DISTINCT - 1)) {
      const p = pkts[k]!;
      if (dir === 'up') {
        p.copy(ring.srcs, i * 16, 8, 24);
        p.copy(ring.dsts, i * 16, 24, 40);
        p.copy(ring.slab, i * SLOT + HEADROOM, 40);
        ring.lens[i] = p.length - 40;
      } else {
        p.copy(ring.slab, i * SLOT + HEADROOM);
        ring.lens[i] = p.length;
      }
    }
    if (run) {
      if (dir === 'up') dp.onTunnelBatch(BATCH);
      else dp.onTunBatch(BATCH);
    }
  }
  const t = process.cpuUsage(t0);
  return ((t.user + t.system) * 1000) / count;
}

/** A field of /proc/self/smaps_rollup in MiB (AnonHugePages: memory in transparent huge pages). */
function rollupMb(field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/smaps_rollup', 'utf8'));
  return m === null ? NaN : Number(m[1]) / 1024;
}

export async function main(args: string[]): Promise<void> {
  const nBig = Number(flag(args, '--bindings') ?? 1_000_000);
  const seconds = Number(flag(args, '--seconds') ?? 1);
  if (args.includes('--no-huge-pages')) advise = undefined;
  if (!Number.isInteger(nBig) || nBig < 10 || nBig - 1 > MAX_GENERATED) throw new Error(`--bindings: expected an integer 10..${MAX_GENERATED + 1}`);
  process.stderr.write(`bench prr-core: building tables of 10 and ${nBig} bindings ...\n`);
  const sets: Record<string, Setup> = { small: setup(10), big: setup(nBig) };
  const count = Math.max(DISTINCT, Math.round((seconds * 1e9) / 2000 / BATCH) * BATCH);
  const best: Record<string, number> = {};
  const keep = (key: string, v: number): void => {
    best[key] = Math.min(best[key] ?? Infinity, v);
  };
  // Warm up (JIT, and the big table's arrays paged in), then alternate.
  for (const s of Object.values(sets)) for (const d of ['up', 'down'] as const) pass(s, d, DISTINCT, true);
  for (let round = 0; round < 5; round++) {
    for (const [name, s] of Object.entries(sets)) {
      for (const d of ['up', 'down'] as const) {
        keep(`${name}.${d}`, pass(s, d, count, true));
        keep(`${name}.${d}.copy`, pass(s, d, count, false));
      }
    }
  }
  // Every packet must have been forwarded, or the figures measure drops.
  for (const [name, s] of Object.entries(sets)) {
    const g = s.dp.counters.snapshot();
    const bad = Object.keys(g.drops6).length + Object.keys(g.drops4).length;
    if (bad > 0) throw new Error(`${name}: packets dropped: ${JSON.stringify({ drops6: g.drops6, drops4: g.drops4 })}`);
  }
  const net = (name: string, d: string): number => best[`${name}.${d}`]! - best[`${name}.${d}.copy`]!;
  const rows: Row[] = [];
  for (const d of ['up', 'down'] as const) {
    const what = d === 'up' ? 'from CPEs (tunnel)' : 'from the Internet';
    rows.push(
      { metric: `ns per packet ${what}, 10 bindings`, unit: 'ns', values: { prr: best[`small.${d}`]! } },
      { metric: `ns per packet ${what}, ${nBig} bindings`, unit: 'ns', values: { prr: best[`big.${d}`]! } },
      { metric: `rate ${nBig}/10 bindings ${what}`, unit: 'x', values: { prr: best[`small.${d}`]! / best[`big.${d}`]! } },
      { metric: `net ns per packet ${what} (ring copy out), 10 bindings`, unit: 'ns', values: { prr: net('small', d) } },
      { metric: `net ns per packet ${what} (ring copy out), ${nBig} bindings`, unit: 'ns', values: { prr: net('big', d) } },
      { metric: `net rate ${nBig}/10 bindings ${what}`, unit: 'x', values: { prr: net('small', d) / net('big', d) } },
    );
  }
  printReport(
    {
      bench: 'prr-core',
      when: new Date().toISOString(),
      host: { cpus: (await import('node:os')).cpus().length, kernel: (await import('node:os')).release() },
      notes: [
        `PrrDataplane over stub ports, batches of ${BATCH}, ${count} packets a pass, CPU time, best of 5 passes per figure`,
        `${DISTINCT} distinct packets spread over 9 or ${nBig - 1} PSID bindings (bench/prr-packets.ts); sink ${INET4}`,
        `huge pages: ${advise !== undefined ? 'advised (madvise MADV_HUGEPAGE) on the binding records, port tables, IPv6 index, ports-active bitmaps' : 'not advised (--no-huge-pages)'}`,
        `process RSS ${rollupMb('Rss').toFixed(0)} MiB, of it in transparent huge pages (AnonHugePages) ${rollupMb('AnonHugePages').toFixed(0)} MiB`,
        `load average ${(await import('node:os')).loadavg().map((x) => x.toFixed(2)).join(' ')}`,
      ],
      rows,
    },
    'prr',
  );
}
