/**
 * The SMAP end-to-end topology: two (or more) CPEs, each with a LAN host, share one IPv4 address
 * through the real PRR. All LANs use OpenWrt's 192.168.1.0/24, as real customers would.
 *
 *   lan1 192.168.1.2 ── 192.168.1.1 cpe1 (smap) 2001:db8:1::2 ──┐
 *                                                               prr (BR 2001:db8:ffff::1)  198.51.100.1 ── 198.51.100.2 inet
 *   lan2 192.168.1.2 ── 192.168.1.1 cpe2 (smap) 2001:db8:2::2 ──┘      shared 192.0.2.100           HTTP, DNS (dnsmasq),
 *                                                                                                    TCP hold/echo, iperf3
 * The PRR is the CPEs' IPv6 router too (each CPE's WAN link ends on it). Each CPE's LAN runs
 * dnsmasq (DHCP only) with the snippet its agent writes (option 26 = the tunnel MTU).
 *
 * With `{ far: true }`, a router beyond the PRR and a host behind it (for traceroute):
 *   prr 203.0.113.1/30 ── 203.0.113.2 rtr 203.0.113.129/25 ── 203.0.113.130 far
 *
 * With `{ core: true }` an IPv6 core router stands between the CPEs and the PRR, as in an ISP, and
 * the CPEs' WAN addresses come from SLAAC: radvd on the core advertises 2001:db8:N::/64 on CPE N's
 * link (the agent learns the address from its WAN interface, as on OpenWrt). A CPE whose spec has
 * `pathMtu` hangs off its own access router `aggN` instead, linked to the core with that MTU: its
 * own link is 1500, the path to the PRR narrower (the 1280-byte path of the 2010 experiment).
 *
 *   lanN ── cpeN (SLAAC on wan) ── core (radvd) ── prr 2001:db8:f0::2 (BR 2001:db8:ffff::1)
 *   lan3 ── cpe3 ── agg3 (radvd) ══1280══ core
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lab, waitFor, type Host } from './lab.js';
import { distPath } from './paths.js';
import { generateEd25519 } from '../../provisioning/keys.js';
import { wrapCommand, type RunAs } from './unprivileged.js';

export const SHARED = '192.0.2.100';
export const INET = '198.51.100.2';
export const BR = '2001:db8:ffff::1';
export const LAN_HOST = '192.168.1.2';

/** HTTP on 80 (`/` answers "addr:port" of the client, `/peers?port=P` lists the open connections
 * of hold port P as JSON, `/udp-peers` the sources seen by the UDP echo on 7007, `/blast?port=P&n=N`
 * sends N datagrams from 7007 to the shared address, port P), TCP hold-and-echo servers on the
 * ports given as arguments. */
export const INET_SERVERS = `
const net = require('net'), http = require('http'), dgram = require('dgram');
const peers = new Map();
const udpPeers = [];
const udp = dgram.createSocket('udp4');
udp.on('message', (m, r) => { udpPeers.push({ addr: r.address, port: r.port }); udp.send(m, r.port, r.address); });
udp.bind(7007, '${INET}');
for (const p of process.argv.slice(1).map(Number)) {
  const open = new Set(); peers.set(p, open);
  net.createServer((s) => {
    const who = { addr: s.remoteAddress, port: s.remotePort };
    open.add(who); s.on('close', () => open.delete(who)); s.on('error', () => {});
    s.on('data', (d) => s.write(d));
  }).listen(p, '${INET}');
}
http.createServer((q, r) => {
  const u = new URL(q.url, 'http://x');
  if (u.pathname === '/udp-peers') return r.end(JSON.stringify(udpPeers));
  if (u.pathname === '/blast') {
    const n = Number(u.searchParams.get('n')), port = Number(u.searchParams.get('port'));
    for (let i = 0; i < n; i++) udp.send('blast', port, '${SHARED}');
    return r.end('sent\\n');
  }
  if (u.pathname === '/peers') return r.end(JSON.stringify([...(peers.get(Number(u.searchParams.get('port'))) ?? [])]));
  if (u.pathname === '/bytes') return r.end(Buffer.alloc(Math.min(Number(u.searchParams.get('n')) || 0, 1e7), 120));
  r.end(q.socket.remoteAddress + ':' + q.socket.remotePort + '\\n');
}).listen(80, '${INET}', () => console.log('ready'));`;

