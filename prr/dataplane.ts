/**
 * The PRR's packet loop: batches from the TUN (IPv4 from the Internet) and from the tunnel
 * socket (IPv4 from CPEs) through the forwarding core, counted, and sent on in batches.
 *
 *   TUN ──batch──► core.fromInternet ──► tunnel.send (to CPEs)  + TUN.send (ICMP it made)
 *   tunnel ──batch──► core.fromTunnel ──► TUN.send (to the Internet) + tunnel.send (hairpin, ICMP)
 *   tunnel error queue ──► core.fromTunnelError ──► ICMPv4 to the sender; per-CPE path MTU
 *   core.fromTunnel failing source validation ──► ICMPv6 1/5 to the CPE (opts.icmp6, copied)
 *
 * Forwarded packets are sent from the receive ring where they lie (no copy); only packets the
 * core generated (ICMP errors) are copied, into a scratch slab. Nothing here allocates per packet.
 */
import type { PacketPort, TunDevice, Tunnel6Socket, TxBatch, Icmp6ErrorReport, Icmp6Socket } from '../common/native/types.js';
import type { Logger } from '../common/log.js';
import { Action, newVerdict, type PrrCore, type Verdict } from './core.js';
import { B, G, PER_BINDING, type PrrCounters } from './counters.js';
import type { PortActivity } from './port-activity.js';
import { PROTO_TCP, PROTO_UDP } from '../common/codec/constants.js';

const GEN_SLOT = 2048; // room for one generated packet (ICMP errors are at most 576 bytes)
const IPV4_SRC = 12; // offsets of the addresses in an IPv4 header
const IPV4_DST = 16;
/**
 * Bindings from which each batch is warmed (see warm): below, the records (64 bytes each) and
 * port tables stay in the caches and the extra pass would only cost time.
 */
const WARM_FROM = 16384;

/** A binding's "ports active" mark (BindingTable.lastActive): 15 bits of generation, the port. */
function activeMark(generation: number, port: number): number {
  return ((generation & 0x7fff) << 16) | port;
}

/** A TX batch with capacity for `n` packets, and a scratch slab for generated ones. */
class Outbox {
  readonly tx: TxBatch;
  readonly gen: Buffer;
  private genUsed = 0;
  constructor(n: number, tunnel: boolean) {
    this.tx = {
      slab: Buffer.alloc(0),
      offsets: new Int32Array(n),
      lens: new Int32Array(n),
      count: 0,
      ...(tunnel ? { dsts: Buffer.alloc(16 * n), srcs: Buffer.alloc(16 * n) } : {}),
    };
    this.gen = Buffer.alloc(GEN_SLOT * n);
  }
  reset(slab: Buffer): void {
    this.tx.slab = slab;
    this.tx.count = 0;
    this.genUsed = 0;
  }
  /** Add a packet that lies in the batch's slab (the receive ring): no copy. */
  push(off: number, len: number): number {
    const i = this.tx.count++;
    this.tx.offsets[i] = off;
    this.tx.lens[i] = len;
    return i;
  }
  /** Add a packet from anywhere (a generated one), copied into this outbox's scratch slab. */
  pushCopy(buf: Buffer, off: number, len: number): number {
    const i = this.tx.count++;
    const at = this.genUsed * GEN_SLOT;
    buf.copy(this.gen, at, off, off + len);
    this.genUsed++;
    this.tx.offsets[i] = at;
    this.tx.lens[i] = len;
    return i;
  }
}

export interface DataplaneOptions {
  log: Logger;
  /** Report each lowered per-CPE MTU (for the log and metrics). */
  onPmtu?: (binding: number, mtu: number) => void;
  /**
   * The raw ICMPv6 socket for the ICMPv6 errors the core makes (Destination Unreachable 5 to
   * CPEs). Without it those are counted as tx_errors. Counted in out6_* (the IPv6 side's
   * output) with their ICMPv6 length.
   */
  icmp6?: Icmp6Socket;
  /** Where the source ports of valid packets from CPEs are marked ("ports active"; absent: off). */
  activity?: PortActivity;
}

export class PrrDataplane {
  private readonly v: Verdict = newVerdict();
  // One outbox per (source ring, destination): forwarded packets point into the source ring.
  private readonly inetToCpe: Outbox;
  private readonly cpeToInet: Outbox;
  private readonly cpeToCpe: Outbox; // hairpinned, from the tunnel ring
  private readonly gen6: Outbox; // ICMP made for CPEs -> tunnel (copied)
  private readonly gen4: Outbox; // ICMP made for Internet senders -> TUN (copied)
  private readonly genIcmp6: Outbox; // ICMPv6 made for CPEs -> opts.icmp6 (copied)
  private readonly one = new Outbox(1, true); // a large reassembled datagram, sent alone

