/**
 * The three paths of `npm run bench -- e2e`, all in one SMAP lab (test/lab/smap-topology.ts):
 *
 *   aplus   lan1 ── cpe1 (`smap run`: nftables SNAT + TUN, IPv4-in-IPv6) ══ prr (`prr run`) ── inet
 *   kernel  lan2 ── cpe2 (same SNAT table, IPv4 routed natively over the WAN link) ── prr (kernel) ── inet
 *   tayga   lan2 ── cpe2 (same SNAT table, tayga CLAT: IPv4 -> IPv6) ── prr (tayga PLAT: IPv6 -> IPv4) ── inet
 *
 * tayga is therefore 464XLAT (RFC 6877): two one-packet-per-syscall C translators on TUNs, in the
 * same two places as our two user-space hops (the CPE and the PRR node), over the same veths.
 * cpe2 switches between kernel and tayga by its IPv4 default route and the SNAT table's output
 * device; each mode SNATs to its own shared address (192.0.2.102 kernel, 192.0.2.103 tayga),
 * port range identical to cpe1's, and the PRR node routes each back its own way.
 */
import { readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import os from 'node:os';
import type { ChildProcess } from 'node:child_process';
import { waitFor, type Host } from '../test/lab/lab.js';
import type { SmapLab } from '../test/lab/smap-topology.js';
import { INET } from '../test/lab/smap-topology.js';
import { renderTable } from '../smap/nft.js';
import { parsePortSet } from '../common/portset.js';
import { parseIpv4, parseIpv4Prefix } from '../common/config/values.js';
import { runUdpGen } from './udpgen.js';

export const PORTS = '10000-10999';
export const KERNEL_SHARED = '192.0.2.102';
export const TAYGA_SHARED = '192.0.2.103';
/** The NAT64 prefix both taygas share, and the Internet host under it. */
const PREF64 = '2001:db8:64::/96';
export const INET6_UNDER_PREF64 = '2001:db8:64::c633:6402';
/** cpe2's CLAT address (outside its WAN /64, routed to it by the PRR node). */
const CLAT6 = '2001:db8:2:c::2';
const CLAT_MTU = 1480; // IPv6 header is 20 bytes longer than IPv4's

export type Mode = 'kernel' | 'tayga';

export interface Cpe2Paths {
  clat: ChildProcess;
  plat: ChildProcess;
  use(mode: Mode): void;
}

function nft(h: Host, dir: string, text: string): void {
  const f = join(dir, `${h.short}.nft`);
  writeFileSync(f, text);
  h.run('nft', '-f', f);
}

function snatTable(tun: string, shared: string, mtu: number): string {
  return renderTable({ tun, lanPrefix: parseIpv4Prefix('192.168.1.0/24')!, shared: parseIpv4(shared)!, ports: parsePortSet(PORTS), mtu });
}

function startTayga(h: Host, dir: string, name: string, tun: string, ipv4: string, map: string, qlen: number): ChildProcess {
  const conf = join(dir, `tayga-${name}.conf`);
  writeFileSync(conf, `tun-device ${tun}\nipv4-addr ${ipv4}\nprefix ${PREF64}\nmap ${map}\n`);
  h.run('tayga', '--mktun', '--config', conf);
  h.run('ip', 'link', 'set', 'dev', tun, 'mtu', String(tun === 'clat' ? CLAT_MTU : 1500), 'txqueuelen', String(qlen), 'up');
  return h.spawn('tayga', ['--nodetach', '--config', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** The TX queue length of a device (a TUN's queue toward its reader). */
export function txqlen(h: Host, dev: string): number {
  return (JSON.parse(h.run('ip', '-j', 'link', 'show', 'dev', dev)) as Array<{ txqlen?: number }>)[0]?.txqlen ?? 500;
}

/**
 * Give cpe2 an IPv4 WAN (kernel) and a CLAT (tayga), the PRR node a PLAT; routes for both.
 * `qlen`: the taygas' TUN TX queue length (the bench passes smap0's, so both queue alike).
 */
export async function buildCpe2Paths(l: SmapLab, qlen: number): Promise<Cpe2Paths> {
  const cpe = l.cpes[1].host;
  const prr = l.prr;
  // kernel: plain IPv4 on the same veth as the tunnel's IPv6
  cpe.addAddress('wan', '192.168.202.2/24');
  prr.addAddress('cpe2', '192.168.202.1/24');
  prr.route(`${KERNEL_SHARED}/32`, { gw: '192.168.202.2' });
  // tayga: CLAT on cpe2, PLAT on the PRR node
  cpe.forwarding();
  const clat = startTayga(cpe, l.dir, 'clat', 'clat', '192.168.255.1', `${TAYGA_SHARED} ${CLAT6}`, qlen);
  cpe.route('2001:db8:2:c::/64', { dev: 'clat' });
  const plat = startTayga(prr, l.dir, 'plat', 'nat64', '192.0.2.60', `${TAYGA_SHARED} ${CLAT6}`, qlen);
  prr.route(PREF64, { dev: 'nat64' });
  prr.route(`${TAYGA_SHARED}/32`, { dev: 'nat64' });
  prr.route('2001:db8:2:c::/64', { gw: '2001:db8:2::2' });
  const use = (mode: Mode): void => {
    if (mode === 'kernel') {
      cpe.route('default', { gw: '192.168.202.1' });
      nft(cpe, l.dir, snatTable('wan', KERNEL_SHARED, 1500));
    } else {
      cpe.route('default', { dev: 'clat' });
      nft(cpe, l.dir, snatTable('clat', TAYGA_SHARED, CLAT_MTU));
    }
    cpe.run('conntrack', '-F');
  };
  for (const mode of ['tayga', 'kernel'] as const) {
    use(mode);
    await waitFor(`${mode} path answers a ping`, async () => {
      for (const t of [clat, plat]) if (t.exitCode !== null) throw new Error(`tayga exited ${t.exitCode}`);
      const r = await l.cpes[1].lan.exec('ping', ['-c', '1', '-W', '1', INET]);
      return r.code === 0 ? true : undefined;
    });
  }
  return { clat, plat, use };
}

// ---- CPU: which process of the lab was busy ---------------------------------------------------

function netnsInodes(l: SmapLab): Map<string, string> {
  const m = new Map<string, string>();
  for (const h of l.lab.hosts.values()) {
    try {
      m.set(`net:[${statSync(`/run/netns/${h.name}`).ino}]`, h.short);
    } catch {
      /* gone */
    }
  }
  return m;
}

/** CPU seconds (run time over all threads) of every process in a lab namespace, by pid. */
function snapshot(ns: Map<string, string>): Map<number, { who: string; run: number; wait: number }> {
  const out = new Map<number, { who: string; run: number; wait: number }>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const where = ns.get(readlinkSync(`/proc/${d}/ns/net`));
      if (where === undefined) continue;
      const comm = readFileSync(`/proc/${d}/comm`, 'utf8').trim();
      let run = 0;
      let wait = 0;
      for (const t of readdirSync(`/proc/${d}/task`)) {
        try {
          const f = readFileSync(`/proc/${d}/task/${t}/schedstat`, 'utf8').split(' ');
          run += Number(f[0]);
          wait += Number(f[1]);
        } catch {
          /* thread gone */
        }
      }
      out.set(Number(d), { who: `${comm}@${where}`, run: run / 1e9, wait: wait / 1e9 });
    } catch {
      /* process gone */
    }
  }
  return out;
}

function hostCpu(): { busy: number; softirq: number; idle: number } {
  const v = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const idle = v[3]! + v[4]!;
  const softirq = v[5]! + v[6]!;
  return { busy: (v[0]! + v[1]! + v[2]!) / 100, softirq: softirq / 100, idle: idle / 100 };
}

/**
 * Run `fn`, sampling every 250 ms the CPU of each lab process (so short-lived iperf3 clients are
 * seen too); returns the busiest processes as "comm@netns NN%" (of one core) with the share of
 * time each sat runnable waiting for a CPU (the host's other users), and host softirq/idle.
 */
export async function busiest<T>(l: SmapLab, fn: () => Promise<T>): Promise<{ value: T; cpu: string }> {
  const ns = netnsInodes(l);
  type S = { who: string; run: number; wait: number; t: number };
  const first = new Map<number, S>();
  const last = new Map<number, S>();
  const sample = (): void => {
    const t = performance.now() / 1000;
    for (const [pid, s] of snapshot(ns)) {
      if (!first.has(pid)) first.set(pid, { ...s, t });
      last.set(pid, { ...s, t });
    }
  };
  sample();
  const h0 = hostCpu();
  const t0 = performance.now();
  const timer = setInterval(sample, 250);
  let value: T;
  try {
    value = await fn();
  } finally {
    clearInterval(timer);
  }
  sample();
  const dt = (performance.now() - t0) / 1000;
  const h1 = hostCpu();
  const pct: Array<[string, number, number]> = [];
  for (const [pid, a] of first) {
    const b = last.get(pid)!;
    const span = b.t - a.t;
    if (span < 0.2) continue;
    pct.push([a.who, Math.round(((b.run - a.run) / span) * 100), Math.round(((b.wait - a.wait) / span) * 100)]);
  }
  pct.sort((x, y) => y[1] - x[1]);
  const top = pct.filter(([, p]) => p >= 5).slice(0, 5).map(([w, p, q]) => `${w} ${p}% (runnable-waiting ${q}%)`);
  const host = `host softirq ${Math.round(((h1.softirq - h0.softirq) / dt) * 100)}% idle ${Math.round(((h1.idle - h0.idle) / dt) * 100)}% of ${os.cpus().length * 100}`;
  return { value, cpu: `${top.length > 0 ? top.join(', ') : 'no lab process at 5% or more'}; ${host}` };
}

// ---- UDP rate at no drop, contenders in lockstep ----------------------------------------------

export interface UdpTrial {
  offered: number;
  /** Datagrams/s the generator sent, and the ones that reached the Internet host (nftables counter at prerouting). */
  sent: number;
  received: number;
  /** Percent lost on the path (sent vs. counted at the Internet host). */
  loss: number;
}

/** The UDP port the small-packet trials aim at; the Internet host counts and drops them there. */
export const GEN_PORT = 9;

/**
 * Count the generator's datagrams arriving at the Internet host, and drop them (prerouting, before
 * any socket): no receiver socket overflows on a busy host, no ICMP port-unreachable flows back.
 */
export function countArrivals(inet: Host, dir: string): () => number {
  const f = join(dir, 'count.nft');
  writeFileSync(f, `table ip e2ecount {\n  counter rx { }\n  chain pre { type filter hook prerouting priority raw; policy accept; udp dport ${GEN_PORT} counter name "rx" drop; }\n}\n`);
  inet.run('nft', '-f', f);
  return () => {
    const j = JSON.parse(inet.run('nft', '-j', 'list', 'counter', 'ip', 'e2ecount', 'rx')) as { nftables: Array<{ counter?: { packets: number } }> };
    return j.nftables.find((e) => e.counter !== undefined)?.counter?.packets ?? 0;
  };
}

/**
 * One trial of `payload`-byte datagrams at `pps` toward the Internet host, sent by the sendmmsg
 * generator (bench/udpgen.ts). Loss is what the generator sent against what reached the Internet
 * host's prerouting.
 */
export async function udpTrial(gen: string, client: Host, count: () => number, pps: number, seconds: number, payload = 64): Promise<UdpTrial> {
  const before = count();
  const g = await runUdpGen(gen, client, INET, GEN_PORT, pps, seconds, payload);
  await new Promise((res) => setTimeout(res, 100)); // stragglers
  const arrived = count() - before;
  if (g.sent === 0) return { offered: pps, sent: 0, received: 0, loss: 100 };
  const got = Math.min(arrived, g.sent);
  return { offered: pps, sent: Math.round(g.sent / g.seconds), received: Math.round(got / g.seconds), loss: (100 * (g.sent - got)) / g.sent };
}

/**
 * The highest rate with loss <= `lossPercent` and >= 90% of the rate really offered (as
 * bench/lib.ts udpRateNoDrop): doubling from `start`, then `bisect` halvings. Every contender
 * runs one trial per round, in turn, so the noise of a shared host falls on all alike.
 */
export async function udpNoDropLockstep<W extends string>(
  who: readonly W[],
  trial: (w: W, pps: number) => Promise<UdpTrial>,
  opts: { start?: number; bisect?: number; lossPercent?: number } = {},
): Promise<Record<W, { pps: number | null; trials: UdpTrial[] }>> {
  const loss = opts.lossPercent ?? 0.1;
  const st = Object.fromEntries(who.map((w) => [w, { lo: 0, hi: 0, next: opts.start ?? 25_000, left: opts.bisect ?? 5, done: false, trials: [] as UdpTrial[] }])) as Record<
    W,
    { lo: number; hi: number; next: number; left: number; done: boolean; trials: UdpTrial[] }
  >;
  while (who.some((w) => !st[w].done)) {
    for (const w of who) {
      const s = st[w];
      if (s.done) continue;
      const t = await trial(w, s.next);
      s.trials.push(t);
      const ok = t.loss <= loss && t.sent >= 0.9 * s.next;
      if (ok) s.lo = s.next;
      else s.hi = s.next;
      if (s.hi === 0) {
        s.next *= 2;
        if (s.next > 3_200_000) s.done = true;
      } else if (s.left-- > 0) s.next = Math.round((s.lo + s.hi) / 2);
      else s.done = true;
    }
  }
  return Object.fromEntries(who.map((w) => [w, { pps: st[w].lo || null, trials: st[w].trials }])) as Record<W, { pps: number | null; trials: UdpTrial[] }>;
}

// ---- Where packets were dropped ---------------------------------------------------------------

/**
 * Drop counters of every lab namespace: each device's RX/TX drops (a TUN's TX drops are packets
 * the kernel could not queue for a reader that was too slow) and raw IPv6 sockets' drops
 * (/proc/net/raw6: the tunnel sockets' receive buffers overflowing).
 */
export function dropCounters(l: SmapLab): Map<string, number> {
  const out = new Map<string, number>();
  for (const h of l.lab.hosts.values()) {
    try {
      const links = JSON.parse(h.run('ip', '-s', '-j', 'link', 'show')) as Array<{ ifname: string; stats64?: { rx?: { dropped?: number }; tx?: { dropped?: number } } }>;
      for (const k of links) {
        out.set(`${k.ifname}@${h.short} rx_dropped`, k.stats64?.rx?.dropped ?? 0);
        out.set(`${k.ifname}@${h.short} tx_dropped`, k.stats64?.tx?.dropped ?? 0);
      }
      const raw = h.run('cat', '/proc/net/raw6').trim().split('\n').slice(1);
      out.set(`raw6@${h.short} drops`, raw.reduce((a, line) => a + Number(line.trim().split(/\s+/).at(-1) ?? 0), 0));
      const udp = h.run('cat', '/proc/net/udp').trim().split('\n').slice(1);
      out.set(`udp@${h.short} drops`, udp.reduce((a, line) => a + Number(line.trim().split(/\s+/).at(-1) ?? 0), 0));
    } catch {
      /* namespace gone */
    }
  }
  return out;
}

/** The counters that grew between two snapshots, "name +N". */
export function dropDelta(a: Map<string, number>, b: Map<string, number>): string {
  const grew = [...b].map(([k, v]) => [k, v - (a.get(k) ?? 0)] as const).filter(([, d]) => d > 0);
  return grew.length === 0 ? 'no drops counted' : grew.map(([k, d]) => `${k} +${d}`).join(', ');
}