/** Opens argv[2] connections to argv[1]:argv[3] (plus argv[4] more, one at a time, after all
 * the first ones are up), then echoes a line on each of the first ones; prints one JSON line,
 * then holds everything open until stdin ends. */
export const HOLD_CLIENT = `
const net = require('net');
const [host, n, port, extra] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3]), Number(process.argv[4] ?? 0)];
const open = (timeout) => new Promise((res) => {
  const s = net.connect({ host, port, timeout });
  s.once('connect', () => { s.setTimeout(0); res({ s, ok: 'ok' }); });
  s.once('timeout', () => { s.destroy(); res({ s, ok: 'timeout' }); });
  s.once('error', (e) => res({ s, ok: e.code }));
});
const echo = (s) => new Promise((res) => {
  const t = setTimeout(() => res(false), 5000);
  s.once('data', (d) => { clearTimeout(t); res(d.toString() === 'ping\\n'); });
  s.write('ping\\n');
});
(async () => {
  const first = await Promise.all(Array.from({ length: n }, () => open(10000)));
  const more = [];
  for (let i = 0; i < extra; i++) more.push(await open(3000));
  const echoed = await Promise.all(first.filter((c) => c.ok === 'ok').map((c) => echo(c.s)));
  console.log(JSON.stringify({ connected: first.filter((c) => c.ok === 'ok').length, failed: first.filter((c) => c.ok !== 'ok').map((c) => c.ok),
    extra: more.map((c) => c.ok), echoed: echoed.filter(Boolean).length }));
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
})();`;

/** Binds a UDP port, sends one datagram to the echo server (argv[1]:7007), prints "got N" at
 * each datagram received, and "received N" when stdin ends. */
export const UDP_CLIENT = `
const s = require('dgram').createSocket('udp4');
let got = 0;
s.on('message', () => console.log('got ' + ++got));
s.bind(4000, () => s.send('hi', 7007, process.argv[1]));
process.stdin.resume();
process.stdin.on('end', () => { console.log('received ' + got); process.exit(0); });`;

export interface CpeSpec {
  ports: string;
  /** Give the WAN its address only when the test says so (`addWan`): the agent waits for it. */
  wanLater?: boolean;
  /** Take the binding from the PRR by SSH registration ([registration] instead of [static]; `ports`
   * is then unused): the CPE's key is pre-generated and authorized on the PRR, the PRR's host key
   * pinned (or `fingerprint` pinned instead, to test a mismatch). */
  register?: { fingerprint?: string };
  /** With `core`: the MTU of a link further along the path to the PRR (the CPE's access router
   * to the core); the CPE's own link stays 1500. */
  pathMtu?: number;
  /** `[tunnel] offload` of the agent (default: unset, i.e. auto). */
  offload?: 'auto' | 'off';
}

export interface SmapLabOptions {
  /** An IPv6 core router with radvd between the CPEs and the PRR; WAN addresses by SLAAC. */
  core?: boolean;
  /** Lines appended to prr.ini (e.g. an `[external]` section with a rate limit). */
  prrIni?: string[];
  /** Add the router `rtr` and the host `far` beyond the PRR (see the diagram above). */
  far?: boolean;
  /** Run the PRR and the agents as this user with only these capabilities (test/lab/unprivileged.ts);
   * the lab's directory is handed to that user first. Default: root. */
  runAs?: RunAs;
}

export const FAR = '203.0.113.130';
export const FAR_ROUTER = '203.0.113.2';

export interface Cpe {
  host: Host;
  lan: Host;
  /** The WAN address (with `core`, the SLAAC address, known once the RA arrived). */
  wan6: string;
  config: string;
  agent: ChildProcess | undefined;
  /** Everything the agent printed on stderr (its log). */
  log(): string;
}

