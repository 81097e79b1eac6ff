/**
 * In-memory TUN devices and tunnel sockets with the same interfaces as the real ones, so protocol
 * code (SMAP, PRR) runs whole in one process without root or the addon.
 *
 *   const [a, b] = fakeTunPair();       // what a sends, b receives (and the reverse)
 *   tun.inject(pkt)                      // the "kernel" routes an IPv4 packet into a FakeTun
 *   tun.written                          // packets the process wrote to the "kernel"
 *   const net = new FakeNet6({ mtu: 1280 });
 *   const prr = net.socket({ bind: '2001:db8::1' }), cpe = net.socket({ bind: '2001:db8:1::2' });
 *   await settle();                      // until every queued packet has been delivered
 *
 * Delivery is asynchronous (setImmediate) and batched like the real poller: one onBatch call per
 * `ring.batch` packets, packets copied into ring slots at the headroom, over-slot packets counted
 * as truncated. FakeNet6 behaves like the kernel where protocol code can tell: an unknown
 * destination gets an ICMPv6 Address Unreachable report; with pmtudisc 'do' (or DONTFRAG) the
 * first packet over the network MTU is lost and answered by Packet Too Big from `routerAddress`,
 * later ones fail locally (EMSGSIZE, origin 'local'); without it they are "fragmented" (delivered).
 */
import { constants } from 'node:os';
import { NativeError } from '../errors.js';
import { formatIpv6, parseIpv6 } from './addr6.js';
import { makeRing } from './ring.js';
import { newCounters, readStats, STAT } from './stats.js';
import type {
  Icmp6ErrorReport, Icmp6Socket, IoStats, PacketPort, PmtuMode, RingOptions, RxRing, TunDevice, Tunnel6Options, Tunnel6Socket,
  TxBatch,
} from './types.js';

const IPV6_HLEN = 40;
const ICMP6_DST_UNREACH = 1;
const ICMP6_ADDR_UNREACH = 3;
const ICMP6_PACKET_TOO_BIG = 2;

type Queued = { pkt: Buffer; src: Buffer | undefined; dst: Buffer | undefined };

const busy = new Set<FakePort>();
let reportsInFlight = 0;

/** Resolves once every fake port has delivered everything queued (including follow-on sends). */
export async function settle(maxRounds = 10_000): Promise<void> {
  const idle = (): boolean => busy.size === 0 && reportsInFlight === 0;
  for (let i = 0; i < maxRounds && !idle(); i++) await new Promise<void>((r) => setImmediate(r));
  if (!idle()) throw new NativeError(`fake ports did not settle after ${maxRounds} rounds`);
}

abstract class FakePort implements PacketPort {
  readonly ring: RxRing;
  readonly counters = newCounters();
  protected closed = false;
  private onBatch: ((count: number) => void) | undefined;
  private readonly inbox: Queued[] = [];
  private scheduled = false;

  constructor(opts: RingOptions, withAddrs: boolean, protected readonly label: string) {
    this.ring = makeRing(opts, withAddrs, label);
  }

  abstract send(tx: TxBatch): number;

  protected get started(): boolean {
    return this.onBatch !== undefined && !this.closed;
  }

  start(onBatch: (count: number) => void): void {
    if (this.closed) throw new NativeError(`${this.label}: start after close`);
    if (this.onBatch !== undefined) throw new NativeError(`${this.label}: already started`);
    this.onBatch = onBatch;
    this.schedule();
  }

  stats(): IoStats {
    return readStats(this.counters);
  }

  close(): void {
    this.closed = true;
    this.inbox.length = 0;
    busy.delete(this);
  }

  /** Queues one packet for this port's next batch (a copy is taken). */
  protected enqueue(pkt: Uint8Array, src?: Uint8Array, dst?: Uint8Array): void {
    if (this.closed) return;
    this.inbox.push({ pkt: Buffer.from(pkt), src: src && Buffer.from(src), dst: dst && Buffer.from(dst) });
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled || this.onBatch === undefined || this.inbox.length === 0) {
      if (this.inbox.length > 0) busy.add(this);
      return;
    }
    this.scheduled = true;
    busy.add(this);
    setImmediate(() => this.drain());
  }

  /** One readable event: batches until the inbox is empty, as the real poller does. */
  private drain(): void {
    this.scheduled = false;
    const r = this.ring;
    const c = this.counters;
    c[STAT.rxWakeups]! += 1;
    while (this.inbox.length > 0 && !this.closed && this.onBatch !== undefined) {
      let n = 0;
      while (n < r.batch && this.inbox.length > 0) {
        const q = this.inbox.shift()!;
        if (q.pkt.length > r.slotSize - r.headroom) {
          c[STAT.rxTruncated]! += 1;
          continue;
        }
        q.pkt.copy(r.slab, n * r.slotSize + r.headroom);
        r.lens[n] = q.pkt.length;
        if (q.src !== undefined) q.src.copy(r.srcs, 16 * n);
        if (q.dst !== undefined) q.dst.copy(r.dsts, 16 * n);
        c[STAT.rxBytes]! += q.pkt.length;
        n++;
      }
      if (n === 0) break;
      c[STAT.rxPackets]! += n;
      c[STAT.rxBatches]! += 1;
      this.onBatch(n);
    }
    if (this.inbox.length === 0 || this.closed) busy.delete(this);
  }

  /** Calls fn(packet, i) for each well-formed entry of tx; counts the rest as tx errors. */
  protected eachPacket(tx: TxBatch, fn: (pkt: Buffer, i: number) => boolean): number {
    if (this.closed) throw new NativeError(`${this.label}: send after close`);
    const c = this.counters;
    c[STAT.txBatches]! += 1;
    let sent = 0;
    for (let i = 0; i < tx.count; i++) {
      const off = tx.offsets[i]!;
      const len = tx.lens[i]!;
      if (off < 0 || len <= 0 || off + len > tx.slab.length) {
        c[STAT.txErrors]! += 1;
        continue;
      }
      if (fn(tx.slab.subarray(off, off + len), i)) {
        sent++;
        c[STAT.txPackets]! += 1;
        c[STAT.txBytes]! += len;
      }
    }
    return sent;
  }
}

