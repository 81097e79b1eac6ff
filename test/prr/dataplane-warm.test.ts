/**
 * prr/dataplane.ts warms each batch (port-table entries, binding records, ports-active words)
 * before the packet loop when the table is big. The warm-up only reads: the same packets through
 * the data plane and, one by one, through a second core over an identical table give the same
 * verdicts, counted the same, in both directions, with packets the warm-up guesses wrong about
 * (spoofed, outside the set, unshared, ICMP, truncated, a bad header length) mixed in.
 */
import t from 'tap';
import type { RxRing, TunDevice, Tunnel6Socket, TxBatch } from '../../common/native/types.js';
import { memoryLogger } from '../../common/log.js';
import { PsidSet } from '../../common/portset.js';
import { BindingTable } from '../../prr/bindings.js';
import { Action, PrrCore, newVerdict } from '../../prr/core.js';
import { B, DROP_REASON_NAMES, PER_BINDING, PrrCounters } from '../../prr/counters.js';
import { PrrDataplane } from '../../prr/dataplane.js';
import { defaultPolicy } from '../../prr/policy.js';
import { PortActivity } from '../../prr/port-activity.js';
import { echo4, ip4, ip6, tcp4, udp4, withHeaderByte } from './helpers/packets.js';

const N = 20_000; // over the data plane's warm-up threshold
const BATCH = 64;
const SLOT = 2048;
const HEADROOM = 48;
const BR = ip6('2001:db8:ffff::1');
const INET = ip4('198.51.100.2');
const addrOf = (i: number): number => ip4('192.0.2.10') + Math.floor(i / 2048);
const psidOf = (i: number): PsidSet => new PsidSet(4, 11, i % 2048, { allowSystemPorts: true });
const portOf = (i: number): number => (1 + (i % 15)) * 4096 + (i % 2048) * 2;
const cpeOf = (i: number): Buffer => {
  const b = Buffer.from(ip6('2001:db8:c::'));
  b.writeUInt32BE(i + 1, 12);
  return b;
};

function table(): BindingTable {
  const tbl = new BindingTable(N);
  for (let i = 0; i < N; i++) tbl.add({ subscriber: `s${i}`, ipv6: cpeOf(i), ipv4: addrOf(i), ports: psidOf(i) }, true);
  return tbl;
}

interface Pkt {
  src6: Buffer;
  ip: Buffer;
}

/** A mix: mostly valid, and every kind of packet the warm-up may guess wrong about. */
function packets(): { up: Pkt[]; down: Buffer[] } {
  const up: Pkt[] = [];
  const down: Buffer[] = [];
  let x = 5;
  const rnd = (n: number): number => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 8) % n; // high bits: the low ones of an LCG repeat
  for (let k = 0; k < 20 * BATCH; k++) {
    const i = rnd(N);
    const kind = rnd(10);
    const src = addrOf(i);
    let pkt = udp4({ src, dst: INET, sport: portOf(i), dport: 53, data: 20 });
    let src6 = cpeOf(i);
    if (kind === 1) src6 = rnd(2) === 0 ? cpeOf((i + 1) % N) : ip6('2001:db8:d::1'); // another CPE's source, or an unknown CPE's
    else if (kind === 2) pkt = udp4({ src, dst: INET, sport: portOf(i) + 4096 * 15 - 4096 * (1 + (i % 15)) + 1, dport: 53 }); // outside the set
    else if (kind === 3) {
      pkt = tcp4({ src: ip4('203.0.113.9'), dst: INET, sport: 40000, dport: 80 }); // an unshared source
      if (rnd(2) === 0) src6 = ip6('2001:db8:d::2'); // from an unknown CPE
    }
    else if (kind === 4) pkt = echo4({ src, dst: INET, id: portOf(i) }); // ICMP: the warm-up skips it
    else if (kind === 5) pkt = pkt.subarray(0, 22); // truncated
    else if (kind === 6) pkt = withHeaderByte(pkt, 0, 0x44); // a header length under 20
    else if (kind === 7) pkt = tcp4({ src, dst: addrOf((i + 7) % N), sport: portOf(i), dport: portOf((i + 7) % N) }); // hairpin
    up.push({ src6, ip: pkt });
    const dport = kind === 2 ? portOf(i) + 1 : portOf(i);
    down.push(kind === 3 ? udp4({ src: INET, dst: ip4('203.0.113.9'), sport: 53, dport: 40000 }) : kind === 4 ? echo4({ src: INET, dst: src, id: portOf(i), reply: true }) : udp4({ src: INET, dst: src, sport: 53, dport }));
  }
  return { up, down };
}

