/**
 * The PRR lab topology: the 2010 experiment's layout, with a third, unbound CPE (a spoofer),
 * shared by the PRR lab tests and the benchmarks.
 *
 *                                         lo 2001:db8:ffff::1 (tunnel endpoint, BR)
 *   inet 198.51.100.2/24 ── 198.51.100.1/24 prr ─┬─ 2001:db8:1::1/64 ── 2001:db8:1::2/64 cpe1  192.0.2.100:10000-11000
 *   (route 192.0.2.0/24 via the PRR)             ├─ 2001:db8:2::1/64 ── 2001:db8:2::2/64 cpe2  192.0.2.100:11001-12000
 *                                                └─ 2001:db8:3::1/64 ── 2001:db8:3::2/64 cpe3  no binding
 *
 * The PRR runs as `node dist/prr/cli.js run --config FILE` in `prr` (with IPv4 forwarding on);
 * its config is a prr.ini written into a private temporary directory, with a control socket
 * there too, so parallel test files never share one. CPEs are not SMAPs: each runs the test
 * driver (test/prr/fixtures/cpe-driver.mjs), a raw IPv6 next-header-4 socket that sends the
 * IPv4 packets the test built and reports every packet it receives. `inet` runs real servers
 * (test/prr/fixtures/inet-host.mjs: UDP echo 7, UDP sink 9, TCP 80).
 *
 * Everything is compiled JS run by child processes: `npx tsc -p .` first.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { controlRequest } from '../../prr/control.js';
import { Lab, waitFor, type ExecResult, type Host } from './lab.js';
import { distPath, REPO_ROOT } from './paths.js';

export const INET4 = '198.51.100.2';
export const PRR4 = '198.51.100.1';
export const SHARED4 = '192.0.2.100';
export const BR6 = '2001:db8:ffff::1';

export type CpeName = 'cpe1' | 'cpe2' | 'cpe3';
export interface CpeSpec {
  ipv6: string;
  /** The PRR's side of the CPE's link. */
  gw: string;
  /** The 2010 port range, or undefined for the unbound CPE. */
  ports: string | undefined;
}
export const CPES: Readonly<Record<CpeName, CpeSpec>> = {
  cpe1: { ipv6: '2001:db8:1::2', gw: '2001:db8:1::1', ports: '10000-11000' },
  cpe2: { ipv6: '2001:db8:2::2', gw: '2001:db8:2::1', ports: '11001-12000' },
  cpe3: { ipv6: '2001:db8:3::2', gw: '2001:db8:3::1', ports: undefined },
};

export const CLI = (): string => distPath('prr/cli.js');
export const CPE_DRIVER = join(REPO_ROOT, 'test/prr/fixtures/cpe-driver.mjs');
export const INET_HOST = join(REPO_ROOT, 'test/prr/fixtures/inet-host.mjs');

/** Why these tests cannot run from this tree (dist/ not built), or undefined. */
export function distMissingReason(): string | undefined {
  for (const f of ['prr/cli.js', 'common/native/index.js', 'common/codec/ipv4.js']) {
    if (!existsSync(distPath(f))) return `dist/${f} is missing: run \`npx tsc -p .\` first`;
  }
  return undefined;
}

/** A child process whose stdout is JSON lines (the fixtures), kept and searchable. */
export class JsonLines<T = Record<string, unknown>> {
  readonly items: T[] = [];
  stderr = '';
  private partial = '';
  constructor(
    readonly child: ChildProcess,
    readonly what: string,
  ) {
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      this.partial += d;
      let nl: number;
      while ((nl = this.partial.indexOf('\n')) >= 0) {
        const line = this.partial.slice(0, nl);
        this.partial = this.partial.slice(nl + 1);
        if (line.trim() === '') continue;
        try {
          this.items.push(JSON.parse(line) as T);
        } catch {
          this.stderr += `(not JSON on stdout) ${line}\n`;
        }
      }
    });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
  }

  /** Items matching `pred`. */
  filter(pred: (x: T) => boolean): T[] {
    return this.items.filter(pred);
  }

  /** The first item matching `pred`, waiting for it (throws after `timeoutMs`, or if the child died). */
  wait(pred: (x: T) => boolean, what: string, timeoutMs = 5000): Promise<T> {
    return waitFor(`${this.what}: ${what}`, () => {
      const hit = this.items.find(pred);
      if (hit !== undefined) return hit;
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(`${this.what} exited (${this.child.exitCode ?? this.child.signalCode}) while waiting for ${what}: ${this.stderr.trim()}`);
      }
      return undefined;
    }, timeoutMs, 10);
  }

  write(o: unknown): void {
    this.child.stdin?.write(JSON.stringify(o) + '\n');
  }
}

