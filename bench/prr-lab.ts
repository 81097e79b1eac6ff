/**
 * Topologies for `npm run bench -- prr`, all in one lab, each contender one hop between a
 * generator namespace and an IPv4 sink namespace:
 *
 *   kernel  kgen ── krtr (IPv4 routing) ── ksink 198.51.100.2
 *   tayga   tgen 2001:db8:6::2 ── tayga (NAT64, 2001:db8:64::/96) ── tsink 198.51.100.2
 *   prr     plan 192.168.1.2 ── pcpe (SNAT + pipe forwarder) ══ pprr (the PRR) ── pinet 198.51.100.2
 *   prr 1M  qcpe ══ qprr (the PRR, 1,000,000 bindings) ── qinet 198.51.100.2
 *   prr tun rcpe ══ rprr (the PRR, 10 bindings, ipv4_output = tun) ── rinet 198.51.100.2
 *
 * Every generator namespace holds a TUN `gen0` that bench/prr-gen.ts writes packets into; its
 * kernel routes them to the hop under test. Every sink counts generated packets (UDP port 9) in
 * an nftables counter at prerouting and drops them; it also runs `iperf3 -s`.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Host, Lab } from '../test/lab/lab.js';
import { waitFor } from '../test/lab/lab.js';
import { distPath } from '../test/lab/paths.js';
import { BR6, CPE6, CPE_PORTS, CPE_V4, INET4, prrIni, SINK_PORT } from './prr-packets.js';

/** The sink's NAT64 address under tayga's prefix: 2001:db8:64::198.51.100.2. */
export const TAYGA_DST6 = '2001:db8:64::c633:6402';
export const TAYGA_CLIENT6 = '2001:db8:6::2';
export const TAYGA_GEN6 = '2001:db8:6::10';

/** Collect a child's output; `text()` is everything so far. */
export function collect(child: ChildProcess): { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-4000)));
  return { out: () => out, err: () => err };
}

async function waitLine(what: string, child: ChildProcess, io: { out: () => string; err: () => string }, line: string, timeoutMs = 10_000): Promise<void> {
  await waitFor(what, () => {
    if (child.exitCode !== null) throw new Error(`${what}: exited ${child.exitCode}: ${io.err().trim().split('\n').slice(-3).join(' | ')}`);
    return io.out().includes(line) ? true : undefined;
  }, timeoutMs);
}

/** Count and drop the generator's packets at the sink; run iperf3 there. */
function makeSink(h: Host): void {
  const rules = `table ip sink {
  counter rx { }
  chain pre { type filter hook prerouting priority raw; policy accept; udp dport ${SINK_PORT} counter name "rx" drop; }
}
`;
  h.run('sh', '-c', `printf '%s' '${rules}' | nft -f -`);
}

/** Packets the sink counted so far. */
export function sinkCount(h: Host): number {
  const j = JSON.parse(h.run('nft', '-j', 'list', 'counter', 'ip', 'sink', 'rx')) as { nftables: Array<{ counter?: { packets: number } }> };
  return j.nftables.find((e) => e.counter !== undefined)?.counter?.packets ?? 0;
}

export interface Contender {
  gen: Host;
  sink: Host;
  /** Where traffic sourced in `client` goes to reach the sink's iperf3 / ping. */
  client: Host;
  target: string;
}

export function buildKernel(lab: Lab): Contender {
  const gen = lab.host('kgen');
  const rtr = lab.host('krtr');
  const sink = lab.host('ksink');
  lab.link(gen, rtr, { a: ['192.168.1.2/24'], b: ['192.168.1.1/24'] });
  lab.link(rtr, sink, { a: ['198.51.100.1/24'], b: [`${INET4}/24`] });
  gen.route('default', { gw: '192.168.1.1' });
  rtr.route('192.168.2.0/24', { gw: '192.168.1.2' });
  sink.route('default', { gw: '198.51.100.1' });
  gen.forwarding();
  rtr.forwarding();
  makeSink(sink);
  return { gen, sink, client: gen, target: INET4 };
}

/**
 * tayga in its own namespace; killed with the lab (Host.spawn). `txqueuelen` is the queue of
 * its TUN `nat64`, where packets wait for tayga's one-at-a-time read(): the kernel default 500
 * overflows in bursts long before tayga runs out of CPU (the PRR reads from a 4 MiB socket buffer).
 */
