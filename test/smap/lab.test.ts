/**
 * End to end, in network namespaces, with the real PRR (`prr run`), the real agent (`smap run`)
 * and real clients: two CPEs with LAN hosts share 192.0.2.100 (test/lab/smap-topology.ts).
 * CPE 1 holds an RFC 7597 PSID set of 63 runs (psid:a=6/k=6/id=5, 1008 ports); CPE 2 a range of
 * 10 ports and no WAN address at first (its agent waits for one). The subtests run in order on
 * one lab.
 */
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parsePortSet } from '../../common/portset.js';
import type { SmapStatus } from '../../smap/daemon.js';
import { labUnavailableReason, waitFor, type Host } from '../lab/lab.js';
import { buildSmapLab, HOLD_CLIENT, INET, SHARED, UDP_CLIENT, type Cpe, type SmapLab } from '../lab/smap-topology.js';

const SETS = ['psid:a=6/k=6/id=5', '20000-20009'] as const;
const inSet = (i: number, port: number): boolean => parsePortSet(SETS[i]!).has(port);

const DNS_CLIENT = `
const r = new (require('dns').promises.Resolver)({ timeout: 2000, tries: 3 });
r.setServers([process.argv[1]]);
r.resolve4('www.example.test').then((a) => console.log(JSON.stringify(a)), (e) => console.log('error ' + e.code));`;

