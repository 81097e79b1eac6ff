/**
 * The PRR in the lab: the 2010 layout (cpe1 and cpe2 share 192.0.2.100 with 10000-11000 and
 * 11001-12000; cpe3 has no binding), driven from the CPE namespaces by this test, which builds
 * the inner IPv4 packets with the project's codecs, against real servers and a real kernel on
 * the Internet side (test/lab/prr-topology.ts has the picture).
 *
 * One topology and one `prr run` serve the subtests in order; later ones rely on the bindings
 * the earlier ones left (7 moves and releases cpe1, 8 brings it back by SIGHUP). Counters are
 * compared before/after each step, never as absolute values.
 */
import t, { type Test } from 'tap';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PROTO_ICMP, PROTO_IPV6, PROTO_TCP, PROTO_UDP, TCP_FLAG_ACK, TCP_FLAG_RST, TCP_FLAG_SYN } from '../../common/codec/constants.js';
import { ipv4ToString } from '../../common/codec/ipv4.js';
import { encodeIpv6, newIpv6Header, parseIpv6OrThrow } from '../../common/codec/ipv6.js';
import { labUnavailableReason, waitFor } from '../lab/lab.js';
import { REPO_ROOT } from '../lab/paths.js';
import {
  BR6,
  buildPrrTopology,
  capture,
  CPES,
  distMissingReason,
  INET4,
  ORIGINAL_SUBSCRIBERS,
  PRR4,
  SHARED4,
  type CpeDriver,
  type PrrProcess,
  type PrrStats,
} from '../lab/prr-topology.js';
import { echo4, ip4, ipv4, readIcmp4, readIpv4, tcp4, udp4 } from './helpers/packets.js';

const FLAT_FILE = join(REPO_ROOT, 'test/prr/fixtures/prr-2010.conf');
const SH = ip4(SHARED4);
const INET = ip4(INET4);

// ---- packets --------------------------------------------------------------------------------

/** UDP from the shared address (or `src`) to the Internet host. */
const udpOut = (sport: number, dport: number, data: string, src = SH): Buffer => udp4({ src, dst: INET, sport, dport, data: Buffer.from(data) });

/** A minimal IPv6 packet (no next header) inside IPv4: protocol 41, what a 6in4 tunnel would send. */
function ipv6InIpv4(): Buffer {
  const h = newIpv6Header();
  h.nextHeader = 59;
  h.hopLimit = 64;
  h.payloadLen = 0;
  const inner = Buffer.alloc(40);
  encodeIpv6(inner, 0, h, parseIpv6OrThrow('2001:db8:1::2'), 0, parseIpv6OrThrow('2001:db8:9::9'), 0);
  return ipv4({ src: SH, dst: INET, proto: PROTO_IPV6 }, inner);
}

/** The fields of a received inner IPv4 packet the assertions look at. */
interface Seen {
  proto: number;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  /** Checksums of the IPv4 header and of the L4 segment verify. */
  ok: boolean;
  data: string;
  tcpFlags: number;
  tcpAck: number;
  icmpType: number;
  icmpCode: number;
  icmpId: number;
  /** ICMP errors: the quoted packet's protocol, source port and destination port. */
  quoted: { proto: number; sport: number; dport: number } | undefined;
}

function seen(pkt: Buffer): Seen {
  const ip = readIpv4(pkt, 0, pkt.length);
  const p = ip.payload;
  const s: Seen = {
    proto: ip.proto,
    src: ipv4ToString(ip.src),
    dst: ipv4ToString(ip.dst),
    sport: -1,
    dport: -1,
    ok: ip.headerOk && ip.l4Ok,
    data: '',
    tcpFlags: -1,
    tcpAck: -1,
    icmpType: -1,
    icmpCode: -1,
    icmpId: -1,
    quoted: undefined,
  };
  if ((ip.proto === PROTO_UDP || ip.proto === PROTO_TCP) && p.length >= 8) {
    s.sport = p.readUInt16BE(0);
    s.dport = p.readUInt16BE(2);
  }
  if (ip.proto === PROTO_UDP) s.data = p.subarray(8).toString('latin1');
  if (ip.proto === PROTO_TCP && p.length >= 20) {
    s.tcpFlags = p[13]!;
    s.tcpAck = p.readUInt32BE(8);
  }
  if (ip.proto === PROTO_ICMP && p.length >= 8) {
    const m = readIcmp4(pkt, 0, pkt.length);
    s.icmpType = m.type;
    s.icmpCode = m.code;
    s.icmpId = m.rest >>> 16;
    s.data = p.subarray(8).toString('latin1');
    const q = m.quote;
    if (m.type === 3 && q.length >= 28) {
      const qh = (q[0]! & 0x0f) * 4;
      s.quoted = { proto: q[9]!, sport: q.readUInt16BE(qh), dport: q.readUInt16BE(qh + 2) };
    }
  }
  return s;
}