function stubPort(tunnel: boolean, sent: number[]): { ring: RxRing; port: TunDevice & Tunnel6Socket } {
  const ring: RxRing = {
    slab: Buffer.alloc(BATCH * SLOT), slotSize: SLOT, headroom: HEADROOM, batch: BATCH, lens: new Int32Array(BATCH),
    srcs: Buffer.alloc(tunnel ? 16 * BATCH : 0), dsts: Buffer.alloc(tunnel ? 16 * BATCH : 0),
  };
  const send = (tx: TxBatch): number => {
    for (let i = 0; i < tx.count; i++) sent.push(tx.lens[i]! * 1000 + (tx.dsts ? tx.dsts[i * 16 + 15]! : 0));
    return tx.count;
  };
  const port = { ring, counters: new Float64Array(32), send, start: () => {}, close: () => {}, onError: () => {} };
  return { ring, port: port as unknown as TunDevice & Tunnel6Socket };
}

t.test('a big table: the data plane warms each batch, and counts what the core decides packet by packet', async (t) => {
  const { up, down } = packets();
  const policy = defaultPolicy(ip4('198.51.100.1'), [BR]);
  const now = (): number => 0;

  // The data plane, batch by batch.
  const dpTable = table();
  const counters = new PrrCounters();
  counters.attach(dpTable);
  const sentTun: number[] = [];
  const sentTunnel: number[] = [];
  const tun = stubPort(false, sentTun);
  const tunnel = stubPort(true, sentTunnel);
  const activity = new PortActivity();
  const dp = new PrrDataplane(new PrrCore(dpTable, policy, { ttlToInternet: true, now }), counters, tun.port, tunnel.port, { log: memoryLogger('prr'), activity });
  const batches = dp as unknown as { onTunnelBatch(n: number): void; onTunBatch(n: number): void };
  let warmed = false;
  for (let b = 0; b < up.length; b += BATCH) {
    for (let i = 0; i < BATCH; i++) {
      const p = up[b + i]!;
      p.src6.copy(tunnel.ring.srcs, i * 16);
      BR.copy(tunnel.ring.dsts, i * 16);
      p.ip.copy(tunnel.ring.slab, i * SLOT + HEADROOM);
      tunnel.ring.lens[i] = p.ip.length;
    }
    dp.warmSum = 0;
    batches.onTunnelBatch(BATCH);
    if (dp.warmSum !== 0) warmed = true;
    for (let i = 0; i < BATCH; i++) {
      down[b + i]!.copy(tun.ring.slab, i * SLOT + HEADROOM);
      tun.ring.lens[i] = down[b + i]!.length;
    }
    batches.onTunBatch(BATCH);
  }
  t.ok(warmed, 'the warm-up ran (it read the batches\' records)');

  // A second core over an identical table, one packet at a time, no warm-up.
  const refTable = table();
  const core = new PrrCore(refTable, policy, { ttlToInternet: true, now });
  const v = newVerdict();
  const drops6 = new Float64Array(DROP_REASON_NAMES.length);
  const drops4 = new Float64Array(DROP_REASON_NAMES.length);
  const perBinding = new Map<number, number[]>();
  const per = (id: number): number[] => perBinding.get(id) ?? (perBinding.set(id, [0, 0, 0]), perBinding.get(id)!);
  const refActivity = new PortActivity(); // every validated packet marked, no per-binding filter
  const refTun: number[] = [];
  const refTunnel: number[] = [];
  for (let b = 0; b < up.length; b += BATCH) {
    const gen6: number[] = [];
    const gen4: number[] = [];
    for (let i = b; i < b + BATCH; i++) {
      const p = Buffer.from(up[i]!.ip);
      core.fromTunnel(up[i]!.src6, 0, BR, 0, p, 0, p.length, v);
      if (v.reason >= 0) drops6[v.reason]++;
      if (v.from >= 0) per(v.from)[0]++;
      if (v.srcPort >= 0) refActivity.mark(v.srcAddr, v.srcPort);
      if (v.action === Action.ToInternet) (v.foreign ? gen4 : refTun).push(v.len * 1000);
      else if (v.action === Action.ToCpe) {
        (v.foreign ? gen6 : refTunnel).push(v.len * 1000 + refTable.ipv6Of(v.to)[15]!);
        per(v.to)[1]++;
      }
    }
    refTun.push(...gen4);
    refTunnel.push(...gen6);
    const gen4b: number[] = [];
    for (let i = b; i < b + BATCH; i++) {
      const p = Buffer.from(down[i]!);
      core.fromInternet(p, 0, p.length, v);
      if (v.reason >= 0) drops4[v.reason]++;
      if (v.action === Action.ToCpe) {
        refTunnel.push(v.len * 1000 + refTable.ipv6Of(v.to)[15]!);
        per(v.to)[2]++;
      } else if (v.action === Action.ToInternet) gen4b.push(v.len * 1000);
    }
    refTun.push(...gen4b);
  }
  t.same([...counters.drops6], [...drops6], 'drops from CPEs, by reason');
  t.same([...counters.drops4], [...drops4], 'drops from the Internet, by reason');
  const why = Object.fromEntries(DROP_REASON_NAMES.map((n, i) => [n, drops6[i]!]).filter(([, c]) => c !== 0));
  t.ok(['spoofed_ipv6', 'port_outside_set', 'unknown_cpe', 'truncated'].every((r) => (why[r] ?? 0) > 0), `the mix was dropped for its reasons: ${JSON.stringify(why)}`);
  t.same(sentTun.sort(), refTun.sort(), 'the same packets to the Internet');
  t.same(sentTunnel.sort(), refTunnel.sort(), 'the same packets to the same CPEs');
  let bad = 0;
  for (const [id, [from, hair, to]] of perBinding) {
    const pb = counters.perBinding;
    if (pb[id * PER_BINDING + B.from_cpe_packets] !== from || pb[id * PER_BINDING + B.to_cpe_packets] !== hair! + to!) bad++;
  }
  t.equal(bad, 0, `per-binding counters as the verdicts say (${perBinding.size} bindings)`);
  let active = 0;
  for (let a = 0; a * 2048 < N; a++) {
    const ip = addrOf(a * 2048);
    if (activity.countAddress(ip) !== refActivity.countAddress(ip)) bad++;
    active += activity.countAddress(ip);
  }
  t.equal(bad, 0, `ports active per address as every packet marked (${active} ports)`);
});

