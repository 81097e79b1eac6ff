/**
 * The SMAP core, one table of cases per direction: a packet in, a verdict (and drop reason) out.
 * Packets are built with the PRR tests' helpers (the project's codecs).
 */
import t from 'tap';
import { ICMP4_DEST_UNREACH, ICMP4_UNREACH_PORT, ICMP6_PACKET_TOO_BIG, PROTO_TCP } from '../../common/codec/constants.js';
import { parsePortSet } from '../../common/portset.js';
import { Action, ICMP_PER_SECOND, newVerdict, SmapCore, type SmapBinding } from '../../smap/core.js';
import { DROP_REASON_NAMES } from '../../smap/counters.js';
import { echo4, icmpError4, ip4, ip6, ipv4, readIcmp4, tcp4, udp4 } from '../prr/helpers/packets.js';

const SHARED = ip4('192.0.2.100');
const INET = ip4('198.51.100.2');
const LAN = ip4('192.168.1.2');
const PRR = ip6('2001:db8:ffff::1');
const STRANGER = ip6('2001:db8:99::1');
const range: SmapBinding = { shared: SHARED, ports: parsePortSet('10000-10009'), prr: PRR };
// a=6, k=6, PSID 5: runs of 16 ports at A*1024 + 80 (1104-1119, 2128-2143, ...).
const psid: SmapBinding = { shared: SHARED, ports: parsePortSet('psid:a=6/k=6/id=5'), prr: PRR };

type Case = [what: string, binding: SmapBinding | undefined, pkt: Buffer, action: number, reason?: string];

const inbound = (sport: number, dport: number): Buffer => udp4({ src: INET, dst: SHARED, sport, dport });
const fromLan: Case[] = [
  ['UDP from a port in the range', range, udp4({ src: SHARED, dst: INET, sport: 10003, dport: 53 }), Action.ToPrr],
  ['TCP from the last port of the range', range, tcp4({ src: SHARED, dst: INET, sport: 10009, dport: 80 }), Action.ToPrr],
  ['TCP from the port after the range', range, tcp4({ src: SHARED, dst: INET, sport: 10010, dport: 80 }), Action.Drop, 'outside_set'],
  ['UDP from the port before the range', range, udp4({ src: SHARED, dst: INET, sport: 9999, dport: 53 }), Action.Drop, 'outside_set'],
  ['TCP in a later PSID run', psid, tcp4({ src: SHARED, dst: INET, sport: 5 * 1024 + 80 + 15, dport: 443 }), Action.ToPrr],
  ['TCP between PSID runs', psid, tcp4({ src: SHARED, dst: INET, sport: 5 * 1024 + 96, dport: 443 }), Action.Drop, 'outside_set'],
  ['UDP with the LAN source (not NATed)', range, udp4({ src: LAN, dst: INET, sport: 10003, dport: 53 }), Action.Drop, 'not_shared_source'],
  ['echo request, id in the set', range, echo4({ src: SHARED, dst: INET, id: 10005 }), Action.ToPrr],
  ['echo request, id outside the set', range, echo4({ src: SHARED, dst: INET, id: 4242 }), Action.Drop, 'outside_set'],
  ['ICMP error quoting a packet to one of our ports', range,
    icmpError4({ src: SHARED, dst: INET, type: ICMP4_DEST_UNREACH, code: ICMP4_UNREACH_PORT, quote: inbound(5000, 10001) }), Action.ToPrr],
  ['ICMP error quoting a packet to a port not ours', range,
    icmpError4({ src: SHARED, dst: INET, type: ICMP4_DEST_UNREACH, code: ICMP4_UNREACH_PORT, quote: inbound(5000, 20001) }), Action.Drop, 'outside_set'],
  ['GRE (no port)', range, ipv4({ src: SHARED, dst: INET, proto: 47 }, Buffer.alloc(8)), Action.Drop, 'no_port'],
  ['a non-first fragment from the shared address', range, ipv4({ src: SHARED, dst: INET, proto: PROTO_TCP, fragOff: 1480 }, Buffer.alloc(100)), Action.ToPrr],
  ['a truncated packet', range, udp4({ src: SHARED, dst: INET, sport: 10003, dport: 53 }).subarray(0, 12), Action.Drop, 'truncated'],
  ['IPv6 on the TUN', range, Buffer.from([0x60, 0, 0, 0, 0, 0, 59, 64, ...new Array(32).fill(0)]), Action.Drop, 'not_ipv4'],
  ['no binding yet', undefined, udp4({ src: SHARED, dst: INET, sport: 10003, dport: 53 }), Action.Drop, 'no_binding'],
];

