/**
 * The whole agent in one process, without root: fake TUN and IPv6 network (common/native/fake),
 * and a fake system (ip, nft, conntrack, files) that records what the agent asks of it.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { parseSmapConfig } from '../../common/config/smap.js';
import { memoryLogger } from '../../common/log.js';
import { FakeNet6, FakeTun, settle, type FakeTunnel6 } from '../../common/native/fake.js';
import { formatIpv6, parseIpv6 } from '../../common/native/addr6.js';
import { controlRequest as request } from '../../common/control.js';
import { startSmap, type SmapIo } from '../../smap/daemon.js';
import { removeTableText } from '../../smap/nft.js';
import { AGENT, formatStatus } from '../../smap/verbs.js';
import { ip4, readIcmp4, tcp4, udp4 } from '../prr/helpers/packets.js';

const SHARED = ip4('192.0.2.100');
const INET = ip4('198.51.100.2');
const PRR = '2001:db8:ffff::1';
const controlRequest = (file: string, req: Record<string, unknown>): ReturnType<typeof request> => request(file, req, AGENT);

/** A short directory: a Unix socket path must fit in 108 bytes (tap's fixture paths do not). */
function shortDir(t: Test): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'smap-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function config(dir: string, extra = '', ports = '10000-10009'): string {
  return `[smap]\nwan_interface = wan\nlan_interface = lan\ncontrol_socket = ${path.join(dir, 'c.sock')}\n${extra}` +
    `[tunnel]\ndnsmasq_snippet = ${path.join(dir, 'dnsmasq.conf')}\n[static]\nshared_ipv4 = 192.0.2.100\nports = ${ports}\nprr_ipv6 = ${PRR}\n`;
}