  constructor(
    readonly core: PrrCore,
    readonly counters: PrrCounters,
    readonly tun: TunDevice,
    readonly tunnel: Tunnel6Socket,
    private readonly opts: DataplaneOptions,
  ) {
    const n4 = tun.ring.batch;
    const n6 = tunnel.ring.batch;
    this.inetToCpe = new Outbox(n4, true);
    this.cpeToInet = new Outbox(n6, false);
    this.cpeToCpe = new Outbox(n6, true);
    this.gen6 = new Outbox(Math.max(n4, n6), true);
    this.gen4 = new Outbox(Math.max(n4, n6), false);
    this.genIcmp6 = new Outbox(n6, true);
    const n = Math.max(n4, n6);
    this.warmIds = new Int32Array(n);
    this.warmIps = new Uint32Array(n);
    this.warmPorts = new Uint16Array(n);
  }

  private expiry: NodeJS.Timeout | undefined;

  start(): void {
    this.counters.reassembly = { internet: this.core.reasm4, tunnel: this.core.reasm6 };
    // Partial datagrams time out even when no fragment arrives to trigger it.
    this.expiry = setInterval(() => {
      this.core.reasm4.expire();
      this.core.reasm6.expire();
    }, 250);
    this.expiry.unref();
    this.tunnel.onError((e) => this.onTunnelError(e));
    this.tunnel.start((n) => this.onTunnelBatch(n));
    this.tun.start((n) => this.onTunBatch(n));
  }

  stop(): void {
    clearInterval(this.expiry);
    this.tun.close();
    this.tunnel.close();
    this.opts.icmp6?.close();
  }

  /** IPv4 from the Internet. */
  private onTunBatch(count: number): void {
    const ring = this.tun.ring;
    const { core, counters: c, v } = this;
    const g = c.global;
    const pb = c.perBinding;
    const out = this.inetToCpe;
    out.reset(ring.slab);
    this.gen4.reset(this.gen4.gen);
    this.gen6.reset(this.gen6.gen);
    this.warm(ring, count, IPV4_DST);
    for (let i = 0; i < count; i++) {
      const off = i * ring.slotSize + ring.headroom;
      const len = ring.lens[i]!;
      g[G.in4_packets]++;
      g[G.in4_bytes] += len;
      core.fromInternet(ring.slab, off, len, v);
      if (v.reason >= 0) c.drops4[v.reason]++;
      if (v.action === Action.ToCpe) {
        if (v.foreign && v.len > GEN_SLOT) this.sendOne(this.tunnel, v.buf, v.off, v.len, v.to);
        else {
          const box = v.foreign ? this.gen6 : out;
          this.address(box, v.foreign ? box.pushCopy(v.buf, v.off, v.len) : box.push(v.off, v.len), v.to);
        }
        if (pb.length > v.to * PER_BINDING) {
          pb[v.to * PER_BINDING + B.to_cpe_packets]++;
          pb[v.to * PER_BINDING + B.to_cpe_bytes] += v.len;
        }
      } else if (v.action === Action.ToInternet) {
        this.gen4.pushCopy(v.buf, v.off, v.len);
      }
    }
    this.flush(out, this.tunnel, G.out6_packets, G.out6_bytes);
    this.flushGenerated();
  }

