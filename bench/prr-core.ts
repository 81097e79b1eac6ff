/**
 * `npm run bench -- prr-core [--bindings N] [--seconds S] [--batch B] [--no-huge-pages]`: the PRR's
 * per-packet work, one process per table (as each PRR is), with 10 and with N (default 1,000,000)
 * bindings: the real PrrDataplane (core, counters, "ports active") driven over stub ports, no
 * kernel, no lab. Far less noisy than the `prr` lab bench on a shared host, so it shows what the
 * size of the table costs per packet.
 *
 * Bindings and packets are the `prr` bench's (bench/prr-packets.ts): PSID sets a=4/k=11 on 510
 * addresses, 65,536 distinct packets spread over 9 (the 10-binding table) or N-1 bindings.
 *   - tunnel: IPv4-in-IPv6 from CPEs to the Internet (what the `prr` bench sends);
 *   - internet: the replies, IPv4 from the Internet to the CPEs' ports.
 * Each batch (64 packets; `--batch 4` is nearer what a PRR at 30 kpps reads at once) is copied
 * into the stub's receive ring first, as the kernel does; the copy alone is timed too and taken
 * out ("net" figures). Times are each process's CPU time (time spent waiting for a core on a busy
 * host is not counted); the two tables alternate over several rounds and the best round of each
 * is kept (the least disturbed by other processes).
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
let BATCH = 64; // --batch
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

/** What a child (one table size, one process) answers. */
type Reply = { ns: number } | { drops: string; rss: number; huge: number };

/**
 * A child process holding one table: as in the lab, each PRR is a process of its own, so the
 * JIT compiles its code for its own table only (two tables in one process made the shared code
 * polymorphic, and slower for both). It runs the passes its parent asks for.
 */
async function child(n: number): Promise<void> {
  const s = setup(n);
  const send = (m: Reply | 'ready'): void => void process.send!(m);
  process.on('message', (m: { op: 'pass'; dir: 'up' | 'down'; count: number; run: boolean } | { op: 'end' }) => {
    if (m.op === 'pass') return send({ ns: pass(s, m.dir, m.count, m.run) });
    const g = s.dp.counters.snapshot();
    const bad = Object.keys(g.drops6).length + Object.keys(g.drops4).length;
    send({ drops: bad > 0 ? JSON.stringify({ drops6: g.drops6, drops4: g.drops4 }) : '', rss: rollupMb('Rss'), huge: rollupMb('AnonHugePages') });
    process.disconnect();
  });
  send('ready');
  await new Promise<void>((resolve) => process.once('disconnect', resolve));
}

/** A child for a table of `n` bindings, and a way to ask it things one at a time. */
async function startChild(n: number, extra: string[]): Promise<{ ask: (m: object) => Promise<Reply> }> {
  const { fork } = await import('node:child_process');
  const c = fork(process.argv[1]!, ['prr-core', '--child', String(n), ...extra], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let waiting: { resolve: (m: unknown) => void; reject: (e: Error) => void } | undefined;
  c.on('message', (m) => waiting?.resolve(m));
  c.on('exit', (code) => waiting?.reject(new Error(`prr-core child (${n} bindings) exited ${code}`)));
  const next = (): Promise<unknown> => new Promise((resolve, reject) => (waiting = { resolve, reject }));
  await next(); // 'ready'
  return {
    ask: async (m) => {
      const r = next();
      c.send(m);
      return (await r) as Reply;
    },
  };
}

export async function main(args: string[]): Promise<void> {
  const nBig = Number(flag(args, '--bindings') ?? 1_000_000);
  const seconds = Number(flag(args, '--seconds') ?? 1);
  const noHuge = args.includes('--no-huge-pages');
  if (noHuge) advise = undefined;
  BATCH = Number(flag(args, '--batch') ?? 64);
  if (!Number.isInteger(BATCH) || BATCH < 1 || BATCH > 1024) throw new Error('--batch: expected an integer 1..1024');
  const childOf = flag(args, '--child');
  if (childOf !== undefined) return child(Number(childOf));
  if (!Number.isInteger(nBig) || nBig < 10 || nBig - 1 > MAX_GENERATED) throw new Error(`--bindings: expected an integer 10..${MAX_GENERATED + 1}`);
  process.stderr.write(`bench prr-core: building tables of 10 and ${nBig} bindings, one process each ...\n`);
  const extra = [...(noHuge ? ['--no-huge-pages'] : []), '--batch', String(BATCH)];
  const sets = { small: await startChild(10, extra), big: await startChild(nBig, extra) };
  const count = Math.max(DISTINCT, Math.round((seconds * 1e9) / 2000 / BATCH) * BATCH);
  const best: Record<string, number> = {};
  const pass1 = async (name: 'small' | 'big', dir: 'up' | 'down', n: number, run: boolean): Promise<number> => ((await sets[name].ask({ op: 'pass', dir, count: n, run })) as { ns: number }).ns;
  // Warm up (JIT, and the big table's arrays paged in), then alternate.
  for (const name of ['small', 'big'] as const) for (const d of ['up', 'down'] as const) await pass1(name, d, DISTINCT, true);
  for (let round = 0; round < 5; round++) {
    for (const name of ['small', 'big'] as const) {
      for (const d of ['up', 'down'] as const) {
        for (const run of [true, false]) {
          const key = `${name}.${d}${run ? '' : '.copy'}`;
          best[key] = Math.min(best[key] ?? Infinity, await pass1(name, d, count, run));
        }
      }
    }
  }
  // Every packet must have been forwarded, or the figures measure drops.
  const ends: Record<string, { drops: string; rss: number; huge: number }> = {};
  for (const name of ['small', 'big'] as const) {
    const e = (await sets[name].ask({ op: 'end' })) as { drops: string; rss: number; huge: number };
    if (e.drops !== '') throw new Error(`${name}: packets dropped: ${e.drops}`);
    ends[name] = e;
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
  const os = await import('node:os');
  printReport(
    {
      bench: 'prr-core',
      when: new Date().toISOString(),
      host: { cpus: os.cpus().length, kernel: os.release() },
      notes: [
        `PrrDataplane over stub ports, one process per table, batches of ${BATCH}, ${count} packets a pass, CPU time, best of 5 passes per figure`,
        `${DISTINCT} distinct packets spread over 9 or ${nBig - 1} PSID bindings (bench/prr-packets.ts); sink ${INET4}`,
        `huge pages: ${advise !== undefined ? 'advised (madvise MADV_HUGEPAGE) on the binding records, port tables, IPv6 index, ports-active bitmaps' : 'not advised (--no-huge-pages)'}`,
        `${nBig}-binding process: RSS ${ends['big']!.rss.toFixed(0)} MiB, of it in transparent huge pages (AnonHugePages) ${ends['big']!.huge.toFixed(0)} MiB; 10-binding process: ${ends['small']!.rss.toFixed(0)} MiB, ${ends['small']!.huge.toFixed(0)} MiB`,
        `load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`,
      ],
      rows,
    },
    'prr',
  );
}