class FakeSystem implements SmapIo {
  wanAddrs: string[] = [];
  wanMtu = 1500;
  readonly ipCalls: string[] = [];
  readonly nftInputs: string[] = [];
  readonly conntrackCalls: string[] = [];
  readonly files = new Map<string, string>();
  readonly hooks: string[] = [];
  runShell = (command: string): void => {
    if (command.includes('fail')) throw new Error('/bin/sh -c fail: exit 1');
    this.hooks.push(command);
  };
  readonly sysctls = new Map<string, string>([['net/ipv4/ip_forward', '1']]);
  conntrackText = '';
  failNft = false;
  tun: FakeTun | undefined;
  tunnel: FakeTunnel6 | undefined;
  private onAddr: (() => void) | undefined;
  constructor(private readonly net: FakeNet6, private readonly cpeAddrs: string[]) {}
  tunOffload: boolean | undefined;
  openTun = (name: string, offload: boolean): FakeTun => {
    this.tunOffload = offload;
    return (this.tun = new FakeTun(name));
  };
  openTunnel = (bind: string): FakeTunnel6 => (this.tunnel = this.net.socket({ bind, addresses: this.cpeAddrs }));
  ip = (args: string[]): void => void this.ipCalls.push(args.join(' '));
  ipJson(args: string[]): unknown {
    if (args[0] === 'link') return [{ ifname: 'wan', mtu: this.wanMtu }];
    return [{ ifname: 'wan', addr_info: this.wanAddrs.map((local) => ({ family: 'inet6', local, scope: 'global' })) }];
  }
  nft(input: string): void {
    if (this.failNft) throw new Error('nft: Error: Could not process rule: No such file or directory');
    this.nftInputs.push(input);
  }
  conntrack = (args: string[]): void => void this.conntrackCalls.push(args.join(' '));
  conntrackTable = async (): Promise<string> => this.conntrackText;
  readSysctl = (key: string): string | undefined => this.sysctls.get(key);
  sysctl = (key: string, value: string): void => void this.sysctls.set(key, value);
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

/** A fake PRR socket that keeps what it receives: [outer source, inner packet]. */
function prrSocket(net: FakeNet6): { sock: FakeTunnel6; got: Array<[string, Buffer]> } {
  const sock = net.socket({ bind: PRR });
  const got: Array<[string, Buffer]> = [];
  sock.start((n) => {
    for (let i = 0; i < n; i++) {
      const off = i * sock.ring.slotSize + sock.ring.headroom;
      got.push([formatIpv6(sock.ring.srcs, 16 * i), Buffer.from(sock.ring.slab.subarray(off, off + sock.ring.lens[i]!))]);
    }
  });
  return { sock, got };
}

function sendFrom(sock: FakeTunnel6, to: string, pkt: Buffer): void {
  sock.send({ slab: pkt, offsets: Int32Array.of(0), lens: Int32Array.of(pkt.length), dsts: parseIpv6(to), count: 1 });
}

t.test('waits for the WAN address, forwards both ways, follows a new address, reloads, stops clean', async (t) => {
  const dir = shortDir(t);
  const file = path.join(dir, 'smap.ini');
  writeFileSync(file, config(dir));
  const net = new FakeNet6();
  const sys = new FakeSystem(net, ['2001:db8:1::2', '2001:db8:1::3']);
  const prr = prrSocket(net);
  const log = memoryLogger();
  const smap = await startSmap(parseSmapConfig(config(dir), file), file, log, sys);
  t.teardown(() => smap.stop());

  const sock = path.join(dir, 'c.sock');
  const waiting = await controlRequest(sock, { cmd: 'status' });
  t.equal(waiting['state'], 'waiting_for_wan', 'no WAN address: waiting, and status answers');
  t.equal(sys.tun, undefined, 'no TUN before the WAN address');
  t.equal(sys.nftInputs.length, 0, 'no NAT table before the WAN address');

  sys.wanAddrs = ['2001:db8:1::2'];
  sys.addressesChanged();
  await smap.ready;
  t.equal(smap.wanAddress(), '2001:db8:1::2');
  t.same(sys.ipCalls, ['link set dev smap0 mtu 1460 txqueuelen 4096 up', 'route replace default dev smap0'], 'TUN up with WAN MTU - 40, default route');
  t.equal(sys.sysctls.get('net/ipv6/conf/smap0/disable_ipv6'), '1');
  t.equal(sys.nftInputs.length, 1, 'one nft -f');
  t.match(sys.nftInputs[0], 'snat ip to 192.0.2.100:10000-10009');
  t.match(sys.nftInputs[0], 'maxseg size set 1420');
  t.same(sys.conntrackCalls, ['-D -f ipv4 -s 192.168.1.0/24', '-D -f ipv4 -q 192.0.2.100'], 'LAN conntrack flushed at start');
  t.equal(sys.files.get(path.join(dir, 'dnsmasq.conf'))?.split('\n')[1], 'dhcp-option=option:mtu,1460', 'DHCP option 26 snippet');

  // LAN -> PRR: in the set goes, outside the set is dropped and counted.
  const out = udp4({ src: SHARED, dst: INET, sport: 10003, dport: 53, data: 20 });
  sys.tun!.inject(out);
  sys.tun!.inject(tcp4({ src: SHARED, dst: INET, sport: 10010, dport: 80 }));
  await settle();
  t.equal(prr.got.length, 1, 'one packet reached the PRR');
  t.same(prr.got[0], ['2001:db8:1::2', out], 'from the WAN address, the packet unchanged');
  t.equal(smap.counters.snapshot().drops_out['outside_set'], 1, 'outside_set counted');

  // PRR -> LAN, and a stranger.
  const back = udp4({ src: INET, dst: SHARED, sport: 53, dport: 10003, data: 20 });
  sendFrom(prr.sock, '2001:db8:1::2', back);
  const stranger = net.socket({ bind: '2001:db8:99::1' });
  sendFrom(stranger, '2001:db8:1::2', back);
  await settle();
  t.equal(sys.tun!.written.length, 1, 'only the PRR packet was written to the TUN');
  t.same(sys.tun!.written[0], back);
  t.equal(smap.counters.snapshot().drops_in['not_from_prr'], 1, 'not_from_prr counted');

  // The WAN address changes: the tunnel follows.
  sys.wanAddrs = ['2001:db8:1::3'];
  sys.addressesChanged();
  t.equal(smap.wanAddress(), '2001:db8:1::3');
  sys.tun!.inject(out);
  await settle();
  t.equal(prr.got[1]?.[0], '2001:db8:1::3', 'the next packet comes from the new address');

  // SIGHUP: the same file changes nothing; a new port set rewrites the table and flushes conntrack.
  t.equal(smap.reload(), false, 'unchanged binding');
  writeFileSync(file, config(dir, '', 'psid:a=6/k=6/id=5'));
  t.equal(smap.reload(), true, 'changed binding');
  t.equal(sys.nftInputs.length, 2);
  t.match(sys.nftInputs[1], 'numgen inc mod 63 map');
  t.same(sys.conntrackCalls.slice(2), ['-D -f ipv4 -s 192.168.1.0/24', '-D -f ipv4 -q 192.0.2.100'], 'LAN conntrack flushed again');
  sys.tun!.inject(out);
  await settle();
  t.equal(prr.got.length, 2, 'port 10003 is no longer ours');
  t.equal(smap.counters.snapshot().drops_out['outside_set'], 2);

  sys.conntrackText = 'tcp      6 431999 ESTABLISHED src=192.168.1.2 dst=198.51.100.2 sport=54590 dport=443 src=198.51.100.2 dst=192.0.2.100 sport=443 dport=1104 [ASSURED] mark=0 use=1\n';
  const st = await controlRequest(sock, { cmd: 'status' });
  t.equal(st['state'], 'running');
  t.same(st['binding'], { source: 'static', shared_ipv4: '192.0.2.100', ports: 'psid:a=6/k=6/id=5', port_count: 1008, prr_ipv6: PRR });
  t.same(st['wan'], { interface: 'wan', ipv6: '2001:db8:1::3', configured: false });
  t.same(st['tunnel'], { tun: 'smap0', mtu: 1460, base_mtu: 1460, learnt_mtu: null, learnt_until: null });
  t.same((st['ports_in_use'] as { byProtocol: unknown }).byProtocol, { tcp: 1, udp: 0, icmp: 0 });
  const text = formatStatus(st as never);
  t.match(text, 'binding: static 192.0.2.100 ports psid:a=6/k=6/id=5 (1008 ports) via 2001:db8:ffff::1\n');
  t.match(text, 'ports in use: tcp 1, udp 0, icmp 0 (1 flows: dns 0, http 0, https 1, other 0)\n');
  t.match(text, 'drops to prr: outside_set 2\n');
  t.same(st['offload'], { on: false, super_packets_read: 0, super_packets_written: 0, refused: 0 }, 'the fake TUN has no offloads');
  t.match(text, '\noffload: off\n');
  t.match(formatStatus({ ...st, offload: { on: true, super_packets_read: 3, super_packets_written: 4, refused: 0 } } as never),
    '\noffload: on (3 super-packets read and cut, 4 written coalesced, 0 refused)\n');
  t.same(await controlRequest(sock, { cmd: 'nope' }), { ok: false, error: 'unknown command "nope": expected status or register' });

  await smap.stop();
  t.equal(sys.nftInputs.at(-1), removeTableText(), 'the table is removed on stop');
  t.notOk(sys.files.has(path.join(dir, 'dnsmasq.conf')), 'the snippet is removed on stop');
  t.notOk(existsSync(sock), 'the control socket is gone');
  t.throws(() => sys.tun!.send({ slab: out, offsets: Int32Array.of(0), lens: Int32Array.of(out.length), count: 1 }), /after close/, 'the TUN is closed');
});

t.test('configured WAN address and MTU; a failed nft undoes everything', async (t) => {
  const dir = shortDir(t);
  const file = path.join(dir, 'smap.ini');
  const text = config(dir, 'wan_ipv6 = 2001:db8:1::2\n').replace('[tunnel]\n', '[tunnel]\nmtu = 1400\n');
  const net = new FakeNet6();
  const sys = new FakeSystem(net, ['2001:db8:1::2']);
  sys.sysctls.set('net/netfilter/nf_conntrack_helper', '1');
  sys.sysctls.set('net/ipv4/ip_forward', '0');
  const log = memoryLogger();
  const smap = await startSmap(parseSmapConfig(text, file), file, log, sys);
  await smap.ready;
  t.same(sys.ipCalls[0], 'link set dev smap0 mtu 1400 txqueuelen 4096 up', 'the configured MTU');
  t.equal(sys.sysctls.get('net/netfilter/nf_conntrack_helper'), '0', 'automatic helper assignment turned off');
  t.ok(log.lines.some((l) => l.startsWith('WARN') && l.includes('ip_forward')), 'forwarding off: a warning');
  t.equal(sys.tunOffload, true, '[tunnel] offload = auto by default: TUN offloads asked for');
  t.ok(log.lines.some((l) => l.includes('refused TUN offloads')), 'a TUN without them (the fake): said, and it runs');
  await smap.stop();

  const sys2 = new FakeSystem(new FakeNet6(), ['2001:db8:1::2']);
  sys2.failNft = true;
  const smap2 = await startSmap(parseSmapConfig(text.replace('[tunnel]\n', '[tunnel]\noffload = off\n'), file), file, memoryLogger(), sys2);
  t.equal(sys2.tunOffload, false, 'offload = off: not asked for');
  await t.rejects(smap2.ready, /nft: Error/, 'the nft failure reaches the caller');
  t.throws(() => sys2.tunnel!.send({ slab: Buffer.alloc(20), offsets: Int32Array.of(0), lens: Int32Array.of(20), dsts: Buffer.alloc(16), count: 1 }), /after close/, 'the tunnel socket was closed');
  t.throws(() => sys2.tun!.send({ slab: Buffer.alloc(20), offsets: Int32Array.of(0), lens: Int32Array.of(20), count: 1 }), /after close/, 'the TUN was closed');
  await smap2.stop();
  t.notOk(existsSync(path.join(dir, 'c.sock')), 'control socket closed');
});

t.test('[registration] with a key file that is not a key: a config error naming the key', async (t) => {
  const dir = shortDir(t);
  writeFileSync(path.join(dir, 'key'), 'not a key\n');
  const text = `[smap]\nwan_interface = wan\n[registration]\nprr_host = 2001:db8:ffff::1\nhost_key_fingerprint = SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU\nkey_file = ${path.join(dir, 'key')}\n`;
  const sys = new FakeSystem(new FakeNet6(), ['2001:db8:1::2']);
  await t.rejects(startSmap(parseSmapConfig(text, path.join(dir, 'smap.ini')), path.join(dir, 'smap.ini'), memoryLogger(), sys), {
    name: 'ConfigError',
    message: /smap\.ini \[registration\] key_file: cannot use the registration key: .*not an OpenSSH private key/,
  });
});

t.test('path MTU: a Packet Too Big toward the PRR lowers smap0, the MSS clamp and the DHCP MTU, tells the sender, and expires', async (t) => {
  const dir = shortDir(t);
  const file = path.join(dir, 'smap.ini');
  const text = config(dir, 'wan_ipv6 = 2001:db8:1::2\n').replace('[tunnel]\n', '[tunnel]\npmtu_timeout = 5s\ndnsmasq_reload = /etc/init.d/dnsmasq reload\n');
  const net = new FakeNet6();
  const sys = new FakeSystem(net, ['2001:db8:1::2']);
  const prr = prrSocket(net);
  const log = memoryLogger();
  const smap = await startSmap(parseSmapConfig(text, file), file, log, sys);
  t.teardown(() => smap.stop());
  await smap.ready;
  t.ok(log.lines.some((l) => l.startsWith('WARN') && l.includes('pmtu_timeout')), 'a timeout under 5 minutes is warned about');
  const snippet = (): string | undefined => sys.files.get(path.join(dir, 'dnsmasq.conf'))?.split('\n')[1];
  const g = (): Record<string, number> => smap.counters.snapshot().global;
  const ptb = (info: number, pkt: Buffer, dst = PRR): void =>
    sys.tunnel!.report({ origin: 'icmp6', errno: 90, type: 2, code: 0, info, dst, offender: '2001:db8:12::2' }, pkt);

  // The path drops a 1400-byte packet with DF and says 1280.
  const big = udp4({ src: SHARED, dst: INET, sport: 10003, dport: 7007, df: true, data: 1400 - 28 });
  ptb(1280, big);
  await settle();
  t.equal(sys.ipCalls.at(-1), 'link set dev smap0 mtu 1240', 'smap0 MTU 1280 - 40');
  t.match(sys.nftInputs.at(-1), 'maxseg size set 1200', 'MSS clamp rewritten for 1240');
  t.equal(snippet(), 'dhcp-option=option:mtu,1240', 'DHCP option 26 rewritten');
  t.same(sys.hooks, ['/etc/init.d/dnsmasq reload', '/etc/init.d/dnsmasq reload'], 'dnsmasq_reload run at start and after the rewrite');
  t.equal(g()['pmtu_lowered'], 1, 'pmtu_lowered counted');
  t.equal(sys.tun!.written.length, 1, 'one packet written to the TUN');
  const fn = readIcmp4(sys.tun!.written[0]!, 0, sys.tun!.written[0]!.length);
  t.match(fn, { type: 3, code: 4, mtu: 1240, src: ip4('192.0.0.2'), dst: SHARED }, 'Fragmentation Needed, MTU 1240, to the NATed sender (the kernel un-NATs it)');
  t.same(fn.quote.subarray(0, 28), big.subarray(0, 28), 'quoting the dropped packet');
  t.equal(g()['frag_needed_sent'], 1, 'frag_needed_sent counted');
  t.ok(log.lines.some((l) => l.includes('tunnel MTU 1460 -> 1240') && l.includes('Packet Too Big (MTU 1280) from 2001:db8:12::2')), 'logged with the reporting router');
  let st = await smap.status();
  t.equal(st.tunnel.mtu, 1240);
  t.equal(st.tunnel.learnt_mtu, 1240);
  t.equal(st.tunnel.base_mtu, 1460);
  t.match(formatStatus({ ok: true, ...st } as never), 'tunnel: smap0 mtu 1240 (path MTU 1240 from Packet Too Big, until ');

  // What was queued at the old size: DF -> Fragmentation Needed; no DF -> into the tunnel (the kernel fragments the IPv6 packet).
  sys.tun!.written.length = 0;
  sys.tun!.inject(big);
  const noDf = udp4({ src: SHARED, dst: INET, sport: 10003, dport: 7007, data: 1400 - 28 });
  sys.tun!.inject(noDf);
  await settle();
  t.equal(readIcmp4(sys.tun!.written[0]!, 0, sys.tun!.written[0]!.length).mtu, 1240, 'DF over the MTU: Fragmentation Needed');
  t.equal(smap.counters.snapshot().drops_out['over_mtu_df'], 1, 'counted as over_mtu_df');
  t.same(prr.got.at(-1), ['2001:db8:1::2', noDf], 'without DF: sent on whole');

  // Reports that change nothing.
  const calls = sys.ipCalls.length;
  ptb(1400, big);
  ptb(1280, big, '2001:db8:99::1');
  ptb(1280, udp4({ src: ip4('192.0.2.7'), dst: INET, sport: 10003, dport: 7007, df: true, data: 1400 - 28 }));
  await settle();
  t.equal(sys.ipCalls.length, calls, 'a larger MTU, another destination, another source: no change');
  t.equal(g()['pmtu_lowered'], 1);

  // pmtu_timeout later (5 s), the full MTU is tried again.
  const deadline = Date.now() + 15_000;
  while ((await smap.status()).tunnel.mtu !== 1460 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  st = await smap.status();
  t.equal(st.tunnel.mtu, 1460, 'back to 1460');
  t.equal(st.tunnel.learnt_mtu, null);
  t.equal(g()['pmtu_raised'], 1, 'pmtu_raised counted');
  t.equal(sys.ipCalls.at(-1), 'link set dev smap0 mtu 1460');
  t.match(sys.nftInputs.at(-1), 'maxseg size set 1420');
  t.equal(snippet(), 'dhcp-option=option:mtu,1460');
  t.equal(sys.hooks.length, 3, 'and reloaded again');

  // Learnt again, then the binding moves to another PRR: a new path, the learnt MTU goes.
  ptb(1280, big);
  await settle();
  t.equal((await smap.status()).tunnel.mtu, 1240, 'learnt again');
  writeFileSync(file, text.replace(`prr_ipv6 = ${PRR}`, 'prr_ipv6 = 2001:db8:fffe::1'));
  t.equal(smap.reload(), true, 'the PRR changed');
  st = await smap.status();
  t.same([st.tunnel.mtu, st.tunnel.learnt_mtu], [1460, null], 'the path MTU learnt toward the old PRR is forgotten');
  t.equal(sys.ipCalls.at(-1), 'link set dev smap0 mtu 1460');
});

t.test('a failing dnsmasq_reload is a warning, not a failure', async (t) => {
  const dir = shortDir(t);
  const file = path.join(dir, 'smap.ini');
  const text = config(dir, 'wan_ipv6 = 2001:db8:1::2\n').replace('[tunnel]\n', '[tunnel]\ndnsmasq_reload = fail\n');
  const sys = new FakeSystem(new FakeNet6(), ['2001:db8:1::2']);
  const log = memoryLogger();
  const smap = await startSmap(parseSmapConfig(text, file), file, log, sys);
  t.teardown(() => smap.stop());
  await smap.ready;
  t.equal((await smap.status()).state, 'running', 'running all the same');
  t.ok(log.lines.some((l) => l.startsWith('WARN') && l.includes('[tunnel] dnsmasq_reload: /bin/sh -c fail: exit 1')), 'warned, naming the key');
});
