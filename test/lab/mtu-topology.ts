/**
 * The path-MTU topology: the 2010 experiment's MTU table, found by the daemons themselves. No MTU
 * is configured anywhere; a router in the IPv6 core has a narrow link.
 *
 *   inet 198.51.100.2 ── prr (BR 2001:db8:ffff::1) ── r1 ── 1500 ── cpe1 (smap) ── lan1 192.168.1.2
 *        HTTP /big, UDP 7009     2001:db8:100::/64     │
 *                                                     1280  (r1-r2: 2001:db8:12::/64)
 *                                                      │
 *                                                      r2 ── 1500 ── cpe2 (smap) ── lan2 192.168.1.2
 *
 * cpe2's own WAN link is 1500: the narrow link is further on, so the Packet Too Big comes from a
 * router, r2 for packets toward the PRR and r1 for packets toward cpe2, as on a real path.
 *
 * The Internet host serves `GET /big?n=BYTES` (a deterministic stream: BIG_BLOCK repeated) and a
 * UDP service on 7009 (UDP_SERVER): a datagram `down SIZE` starts a DF-set sender toward the
 * asker, anything else is echoed back. [tunnel] pmtu_timeout is `PMTU_TIMEOUT` on both daemons,
 * and every kernel on the way forgets a learnt path MTU after KERNEL_MTU_EXPIRES (the PRR and
 * the CPEs: net.ipv6.route.mtu_expires; the Internet and LAN hosts: net.ipv4.route.mtu_expires),
 * so a test sees the MTU go back up, and found again, within a minute.
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Host, Lab } from './lab.js';
import { distPath } from './paths.js';
import { BR, collect, INET, LAN_HOST, labWithDir, prrAndInet, SHARED, started } from './smap-topology.js';

export { INET, SHARED };
export const PMTU_TIMEOUT = 30;
export const KERNEL_MTU_EXPIRES = 20;
export const PORTS = ['10000-10999', '11000-11999'] as const;

/** 64 KiB of deterministic bytes; /big sends it repeated. */
function bigBlock(): Buffer {
  const b = Buffer.alloc(65536);
  let x = 0x12345678;
  for (let i = 0; i < b.length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

/** The sha256 of the first `n` bytes of /big. */
export function bigSha256(n: number): string {
  const block = bigBlock();
  const h = createHash('sha256');
  for (let left = n; left > 0; left -= block.length) h.update(block.subarray(0, Math.min(left, block.length)));
  return h.digest('hex');
}

const HTTP_SERVER = `
const http = require('http');
const block = Buffer.alloc(65536);
let x = 0x12345678;
for (let i = 0; i < block.length; i++) { x = (Math.imul(x, 1103515245) + 12345) >>> 0; block[i] = x >>> 24; }
http.createServer((q, r) => {
  const n = Number(new URL(q.url, 'http://x').searchParams.get('n') ?? 0);
  r.writeHead(200, { 'content-length': n });
  let left = n;
  const more = () => {
    while (left > 0) {
      const c = block.subarray(0, Math.min(left, block.length));
      left -= c.length;
      if (!r.write(c)) return r.once('drain', more);
    }
    r.end();
  };
  more();
}).listen(80, '${INET}', () => console.log('ready'));`;

/**
 * The UDP service on the Internet host (python3: Node cannot set IP_MTU_DISCOVER). `down SIZE`:
 * send SIZE-byte datagrams with DF (IP_PMTUDISC_DO) to the asker every 5 ms (the granularity of
 * the time it reports); on EMSGSIZE (the
 * kernel learnt a smaller path MTU from an ICMPv4 Fragmentation Needed) read the path MTU and
 * send smaller ones; stop when the asker acknowledges a datagram (`ok SIZE`) or after 10 s; then
 * send one JSON line: the first size, the path MTU learnt, ms from the first datagram to the
 * EMSGSIZE, and the size acknowledged. Anything else is echoed (a failed echo is ignored).
 */
export const UDP_SERVER = `
import json, socket, sys, time
IP_MTU_DISCOVER, IP_PMTUDISC_DO, IP_MTU = 10, 2, 14
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO)
s.bind((sys.argv[1], 7009))
print('ready', flush=True)
def path_mtu(peer):
    p = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    p.connect(peer)
    m = p.getsockopt(socket.IPPROTO_IP, IP_MTU)
    p.close()
    return m
while True:
    data, peer = s.recvfrom(65535)
    if not data.startswith(b'down '):
        try: s.sendto(data, peer)
        except OSError: pass
        continue
    size = first = int(data.split()[1])
    t0 = time.monotonic(); learnt = None; acked = None; sent = 0
    s.settimeout(0.005)
    while time.monotonic() < t0 + 10 and acked is None:
        try:
            s.sendto(b'd' * size, peer); sent += 1
        except OSError as e:
            if e.errno != 90: raise
            mtu = path_mtu(peer)
            if learnt is None: learnt = {'mtu': mtu, 'ms': round((time.monotonic() - t0) * 1000)}
            size = mtu - 28
            continue
        try:
            d, _ = s.recvfrom(65535)
            if d == b'ok %d' % size: acked = size
        except socket.timeout: pass
    s.settimeout(None)
    s.sendto(json.dumps({'first': first, 'learnt': learnt, 'acked': acked, 'sent': sent}).encode(), peer)
`;

/**
 * The LAN side (python3). \`up HOST SIZE\`: SIZE-byte datagrams with DF to HOST:7009 (echoed) every
 * 50 ms until one of the current size comes back, adapting on EMSGSIZE (from the send, or from
 * the socket's pending error after a Fragmentation Needed); prints one JSON line like the server's.
 * \`down HOST SIZE\`: asks the server for DF datagrams of SIZE, acknowledges each, prints the
 * server's JSON line.
 */
export const UDP_CLIENT = `
import json, socket, sys, time
IP_MTU_DISCOVER, IP_PMTUDISC_DO, IP_MTU = 10, 2, 14
mode, host, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO)
s.connect((host, 7009))
s.settimeout(0.05)
if mode == 'down':
    s.send(b'down %d' % size)
    end = time.monotonic() + 15
    while time.monotonic() < end:
        try: d = s.recv(65535)
        except socket.timeout: continue
        if d.startswith(b'{'):
            print(d.decode(), flush=True); sys.exit(0)
        s.send(b'ok %d' % len(d))
    print('{"error": "no result"}'); sys.exit(1)
first = size; t0 = time.monotonic(); learnt = None; echoed = None; sent = 0
def adapt():
    global size, learnt
    mtu = s.getsockopt(socket.IPPROTO_IP, IP_MTU)
    if learnt is None: learnt = {'mtu': mtu, 'ms': round((time.monotonic() - t0) * 1000)}
    size = mtu - 28
while time.monotonic() < t0 + 10 and echoed is None:
    try:
        s.send(b'u' * size); sent += 1
        d = s.recv(65535)
        if len(d) == size: echoed = size
    except socket.timeout: pass
    except OSError as e:
        if e.errno != 90: raise
        adapt()
print(json.dumps({'first': first, 'learnt': learnt, 'acked': echoed, 'sent': sent}), flush=True)
`;

export interface MtuCpe {
  host: Host;
  lan: Host;
  config: string;
  snippet: string;
  log: () => string;
}

export interface MtuLab {
  lab: Lab;
  dir: string;
  prr: Host;
  inet: Host;
  r1: Host;
  r2: Host;
  cpes: [MtuCpe, MtuCpe];
  prrConfig: string;
  prrLog: () => string;
  cli(h: Host, which: 'prr' | 'smap', args: string[]): ReturnType<Host['exec']>;
  destroy(): void;
}

export async function buildMtuLab(tag: string): Promise<MtuLab> {
  const { lab, dir, destroy } = labWithDir(tag);
  try {
    const { prr, inet } = prrAndInet(lab);
    const r1 = lab.host('r1');
    const r2 = lab.host('r2');
    prr.sysctl('net.ipv4.conf.all.rp_filter', 0);
    prr.sysctl('net.ipv4.conf.default.rp_filter', 0);
    lab.link(prr, r1, { aDev: 'core', bDev: 'prr', a: ['2001:db8:100::1/64'], b: ['2001:db8:100::2/64'] });
    prr.route('::/0', { gw: '2001:db8:100::2' });
    r1.forwarding();
    r1.route(`${BR}/128`, { gw: '2001:db8:100::1' });
    // The narrow link: r1 and r2 answer what does not fit with ICMPv6 Packet Too Big.
    lab.link(r1, r2, { aDev: 'r2', bDev: 'r1', a: ['2001:db8:12::1/64'], b: ['2001:db8:12::2/64'], mtu: 1280 });
    r1.route('2001:db8:2::/64', { gw: '2001:db8:12::2' });
    r2.forwarding();
    r2.route('::/0', { gw: '2001:db8:12::1' });
    prr.sysctl('net.ipv6.route.mtu_expires', KERNEL_MTU_EXPIRES);
    inet.sysctl('net.ipv4.route.mtu_expires', KERNEL_MTU_EXPIRES); // IPv4: the PMTU toward the shared address

    const cpes = [r1, r2].map((router, i) => {
      const n = i + 1;
      const host = lab.host(`cpe${n}`);
      const lan = lab.host(`lan${n}`);
      lab.link(host, router, { aDev: 'wan', bDev: `cpe${n}`, a: [`2001:db8:${n}::2/64`], b: [`2001:db8:${n}::1/64`] });
      host.route('::/0', { gw: `2001:db8:${n}::1` });
      host.sysctl('net.ipv6.route.mtu_expires', KERNEL_MTU_EXPIRES);
      lab.link(lan, host, { aDev: 'eth0', bDev: 'lan', a: [`${LAN_HOST}/24`], b: ['192.168.1.1/24'] });
      lan.route('default', { gw: '192.168.1.1' });
      lan.sysctl('net.ipv4.route.mtu_expires', KERNEL_MTU_EXPIRES); // the LAN host's own path MTU must expire too
      host.sysctl('net.ipv4.ip_forward', 1);
      const config = join(dir, `cpe${n}.ini`);
      const snippet = join(dir, `cpe${n}-dnsmasq.conf`);
      // No MTU: `auto` (the WAN MTU - 40) is the default, path-MTU discovery does the rest.
      writeFileSync(config, [
        '[smap]', 'wan_interface = wan', 'lan_interface = lan', 'lan_prefix = 192.168.1.0/24', `control_socket = ${join(dir, `cpe${n}.sock`)}`,
        '[tunnel]', `pmtu_timeout = ${PMTU_TIMEOUT}s`, `dnsmasq_snippet = ${snippet}`,
        // Stands in for `/etc/init.d/dnsmasq reload`: one line per reload, with the MTU served.
        `dnsmasq_reload = grep -o 'mtu,[0-9]*' ${snippet} >> ${snippet}.reloads`,
        '[static]', `shared_ipv4 = ${SHARED}`, `ports = ${PORTS[i]}`, `prr_ipv6 = ${BR}`,
        '[metrics]', 'enabled = false', '',
      ].join('\n'));
      return { host, lan, config, snippet, log: () => '' };
    }) as [MtuCpe, MtuCpe];

    const prrConfig = join(dir, 'prr.ini');
    writeFileSync(prrConfig, [
      '[prr]', 'ipv4 = 198.51.100.1', `tunnel_ipv6 = ${BR}`, `shared_ipv4 = ${SHARED}`, `control_socket = ${join(dir, 'prr.sock')}`,
      '[tunnel]', `pmtu_timeout = ${PMTU_TIMEOUT}s`,
      '[metrics]', 'enabled = false',
      ...cpes.flatMap((_, i) => [`[subscriber.cpe${i + 1}]`, `ipv6 = 2001:db8:${i + 1}::2`, `shared_ipv4 = ${SHARED}`, `ports = ${PORTS[i]}`]),
      '',
    ].join('\n'));
    const prrd = prr.spawn(process.execPath, [distPath('prr/cli.js'), 'run', '--config', prrConfig], { stdio: ['ignore', 'pipe', 'pipe'] });
    const prrLog = collect(prrd);
    await started('prr', prrd, prrLog, 'prr: running');

    const http = inet.spawn(process.execPath, ['-e', HTTP_SERVER], { stdio: ['ignore', 'pipe', 'pipe'] });
    await started('HTTP server', http, collect(http), 'ready');
    const udp = inet.spawn('python3', ['-c', UDP_SERVER, INET], { stdio: ['ignore', 'pipe', 'pipe'] });
    await started('UDP server', udp, collect(udp), 'ready');

    for (const cpe of cpes) {
      const child = cpe.host.spawn(process.execPath, [distPath('smap/cli.js'), 'run', '--config', cpe.config], { stdio: ['ignore', 'pipe', 'pipe'] });
      cpe.log = collect(child);
      await started(`smap in ${cpe.host.short}`, child, cpe.log, 'smap: running');
    }

    return {
      lab,
      dir,
      prr,
      inet,
      r1,
      r2,
      cpes,
      prrConfig,
      prrLog,
      cli: (h, which, args) => h.exec(process.execPath, [distPath(`${which}/cli.js`), ...args], { timeoutMs: 30_000 }),
      destroy,
    };
  } catch (err) {
    destroy();
    throw err;
  }
}