t.test('two CPEs share one IPv4 address through the PRR', { skip: labUnavailableReason() }, async (t) => {
  const l: SmapLab = await buildSmapLab('smape2e', [{ ports: SETS[0] }, { ports: SETS[1], wanLater: true }]);
  t.teardown(() => l.destroy());
  const [cpe1, cpe2] = l.cpes;
  const status = async (cpe: Cpe): Promise<SmapStatus> => {
    const r = await l.cli(cpe.host, 'smap', ['status', '--config', cpe.config, '--json']);
    if (r.code !== 0) throw new Error(`smap status in ${cpe.host.short}: ${r.stderr.trim()}`);
    return JSON.parse(r.stdout) as SmapStatus;
  };
  const fetch = async (h: Host, path = '/'): Promise<string> => (await h.exec('curl', ['-sS', '--max-time', '10', `http://${INET}${path}`])).stdout;
  const portOf = (body: string): number => {
    const m = /^192\.0\.2\.100:(\d+)\n$/.exec(body);
    return m === null ? -1 : Number(m[1]);
  };

  await t.test('the agents come up; CPE 2 waits for its WAN address', async (t) => {
    l.startAgent(cpe1);
    l.startAgent(cpe2);
    await l.agentRunning(cpe1);
    const waiting = await waitFor('cpe2 control socket', async () => {
      const r = await l.cli(cpe2.host, 'smap', ['status', '--config', cpe2.config, '--json']);
      return r.code === 0 ? (JSON.parse(r.stdout) as SmapStatus) : undefined;
    }, 20_000, 200);
    t.equal(waiting.state, 'waiting_for_wan', 'CPE 2 waits for a global address on its WAN');
    t.equal(waiting.wan.ipv6, null);
    l.addWan(cpe2);
    await l.agentRunning(cpe2);
    t.equal((await status(cpe2)).wan.ipv6, '2001:db8:2::2', 'CPE 2 took the address once it appeared');
    await l.startDhcp(cpe1);
    await l.startDhcp(cpe2);
  });

  await t.test('curl, DNS and ping from both LANs, and the router itself, inside each set', async (t) => {
    for (const [i, cpe] of l.cpes.entries()) {
      const port = portOf(await fetch(cpe.lan));
      t.ok(inSet(i, port), `curl from lan${i + 1}: seen at the server from ${SHARED}:${port}, in ${SETS[i]}`);
      const dns = await cpe.lan.exec(process.execPath, ['-e', DNS_CLIENT, INET], { timeoutMs: 15_000 });
      t.equal(dns.stdout.trim(), '["198.51.100.2"]', `DNS over UDP from lan${i + 1} (dnsmasq on the Internet side)`);
      const ping = await cpe.lan.exec('ping', ['-c', '3', '-i', '0.2', '-W', '2', INET]);
      t.match(ping.stdout, /3 received/, `ping from lan${i + 1}`);
      const own = portOf(await fetch(cpe.host));
      t.ok(inSet(i, own), `the router's own curl: from ${SHARED}:${own}, in its set`);
    }
    const st = await status(cpe1);
    t.ok(st.ports_in_use.byProtocol['icmp']! >= 1 && st.ports_in_use.byProtocol['tcp']! >= 1, `status counts the ports in use: ${JSON.stringify(st.ports_in_use.byProtocol)}`);
    t.same(st.counters.drops_out, {}, 'nothing from CPE 1 fell outside its set');
  });

  await t.test('the LAN learns the tunnel MTU by DHCP, and TCP MSS is clamped to it', async (t) => {
    const script = join(l.dir, 'udhcpc.sh');
    writeFileSync(script, '#!/bin/sh\n[ "$1" = bound ] && echo "mtu=$mtu"\nexit 0\n');
    chmodSync(script, 0o755);
    const dhcp = await cpe1.lan.exec('busybox', ['udhcpc', '-i', 'eth0', '-n', '-q', '-f', '-t', '5', '-T', '1', '-O', 'mtu', '-s', script], { timeoutMs: 20_000 });
    t.match(dhcp.stdout, /^mtu=1460$/m, 'DHCP option 26 = 1460 (WAN 1500 - 40)');
    const dump = l.inet.spawn('tcpdump', ['-i', 'eth0', '-n', '-l', '-v', '-c', '1', `tcp[tcpflags] & tcp-syn != 0 and src host ${SHARED}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    dump.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
    dump.stderr?.setEncoding('utf8').on('data', (d: string) => (out += d));
    const done = new Promise((r) => dump.once('exit', r));
    await waitFor('tcpdump', () => (out.includes('listening on') ? true : undefined));
    t.ok(portOf(await fetch(cpe1.lan)) > 0, 'curl from lan1 (MTU 1500)');
    await Promise.race([done, new Promise((r) => setTimeout(r, 10_000))]);
    t.match(out, /mss 1420/, 'the SYN reached the server with MSS 1420');
  });

  await t.test('iperf3 TCP from each LAN', async (t) => {
    l.inet.spawn('iperf3', ['-s', '-p', '5201'], { stdio: 'ignore' });
    await waitFor('iperf3 server', () => (l.inet.run('ss', '-ltnH', 'sport = :5201').trim() !== '' ? true : undefined));
    for (const [i, cpe] of l.cpes.entries()) {
      const r = await cpe.lan.exec('iperf3', ['-c', INET, '-p', '5201', '-t', '2', '-J'], { timeoutMs: 30_000 });
      const j = JSON.parse(r.stdout || '{}') as { end?: { sum_received?: { bytes: number; bits_per_second: number } } };
      const got = j.end?.sum_received;
      t.ok(got !== undefined && got.bytes > 0, `lan${i + 1}: iperf3 ran (${got ? (got.bits_per_second / 1e6).toFixed(0) : '?'} Mbit/s)`);
    }
  });

  await t.test('inbound traffic to a port of CPE 1 never reaches CPE 2', async (t) => {
    const clients = l.cpes.map((cpe) => {
      const c = cpe.lan.spawn(process.execPath, ['-e', UDP_CLIENT, INET], { stdio: ['pipe', 'pipe', 'inherit'] });
      let out = '';
      c.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
      return { c, out: () => out, exit: new Promise((r) => c.once('exit', r)) };
    });
    for (const c of clients) await waitFor('UDP echo reply', () => (c.out().includes('got 1\n') ? true : undefined));
    const peers = JSON.parse((await l.inet.exec('curl', ['-sS', `http://${INET}/udp-peers`])).stdout) as Array<{ addr: string; port: number }>;
    const p1 = peers.find((p) => p.addr === SHARED && inSet(0, p.port));
    t.ok(p1 !== undefined && peers.some((p) => p.addr === SHARED && inSet(1, p.port)), 'each LAN host reached the echo server from its own set');
    const before = (await status(cpe2)).counters.global['tunnel_packets'];
    await l.inet.exec('curl', ['-sS', `http://${INET}/blast?port=${p1!.port}&n=50`]);
    // Ports of CPE 1 that no flow holds: the PRR still sends them to CPE 1, whose NAT drops them.
    for (const port of [1104, 1105, 40017]) await l.inet.exec('curl', ['-sS', `http://${INET}/blast?port=${port}&n=5`]);
    await waitFor('50 datagrams at lan1', () => (clients[0]!.out().includes('got 51\n') ? true : undefined));
    for (const c of clients) {
      c.c.stdin?.end();
      await c.exit;
    }
    t.equal(/received (\d+)/.exec(clients[0]!.out())?.[1], '51', 'lan1 got its echo and the 50 datagrams to its port');
    t.equal(/received (\d+)/.exec(clients[1]!.out())?.[1], '1', 'lan2 got its echo only');
    t.equal((await status(cpe2)).counters.global['tunnel_packets'], before, 'CPE 2 received nothing through the tunnel meanwhile');
  });

  await t.test('500 concurrent TCP connections from one LAN host, every source port in the set', async (t) => {
    const c = cpe1.lan.spawn(process.execPath, ['-e', HOLD_CLIENT, INET, '500', '7000', '0'], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    c.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
    const exit = new Promise((r) => c.once('exit', r));
    await waitFor('500 connections', () => (out.includes('\n') ? true : undefined), 90_000, 200);
    const r = JSON.parse(out) as { connected: number; failed: string[]; echoed: number };
    t.equal(r.connected, 500, `all 500 connected (failures: ${r.failed.join(',') || 'none'})`);
    t.equal(r.echoed, 500, 'all 500 echo');
    const peers = JSON.parse((await l.inet.exec('curl', ['-sS', `http://${INET}/peers?port=7000`])).stdout) as Array<{ addr: string; port: number }>;
    t.equal(peers.length, 500, 'the server sees 500 connections');
    t.ok(peers.every((p) => p.addr === SHARED), `all from ${SHARED}`);
    t.equal(new Set(peers.map((p) => p.port)).size, 500, '500 distinct source ports');
    const outside = peers.filter((p) => !inSet(0, p.port));
    t.same(outside, [], `every source port in ${SETS[0]}`);
    const runs = new Set(peers.map((p) => p.port >> 10));
    t.equal(runs.size, 63, 'the round robin used all 63 runs of the PSID set');
    const st = await status(cpe1);
    t.ok(st.ports_in_use.byProtocol['tcp']! >= 500, `smap status: ${st.ports_in_use.byProtocol['tcp']} TCP ports in use`);
    c.stdin?.end();
    await exit;
  });

  await t.test('a 10-port set: the 11th concurrent connection fails cleanly, the ten keep working', async (t) => {
    const c = cpe2.lan.spawn(process.execPath, ['-e', HOLD_CLIENT, INET, '10', '7002', '1'], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    c.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
    const exit = new Promise((r) => c.once('exit', r));
    await waitFor('10 + 1 connections', () => (out.includes('\n') ? true : undefined), 60_000, 200);
    const r = JSON.parse(out) as { connected: number; extra: string[]; echoed: number };
    t.equal(r.connected, 10, 'ten connected');
    t.same(r.extra, ['timeout'], 'the 11th never connected');
    t.equal(r.echoed, 10, 'the ten still echo after it');
    const peers = JSON.parse((await l.inet.exec('curl', ['-sS', `http://${INET}/peers?port=7002`])).stdout) as Array<{ addr: string; port: number }>;
    t.same(peers.map((p) => p.port).sort(), Array.from({ length: 10 }, (_, i) => 20000 + i), 'the server sees exactly ports 20000-20009');
    t.same((await status(cpe2)).counters.drops_out, {}, 'nothing escaped the set toward the PRR');
    const failed = (await status(cpe2)).nat_failed;
    t.ok(failed !== null && failed >= 1, `the NAT's refusals of the 11th are counted (nat_failed ${failed})`);
    c.stdin?.end();
    await exit;
  });

  await t.test('smap status, and no conntrack helper', async (t) => {
    const r = await l.cli(cpe1.host, 'smap', ['status', '--config', cpe1.config]);
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, `binding: static ${SHARED} ports ${SETS[0]} (1008 ports) via 2001:db8:ffff::1\n`);
    t.match(r.stdout, 'wan: wan 2001:db8:1::2\n');
    t.match(r.stdout, 'tunnel: smap0 mtu 1460\n');
    // TUN offloads are on by default ([tunnel] offload = auto): the iperf3 run above went through
    // them (TSO super-packets from the LAN host cut in user space; none refused).
    t.match(r.stdout, /^offload: on \([1-9]\d* super-packets read and cut, \d+ written coalesced, 0 refused\)$/m);
    t.match(r.stdout, /^ports in use: tcp \d+, udp \d+, icmp \d+ /m);
    t.notMatch(cpe1.host.run('nft', 'list', 'ruleset'), /ct helper/, 'no ct helper anywhere in the CPE ruleset');
  });

  await t.test('the WAN address changes: the tunnel follows it', async (t) => {
    cpe1.host.addAddress('wan', '2001:db8:1::3/64');
    cpe1.host.run('ip', '-6', 'addr', 'del', '2001:db8:1::2/64', 'dev', 'wan');
    const bind = await l.cli(l.prr, 'prr', ['subscribers', 'bind', 'cpe1', '--ipv6', '2001:db8:1::3', '--ipv4', SHARED, '--ports', SETS[0], '--socket', join(l.dir, 'prr.sock')]);
    t.equal(bind.code, 0, `the PRR learns the new address (${bind.stderr.trim() || bind.stdout.trim()})`);
    await waitFor('the agent to follow', async () => ((await status(cpe1)).wan.ipv6 === '2001:db8:1::3' ? true : undefined), 15_000, 200);
    t.ok(inSet(0, portOf(await fetch(cpe1.lan))), 'curl from lan1 works from the new address');
  });

  await t.test('on exit the table and the TUN are gone', async (t) => {
    const exit = new Promise<number | null>((r) => cpe1.agent!.once('exit', (code) => r(code)));
    cpe1.agent!.kill('SIGTERM');
    t.equal(await exit, 0, 'exit code 0 on SIGTERM');
    t.notMatch(cpe1.host.run('nft', 'list', 'tables'), /smap/, 'table ip smap removed');
    t.notMatch(cpe1.host.run('ip', 'link', 'show'), /smap0/, 'smap0 gone');
  });
});