/** One packet a CPE driver received: outer IPv6 source/destination, inner IPv4 packet. */
export interface Received {
  src: string;
  dst: string;
  hex: string;
}

/** The test's hands in a CPE namespace. */
export class CpeDriver {
  private seq = 0;
  constructor(
    readonly host: Host,
    readonly lines: JsonLines<Record<string, unknown>>,
  ) {}

  /** Send one IPv4 packet through the tunnel (to the PRR's endpoint unless `dst`); resolves once the kernel took it. */
  async send(pkt: Buffer, dst = BR6): Promise<void> {
    const seq = ++this.seq;
    this.lines.write({ send: pkt.toString('hex'), dst });
    const r = await this.lines.wait((x) => x['seq'] === seq || (x['error'] !== undefined && !x['handled']), `send #${seq}`);
    if (r['error'] !== undefined) {
      r['handled'] = true;
      throw new Error(`${this.lines.what}: ${String(r['error'])}`);
    }
    if (r['sent'] !== 1) throw new Error(`${this.lines.what}: the kernel refused send #${seq}`);
  }

  /** Every packet received so far. */
  received(): Received[] {
    return this.lines.items.filter((x) => typeof x['hex'] === 'string') as unknown as Received[];
  }

  /** Packets received so far whose inner IPv4 packet matches. */
  matching(pred: (pkt: Buffer, r: Received) => boolean): Received[] {
    return this.received().filter((r) => pred(Buffer.from(r.hex, 'hex'), r));
  }

  /** Wait for a received packet whose inner IPv4 packet matches. */
  async receive(pred: (pkt: Buffer, r: Received) => boolean, what: string, timeoutMs = 5000): Promise<{ pkt: Buffer; outer: Received }> {
    const r = (await this.lines.wait(
      (x) => typeof x['hex'] === 'string' && pred(Buffer.from(x['hex'], 'hex'), x as unknown as Received),
      what,
      timeoutMs,
    )) as unknown as Received;
    return { pkt: Buffer.from(r.hex, 'hex'), outer: r };
  }
}

export interface InetEvent {
  udp?: number;
  tcp?: number;
  from?: string;
  port?: number;
  data?: string;
  sent?: number;
  to?: string;
  error?: string;
}

/** The Internet host's servers (UDP echo 7, UDP sink 9, TCP 80) and a UDP sender. */
export class InetServers {
  constructor(readonly lines: JsonLines<InetEvent>) {}

  /** Send one datagram from an ephemeral port; resolves once sent. */
  async sendto(addr: string, port: number, data: string): Promise<void> {
    const before = this.lines.items.length;
    this.lines.write({ sendto: addr, port, data });
    const r = await this.lines.wait((x) => this.lines.items.indexOf(x) >= before && (x.sent !== undefined || x.error !== undefined), `sendto ${addr}:${port}`);
    if (r.error !== undefined) throw new Error(`inet sendto ${addr}:${port}: ${r.error}`);
  }

  /** Datagrams the servers received (on port 7 or 9) carrying `data`. */
  got(data: string, port?: number): InetEvent[] {
    return this.lines.filter((x) => x.udp !== undefined && x.data === data && (port === undefined || x.udp === port));
  }
}

