/**
 * The lab: network namespaces, veth links, addresses, routes and per-link MTU on one Linux host.
 *
 * Every namespace a Lab makes is named `ap-<tag>-<pid>-<host>`, so test files running in
 * parallel never collide, and a later run can sweep what a killed run left behind. Everything
 * is removed on `destroy()`, on process exit, on an uncaught failure and on SIGINT/SIGTERM.
 * Processes started with `Host.spawn` are killed before their namespace goes.
 *
 * "Public" addresses must come from the documentation prefixes (RFC 5737, RFC 3849); LANs may
 * use 192.168.0.0/16. Anything else is refused, so lab traffic can never look like the Internet.
 */
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { LabError } from '../../common/errors.js';

const NETNS_DIR = '/run/netns';
const PREFIX = 'ap-';

const ALLOWED_V4: Array<[number, number]> = [
  [0xc0000200, 24], // 192.0.2.0/24    TEST-NET-1
  [0xc6336400, 24], // 198.51.100.0/24 TEST-NET-2
  [0xcb007100, 24], // 203.0.113.0/24  TEST-NET-3
  [0xc0a80000, 16], // 192.168.0.0/16  LANs, as the original experiment used
];

function v4ToNumber(s: string): number {
  const p = s.split('.');
  if (p.length !== 4) return -1;
  let n = 0;
  for (const o of p) {
    if (!/^\d{1,3}$/.test(o) || Number(o) > 255) return -1;
    n = n * 256 + Number(o);
  }
  return n;
}

/** True when an address (with or without /len) may be used in the lab. */
export function isLabAddress(cidr: string): boolean {
  const addr = cidr.split('/')[0]!.toLowerCase();
  if (addr.includes(':')) {
    return addr.startsWith('2001:db8:') || addr.startsWith('2001:0db8:') || /^fe[89ab][0-9a-f]:/.test(addr);
  }
  const n = v4ToNumber(addr);
  if (n < 0) return false;
  return ALLOWED_V4.some(([net, len]) => Math.floor(n / 2 ** (32 - len)) === Math.floor(net / 2 ** (32 - len)));
}

function checkAddress(cidr: string, where: string): void {
  if (!isLabAddress(cidr)) {
    throw new LabError(
      `lab: ${where}: address ${cidr} is outside the documentation prefixes ` +
        '(192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) and LAN 192.168.0.0/16',
    );
  }
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** Why lab tests cannot run here, or undefined when they can. */
export function labUnavailableReason(): string | undefined {
  if (!isRoot()) return 'lab tests need root (network namespaces, TUN, raw sockets); run as root, as CI does';
  if (!existsSync('/dev/net/tun')) return 'lab tests need /dev/net/tun';
  return undefined;
}

function sh(cmd: string, args: string[], input?: string): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], input });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    const detail = (e.stderr ?? e.message).trim().split('\n')[0];
    throw new LabError(`lab: ${cmd} ${args.join(' ')}: ${detail}`);
  }
}

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** One namespace: a host, router, CPE or PRR of the lab. */
export class Host {
  readonly procs = new Set<ChildProcess>();
  constructor(
    readonly lab: Lab,
    readonly name: string, // full netns name
    readonly short: string,
  ) {}

  /** Run a command in this namespace and return stdout; throws LabError on failure. */
  run(cmd: string, ...args: string[]): string {
    return sh('ip', ['netns', 'exec', this.name, cmd, ...args]);
  }