export class FakeTun extends FakePort implements TunDevice {
  /** Copies of the packets the process wrote, oldest first; clear it when read. */
  readonly written: Buffer[] = [];
  peer: FakeTun | undefined;

  constructor(readonly name: string, opts: RingOptions = {}) {
    super(opts, false, `fake TUN ${name}`);
  }

  /** The kernel routes an IPv4 packet into the TUN: the process reads it in its next batch. */
  inject(pkt: Uint8Array): void {
    this.enqueue(pkt);
  }

  send(tx: TxBatch): number {
    return this.eachPacket(tx, (pkt) => {
      this.written.push(Buffer.from(pkt));
      this.peer?.inject(pkt);
      return true;
    });
  }
}

/** Two TUN devices wired back to back: what one writes, the other reads. */
export function fakeTunPair(a = 'fake0', b = 'fake1', opts: RingOptions = {}): [FakeTun, FakeTun] {
  const x = new FakeTun(a, opts);
  const y = new FakeTun(b, opts);
  x.peer = y;
  y.peer = x;
  return [x, y];
}

export class FakeTunnel6 extends FakePort implements Tunnel6Socket {
  readonly bind: string;
  private errorCb: ((e: Icmp6ErrorReport) => void) | undefined;
  private pmtu: PmtuMode = 'want';
  private dontFrag = false;
  private readonly learnt = new Map<string, number>();

  constructor(private readonly net: FakeNet6, readonly addresses: Buffer[], opts: Tunnel6Options) {
    super(opts, true, `fake tunnel6 [${opts.bind}]`);
    this.bind = formatIpv6(parseIpv6(opts.bind));
  }

  onError(cb: (e: Icmp6ErrorReport) => void): void {
    this.errorCb = cb;
  }

  setPmtuDiscover(mode: PmtuMode): void {
    this.pmtu = mode;
  }

  setDontFragment(on: boolean): void {
    this.dontFrag = on;
  }

  pathMtu(dst: string): number {
    return this.learnt.get(formatIpv6(parseIpv6(dst))) ?? this.net.mtu;
  }

  /** Delivers a report asynchronously, as the error queue would. */
  report(e: Omit<Icmp6ErrorReport, 'payload'>, pkt: Uint8Array): void {
    const payload = Buffer.from(pkt.subarray(0, Math.min(pkt.length, 1280 - 48))); // what ICMPv6 quotes
    reportsInFlight++;
    setImmediate(() => {
      reportsInFlight--;
      if (!this.started) return;
      this.counters[STAT.errqueueMessages]! += 1;
      this.errorCb?.({ ...e, payload });
    });
  }

  override close(): void {
    super.close();
    this.net.forget(this);
  }

  /** Receives a packet from the network (called by FakeNet6). */
  arrive(pkt: Uint8Array, src: Uint8Array, dst: Uint8Array): void {
    this.enqueue(pkt, src, dst);
  }

  send(tx: TxBatch): number {
    const dsts = tx.dsts;
    if (dsts === undefined) throw new NativeError(`${this.label}: send needs dsts`);
    const zero = Buffer.alloc(16);
    return this.eachPacket(tx, (pkt, i) => {
      const dst = dsts.subarray(16 * i, 16 * i + 16);
      const want = tx.srcs?.subarray(16 * i, 16 * i + 16);
      const src = want !== undefined && !want.equals(zero) ? want : this.addresses[0]!;
      const dstText = formatIpv6(dst);
      const outer = pkt.length + IPV6_HLEN;
      const df = this.pmtu === 'do' || this.dontFrag;
      const known = this.learnt.get(dstText);
      if (df && known !== undefined && outer > known) {
        this.counters[STAT.txEmsgsize]! += 1;
        this.report({ origin: 'local', errno: constants.errno.EMSGSIZE, type: 0, code: 0, info: known, dst: dstText, offender: null }, pkt);
        return false;
      }
      if (df && outer > this.net.mtu) {
        this.learnt.set(dstText, this.net.mtu);
        this.report({
          origin: 'icmp6', errno: constants.errno.EMSGSIZE, type: ICMP6_PACKET_TOO_BIG, code: 0, info: this.net.mtu,
          dst: dstText, offender: this.net.routerAddress,
        }, pkt);
        return true; // the kernel sent it; the network dropped it
      }
      this.net.route(this, pkt, src, dst);
      return true;
    });
  }
}