t.test('from the LAN (the TUN, after SNAT)', async (t) => {
  const v = newVerdict();
  for (const [what, b, pkt, action, reason] of fromLan) {
    const core = new SmapCore(b);
    // At an offset inside a larger buffer, as in the receive ring.
    const buf = Buffer.alloc(pkt.length + 100, 0xee);
    pkt.copy(buf, 40);
    core.fromLan(buf, 40, pkt.length, v);
    t.equal(v.action, action, `${what}: action`);
    t.equal(v.reason < 0 ? undefined : DROP_REASON_NAMES[v.reason], reason, `${what}: reason`);
    if (action === Action.ToPrr) t.same([v.off, v.len], [40, pkt.length], `${what}: the packet itself, in place`);
  }
});

t.test('from the tunnel', async (t) => {
  const v = newVerdict();
  const reply = udp4({ src: INET, dst: SHARED, sport: 53, dport: 10003 });
  const cases: Array<[string, Buffer, Buffer, number, string?]> = [
    ['from the PRR to the shared address', PRR, reply, Action.ToLan],
    ['from a stranger', STRANGER, reply, Action.Drop, 'not_from_prr'],
    ['to another address', PRR, udp4({ src: INET, dst: ip4('192.0.2.101'), sport: 53, dport: 10003 }), Action.Drop, 'not_to_shared'],
    ['to a LAN address directly', PRR, udp4({ src: INET, dst: LAN, sport: 53, dport: 10003 }), Action.Drop, 'not_to_shared'],
    ['truncated', PRR, reply.subarray(0, 10), Action.Drop, 'truncated'],
  ];
  for (const [what, src, pkt, action, reason] of cases) {
    const core = new SmapCore(range);
    const srcs = Buffer.alloc(48);
    src.copy(srcs, 16);
    core.fromTunnel(srcs, 16, pkt, 0, pkt.length, v);
    t.equal(v.action, action, `${what}: action`);
    t.equal(v.reason < 0 ? undefined : DROP_REASON_NAMES[v.reason], reason, `${what}: reason`);
  }
});

t.test('a binding change takes effect at the next packet', async (t) => {
  const core = new SmapCore(range);
  const v = newVerdict();
  const pkt = tcp4({ src: SHARED, dst: INET, sport: 1104, dport: 80 });
  core.fromLan(pkt, 0, pkt.length, v);
  t.equal(DROP_REASON_NAMES[v.reason], 'outside_set', 'port 1104 is not in 10000-10009');
  core.setBinding(psid);
  core.fromLan(pkt, 0, pkt.length, v);
  t.equal(v.action, Action.ToPrr, 'port 1104 is in psid:a=6/k=6/id=5');
  core.setBinding(undefined);
  core.fromLan(pkt, 0, pkt.length, v);
  t.equal(DROP_REASON_NAMES[v.reason], 'no_binding');
});