const udpWith = (data: string) => (pkt: Buffer): boolean => {
  const s = seen(pkt);
  return s.proto === PROTO_UDP && s.data === data;
};

// ---- counters -------------------------------------------------------------------------------

type Side = 'drops4' | 'drops6' | 'global';
const get = (s: PrrStats, side: Side, key: string): number => s[side][key] ?? 0;
const sum = (o: Record<string, number>): number => Object.values(o).reduce((a, b) => a + b, 0);

/** Poll the control socket until `side` total grew by `n` over `before`; return the CLI's stats. */
async function afterDrops(prr: PrrProcess, before: PrrStats, side: 'drops4' | 'drops6', n: number): Promise<PrrStats> {
  await waitFor(`${n} more ${side}`, async () => (sum((await prr.statsQuick())[side]) >= sum(before[side]) + n ? true : undefined));
  return prr.stats();
}

async function show(t: Test, prr: PrrProcess, name: string): Promise<Record<string, unknown>> {
  const r = await prr.subscribers('show', name, '--json');
  t.equal(r.code, 0, `subscribers show ${name} exits 0 ${r.stderr.trim()}`);
  return JSON.parse(r.stdout || '{}') as Record<string, unknown>;
}

/** One UDP echo round trip for `cpe` from 192.0.2.100:`sport`; returns what came back. */
async function echoRoundTrip(cpe: CpeDriver, sport: number, data: string): Promise<Seen> {
  await cpe.send(udpOut(sport, 7, data));
  return seen((await cpe.receive(udpWith(data), `UDP echo "${data}"`)).pkt);
}