/** A fake IPv6 network joining FakeTunnel6 sockets by their addresses. */
export class FakeNet6 {
  readonly mtu: number;
  readonly routerAddress: string;
  private readonly hosts = new Map<string, FakeTunnel6>();

  constructor(opts: { mtu?: number; routerAddress?: string } = {}) {
    this.mtu = opts.mtu ?? 1500;
    this.routerAddress = opts.routerAddress ?? '2001:db8::ffff';
  }

  /** A socket bound to `bind`; a socket bound to '::' must list its host's `addresses`. */
  socket(opts: Tunnel6Options & { addresses?: string[] }): FakeTunnel6 {
    const list = (opts.addresses ?? [opts.bind]).map(parseIpv6);
    if (list.some((a) => a.equals(Buffer.alloc(16)))) {
      throw new NativeError(`fake tunnel6 [${opts.bind}]: a socket bound to :: needs its addresses`);
    }
    const s = new FakeTunnel6(this, list, opts);
    for (const a of list) this.hosts.set(formatIpv6(a), s);
    return s;
  }

  forget(s: FakeTunnel6): void {
    for (const [k, v] of this.hosts) if (v === s) this.hosts.delete(k);
  }

  route(from: FakeTunnel6, pkt: Uint8Array, src: Uint8Array, dst: Uint8Array): void {
    const dstText = formatIpv6(dst);
    const to = this.hosts.get(dstText);
    if (to === undefined) {
      from.report({
        origin: 'icmp6', errno: constants.errno.EHOSTUNREACH, type: ICMP6_DST_UNREACH, code: ICMP6_ADDR_UNREACH, info: 0,
        dst: dstText, offender: this.routerAddress,
      }, pkt);
      return;
    }
    to.arrive(pkt, src, dst);
  }
}

/** One ICMPv6 message a FakeIcmp6 sent: the addresses the kernel would put in the IPv6 header. */
export interface SentIcmp6 {
  src: Buffer;
  dst: Buffer;
  /** The ICMPv6 message (type, code, checksum, ..., quote), a copy. */
  msg: Buffer;
}

/**
 * An in-memory send-only raw ICMPv6 socket: records what is sent (`sent`, oldest first; clear
 * it when read) and calls `onSend` for each. Like the kernel it requires dsts; the source is
 * the per-packet one, else `bind` (an all-zero `bind` leaves it ::, the kernel's choice).
 */
export class FakeIcmp6 implements Icmp6Socket {
  readonly bind: string;
  readonly counters = newCounters();
  readonly sent: SentIcmp6[] = [];
  onSend: ((s: SentIcmp6) => void) | undefined;
  private closed = false;

  constructor(opts: { bind?: string } = {}) {
    this.bind = formatIpv6(parseIpv6(opts.bind ?? '::'));
  }

  send(tx: TxBatch): number {
    if (this.closed) throw new NativeError(`fake icmp6 [${this.bind}]: send after close`);
    const dsts = tx.dsts;
    if (dsts === undefined) throw new NativeError(`fake icmp6 [${this.bind}]: send needs dsts`);
    const c = this.counters;
    c[STAT.txBatches]! += 1;
    const zero = Buffer.alloc(16);
    let n = 0;
    for (let i = 0; i < tx.count; i++) {
      const off = tx.offsets[i]!;
      const len = tx.lens[i]!;
      if (off < 0 || len < 4 || off + len > tx.slab.length) {
        c[STAT.txErrors]! += 1;
        continue;
      }
      const want = tx.srcs?.subarray(16 * i, 16 * i + 16);
      const src = Buffer.from(want !== undefined && !want.equals(zero) ? want : parseIpv6(this.bind));
      const s: SentIcmp6 = { src, dst: Buffer.from(dsts.subarray(16 * i, 16 * i + 16)), msg: Buffer.from(tx.slab.subarray(off, off + len)) };
      this.sent.push(s);
      this.onSend?.(s);
      n++;
      c[STAT.txPackets]! += 1;
      c[STAT.txBytes]! += len;
    }
    return n;
  }

  stats(): IoStats {
    return readStats(this.counters);
  }

  close(): void {
    this.closed = true;
  }
}

/** adviseHugePages without the addon: advises nothing (returns 0 bytes), for tests with fakes. */
export function adviseHugePages(buf: ArrayBuffer, opts: { collapse?: boolean } = {}): number {
  void buf;
  void opts;
  return 0;
}