  /** IPv4 from CPEs. */
  private onTunnelBatch(count: number): void {
    const ring = this.tunnel.ring;
    const { core, counters: c, v } = this;
    const g = c.global;
    const pb = c.perBinding;
    const toInet = this.cpeToInet;
    const hair = this.cpeToCpe;
    toInet.reset(ring.slab);
    hair.reset(ring.slab);
    this.gen4.reset(this.gen4.gen);
    this.gen6.reset(this.gen6.gen);
    const icmp6 = this.genIcmp6;
    icmp6.reset(icmp6.gen);
    this.warm(ring, count, IPV4_SRC);
    for (let i = 0; i < count; i++) {
      const off = i * ring.slotSize + ring.headroom;
      const len = ring.lens[i]!;
      g[G.in6_packets]++;
      g[G.in6_bytes] += len;
      core.fromTunnel(ring.srcs, i * 16, ring.dsts, i * 16, ring.slab, off, len, v);
      if (v.from >= 0 && pb.length > v.from * PER_BINDING) {
        const b = v.from * PER_BINDING;
        pb[b + B.from_cpe_packets]++;
        pb[b + B.from_cpe_bytes] += len;
        if (v.reason >= 0) pb[b + B.drops]++;
      }
      if (v.reason >= 0) c.drops6[v.reason]++;
      if (v.srcPort >= 0) this.markActive(v.from, v.srcAddr, v.srcPort);
      if (v.action === Action.ToInternet) {
        if (v.foreign && v.len > GEN_SLOT) this.sendOne(this.tun, v.buf, v.off, v.len, -1);
        else if (v.foreign) this.gen4.pushCopy(v.buf, v.off, v.len);
        else toInet.push(v.off, v.len);
      } else if (v.action === Action.ToCpe) {
        if (v.foreign && v.len > GEN_SLOT) this.sendOne(this.tunnel, v.buf, v.off, v.len, v.to);
        else {
          const box = v.foreign ? this.gen6 : hair;
          this.address(box, v.foreign ? box.pushCopy(v.buf, v.off, v.len) : box.push(v.off, v.len), v.to);
        }
        if (v.hairpin) {
          g[G.hairpin_packets]++;
          g[G.hairpin_bytes] += v.len;
        }
        if (pb.length > v.to * PER_BINDING) {
          pb[v.to * PER_BINDING + B.to_cpe_packets]++;
          pb[v.to * PER_BINDING + B.to_cpe_bytes] += v.len;
        }
      } else if (v.action === Action.Icmp6ToCpe) {
        const j = icmp6.pushCopy(v.buf, v.off, v.len);
        v.ip6.copy(icmp6.tx.dsts!, j * 16, v.ip6Off + 24, v.ip6Off + 40);
        v.ip6.copy(icmp6.tx.srcs!, j * 16, v.ip6Off + 8, v.ip6Off + 24);
      }
    }
    this.flush(toInet, this.tun, G.out4_packets, G.out4_bytes);
    this.flush(hair, this.tunnel, G.out6_packets, G.out6_bytes);
    if (icmp6.tx.count > 0) {
      if (this.opts.icmp6 !== undefined) this.flush(icmp6, this.opts.icmp6, G.out6_packets, G.out6_bytes);
      else c.global[G.tx_errors] += icmp6.tx.count;
    }
    this.flushGenerated();
  }

  /**
   * Bring what a batch's packets will read of a big binding table into the cache before the core
   * looks at any of them: the port-table entry, the binding's record (its counters are in it) and,
   * from CPEs, the "ports active" word. With a million bindings each is a cache miss of hundreds
   * of ns; one after the other inside the packet loop they add up, while these loops have nothing
   * between the loads, so the CPU keeps many in flight at once. A guess only: the address at `at`
   * (source from CPEs, destination from the Internet) and its TCP/UDP port; anything else is left
   * to the core, and a wrong guess costs a wasted load. A table that fits the caches is skipped.
   */
  private warm(ring: PacketPort['ring'], count: number, at: number): void {
    const t = this.core.table;
    if (t.idLimit < WARM_FROM) return;
    const b = ring.slab;
    const ids = this.warmIds;
    const ips = this.warmIps;
    const ports = this.warmPorts;
    const portAt = at === IPV4_SRC ? 0 : 2;
    let n = 0;
    for (let i = 0; i < count; i++) {
      const off = i * ring.slotSize + ring.headroom;
      const hl = (b[off]! & 15) * 4;
      const p = b[off + 9];
      if (hl < 20 || ring.lens[i]! < hl + 4 || (p !== PROTO_TCP && p !== PROTO_UDP)) continue;
      ips[n] = b.readUInt32BE(off + at);
      ports[n++] = b.readUInt16BE(off + hl + portAt);
    }
    t.lookupPorts(ips, ports, n, ids);
    let sum = 0;
    for (let i = 0; i < n; i++) if (ids[i]! >= 0) sum += t.lastActive(ids[i]!); // a word of the record
    const act = at === IPV4_SRC ? this.opts.activity : undefined;
    if (act !== undefined) {
      const gen = act.generation;
      for (let i = 0; i < n; i++) {
        const id = ids[i]!;
        if (id >= 0 && t.lastActive(id) !== activeMark(gen, ports[i]!)) sum += act.peek(ips[i]!, ports[i]!);
      }
    }
    this.warmSum = sum;
  }
  private readonly warmIds: Int32Array;
  private readonly warmIps: Uint32Array;
  private readonly warmPorts: Uint16Array;
  /** Kept so that the compiler does not drop warm()'s loads. */
  warmSum = 0;