t.test('ports active: a binding\'s repeated port is marked once per half-window, and again after the window moves', async (t) => {
  const tbl = new BindingTable();
  const id = tbl.add({ subscriber: 'a', ipv6: cpeOf(0), ipv4: addrOf(0), ports: psidOf(0) });
  const counters = new PrrCounters();
  counters.attach(tbl);
  const activity = new PortActivity();
  const tunnel = stubPort(true, []);
  const dp = new PrrDataplane(new PrrCore(tbl, defaultPolicy(ip4('198.51.100.1'), [BR]), { ttlToInternet: true }), counters, stubPort(false, []).port, tunnel.port, { log: memoryLogger('prr'), activity });
  const send = (port: number): void => {
    const p = udp4({ src: addrOf(0), dst: INET, sport: port, dport: 53 });
    cpeOf(0).copy(tunnel.ring.srcs, 0);
    BR.copy(tunnel.ring.dsts, 0);
    p.copy(tunnel.ring.slab, HEADROOM);
    tunnel.ring.lens[0] = p.length;
    (dp as unknown as { onTunnelBatch(n: number): void }).onTunnelBatch(1);
  };
  const set = psidOf(0);
  send(portOf(0));
  send(portOf(0));
  t.equal(activity.count(addrOf(0), set), 1, 'one port');
  t.equal(counters.binding(id, B.from_cpe_packets), 2, 'both packets forwarded');
  send(portOf(0) + 1);
  t.equal(activity.count(addrOf(0), set), 2, 'another port of the set');
  activity.rotate();
  activity.rotate();
  t.equal(activity.count(addrOf(0), set), 0, 'aged out after two half-windows');
  send(portOf(0) + 1); // the port the binding marked last, but in an earlier half-window
  t.equal(activity.count(addrOf(0), set), 1, 'marked again');
  tbl.change(id, { subscriber: 'a', ipv6: cpeOf(0), ipv4: addrOf(2048), ports: psidOf(0) });
  const p = udp4({ src: addrOf(2048), dst: INET, sport: portOf(0) + 1, dport: 53 });
  p.copy(tunnel.ring.slab, HEADROOM);
  tunnel.ring.lens[0] = p.length;
  (dp as unknown as { onTunnelBatch(n: number): void }).onTunnelBatch(1);
  t.equal(activity.count(addrOf(2048), set), 1, 'after a change to another address the same port is marked there');
});