export interface SmapLab {
  lab: Lab;
  dir: string;
  prr: Host;
  inet: Host;
  cpes: [Cpe, Cpe, ...Cpe[]];
  /** With `core`: the core router. */
  core?: Host;
  prrConfig: string;
  /** With `far`: the router beyond the PRR, and the host behind it. */
  rtr?: Host;
  far?: Host;
  /** With a registering CPE: the PRR's host key fingerprint, and the registration port set size. */
  registration?: { hostKeyFingerprint: string; defaultPorts: number };
  /** Stop the PRR (SIGTERM, waiting for it to exit) and start it again with the same config. */
  restartPrr(): Promise<void>;
  /** Start a CPE's agent (not waiting for it): `script` is its entry, dist/smap/cli.js unless
   * given (a bundle's smap.mjs, provisioning/bundle.ts). */
  startAgent(cpe: Cpe, script?: string): void;
  /** Resolves when the CPE's agent has printed `smap: running`. */
  agentRunning(cpe: Cpe): Promise<void>;
  /** Start dnsmasq (DHCP only) on the CPE's LAN with the snippet its agent wrote. */
  startDhcp(cpe: Cpe): Promise<void>;
  /** Add the CPE's WAN address (for `wanLater`). */
  addWan(cpe: Cpe): void;
  /** Run a built CLI (`prr` or `smap`) in a host. */
  cli(h: Host, which: 'prr' | 'smap', args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }>;
  destroy(): void;
}

export function collect(child: ChildProcess): () => string {
  let out = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (out += d));
  return () => out;
}

export async function started(what: string, child: ChildProcess, output: () => string, marker: string, timeoutMs = 20_000): Promise<void> {
  await waitFor(what, () => {
    if (child.exitCode !== null) throw new Error(`${what} exited ${child.exitCode}: ${output().trim().split('\n').slice(-3).join(' | ')}`);
    return output().includes(marker) ? true : undefined;
  }, timeoutMs);
}

/** The router and host beyond the PRR. Their ICMP is not rate limited: traceroute sends its probes at once. */
function farNet(lab: Lab, prr: Host): { rtr: Host; far: Host } {
  const rtr = lab.host('rtr');
  const far = lab.host('far');
  lab.link(prr, rtr, { aDev: 'rtr', bDev: 'prr', a: ['203.0.113.1/30'], b: [`${FAR_ROUTER}/30`] });
  lab.link(rtr, far, { aDev: 'far', bDev: 'eth0', a: ['203.0.113.129/25'], b: [`${FAR}/25`] });
  prr.route('203.0.113.128/25', { gw: FAR_ROUTER });
  rtr.route('default', { gw: '203.0.113.1' });
  far.route('default', { gw: '203.0.113.129' });
  rtr.forwarding();
  for (const h of [rtr, far]) h.sysctl('net.ipv4.icmp_ratelimit', 0);
  return { rtr, far };
}

/** The radvd.conf advertising `prefix` on `dev`, quickly (a lab does not wait minutes). */
function radvdConf(dev: string, prefix: string): string {
  return `interface ${dev} {\n  AdvSendAdvert on;\n  MinRtrAdvInterval 3;\n  MaxRtrAdvInterval 4;\n  AdvDefaultLifetime 1800;\n` +
    `  prefix ${prefix} {\n    AdvOnLink on;\n    AdvAutonomous on;\n  };\n};\n`;
}