  /**
   * Ports active: binding `id` sent from `port` of its shared address `ipv4`. Skipped when it is
   * the port the binding marked last, in this half-window (a flow's packets): the mark is in the
   * binding's record, which the packet has read already, and the bitmap word is not touched.
   */
  private markActive(id: number, ipv4: number, port: number): void {
    const act = this.opts.activity;
    if (act === undefined) return;
    const t = this.core.table;
    const m = activeMark(act.generation, port);
    if (t.lastActive(id) === m) return;
    t.setLastActive(id, m);
    act.mark(ipv4, port);
  }

  /** An ICMPv6 error about a packet we sent into the tunnel (from the kernel's error queue). */
  private onTunnelError(e: Icmp6ErrorReport): void {
    if (e.origin !== 'icmp6' || e.payload.length === 0) return;
    const v = this.v;
    this.core.fromTunnelError(e.type, e.code, e.info, e.payload, 0, e.payload.length, v);
    this.countCoreEvents();
    if (v.pmtuLowered >= 0) {
      this.counters.global[G.pmtu_lowered]++;
      this.opts.onPmtu?.(v.pmtuLowered, this.core.table.mtuOf(v.pmtuLowered));
    }
    if (v.reason >= 0) this.counters.drops6[v.reason]++;
    this.gen4.reset(this.gen4.gen);
    this.gen6.reset(this.gen6.gen);
    if (v.action === Action.ToInternet) this.gen4.pushCopy(v.buf, v.off, v.len);
    else if (v.action === Action.ToCpe) this.address(this.gen6, this.gen6.pushCopy(v.buf, v.off, v.len), v.to);
    this.flushGenerated();
  }

  /** Send one large packet the core holds (a reassembled datagram) at once: it will not fit a scratch slot. */
  private sendOne(port: PacketPort, buf: Buffer, off: number, len: number, to: number): void {
    const one = this.one;
    one.tx.slab = buf;
    one.tx.offsets[0] = off;
    one.tx.lens[0] = len;
    one.tx.count = 1;
    if (to >= 0) this.address(one, 0, to);
    const tunnel = port === (this.tunnel as PacketPort);
    this.flush(one, port, tunnel ? G.out6_packets : G.out4_packets, tunnel ? G.out6_bytes : G.out4_bytes);
  }

  /** Fill destination (the CPE) and source (its tunnel endpoint) of packet j of a tunnel batch. */
  private address(box: Outbox, j: number, id: number): void {
    const t = this.core.table;
    t.copyIpv6(id, box.tx.dsts!, j * 16);
    const br = this.core.policy.brAddresses[t.brOf(id)];
    if (br !== undefined) br.copy(box.tx.srcs!, j * 16, 0, 16);
    else box.tx.srcs!.fill(0, j * 16, j * 16 + 16);
  }

  private flush(box: Outbox, port: Pick<PacketPort, 'send'>, pk: number, by: number): void {
    const tx = box.tx;
    if (tx.count === 0) return;
    const sent = port.send(tx);
    const g = this.counters.global;
    g[pk] += sent;
    for (let i = 0; i < sent; i++) g[by] += tx.lens[i]!;
    if (sent < tx.count) g[G.tx_errors] += tx.count - sent;
  }

  private flushGenerated(): void {
    if (this.gen4.tx.count > 0) this.flush(this.gen4, this.tun, G.out4_packets, G.out4_bytes);
    if (this.gen6.tx.count > 0) this.flush(this.gen6, this.tunnel, G.out6_packets, G.out6_bytes);
    this.countCoreEvents();
  }

  /** Move the core's event tallies into the global counters. */
  private countCoreEvents(): void {
    const e = this.core.events;
    const g = this.counters.global;
    g[G.icmp4_generated] += e.icmpGenerated;
    g[G.icmp4_rate_limited] += e.icmpRateLimited;
    g[G.icmp4_policy_suppressed] += e.icmpSuppressed;
    g[G.icmp_relayed] += e.icmpRelayed;
    g[G.icmp6_translated] += e.icmp6Translated;
    g[G.icmp6_generated] += e.icmp6Generated;
    g[G.icmp6_rate_limited] += e.icmp6RateLimited;
    g[G.frag_needed_sent] += e.fragNeeded;
    g[G.pmtu_raised] += e.pmtuRaised;
    e.icmpGenerated = e.icmpRateLimited = e.icmpSuppressed = e.icmpRelayed = e.icmp6Translated = 0;
    e.icmp6Generated = e.icmp6RateLimited = e.fragNeeded = e.pmtuRaised = 0;
  }
}