export async function buildTayga(lab: Lab, dir: string, txqueuelen: number): Promise<Contender & { tayga: ChildProcess }> {
  const gen = lab.host('tgen');
  const mid = lab.host('tayga');
  const sink = lab.host('tsink');
  lab.link(gen, mid, { a: [`${TAYGA_CLIENT6}/64`], b: ['2001:db8:6::1/64'] });
  lab.link(mid, sink, { a: ['198.51.100.1/24'], b: [`${INET4}/24`] });
  gen.route('2001:db8:64::/96', { gw: '2001:db8:6::1' });
  sink.route('192.0.2.0/24', { gw: '198.51.100.1' });
  gen.forwarding();
  mid.forwarding();
  const conf = join(dir, 'tayga.conf');
  writeFileSync(
    conf,
    `tun-device nat64
ipv4-addr 192.0.2.1
prefix 2001:db8:64::/96
map 192.0.2.2 ${TAYGA_CLIENT6}
map 192.0.2.10 ${TAYGA_GEN6}
`,
  );
  mid.run('tayga', '--mktun', '--config', conf);
  mid.run('ip', 'link', 'set', 'dev', 'nat64', 'mtu', '1500', 'txqueuelen', String(txqueuelen), 'up');
  mid.route('192.0.2.0/24', { dev: 'nat64' });
  mid.route('2001:db8:64::/96', { dev: 'nat64' });
  const tayga = mid.spawn('tayga', ['--nodetach', '--config', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  const io = collect(tayga);
  await waitFor('tayga answers a ping', async () => {
    if (tayga.exitCode !== null) throw new Error(`tayga exited ${tayga.exitCode}: ${io.err().trim()}`);
    const r = await gen.exec('ping', ['-c', '1', '-W', '1', TAYGA_DST6]);
    return r.code === 0 ? true : undefined;
  });
  makeSink(sink);
  return { gen, sink, client: gen, target: TAYGA_DST6, tayga };
}

export interface PrrSide extends Contender {
  prr: ChildProcess;
  /** The CPE's pipe forwarder (with `lan`). */
  forwarder?: ChildProcess;
  control: string;
  /** Spawn to "prr: running", ms (config load, table build, TUN and sockets). */
  loadMs: number;
  /** The PRR's stdout so far: its log, and V8's --trace-gc lines (see gcSummary). */
  out: () => string;
}

/** Garbage collections in a stretch of --trace-gc output: how many, and their pauses in ms, by kind. */
export function gcSummary(trace: string): Record<string, { n: number; ms: number }> {
  const r: Record<string, { n: number; ms: number }> = {};
  for (const m of trace.matchAll(/ ms: ([A-Za-z-]+(?: \([a-z]+\))?) [\d.]+ \([\d.]+\) -> [\d.]+ \([\d.]+\) MB, (?:pooled: [\d.]+ MB, )?([\d.]+) \//g)) {
    const k = (r[m[1]!] ??= { n: 0, ms: 0 });
    k.n++;
    k.ms = Math.round((k.ms + Number(m[2])) * 10) / 10;
  }
  return r;
}

/**
 * The PRR in `<x>prr` with `bindings` bindings (prr.ini written to `dir`), a generator CPE
 * namespace `<x>cpe`, the Internet `<x>inet`. With `lan`, a LAN host `<x>lan` behind the CPE,
 * SNATed by nftables into the CPE's port range and carried by the test-only pipe forwarder.
 */
export async function buildPrr(lab: Lab, x: string, bindings: number, dir: string, lan: boolean, opts: { extraIni?: string; ipv4Output?: 'raw' | 'tun' } = {}): Promise<PrrSide> {
  const cpe = lab.host(`${x}cpe`);
  const prrHost = lab.host(`${x}prr`);
  const inet = lab.host(`${x}inet`);
  lab.link(cpe, prrHost, { a: [`${CPE6}/64`], b: ['2001:db8:10::1/64'] });
  lab.link(prrHost, inet, { a: ['198.51.100.1/24'], b: [`${INET4}/24`] });
  prrHost.addAddress('lo', `${BR6}/128`);
  cpe.route('2001:db8:ffff::/64', { gw: '2001:db8:10::1' });
  prrHost.route('2001:db8:c::/48', { gw: CPE6 });
  inet.route('192.0.2.0/24', { gw: '198.51.100.1' });
  inet.route('203.0.113.0/24', { gw: '198.51.100.1' });
  cpe.forwarding();
  prrHost.forwarding();
  makeSink(inet);

  const sub = join(dir, x);
  mkdirSync(sub, { recursive: true });
  const ini = join(sub, 'prr.ini');
  const control = join(sub, 'control.sock');
  writeFileSync(ini, prrIni(bindings, control, opts.ipv4Output) + (opts.extraIni ?? ''));
  const t0 = performance.now();
  // --trace-gc: the bench reports the collections during its trials (a big heap's are long).
  const prr = prrHost.spawn(process.execPath, ['--trace-gc', distPath('prr/cli.js'), 'run', '--config', ini], { stdio: ['ignore', 'pipe', 'pipe'] });
  const io = collect(prr);
  await waitLine(`PRR in ${prrHost.short}`, prr, io, 'prr: running', 600_000);
  const loadMs = performance.now() - t0;

  let client: Host = cpe;
  let forwarder: ChildProcess | undefined;
  if (lan) {
    const l = lab.host(`${x}lan`);
    lab.link(l, cpe, { a: ['192.168.1.2/24'], b: ['192.168.1.1/24'] });
    l.route('default', { gw: '192.168.1.1' });
    const fwd = cpe.spawn(process.execPath, [distPath('test/lab/pipe-forwarder.js'), '--tun', 'pipe0', '--bind', CPE6, '--peer', BR6], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    await waitLine(`pipe forwarder in ${cpe.short}`, fwd, collect(fwd), 'ready');
    forwarder = fwd;
    cpe.sysctl('net.ipv6.conf.pipe0.disable_ipv6', 1);
    cpe.run('ip', 'link', 'set', 'dev', 'pipe0', 'mtu', '1460', 'up');
    cpe.route('default', { dev: 'pipe0' });
    const rules = `table ip benchsnat {
  chain post { type nat hook postrouting priority srcnat; policy accept;
    oifname "pipe0" meta l4proto { tcp, udp, icmp } snat to ${CPE_V4}:${CPE_PORTS}; }
  chain clamp { type filter hook forward priority mangle; policy accept;
    oifname "pipe0" tcp flags syn tcp option maxseg size set rt mtu; }
}
`;
    cpe.run('sh', '-c', `printf '%s' '${rules}' | nft -f -`);
    client = l;
  }
  return { gen: cpe, sink: inet, client, target: INET4, prr, control, loadMs, out: io.out, ...(forwarder ? { forwarder } : {}) };
}

/**
 * CPU seconds a process has run so far, and seconds it sat runnable waiting for a CPU (the
 * host's other users), summed over its threads from /proc/PID/task/N/schedstat (nanoseconds).
 * Softirq work (packets a veth hands on) is the kernel's, not charged to any process.
 */
export function schedSeconds(pid: number | undefined): { run: number; wait: number } {
  if (pid === undefined) return { run: NaN, wait: NaN };
  let run = 0;
  let wait = 0;
  try {
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      try {
        const f = readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ');
        run += Number(f[0]);
        wait += Number(f[1]);
      } catch {
        /* thread gone */
      }
    }
  } catch {
    return { run: NaN, wait: NaN };
  }
  return { run: run / 1e9, wait: wait / 1e9 };
}

export function cpuSeconds(pid: number | undefined): number {
  return schedSeconds(pid).run;
}

/** CPU seconds of a process's main thread only (for node: the JS thread; the rest is GC and compiler helpers, libuv). */
export function mainThreadSeconds(pid: number | undefined): number {
  try {
    return Number(readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').split(' ')[0]) / 1e9;
  } catch {
    return NaN;
  }
}

/** Host-wide CPU time by kind (/proc/stat first line), seconds. */
export function hostCpu(): { user: number; system: number; softirq: number; idle: number } {
  const v = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  return { user: (v[0]! + v[1]!) / 100, system: v[2]! / 100, idle: (v[3]! + v[4]!) / 100, softirq: (v[5]! + v[6]!) / 100 };
}

/** VmRSS and VmHWM of a process, MB. */
export function memoryMb(pid: number): { rss: number; peak: number } {
  const s = (k: string): number => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(readStatus(pid))?.[1] ?? NaN) / 1024;
  return { rss: s('VmRSS'), peak: s('VmHWM') };
}

/** MiB of a process's memory in transparent huge pages (/proc/PID/smaps_rollup AnonHugePages). */
export function hugePagesMb(pid: number): number {
  try {
    return Number(/^AnonHugePages:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? NaN) / 1024;
  } catch {
    return NaN;
  }
}

function readStatus(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return '';
  }
}