/** Start radvd in `router` for `dev` (config and pid file in `dir`); killed with the lab. */
async function startRadvd(router: Host, dir: string, dev: string, prefix: string): Promise<void> {
  const conf = join(dir, `radvd-${router.short}-${dev}.conf`);
  writeFileSync(conf, radvdConf(dev, prefix));
  const child = router.spawn('radvd', ['-n', '-m', 'stderr', '-C', conf, '-p', join(dir, `radvd-${router.short}-${dev}.pid`)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const out = collect(child);
  await new Promise((r) => setTimeout(r, 300));
  if (child.exitCode !== null) throw new Error(`radvd in ${router.short} exited ${child.exitCode}: ${out().trim().split('\n').slice(-2).join(' | ')}`);
}

/** The first global, non-tentative IPv6 address of `dev` in `h` (SLAAC), waited for. */
async function slaacAddress(h: Host, dev: string): Promise<string> {
  return waitFor(`SLAAC address on ${h.short} ${dev}`, () => {
    const j = JSON.parse(h.run('ip', '-j', '-6', 'addr', 'show', 'dev', dev, 'scope', 'global')) as Array<{ addr_info?: Array<{ local?: string; tentative?: boolean }> }>;
    return j.flatMap((l) => l.addr_info ?? []).find((a) => a.local !== undefined && a.tentative !== true)?.local;
  }, 30_000, 200);
}

/** A lab, a scratch directory, and one function that removes both. */
export function labWithDir(tag: string): { lab: Lab; dir: string; destroy: () => void } {
  const lab = Lab.create(tag);
  const dir = mkdtempSync(join(tmpdir(), `aplus-${tag}-`));
  return {
    lab,
    dir,
    destroy(): void {
      lab.destroy();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The PRR (198.51.100.1, BR on loopback, forwarding) and the Internet host beside it. */
export function prrAndInet(lab: Lab): { prr: Host; inet: Host } {
  const prr = lab.host('prr');
  const inet = lab.host('inet');
  lab.link(prr, inet, { aDev: 'inet', bDev: 'eth0', a: ['198.51.100.1/24'], b: [`${INET}/24`] });
  inet.route('192.0.2.0/24', { gw: '198.51.100.1' });
  prr.addAddress('lo', `${BR}/128`);
  prr.forwarding();
  return { prr, inet };
}

export async function buildSmapLab(tag: string, specs: readonly [CpeSpec, CpeSpec, ...CpeSpec[]], opts: SmapLabOptions = {}): Promise<SmapLab> {
  const { lab, dir, destroy } = labWithDir(tag);
  try {
    const { prr, inet } = prrAndInet(lab);
    const beyond = opts.far === true ? farNet(lab, prr) : {};
    let core: Host | undefined;
    if (opts.core === true) {
      core = lab.host('core');
      core.forwarding();
      lab.link(core, prr, { aDev: 'prr', bDev: 'core', a: ['2001:db8:f0::1/64'], b: ['2001:db8:f0::2/64'] });
      prr.route('::/0', { gw: '2001:db8:f0::1' });
      core.route(`${BR}/128`, { gw: '2001:db8:f0::2' });
    }
    const radvds: Array<[Host, string, string]> = [];

    const registering = specs.some((s) => s.register !== undefined);
    const hostKey = registering ? generateEd25519('prr-host') : undefined;
    const REG_PORTS = 500;
    const authorized: string[] = [];
    const cpes = specs.map((spec, i) => {
      const n = i + 1;
      const host = lab.host(`cpe${n}`);
      const lan = lab.host(`lan${n}`);
      const wan6 = `2001:db8:${n}::2`;
      if (spec.pathMtu !== undefined && core === undefined) throw new Error(`cpe${n}: pathMtu needs the core router ({ core: true })`);
      if (core !== undefined) {
        // SLAAC: the WAN takes its address and default route from the router's RA.
        host.sysctl('net.ipv6.conf.default.accept_ra', 2);
        host.sysctl('net.ipv6.conf.default.autoconf', 1);
        host.sysctl('net.ipv6.conf.default.addr_gen_mode', 0);
        let router = core;
        if (spec.pathMtu !== undefined) {
          router = lab.host(`agg${n}`);
          router.forwarding();
          lab.link(router, core, { aDev: 'core', bDev: `agg${n}`, a: [`2001:db8:f${n}::2/64`], b: [`2001:db8:f${n}::1/64`], mtu: spec.pathMtu });
          router.route('::/0', { gw: `2001:db8:f${n}::1` });
          core.route(`2001:db8:${n}::/64`, { gw: `2001:db8:f${n}::2` });
        }
        lab.link(host, router, { aDev: 'wan', bDev: `cpe${n}`, b: [`2001:db8:${n}::1/64`] });
        radvds.push([router, `cpe${n}`, `2001:db8:${n}::/64`]);
      } else {
        lab.link(host, prr, { aDev: 'wan', bDev: `cpe${n}`, b: [`2001:db8:${n}::1/64`] });
        if (spec.wanLater !== true) host.addAddress('wan', `${wan6}/64`);
        // onlink: the route holds before the WAN has an address (as a route learnt from an RA would).
        host.run('ip', '-6', 'route', 'replace', '::/0', 'via', `2001:db8:${n}::1`, 'dev', 'wan', 'onlink');
      }
      lab.link(lan, host, { aDev: 'eth0', bDev: 'lan', a: [`${LAN_HOST}/24`], b: ['192.168.1.1/24'] });
      lan.route('default', { gw: '192.168.1.1' });
      host.sysctl('net.ipv4.ip_forward', 1);
      const config = join(dir, `cpe${n}.ini`);
      writeFileSync(config, [
        '[smap]', 'wan_interface = wan', 'lan_interface = lan', 'lan_prefix = 192.168.1.0/24', `control_socket = ${join(dir, `cpe${n}.sock`)}`,
        '[tunnel]', 'mtu = auto', `dnsmasq_snippet = ${join(dir, `cpe${n}-dnsmasq.conf`)}`,
        ...(spec.offload !== undefined ? [`offload = ${spec.offload}`] : []),
        ...(spec.register === undefined
          ? ['[static]', `shared_ipv4 = ${SHARED}`, `ports = ${spec.ports}`, `prr_ipv6 = ${BR}`]
          : (() => {
              const key = generateEd25519(`cpe${n}`);
              const keyFile = join(dir, `cpe${n}_key`);
              writeFileSync(keyFile, key.private, { mode: 0o600 });
              writeFileSync(`${keyFile}.pub`, `${key.public}\n`);
              authorized.push(`name=cpe${n} ${key.public}`);
              return ['[registration]', `prr_host = ${BR}`, 'prr_port = 2222', `host_key_fingerprint = ${spec.register.fingerprint ?? hostKey!.fingerprint}`, `key_file = ${keyFile}`];
            })()),
        '[metrics]', 'enabled = false', '',
      ].join('\n'));
      return { host, lan, wan6, config, agent: undefined as ChildProcess | undefined, log: () => '' };
    }) as unknown as [Cpe, Cpe, ...Cpe[]];
    for (const [router, dev, prefix] of radvds) await startRadvd(router, dir, dev, prefix);
    if (core !== undefined) for (const cpe of cpes) cpe.wan6 = await slaacAddress(cpe.host, 'wan');

    const prrConfig = join(dir, 'prr.ini');
    writeFileSync(prrConfig, [
      '[prr]', 'ipv4 = 198.51.100.1', `tunnel_ipv6 = ${BR}`, `shared_ipv4 = ${SHARED}`, `control_socket = ${join(dir, 'prr.sock')}`,
      '[metrics]', 'enabled = false',
      ...(hostKey === undefined
        ? []
        : (() => {
            writeFileSync(join(dir, 'host_key'), hostKey.private, { mode: 0o600 });
            writeFileSync(join(dir, 'authorized_keys'), authorized.map((l) => `${l}\n`).join(''));
            return ['[registration]', 'enabled = true', `listen = [${BR}]:2222`, `host_key = ${join(dir, 'host_key')}`, `authorized_keys = ${join(dir, 'authorized_keys')}`,
              `database = ${join(dir, 'registrations.db')}`, `default_ports = ${REG_PORTS}`];
          })()),
      ...specs.flatMap((s, i) => s.register !== undefined ? [] : [`[subscriber.cpe${i + 1}]`, `ipv6 = ${cpes[i]!.wan6}`, `shared_ipv4 = ${SHARED}`, `ports = ${s.ports}`]),
      ...(opts.prrIni ?? []),
      '',
    ].join('\n'));
    if (opts.runAs !== undefined) execFileSync('chown', ['-R', `${opts.runAs.uid}:${opts.runAs.gid}`, dir]);
    const daemon = (h: Host, which: 'prr' | 'smap', config: string, script?: string): ChildProcess =>
      h.spawn(...wrapCommand(opts.runAs, process.execPath, [script ?? distPath(`${which}/cli.js`), 'run', '--config', config]), { stdio: ['ignore', 'pipe', 'pipe'] });
    const startPrr = async (): Promise<ChildProcess> => {
      const child = daemon(prr, 'prr', prrConfig);
      await started('prr', child, collect(child), 'prr: running');
      return child;
    };
    let prrd = await startPrr();

    const servers = inet.spawn(process.execPath, ['-e', INET_SERVERS, '7000', '7001', '7002'], { stdio: ['ignore', 'pipe', 'pipe'] });
    await started('Internet servers', servers, collect(servers), 'ready');
    const dnsmasq = inet.spawn('dnsmasq', ['-k', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', `--listen-address=${INET}`, '--bind-interfaces',
      '--address=/www.example.test/198.51.100.2', `--pid-file=${join(dir, 'dns.pid')}`, '--user=root', '--log-facility=-'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const dnsOut = collect(dnsmasq);
    await waitFor('dnsmasq resolver', () => {
      if (dnsmasq.exitCode !== null) throw new Error(`dnsmasq exited ${dnsmasq.exitCode}: ${dnsOut().trim()}`);
      return inet.run('ss', '-lunH', 'sport = :53').trim() !== '' ? true : undefined;
    });

    const cli = (h: Host, which: 'prr' | 'smap', args: string[]): ReturnType<Host['exec']> =>
      h.exec(process.execPath, [distPath(`${which}/cli.js`), ...args], { timeoutMs: 30_000 });

    return {
      lab,
      dir,
      prr,
      inet,
      cpes,
      ...(core === undefined ? {} : { core }),
      prrConfig,
      ...beyond,
      ...(hostKey === undefined ? {} : { registration: { hostKeyFingerprint: hostKey.fingerprint, defaultPorts: REG_PORTS } }),
      cli,
      async restartPrr() {
        const old = prrd;
        const exited = new Promise<void>((resolve) => (old.exitCode !== null ? resolve() : old.once('exit', () => resolve())));
        old.kill('SIGTERM');
        await exited;
        prrd = await startPrr();
      },
      addWan: (cpe) => cpe.host.addAddress('wan', `${cpe.wan6}/64`),
      startAgent(cpe, script) {
        const child = daemon(cpe.host, 'smap', cpe.config, script);
        cpe.agent = child;
        cpe.log = collect(child);
      },
      agentRunning: (cpe) => started(`smap in ${cpe.host.short}`, cpe.agent!, cpe.log, 'smap: running'),
      async startDhcp(cpe) {
        const n = cpe.host.short.slice(3);
        const d = cpe.host.spawn('dnsmasq', ['-k', '--port=0', `--conf-file=${join(dir, `cpe${n}-dnsmasq.conf`)}`, '--interface=lan', '--bind-interfaces',
          '--dhcp-range=192.168.1.100,192.168.1.150,1h', `--dhcp-leasefile=${join(dir, `cpe${n}.leases`)}`, `--pid-file=${join(dir, `cpe${n}-dhcp.pid`)}`, '--user=root', '--log-facility=-'],
          { stdio: ['ignore', 'pipe', 'pipe'] });
        const dOut = collect(d);
        await waitFor(`dnsmasq DHCP in cpe${n}`, () => {
          if (d.exitCode !== null) throw new Error(`dnsmasq in cpe${n} exited ${d.exitCode}: ${dOut().trim()}`);
          return cpe.host.run('ss', '-lunH', 'sport = :67').trim() !== '' ? true : undefined;
        });
      },
      destroy,
    };
  } catch (err) {
    destroy();
    throw err;
  }
}
