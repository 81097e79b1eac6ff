/**
 * `startSmap` with [registration], in one process without root: the fake system of
 * test/smap/daemon.test.ts (reduced) and the real SSH registration server on ::1. No binding (no
 * TUN, no table) before the first lease; the lease applied (table, tunnel endpoint, the lease's
 * MTU when smaller); a new WAN address registers again; a wrong pin applies nothing; stop() stops
 * the client.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { parseSmapConfig } from '../../common/config/smap.js';
import { memoryLogger } from '../../common/log.js';
import { FakeNet6, FakeTun, type FakeTunnel6 } from '../../common/native/fake.js';
import { formatIpv6 } from '../../common/native/addr6.js';
import { controlRequest } from '../../common/control.js';
import { startSmap, type SmapIo, type SmapStatus } from '../../smap/daemon.js';
import { ensureClientKey } from '../../smap/registration.js';
import { AGENT, formatStatus } from '../../smap/verbs.js';
import { waitFor } from '../lab/lab.js';
import { makeRig, serve } from '../registration/helpers.js';

function shortDir(t: Test): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'smapreg-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

class FakeSystem implements SmapIo {
  wanAddrs: string[] = [];
  readonly ipCalls: string[] = [];
  readonly nftInputs: string[] = [];
  readonly files = new Map<string, string>();
  tun: FakeTun | undefined;
  private onAddr: (() => void) | undefined;
  constructor(private readonly net: FakeNet6, private readonly cpeAddrs: string[]) {}
  openTun = (name: string): FakeTun => (this.tun = new FakeTun(name));
  openTunnel = (bind: string): FakeTunnel6 => this.net.socket({ bind, addresses: this.cpeAddrs });
  ip = (args: string[]): void => void this.ipCalls.push(args.join(' '));
  ipJson(args: string[]): unknown {
    if (args[0] === 'link') return [{ ifname: 'wan', mtu: 1500 }];
    return [{ ifname: 'wan', addr_info: this.wanAddrs.map((local) => ({ family: 'inet6', local, scope: 'global' })) }];
  }
  nft = (input: string): void => void this.nftInputs.push(input);
  conntrack = (): void => undefined;
  conntrackTable = async (): Promise<string> => '';
  readSysctl = (key: string): string | undefined => (key === 'net/ipv4/ip_forward' ? '1' : undefined);
  sysctl = (): void => undefined;
  writeFile = (file: string, text: string): void => void this.files.set(file, text);
  removeFile = (file: string): void => void this.files.delete(file);
  monitorAddresses(onEvent: () => void): () => void {
    this.onAddr = onEvent;
    return () => (this.onAddr = undefined);
  }
  addressesChanged(): void {
    this.onAddr?.();
  }
}

function config(dir: string, port: number, fingerprint: string): string {
  return `[smap]\nwan_interface = wan\nlan_interface = lan\ncontrol_socket = ${path.join(dir, 'c.sock')}\n` +
    `[tunnel]\ndnsmasq_snippet = ${path.join(dir, 'dnsmasq.conf')}\n` +
    `[registration]\nprr_host = ::1\nprr_port = ${port}\nhost_key_fingerprint = ${fingerprint}\nkey_file = ${path.join(dir, 'id_ed25519')}\n[metrics]\nenabled = false\n`;
}

t.test('[registration]: no binding until the lease, then applied; a new WAN address registers again', async (t) => {
  const dir = shortDir(t);
  const key = ensureClientKey(path.join(dir, 'id_ed25519'), memoryLogger());
  const rig = makeRig(dir, `name=cpe7 ${key.public}\n`, { policy: { tunnelMtu: 1400 } });
  const server = await serve(rig, '::1');
  t.teardown(() => server.close());
  const file = path.join(dir, 'smap.ini');
  const sys = new FakeSystem(new FakeNet6(), ['2001:db8:7::2', '2001:db8:7::3']);
  const log = memoryLogger();
  const smap = await startSmap(parseSmapConfig(config(dir, server.port, server.hostKeyFingerprint), file), file, log, sys);
  t.teardown(() => smap.stop());
  const status = async (): Promise<SmapStatus> => (await controlRequest(path.join(dir, 'c.sock'), { cmd: 'status' }, AGENT)) as unknown as SmapStatus;

  const waiting = await status();
  t.equal(waiting.state, 'waiting_for_wan');
  t.equal(waiting.binding, null, 'no binding yet');
  t.equal(waiting.registration?.state, 'registering');
  t.equal(sys.tun, undefined, 'no TUN');
  t.equal(sys.nftInputs.length, 0, 'no table');

  sys.wanAddrs = ['2001:db8:7::2'];
  sys.addressesChanged();
  await smap.ready;
  const s = await waitFor('registered', async () => ((await status()).state === 'running' ? status() : undefined), 10_000, 50);
  t.match(s.binding, { source: 'registration', shared_ipv4: '192.0.2.1', ports: '1024-2023', port_count: 1000, prr_ipv6: '2001:db8:ffff::1' });
  t.match(s.registration, { prr: '[::1]:' + server.port, state: 'registered', last_error: null, subscriber: 'cpe7' });
  t.equal(s.registration!.lease_seconds, 3600, 'the lease granted, an hour');
  t.ok(Date.parse(s.registration!.expires_at!) > Date.now() + 3500_000, 'expiry about an hour on');
  t.equal(s.tunnel.mtu, 1400, "the lease's MTU, smaller than WAN MTU - 40");
  t.equal(sys.nftInputs.length, 1, 'one table');
  t.match(sys.nftInputs[0], 'snat ip to 192.0.2.1:1024-2023');
  t.match(sys.nftInputs[0], 'maxseg size set 1360');
  t.equal(sys.files.get(path.join(dir, 'dnsmasq.conf'))?.split('\n')[1], 'dhcp-option=option:mtu,1400');
  t.match(formatStatus(s), /registration: \[::1\]:\d+ registered as cpe7, lease expires /);
  const id = (): number => rig.table.findSubscriber('cpe7')[0]!;
  t.equal(formatIpv6(rig.table.ipv6Of(id()), 0), '2001:db8:7::2', 'the PRR has the WAN address');

  sys.wanAddrs = ['2001:db8:7::3'];
  sys.addressesChanged();
  await waitFor('re-registered', () => (formatIpv6(rig.table.ipv6Of(id()), 0) === '2001:db8:7::3' ? true : undefined), 10_000, 50);
  t.pass('a new WAN address is registered again at once');
  t.equal(sys.nftInputs.length, 1, 'same binding: the table is not rewritten');

  await smap.stop();
  t.equal(sys.files.size, 0, 'snippet removed');
  t.match(sys.nftInputs.at(-1), /delete table ip smap|destroy table ip smap/, 'table removed');
});

t.test('[registration]: a wrong pin is refused with a clear error and applies nothing', async (t) => {
  const dir = shortDir(t);
  const key = ensureClientKey(path.join(dir, 'id_ed25519'), memoryLogger());
  const rig = makeRig(dir, `name=cpe8 ${key.public}\n`);
  const server = await serve(rig, '::1');
  t.teardown(() => server.close());
  const file = path.join(dir, 'smap.ini');
  const sys = new FakeSystem(new FakeNet6(), ['2001:db8:8::2']);
  sys.wanAddrs = ['2001:db8:8::2'];
  const log = memoryLogger();
  const wrong = 'SHA256:' + 'A'.repeat(43);
  const smap = await startSmap(parseSmapConfig(config(dir, server.port, wrong), file), file, log, sys);
  t.teardown(() => smap.stop());
  await smap.ready;
  const s = await waitFor('refused', async () => {
    const st = (await controlRequest(path.join(dir, 'c.sock'), { cmd: 'status' }, AGENT)) as unknown as SmapStatus;
    return st.registration?.state === 'failing' ? st : undefined;
  }, 10_000, 50);
  t.match(s.registration?.last_error, `does not match the pinned host_key_fingerprint ${wrong}; refusing to register`);
  t.equal(s.state, 'registering');
  t.equal(s.binding, null);
  t.equal(sys.tun, undefined, 'no TUN');
  t.equal(sys.nftInputs.length, 0, 'no table');
  t.equal(rig.table.findSubscriber('cpe8').length, 0, 'nothing registered');
});