t.test('PRR lab: two CPEs share 192.0.2.100 (10000-11000, 11001-12000), cpe3 unbound', { skip: labUnavailableReason() ?? distMissingReason() }, async (t) => {
  const topo = buildPrrTopology('prrlab');
  t.teardown(() => topo.destroy());
  const [inet, cpe1, cpe2, cpe3] = await Promise.all([topo.startInet(), topo.startDriver('cpe1'), topo.startDriver('cpe2'), topo.startDriver('cpe3')]);
  const config = topo.writeConfig();
  const prr = await topo.startPrr(config);
  const pid = prr.pid;
  t.match(prr.out, /prr: running \(.*prr\.ini, 2 bindings\)/, 'prr run reports its two bindings');
  t.notMatch(prr.err, /forwarding is off/, 'no forwarding warning with net.ipv4.ip_forward = 1');

  await t.test('(1) UDP echo: each CPE gets its own echo back', async (t) => {
    await cpe1.send(udpOut(10500, 7, 'echo-cpe1'));
    await cpe2.send(udpOut(11500, 7, 'echo-cpe2'));
    const r1 = await cpe1.receive(udpWith('echo-cpe1'), 'echo for cpe1');
    const r2 = await cpe2.receive(udpWith('echo-cpe2'), 'echo for cpe2');
    for (const [name, r, port] of [['cpe1', r1, 10500], ['cpe2', r2, 11500]] as const) {
      const s = seen(r.pkt);
      t.same([s.src, s.sport, s.dst, s.dport], [INET4, 7, SHARED4, port], `${name}: echo ${INET4}:7 -> ${SHARED4}:${port}`);
      t.ok(s.ok, `${name}: IPv4 and UDP checksums verify`);
      t.same([r.outer.src, r.outer.dst], [BR6, CPES[name].ipv6], `${name}: tunnelled from ${BR6} to ${CPES[name].ipv6}`);
    }
    t.same(inet.got('echo-cpe1', 7).map((e) => [e.from, e.port]), [[SHARED4, 10500]], 'the echo server saw cpe1 as 192.0.2.100:10500');
    t.same(inet.got('echo-cpe2', 7).map((e) => [e.from, e.port]), [[SHARED4, 11500]], 'the echo server saw cpe2 as 192.0.2.100:11500');
    t.equal(cpe1.matching(udpWith('echo-cpe2')).length, 0, "cpe1 did not get cpe2's echo");
    t.equal(cpe2.matching(udpWith('echo-cpe1')).length, 0, "cpe2 did not get cpe1's echo");
    t.equal(cpe3.received().length, 0, 'cpe3 (unbound) got nothing');
  });

  await t.test('(2) TCP: a SYN to a real listener gets its SYN-ACK back at the right CPE', async (t) => {
    for (const [cpe, other, name, sport] of [[cpe1, cpe2, 'cpe1', 10600], [cpe2, cpe1, 'cpe2', 11600]] as const) {
      await cpe.send(tcp4({ src: SH, dst: INET, sport, dport: 80, seq: 1000, mss: 1420, flags: TCP_FLAG_SYN }));
      const r = await cpe.receive((p) => seen(p).proto === PROTO_TCP && seen(p).dport === sport, `SYN-ACK to ${sport}`);
      const s = seen(r.pkt);
      t.same([s.src, s.sport, s.dst, s.dport], [INET4, 80, SHARED4, sport], `${name}: SYN-ACK ${INET4}:80 -> ${SHARED4}:${sport}`);
      t.equal(s.tcpFlags & (TCP_FLAG_SYN | TCP_FLAG_ACK | TCP_FLAG_RST), TCP_FLAG_SYN | TCP_FLAG_ACK, `${name}: flags SYN+ACK`);
      t.equal(s.tcpAck, 1001, `${name}: acknowledges our SYN (ack 1001)`);
      t.ok(s.ok, `${name}: checksums verify`);
      t.equal(other.matching((p) => seen(p).proto === PROTO_TCP && seen(p).dport === sport).length, 0, `the other CPE got no segment for port ${sport}`);
      // End the half-open connection, so the listener stops retransmitting its SYN-ACK.
      await cpe.send(tcp4({ src: SH, dst: INET, sport, dport: 80, seq: 1001, flags: TCP_FLAG_RST }));
    }
  });

  await t.test('(3) ICMP echo: the reply follows the identifier', async (t) => {
    for (const [cpe, other, name, id] of [[cpe1, cpe2, 'cpe1', 10050], [cpe2, cpe1, 'cpe2', 11050]] as const) {
      await cpe.send(echo4({ src: SH, dst: INET, id, seq: 7, data: Buffer.from(`ping-${name}`) }));
      const r = await cpe.receive((p) => seen(p).proto === PROTO_ICMP && seen(p).icmpId === id, `echo reply id ${id}`);
      const s = seen(r.pkt);
      t.same([s.src, s.dst, s.icmpType, s.icmpCode, s.icmpId], [INET4, SHARED4, 0, 0, id], `${name}: echo reply from ${INET4}, identifier ${id}`);
      t.equal(s.data.slice(-`ping-${name}`.length), `ping-${name}`, `${name}: the reply carries our data`);
      t.ok(s.ok, `${name}: checksums verify`);
      t.equal(other.matching((p) => seen(p).proto === PROTO_ICMP && seen(p).icmpId === id).length, 0, `the other CPE got no reply with id ${id}`);
    }
  });

  await t.test('(4) ICMP port unreachable from the Internet host reaches the CPE whose port it quotes', async (t) => {
    const before = await prr.statsQuick();
    for (const [cpe, other, name, sport] of [[cpe1, cpe2, 'cpe1', 10800], [cpe2, cpe1, 'cpe2', 11800]] as const) {
      await cpe.send(udpOut(sport, 33434, `closed-${name}`));
      const isErr = (p: Buffer): boolean => seen(p).icmpType === 3 && seen(p).quoted?.sport === sport;
      const s = seen((await cpe.receive(isErr, `port unreachable quoting ${sport}`)).pkt);
      t.same([s.src, s.dst, s.icmpType, s.icmpCode], [INET4, SHARED4, 3, 3], `${name}: port unreachable from ${INET4}`);
      t.same(s.quoted, { proto: PROTO_UDP, sport, dport: 33434 }, `${name}: it quotes our datagram ${sport} -> 33434`);
      t.ok(s.ok, `${name}: checksums verify`);
      t.equal(other.matching(isErr).length, 0, `the other CPE did not get it`);
    }
    const after = await prr.stats();
    t.equal(get(after, 'global', 'icmp_relayed') - get(before, 'global', 'icmp_relayed'), 2, 'two ICMP errors relayed by the quoted port');
  });

  await t.test('(5) inbound from the Internet: the destination port picks the CPE', async (t) => {
    await inet.sendto(SHARED4, 10700, 'in-10700');
    const r1 = await cpe1.receive(udpWith('in-10700'), 'datagram to :10700');
    await inet.sendto(SHARED4, 11700, 'in-11700');
    const r2 = await cpe2.receive(udpWith('in-11700'), 'datagram to :11700');
    t.same([seen(r1.pkt).src, seen(r1.pkt).dst, seen(r1.pkt).dport], [INET4, SHARED4, 10700], 'cpe1 got the datagram to 192.0.2.100:10700');
    t.equal(r1.outer.dst, CPES.cpe1.ipv6, '... tunnelled to cpe1');
    t.same([seen(r2.pkt).dst, seen(r2.pkt).dport], [SHARED4, 11700], 'cpe2 got the datagram to 192.0.2.100:11700');
    t.equal(r2.outer.dst, CPES.cpe2.ipv6, '... tunnelled to cpe2');

    const before = await prr.statsQuick();
    const icmp = await capture(topo.inet, 'eth-prr', `icmp and src host ${PRR4}`);
    t.teardown(() => icmp.stop());
    await inet.sendto(SHARED4, 12500, 'in-12500');
    const after = await afterDrops(prr, before, 'drops4', 1);
    t.equal(get(after, 'drops4', 'no_binding') - get(before, 'drops4', 'no_binding'), 1, 'the datagram to :12500 counted no_binding');
    // RFC 7596 §6: no softwire for the port, so ICMPv4 host unreachable, from the PRR, to the sender.
    t.equal(get(after, 'global', 'icmp4_generated') - get(before, 'global', 'icmp4_generated'), 1, 'the PRR made one ICMPv4 error for it');
    const line = await icmp.wait(/unreachable/, 'ICMP from the PRR').catch((e: Error) => e.message);
    t.match(line, `IP ${PRR4} > ${INET4}: ICMP host ${SHARED4} unreachable`, 'the Internet host got host unreachable from the PRR');
    // Anything the PRR forwarded before the marker has arrived before it (one process, one link).
    await inet.sendto(SHARED4, 11700, 'in-marker');
    await cpe2.receive(udpWith('in-marker'), 'marker');
    for (const [name, cpe] of [['cpe1', cpe1], ['cpe2', cpe2], ['cpe3', cpe3]] as const) {
      t.equal(cpe.matching(udpWith('in-12500')).length, 0, `${name} did not get the datagram to :12500`);
    }
    t.equal(cpe2.matching(udpWith('in-10700')).length + cpe3.matching(udpWith('in-10700')).length, 0, 'only cpe1 got :10700');
    t.equal(cpe1.matching(udpWith('in-11700')).length + cpe3.matching(udpWith('in-11700')).length, 0, 'only cpe2 got :11700');
  });

  await t.test('(6) spoofing: every case dropped, counted by reason, never on the Internet', async (t) => {
    const before = await prr.statsQuick();
    const cases: Array<[string, CpeDriver, Buffer, string]> = [
      ["cpe1 with cpe2's port 11500", cpe1, udpOut(11500, 9, 'spoof-a'), 'port_outside_set'],
      ['cpe1 with source address 192.0.2.101', cpe1, udpOut(10500, 9, 'spoof-b', ip4('192.0.2.101')), 'port_outside_set'],
      ["cpe3 (unbound) with cpe1's 192.0.2.100:10500", cpe3, udpOut(10500, 9, 'spoof-c'), 'spoofed_ipv6'],
      ['cpe3 with an unbound port 12500', cpe3, udpOut(12500, 9, 'spoof-d'), 'unknown_cpe'],
      ['cpe1 sending IPv6-in-IPv4 (protocol 41)', cpe1, ipv6InIpv4(), 'tunnel_loop'],
    ];
    for (const [, cpe, pkt] of cases) await cpe.send(pkt);
    const after = await afterDrops(prr, before, 'drops6', cases.length);
    const delta = (reason: string): number => get(after, 'drops6', reason) - get(before, 'drops6', reason);
    t.equal(delta('port_outside_set'), 2, 'port_outside_set +2: cpe1 with a port of cpe2, cpe1 with another address');
    t.equal(delta('spoofed_ipv6'), 1, "spoofed_ipv6 +1: cpe3 with cpe1's address and port");
    t.equal(delta('unknown_cpe'), 1, 'unknown_cpe +1: cpe3 with an unbound port');
    t.equal(delta('tunnel_loop'), 1, 'tunnel_loop +1: protocol 41 from cpe1');
    t.equal(sum(after.drops6) - sum(before.drops6), cases.length, `exactly ${cases.length} tunnel drops, one per spoofed packet`);
    t.equal(get(after, 'global', 'out4_packets') - get(before, 'global', 'out4_packets'), 0, 'nothing was forwarded to the Internet');

    // The Internet host's sink: a legitimate marker from cpe1 arrives, none of the spoofed datagrams did.
    await cpe1.send(udpOut(10501, 9, 'spoof-marker'));
    await inet.lines.wait((e) => e.udp === 9 && e.data === 'spoof-marker', 'marker at the sink');
    t.same(inet.got('spoof-marker', 9).map((e) => [e.from, e.port]), [[SHARED4, 10501]], 'the marker from cpe1 reached the sink');
    for (const tag of ['a', 'b', 'c', 'd']) t.equal(inet.got(`spoof-${tag}`).length, 0, `spoofed datagram ${tag} never reached the Internet host`);
  });

  await t.test('(7) a runtime binding change moves traffic without a restart', async (t) => {
    const before = await show(t, prr, 'cpe1');
    t.ok(Number(before['from_cpe_packets']) > 0, `cpe1 has counted traffic (${String(before['from_cpe_packets'])} packets from it)`);
    t.equal((await echoRoundTrip(cpe2, 11501, 'cpe2-before')).dport, 11501, 'cpe2 echo before the change');

    // cpe2 keeps a flow going while cpe1's binding moves: every datagram must come back.
    const N = 30;
    const flow = (async () => {
      for (let i = 0; i < N; i++) {
        await cpe2.send(udpOut(11502, 7, `flow-${i}`));
        await sleep(15);
      }
    })();
    const bind = prr.subscribers('bind', 'cpe1', '--ipv6', CPES.cpe3.ipv6, '--ipv4', SHARED4, '--ports', '10000-11000');
    const [, r] = await Promise.all([flow, bind]);
    t.equal(r.code, 0, `subscribers bind exits 0 ${r.stderr.trim()}`);
    const fields = r.stdout.trim().split('\t');
    t.same(fields.slice(0, 4), ['changed: cpe1', CPES.cpe3.ipv6, SHARED4, '10000-11000'], 'bind changed cpe1 in place to cpe3\'s address');
    t.equal(Number(fields[4]), before['from_cpe_packets'], "the changed binding kept cpe1's counters");
    const flowEchoes = (): number => new Set(cpe2.matching((p) => /^flow-\d+$/.test(seen(p).data)).map((x) => seen(Buffer.from(x.hex, 'hex')).data)).size;
    const flowBack = await waitFor(`${N} flow echoes at cpe2`, () => (flowEchoes() >= N ? N : undefined)).catch(() => flowEchoes());
    t.equal(flowBack, N, `cpe2's flow during the change: ${N} of ${N} datagrams echoed`);

    await inet.sendto(SHARED4, 10700, 'moved-10700');
    const r3 = await cpe3.receive(udpWith('moved-10700'), 'datagram to :10700 after the move');
    t.equal(r3.outer.dst, CPES.cpe3.ipv6, 'inbound to :10700 now reaches cpe3');
    t.equal(cpe1.matching(udpWith('moved-10700')).length, 0, 'and not cpe1');
    t.equal((await echoRoundTrip(cpe3, 10502, 'cpe3-as-cpe1')).dport, 10502, "cpe3 may now send from cpe1's ports");
    const spoofBefore = await prr.statsQuick();
    await cpe1.send(udpOut(10503, 7, 'old-cpe1'));
    const spoofAfter = await afterDrops(prr, spoofBefore, 'drops6', 1);
    t.equal(get(spoofAfter, 'drops6', 'spoofed_ipv6') - get(spoofBefore, 'drops6', 'spoofed_ipv6'), 1, "cpe1's old address is now refused (spoofed_ipv6)");
    t.equal((await echoRoundTrip(cpe2, 11501, 'cpe2-after')).dport, 11501, 'cpe2 echo after the change');

    t.ok(prr.running, 'the PRR process is still running');
    t.equal(prr.pid, pid, 'same pid: no restart');
    t.match(readFileSync(`/proc/${pid}/cmdline`, 'latin1'), /cli\.js\0run\0/, `pid ${pid} is still \`prr run\``);
    const moved = await show(t, prr, 'cpe1');
    t.equal(moved['ipv6'], CPES.cpe3.ipv6, 'show: cpe1 is bound to 2001:db8:3::2');
    t.ok(Number(moved['from_cpe_packets']) >= Number(before['from_cpe_packets']) + 1, `show: from_cpe_packets kept and grew (${String(before['from_cpe_packets'])} -> ${String(moved['from_cpe_packets'])})`);
    t.ok(Number(moved['to_cpe_packets']) >= Number(before['to_cpe_packets']) + 2, `show: to_cpe_packets kept and grew (${String(before['to_cpe_packets'])} -> ${String(moved['to_cpe_packets'])})`);

    const rel = await prr.subscribers('release', 'cpe1');
    t.equal(rel.code, 0, 'subscribers release exits 0');
    t.match(rel.stdout, /^released: cpe1 \(1 binding\)/, 'release reports one binding');
    const relBefore = await prr.statsQuick();
    t.equal(relBefore.bindings, 1, 'one binding left (cpe2)');
    await inet.sendto(SHARED4, 10700, 'released-10700');
    const relAfter = await afterDrops(prr, relBefore, 'drops4', 1);
    t.equal(get(relAfter, 'drops4', 'no_binding') - get(relBefore, 'drops4', 'no_binding'), 1, 'inbound to :10700 after release counts no_binding');
    await inet.sendto(SHARED4, 11700, 'released-marker');
    await cpe2.receive(udpWith('released-marker'), 'marker');
    t.equal(cpe1.matching(udpWith('released-10700')).length + cpe3.matching(udpWith('released-10700')).length, 0, 'nobody got it');
    t.equal(prr.pid, pid, 'still the same PRR process');
  });

  await t.test('(8) SIGHUP re-reads the static bindings', async (t) => {
    topo.writeConfig([...ORIGINAL_SUBSCRIBERS, { name: 'cpe3', ipv6: CPES.cpe3.ipv6, ports: '12001-13000' }]);
    const errBefore = prr.err.length;
    process.kill(pid, 'SIGHUP');
    const line = await waitFor('reload log line', () => /reloaded [^\n]*/.exec(prr.err.slice(errBefore))?.[0]);
    // cpe1 was released at run time: the file brings it back; cpe3 is new.
    t.match(line, /: 2 added, 0 changed, 0 removed/, 'reload added cpe1 (released at run time) and cpe3');
    t.equal((await prr.stats()).bindings, 3, 'three bindings');
    const e3 = await echoRoundTrip(cpe3, 12500, 'cpe3-after-hup');
    t.same([e3.dst, e3.dport], [SHARED4, 12500], 'cpe3 traffic flows from 192.0.2.100:12500');
    const e1 = await echoRoundTrip(cpe1, 10500, 'cpe1-after-hup');
    t.same([e1.dst, e1.dport], [SHARED4, 10500], 'cpe1 flows again from its own address');
    await inet.sendto(SHARED4, 12600, 'in-12600');
    const r = await cpe3.receive(udpWith('in-12600'), 'inbound to :12600');
    t.equal(r.outer.dst, CPES.cpe3.ipv6, 'inbound to :12600 reaches cpe3');
    t.equal(prr.pid, pid, 'same PRR process');
    t.ok(prr.running, 'still running');
  });

  await t.test('(9) the 2010 flat file, read unchanged, drives the same layout', async (t) => {
    const stopped = await prr.stop('SIGTERM');
    t.same(stopped, { code: 0, signal: null }, 'the prr.ini PRR stopped on SIGTERM with exit code 0');
    const hash = (): string => createHash('sha256').update(readFileSync(FLAT_FILE)).digest('hex');
    const sha = hash();
    // The flat file cannot name a control socket: give this PRR a /run of its own.
    const flat = await topo.startPrr(FLAT_FILE, { privateRun: true });
    t.teardown(() => flat.stop('SIGKILL'));
    t.match(flat.out, /prr: running \(.*prr-2010\.conf, 2 bindings\)/, 'prr run reads the flat file: 2 bindings');
    const list = await flat.subscribers('list', '--json');
    t.equal(list.code, 0, `subscribers list exits 0 ${list.stderr.trim()}`);
    const subs = (JSON.parse(list.stdout || '{}') as { subscribers?: Array<Record<string, unknown>> }).subscribers ?? [];
    t.same(
      subs.map((s) => [s['name'], s['ipv6'], s['ipv4'], s['ports']]),
      [['cpe1', CPES.cpe1.ipv6, SHARED4, '10000-11000'], ['cpe2', CPES.cpe2.ipv6, SHARED4, '11001-12000']],
      'bindings cpe1 and cpe2 as the 2010 file has them',
    );
    const e1 = await echoRoundTrip(cpe1, 10510, 'flat-cpe1');
    const e2 = await echoRoundTrip(cpe2, 11510, 'flat-cpe2');
    t.same([e1.dst, e1.dport, e2.dst, e2.dport], [SHARED4, 10510, SHARED4, 11510], 'UDP echo for both CPEs');
    t.equal(cpe1.matching(udpWith('flat-cpe2')).length + cpe2.matching(udpWith('flat-cpe1')).length, 0, 'each echo only at its own CPE');
    t.equal(hash(), sha, 'the flat file is unchanged');
    t.same(await flat.stop('SIGTERM'), { code: 0, signal: null }, 'flat-file PRR stopped on SIGTERM with exit code 0');
  });

  await t.test('(10) IPv4 forwarding off: a warning; SIGTERM stops cleanly', async (t) => {
    topo.prr.sysctl('net.ipv4.ip_forward', 0);
    t.teardown(() => topo.prr.sysctl('net.ipv4.ip_forward', 1));
    const p = await topo.startPrr(topo.writeConfig());
    t.teardown(() => p.stop('SIGKILL'));
    const warning = p.err.split('\n').find((l) => /forwarding/.test(l));
    t.ok(warning !== undefined, `stderr has a line about forwarding: ${warning ?? p.err.trim()}`);
    t.match(warning ?? '', /^WARN /, 'at warning level');
    t.ok(existsSync(topo.controlSocket), 'the control socket exists while running');
    t.equal((await topo.prr.exec('ip', ['link', 'show', 'prr0'])).code, 0, 'prr0 exists while running');
    t.same(await p.stop('SIGTERM'), { code: 0, signal: null }, 'SIGTERM: exit code 0');
    t.equal((await topo.prr.exec('ip', ['link', 'show', 'prr0'])).code !== 0, true, 'prr0 is gone');
    t.notOk(existsSync(topo.controlSocket), 'the control socket is removed');
    t.match(p.err, /INFO prr: stopped/, 'the log says stopped');
  });
});