/** A running `prr run` in the PRR namespace. */
export class PrrProcess {
  out = '';
  err = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  constructor(
    readonly topo: PrrTopology,
    readonly child: ChildProcess,
    /** The control socket as seen from the test (under /proc/PID/root for a private /run). */
    public controlSocket: string,
  ) {
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (this.out += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (this.err += d));
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolves when the PRR printed "prr: running"; throws with its stderr when it exits first. */
  async ready(timeoutMs = 10_000): Promise<void> {
    await waitFor('prr: running', () => {
      if (!this.running) throw new Error(`prr exited (${this.child.exitCode ?? this.child.signalCode}): ${this.err.trim()}`);
      return this.out.includes('prr: running') ? true : undefined;
    }, timeoutMs, 20);
  }

  /** `prr subscribers ARGS --socket S` run in the PRR namespace, as an operator would. */
  subscribers(...args: string[]): Promise<ExecResult> {
    return this.topo.prr.exec(process.execPath, [CLI(), 'subscribers', ...args, '--socket', this.controlSocket], { timeoutMs: 20_000 });
  }

  /** `prr subscribers stats` (the CLI), parsed. */
  async stats(): Promise<PrrStats> {
    const r = await this.subscribers('stats');
    if (r.code !== 0) throw new Error(`prr subscribers stats: exit ${r.code}: ${r.stderr.trim()}`);
    return JSON.parse(r.stdout) as PrrStats;
  }

  /** The same counters straight over the control socket (cheap enough to poll). */
  async statsQuick(): Promise<PrrStats> {
    return (await controlRequest(this.controlSocket, { cmd: 'stats' })) as unknown as PrrStats;
  }

  /** Send `signal` and wait for the exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.running) this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** A running tcpdump: one line per packet (`-l -n -q`), bounded by the caller's waits. */
export class Capture {
  out = '';
  err = '';
  constructor(readonly child: ChildProcess) {
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (this.out += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (this.err += d));
  }
  lines(): string[] {
    return this.out.split('\n').filter((l) => l.trim() !== '');
  }
  /** The first captured line matching `re`. */
  wait(re: RegExp, what: string, timeoutMs = 5000): Promise<string> {
    return waitFor(`tcpdump: ${what}`, () => this.lines().find((l) => re.test(l)), timeoutMs, 10);
  }
  stop(): void {
    this.child.kill('SIGTERM');
  }
}

/** Start tcpdump on `dev` of `host` with a filter; resolves once it listens. */
export async function capture(host: Host, dev: string, filter: string): Promise<Capture> {
  const c = new Capture(host.spawn('tcpdump', ['-l', '-n', '-i', dev, filter], { stdio: ['ignore', 'pipe', 'pipe'] }));
  await waitFor(`tcpdump on ${host.short} ${dev}`, () => {
    if (c.child.exitCode !== null) throw new Error(`tcpdump exited ${c.child.exitCode}: ${c.err.trim()}`);
    return c.err.includes('listening on') ? true : undefined;
  });
  return c;
}

export interface PrrStats {
  ok: boolean;
  bindings: number;
  global: Record<string, number>;
  drops4: Record<string, number>;
  drops6: Record<string, number>;
}

export interface Subscriber {
  name: string;
  ipv6: string;
  ports: string;
  shared_ipv4?: string;
}

/** A prr.ini for this topology: the PRR's addresses, one pool (192.0.2.100), the given subscribers. */
export function prrIni(controlSocket: string, subscribers: Subscriber[], extra = ''): string {
  const subs = subscribers
    .map((s) => `[subscriber.${s.name}]\nipv6 = ${s.ipv6}\nshared_ipv4 = ${s.shared_ipv4 ?? SHARED4}\nports = ${s.ports}\n`)
    .join('\n');
  return `; written by test/lab/prr-topology.ts
[prr]
ipv4 = ${PRR4}
tunnel_ipv6 = ${BR6}
shared_ipv4 = ${SHARED4}
control_socket = ${controlSocket}
${extra}
${subs}`;
}

/** The 2010 layout's two subscribers. */
export const ORIGINAL_SUBSCRIBERS: Subscriber[] = [
  { name: 'cpe1', ipv6: CPES.cpe1.ipv6, ports: CPES.cpe1.ports! },
  { name: 'cpe2', ipv6: CPES.cpe2.ipv6, ports: CPES.cpe2.ports! },
];

export interface PrrTopology {
  lab: Lab;
  inet: Host;
  prr: Host;
  cpes: Record<CpeName, Host>;
  /** A private temporary directory (configs, the control socket); removed on destroy. */
  dir: string;
  /** The default control socket path, in `dir`. */
  controlSocket: string;
  /** Write a prr.ini (default: the 2010 layout) to `dir/prr.ini` and return its path. */
  writeConfig(subscribers?: Subscriber[], extra?: string): string;
  /** Start `prr run --config FILE`; `privateRun` mounts a private tmpfs on /run for it (configs that cannot name a control socket). */
  startPrr(config: string, opts?: { privateRun?: boolean; controlSocket?: string }): Promise<PrrProcess>;
  /** Start the CPE driver in a CPE namespace. */
  startDriver(cpe: CpeName): Promise<CpeDriver>;
  /** Start the Internet host's servers. */
  startInet(): Promise<InetServers>;
  destroy(): void;
}

/** Build the namespaces, links, addresses and routes (nothing running yet). */
export function buildPrrTopology(tag: string, opts: { linkMtu?: number } = {}): PrrTopology {
  const lab = Lab.create(tag);
  const dir = mkdtempSync(join(tmpdir(), `aplus-${tag}-`));
  const destroy = (): void => {
    lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const inet = lab.host('inet');
    const prr = lab.host('prr');
    const cpes = { cpe1: lab.host('cpe1'), cpe2: lab.host('cpe2'), cpe3: lab.host('cpe3') };
    lab.link(inet, prr, { a: [`${INET4}/24`], b: [`${PRR4}/24`], mtu: opts.linkMtu });
    inet.route('192.0.2.0/24', { gw: PRR4 });
    // Every ICMP error the Internet host sends must go out (the kernel limits them per destination).
    inet.sysctl('net.ipv4.icmp_ratelimit', 0);
    prr.addAddress('lo', `${BR6}/128`);
    prr.forwarding();
    // Loose reverse-path filtering on new devices (prr0), as distributions set it (systemd's
    // 50-default.conf): the PRR must still get the ICMP errors it makes out of its TUN.
    prr.sysctl('net.ipv4.conf.default.rp_filter', 2);
    for (const name of ['cpe1', 'cpe2', 'cpe3'] as const) {
      const spec = CPES[name];
      lab.link(prr, cpes[name], { a: [`${spec.gw}/64`], b: [`${spec.ipv6}/64`], mtu: opts.linkMtu });
      cpes[name].route(`${BR6}/128`, { gw: spec.gw });
    }
    const controlSocket = join(dir, 'control.sock');
    const topo: PrrTopology = {
      lab,
      inet,
      prr,
      cpes,
      dir,
      controlSocket,
      destroy,
      writeConfig(subscribers = ORIGINAL_SUBSCRIBERS, extra = '') {
        const file = join(dir, 'prr.ini');
        writeFileSync(file, prrIni(controlSocket, subscribers, extra));
        return file;
      },
      async startPrr(config, o = {}) {
        const args = [CLI(), 'run', '--config', config];
        let child: ChildProcess;
        if (o.privateRun === true) {
          // A mount namespace of its own with an empty /run: /run/prr/control.sock is private.
          child = prr.spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', 'mount -t tmpfs aplus-run /run && exec "$@"', 'sh', process.execPath, ...args], {
            stdio: ['ignore', 'pipe', 'pipe'],
          });
        } else {
          child = prr.spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
        }
        const p = new PrrProcess(topo, child, o.controlSocket ?? controlSocket);
        // With a private /run, the test reaches the socket through the PRR's own mount namespace.
        if (o.privateRun === true) p.controlSocket = `/proc/${p.pid}/root${o.controlSocket ?? '/run/prr/control.sock'}`;
        await p.ready();
        return p;
      },
      async startDriver(cpe) {
        const host = cpes[cpe];
        const child = host.spawn(process.execPath, [CPE_DRIVER, '--bind', CPES[cpe].ipv6], { stdio: ['pipe', 'pipe', 'pipe'] });
        const lines = new JsonLines<Record<string, unknown>>(child, `${cpe} driver`);
        await lines.wait((x) => x['ready'] !== undefined, 'ready');
        return new CpeDriver(host, lines);
      },
      async startInet() {
        const child = inet.spawn(process.execPath, [INET_HOST], { stdio: ['pipe', 'pipe', 'pipe'] });
        const lines = new JsonLines<InetEvent>(child, 'inet');
        await lines.wait((x) => (x as { ready?: boolean }).ready === true, 'servers listening');
        return new InetServers(lines);
      },
    };
    return topo;
  } catch (err) {
    destroy();
    throw err;
  }
}