  /** Run a command in this namespace, resolving with its exit code and output (never rejects). */
  exec(cmd: string, args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<ExecResult> {
    return new Promise((resolve) => {
      const child = this.spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
      child.on('error', (err) => {
        clearTimeout(timer);
        resolve({ code: -1, stdout, stderr: stderr + String(err) });
      });
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
      if (opts.input !== undefined) child.stdin?.end(opts.input);
      else child.stdin?.end();
    });
  }

  /** Start a long-running process in this namespace; it is killed when the lab is destroyed. */
  spawn(cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.name, cmd, ...args], { stdio: 'ignore', ...opts });
    this.procs.add(child);
    child.on('exit', () => this.procs.delete(child));
    return child;
  }

  /** Add an address to a device (`nodad` for IPv6, so it is usable at once). */
  addAddress(dev: string, cidr: string): void {
    checkAddress(cidr, `${this.short} ${dev}`);
    const v6 = cidr.includes(':');
    this.run('ip', ...(v6 ? ['-6'] : []), 'addr', 'add', cidr, 'dev', dev, ...(v6 ? ['nodad'] : []));
  }

  /** `ip route replace DEST via GW` (or `dev DEV`), with an optional route MTU. */
  route(dest: string, via: { gw?: string; dev?: string; mtu?: number; src?: string }): void {
    const v6 = dest.includes(':') || (via.gw ?? '').includes(':');
    const args = [...(v6 ? ['-6'] : []), 'route', 'replace', dest];
    if (via.gw !== undefined) args.push('via', via.gw);
    if (via.dev !== undefined) args.push('dev', via.dev);
    if (via.src !== undefined) args.push('src', via.src);
    if (via.mtu !== undefined) args.push('mtu', String(via.mtu));
    this.run('ip', ...args);
  }

  sysctl(key: string, value: string | number): void {
    this.run('sysctl', '-qw', `${key}=${value}`);
  }

  /** Make this namespace forward IPv4 and IPv6 (a router). */
  forwarding(on = true): void {
    this.sysctl('net.ipv4.ip_forward', on ? 1 : 0);
    this.sysctl('net.ipv6.conf.all.forwarding', on ? 1 : 0);
  }

  setMtu(dev: string, mtu: number): void {
    this.run('ip', 'link', 'set', 'dev', dev, 'mtu', String(mtu));
  }

  killAll(): void {
    for (const p of this.procs) p.kill('SIGKILL');
    let pids = '';
    try {
      pids = execFileSync('ip', ['netns', 'pids', this.name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    } catch {
      return;
    }
    for (const pid of pids.split(/\s+/).filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
}

export interface LinkOptions {
  /** Device name on side a and b (default: `eth-<peer>`, cut to 15 characters). */
  aDev?: string;
  bDev?: string;
  /** Addresses (CIDR) for each side; IPv6 gets `nodad`. */
  a?: string[];
  b?: string[];
  /** MTU of both ends of the link (default 1500). */
  mtu?: number;
}

export interface Link {
  aDev: string;
  bDev: string;
}

const live = new Set<Lab>();
let hooked = false;

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    for (const lab of live) lab.destroy();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      for (const lab of live) lab.destroy();
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  }
}

export class Lab {
  readonly hosts = new Map<string, Host>();
  private destroyed = false;

  private constructor(readonly prefix: string) {}

  /** A new, empty lab whose namespace names carry `tag` (use one tag per test file). */
  static create(tag: string): Lab {
    const reason = labUnavailableReason();
    if (reason !== undefined) throw new LabError(reason);
    if (!/^[a-z0-9]{1,12}$/.test(tag)) throw new LabError(`lab: tag "${tag}" must be 1-12 characters a-z0-9`);
    Lab.sweep();
    const lab = new Lab(`${PREFIX}${tag}-${process.pid}-`);
    live.add(lab);
    hookExit();
    return lab;
  }

  /** Remove namespaces left by lab processes that no longer run (a killed earlier run). */
  static sweep(): void {
    if (!existsSync(NETNS_DIR)) return;
    for (const name of readdirSync(NETNS_DIR)) {
      const m = /^ap-[a-z0-9]+-(\d+)-/.exec(name);
      if (m === null) continue;
      const pid = Number(m[1]);
      if (pid === process.pid || pidAlive(pid)) continue;
      try {
        execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
      } catch {
        /* raced with another sweeper */
      }
    }
  }

  /** Create (or return) the namespace for host `short`, with loopback up. */
  host(short: string): Host {
    const existing = this.hosts.get(short);
    if (existing !== undefined) return existing;
    if (!/^[a-z0-9]{1,16}$/.test(short)) throw new LabError(`lab: host name "${short}" must be 1-16 characters a-z0-9`);
    const h = new Host(this, this.prefix + short, short);
    sh('ip', ['netns', 'add', h.name]);
    this.hosts.set(short, h);
    h.run('ip', 'link', 'set', 'lo', 'up');
    // Addresses and routes appear at once; a router's RA is not needed unless a test wants it.
    h.sysctl('net.ipv6.conf.all.accept_dad', 0);
    h.sysctl('net.ipv6.conf.default.accept_dad', 0);
    return h;
  }

  /** A veth pair between two hosts, both ends up, with addresses and MTU. */
  link(a: Host, b: Host, opts: LinkOptions = {}): Link {
    const aDev = (opts.aDev ?? `eth-${b.short}`).slice(0, 15);
    const bDev = (opts.bDev ?? `eth-${a.short}`).slice(0, 15);
    for (const c of opts.a ?? []) checkAddress(c, `${a.short} ${aDev}`);
    for (const c of opts.b ?? []) checkAddress(c, `${b.short} ${bDev}`);
    sh('ip', ['link', 'add', 'name', aDev, 'netns', a.name, 'type', 'veth', 'peer', 'name', bDev, 'netns', b.name]);
    const mtu = String(opts.mtu ?? 1500);
    a.run('ip', 'link', 'set', 'dev', aDev, 'mtu', mtu, 'up');
    b.run('ip', 'link', 'set', 'dev', bDev, 'mtu', mtu, 'up');
    for (const c of opts.a ?? []) a.addAddress(aDev, c);
    for (const c of opts.b ?? []) b.addAddress(bDev, c);
    return { aDev, bDev };
  }

  /** Kill every process and delete every namespace of this lab. Safe to call twice. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    live.delete(this);
    for (const h of this.hosts.values()) h.killAll();
    for (const h of this.hosts.values()) {
      try {
        execFileSync('ip', ['netns', 'del', h.name], { stdio: 'ignore' });
      } catch {
        /* already gone */
      }
    }
    this.hosts.clear();
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Poll `check` every `everyMs` until it returns a value other than undefined, or time out. */
export async function waitFor<T>(what: string, check: () => T | undefined | Promise<T | undefined>, timeoutMs = 10_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new LabError(`lab: timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
