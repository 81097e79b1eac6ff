/**
 * The foundation's pipe topology, shared by the end-to-end test and `npm run bench -- pipe`:
 *
 *   hosta 192.168.1.2 ── 192.168.1.1 gwa ══ IPv6 2001:db8:100::/64 ══ gwb 198.51.100.1 ── 198.51.100.2 hostb
 *
 * mode 'aplus':  gwa and gwb each run the test-only pipe forwarder (TUN <-> raw IPv6 proto 4).
 * mode 'kernel': the same namespaces and links, and the middle link also carries IPv4, routed
 *                by the kernel: the yardstick the benchmark compares against.
 */
import type { ChildProcess } from 'node:child_process';
import { Lab, Host, waitFor } from './lab.js';
import { distPath } from './paths.js';

export const HOSTA = '192.168.1.2';
export const HOSTB = '198.51.100.2';

export interface Pipe {
  lab: Lab;
  hosta: Host;
  hostb: Host;
  gwa: Host;
  gwb: Host;
  forwarders: ChildProcess[];
  /** Stop the forwarders and return what each printed (its counters) as parsed JSON. */
  stop(): Promise<unknown[]>;
}

/** The compiled forwarder: tests run from TS sources, but the forwarder runs as plain JS. */
const forwarderPath = (): string => distPath('test/lab/pipe-forwarder.js');

export async function buildPipe(tag: string, mode: 'aplus' | 'kernel'): Promise<Pipe> {
  const lab = Lab.create(tag);
  try {
    const hosta = lab.host('hosta');
    const gwa = lab.host('gwa');
    const gwb = lab.host('gwb');
    const hostb = lab.host('hostb');
    lab.link(hosta, gwa, { a: [`${HOSTA}/24`], b: ['192.168.1.1/24'] });
    lab.link(gwb, hostb, { a: ['198.51.100.1/24'], b: [`${HOSTB}/24`] });
    const mid = lab.link(gwa, gwb, { a: ['2001:db8:100::1/64'], b: ['2001:db8:100::2/64'] });
    hosta.route('default', { gw: '192.168.1.1' });
    hostb.route('default', { gw: '198.51.100.1' });
    gwa.forwarding();
    gwb.forwarding();
    const forwarders: ChildProcess[] = [];
    if (mode === 'kernel') {
      gwa.addAddress(mid.aDev, '203.0.113.1/30');
      gwb.addAddress(mid.bDev, '203.0.113.2/30');
      gwa.route('198.51.100.0/24', { gw: '203.0.113.2' });
      gwb.route('192.168.1.0/24', { gw: '203.0.113.1' });
    } else {
      forwarders.push(await startForwarder(gwa, '2001:db8:100::1', '2001:db8:100::2', '198.51.100.0/24'));
      forwarders.push(await startForwarder(gwb, '2001:db8:100::2', '2001:db8:100::1', '192.168.1.0/24'));
    }
    const outputs = forwarders.map((f) => {
      let out = '';
      f.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
      return () => out;
    });
    return {
      lab,
      hosta,
      hostb,
      gwa,
      gwb,
      forwarders,
      async stop() {
        const results: unknown[] = [];
        for (const [i, f] of forwarders.entries()) {
          if (f.exitCode === null) {
            const done = new Promise((r) => f.once('exit', r));
            f.kill('SIGTERM');
            await done;
          }
          const last = outputs[i]!().trim().split('\n').pop() ?? '';
          results.push(last.startsWith('{') ? JSON.parse(last) : null);
        }
        return results;
      },
    };
  } catch (err) {
    lab.destroy();
    throw err;
  }
}

async function startForwarder(gw: Host, bind: string, peer: string, remote: string): Promise<ChildProcess> {
  const child = gw.spawn(process.execPath, [forwarderPath(), '--tun', 'pipe0', '--bind', bind, '--peer', peer], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
  await waitFor(`pipe forwarder in ${gw.short}`, () => {
    if (child.exitCode !== null) throw new Error(`pipe forwarder in ${gw.short} exited ${child.exitCode}: ${err.trim()}`);
    return out.includes('ready') ? true : undefined;
  });
  // Tunnel MTU: the 1500-byte link less one IPv6 header.
  gw.run('ip', 'link', 'set', 'dev', 'pipe0', 'mtu', '1460', 'up');
  gw.route(remote, { dev: 'pipe0' });
  return child;
}