t.test('over the tunnel MTU: DF gets Fragmentation Needed from 192.0.0.2 (rate-limited), no DF goes on', async (t) => {
  const clock = { t: 0 };
  const core = new SmapCore(range, () => clock.t);
  core.setMtu(1240);
  const v = newVerdict();
  const df = udp4({ src: SHARED, dst: INET, sport: 10003, dport: 7007, df: true, data: 1400 - 28 });
  const noDf = udp4({ src: SHARED, dst: INET, sport: 10003, dport: 7007, data: 1400 - 28 });
  const fits = udp4({ src: SHARED, dst: INET, sport: 10003, dport: 7007, df: true, data: 1240 - 28 });
  core.fromLan(fits, 0, fits.length, v);
  t.equal(v.action, Action.ToPrr, 'DF at exactly the MTU: to the PRR');
  core.fromLan(noDf, 0, noDf.length, v);
  t.equal(v.action, Action.ToPrr, 'no DF: to the PRR (the kernel fragments the IPv6 packet)');
  core.fromLan(df, 0, df.length, v);
  t.equal(v.action, Action.ToLan, 'DF over the MTU: an error back to the LAN');
  t.equal(v.generated, true);
  t.equal(DROP_REASON_NAMES[v.reason], 'over_mtu_df');
  const m = readIcmp4(core.out, v.off, v.len);
  t.match(m, { type: 3, code: 4, mtu: 1240, src: ip4('192.0.0.2'), dst: SHARED, headerOk: true });
  t.equal(core.events.fragNeeded, 1);
  // A burst: ICMP_PER_SECOND answered, the rest held back until the bucket refills.
  let sent = 0;
  for (let i = 0; i < ICMP_PER_SECOND + 50; i++) {
    core.fromLan(df, 0, df.length, v);
    if (v.generated) sent++;
  }
  t.equal(sent, ICMP_PER_SECOND - 1, 'the bucket empties');
  t.equal(core.events.icmpRateLimited, 51, 'the rest counted as rate-limited');
  t.equal(v.action, Action.Drop, 'a rate-limited one is just dropped');
  t.equal(DROP_REASON_NAMES[v.reason], 'over_mtu_df');
  clock.t = 100; // 100 ms: 10 tokens
  sent = 0;
  for (let i = 0; i < 20; i++) {
    core.fromLan(df, 0, df.length, v);
    if (v.generated) sent++;
  }
  t.equal(sent, 10, 'refilled at ICMP_PER_SECOND');
  const err = icmpError4({ src: SHARED, dst: INET, type: ICMP4_DEST_UNREACH, code: ICMP4_UNREACH_PORT, quote: udp4({ src: INET, dst: SHARED, sport: 5000, dport: 10001, data: 1400 }), quoteLen: 1300, df: true });
  clock.t = 10_000;
  t.ok(err.length > 1240, 'the error itself is over the MTU');
  core.fromLan(err, 0, err.length, v);
  t.equal(v.generated, false, 'no error about an ICMP error');
  t.equal(DROP_REASON_NAMES[v.reason], 'over_mtu_df', 'dropped all the same');
});

t.test('a Packet Too Big about a LAN packet: Fragmentation Needed to its sender only with DF', async (t) => {
  const core = new SmapCore(range);
  const v = newVerdict();
  const df = udp4({ src: SHARED, dst: INET, sport: 10003, dport: 7007, df: true, data: 1400 - 28 });
  core.fromTunnelError(ICMP6_PACKET_TOO_BIG, 1280, df, 0, 1232, v);
  t.equal(v.generated, true, 'DF: answered');
  t.equal(readIcmp4(core.out, v.off, v.len).mtu, 1240, 'with 1280 - 40');
  core.fromTunnelError(ICMP6_PACKET_TOO_BIG, 1000, df, 0, 1232, v);
  t.equal(readIcmp4(core.out, v.off, v.len).mtu, 1240, 'never below 1240');
  const noDf = udp4({ src: SHARED, dst: INET, sport: 10003, dport: 7007, data: 1400 - 28 });
  core.fromTunnelError(ICMP6_PACKET_TOO_BIG, 1280, noDf, 0, 1232, v);
  t.same([v.action, v.generated, v.reason], [Action.Drop, false, -1], 'no DF: nothing to say');
  core.fromTunnelError(1, 0, df, 0, 1232, v);
  t.same([v.action, v.generated, v.reason], [Action.Drop, false, -1], 'another ICMPv6 error: nothing');
  const other = udp4({ src: LAN, dst: INET, sport: 10003, dport: 7007, df: true, data: 1400 - 28 });
  core.fromTunnelError(ICMP6_PACKET_TOO_BIG, 1280, other, 0, 1232, v);
  t.equal(DROP_REASON_NAMES[v.reason], 'not_shared_source', 'not a packet we sent');
  core.fromTunnelError(ICMP6_PACKET_TOO_BIG, 1280, df, 0, 10, v);
  t.equal(DROP_REASON_NAMES[v.reason], 'truncated', 'a quote too short');
});
