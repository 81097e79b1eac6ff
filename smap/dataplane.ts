/**
 * The SMAP's packet loop: batches from the TUN (the LAN and the router, SNATed by the kernel)
 * and from the tunnel socket (the PRR), through the forwarding core, counted, sent on in batches.
 *
 *   TUN ──batch──► core.fromLan ──► tunnel.send (to the PRR, from our WAN address)
 *   tunnel ──batch──► core.fromTunnel ──► TUN.send (the kernel un-NATs and routes to the LAN)
 *   tunnel error queue ──► core.fromTunnelError ──► TUN.send (Fragmentation Needed), then the
 *                          daemon's onTunnelError (the tunnel MTU: smap/pmtu.ts)
 *   core.fromLan over the tunnel MTU with DF ──► TUN.send (Fragmentation Needed, copied)
 *
 * Every packet into the tunnel goes to one place from one address, so the per-packet destination
 * and source slots of the send batch are filled once, when the binding or the WAN address
 * changes, never per packet. Packets are sent from the receive ring where they lie (no copy).
 *
 * TUN offloads ([tunnel] offload = auto, TunOptions.offload; the byte work in C, common/native/src/
 * gso.c) change what the TUN's batches hold, not this loop. The kernel hands the TUN TCP (and UDP)
 * super-packets of up to 64 KiB (the LAN host's TSO, forwarded whole), which the reader cuts into
 * packets of the tunnel MTU before onTunBatch sees them: each segment is checked against the port
 * set and the MTU like any packet. Toward the LAN, the TUN write coalesces consecutive TCP segments
 * of one flow in a batch into one super-packet per write(), so the kernel's de-NAT, conntrack and
 * forwarding, which run in the writer's context, run once for up to 64 segments, and the veth
 * carries the super-packet whole (the kernel cuts it to the LAN MTU if need be). Profiled in the
 * e2e lab (perf, smap run, Nov 2026): ~90% of the SMAP's CPU is kernel, ~3-6% its JS. Without
 * offloads, TCP toward the LAN spent 62-68% in the TUN write()s (one packet each); with them
 * 27%. TCP toward the Internet: 60% sendmmsg (IPv6 output, and the PRR node's receive, run in
 * our context over the veth), 16% TUN write (its ACKs, not coalesced). 64-byte UDP toward the PRR:
 * ~70% sendmmsg, 16% TUN read: one read per datagram, which offloads do not change.
 */
import type { Icmp6ErrorReport, PacketPort, RingOptions, TunDevice, Tunnel6Socket, TxBatch } from '../common/native/types.js';
import { Action, newVerdict, type SmapCore, type Verdict } from './core.js';
import { G, type SmapCounters } from './counters.js';

/** Room for one generated ICMPv4 error (at most 576 bytes, RFC 1812 §4.3.2.3). */
const GEN_SLOT = 1024;

/**
 * Receive ring of the tunnel socket. The PRR sends a packet over the tunnel MTU without DF as one
 * IPv6 packet that the kernel fragments (RFC 2473 §7.2, RFC 6333 §5.3), and this host's kernel
 * hands the socket the reassembled packet: after the PRR reassembled a fragmented datagram (a
 * 4000-byte UDP datagram, say) that is up to 65535 bytes of IPv4, so every slot holds that much.
 * 32 slots of 64 KiB (2 MiB) instead of the default 128 of 2 KiB: a CPE's share of RAM.
 */
export const TUNNEL_RING: RingOptions = { batch: 32, slotSize: 65535 + 40, headroom: 40 };

function newBatch(n: number, tunnel: boolean): TxBatch {
  return {
    slab: Buffer.alloc(0),
    offsets: new Int32Array(n),
    lens: new Int32Array(n),
    count: 0,
    ...(tunnel ? { dsts: Buffer.alloc(16 * n), srcs: Buffer.alloc(16 * n) } : {}),
  };
}

export class SmapDataplane {
  private readonly v: Verdict = newVerdict();
  private readonly toPrr: TxBatch;
  private readonly toLan: TxBatch;
  /** ICMPv4 errors the core made, copied out of its scratch buffer, to the TUN. */
  private readonly gen: TxBatch;
  /** Called with each tunnel error report (ICMPv6 errors, local send errors), after counting. */
  onTunnelError: ((e: Icmp6ErrorReport) => void) | undefined;

  constructor(
    readonly core: SmapCore,
    readonly counters: SmapCounters,
    readonly tun: TunDevice,
    readonly tunnel: Tunnel6Socket,
  ) {
    this.toPrr = newBatch(tun.ring.batch, true);
    this.toLan = newBatch(tunnel.ring.batch, false);
    this.gen = newBatch(tun.ring.batch, false);
    this.gen.slab = Buffer.alloc(GEN_SLOT * tun.ring.batch);
  }

  /**
   * Set where tunnel packets go (the PRR) and the source they carry (our WAN address); an
   * undefined source leaves the choice to the kernel.
   */
  setEndpoints(prr: Buffer, src: Buffer | undefined): void {
    const n = this.toPrr.offsets.length;
    for (let i = 0; i < n; i++) {
      prr.copy(this.toPrr.dsts!, 16 * i, 0, 16);
      if (src !== undefined) src.copy(this.toPrr.srcs!, 16 * i, 0, 16);
      else this.toPrr.srcs!.fill(0, 16 * i, 16 * i + 16);
    }
  }

  start(): void {
    this.tunnel.onError((e) => {
      this.counters.global[G.tunnel_errors]++;
      if (e.origin === 'icmp6' && e.payload.length > 0) {
        const v = this.v;
        this.gen.count = 0;
        this.core.fromTunnelError(e.type, e.info, e.payload, 0, e.payload.length, v);
        if (v.reason >= 0) this.counters.dropsIn[v.reason]++;
        if (v.generated) this.pushGenerated();
        this.flushGenerated();
      }
      this.onTunnelError?.(e);
    });
    this.tunnel.start((n) => this.onTunnelBatch(n));
    this.tun.start((n) => this.onTunBatch(n));
  }

  stop(): void {
    this.tun.close();
    this.tunnel.close();
  }

  /** IPv4 from the LAN (and the router itself), NATed: to the PRR. */
  private onTunBatch(count: number): void {
    const ring = this.tun.ring;
    const { core, v } = this;
    const c = this.counters;
    const g = c.global;
    const out = this.toPrr;
    out.slab = ring.slab;
    out.count = 0;
    this.gen.count = 0;
    for (let i = 0; i < count; i++) {
      const off = i * ring.slotSize + ring.headroom;
      const len = ring.lens[i]!;
      g[G.lan_packets]++;
      g[G.lan_bytes] += len;
      core.fromLan(ring.slab, off, len, v);
      if (v.action !== Action.ToPrr) {
        if (v.reason >= 0) c.dropsOut[v.reason]++;
        if (v.generated) this.pushGenerated();
        continue;
      }
      if (v.fragment) g[G.fragments_out]++;
      out.offsets[out.count] = v.off;
      out.lens[out.count++] = v.len;
    }
    this.flush(out, this.tunnel, G.to_prr_packets, G.to_prr_bytes);
    this.flushGenerated();
  }

  /** Copy the core's generated ICMPv4 error into the next slot of the generated batch. */
  private pushGenerated(): void {
    const gen = this.gen;
    const at = gen.count * GEN_SLOT;
    this.core.out.copy(gen.slab, at, 0, this.v.len);
    gen.offsets[gen.count] = at;
    gen.lens[gen.count++] = this.v.len;
  }

  /** Send the generated errors to the TUN; move the core's event tallies into the counters. */
  private flushGenerated(): void {
    this.flush(this.gen, this.tun, G.to_lan_packets, G.to_lan_bytes);
    const e = this.core.events;
    const g = this.counters.global;
    g[G.frag_needed_sent] += e.fragNeeded;
    g[G.icmp_rate_limited] += e.icmpRateLimited;
    e.fragNeeded = e.icmpRateLimited = 0;
  }

  /** IPv4 from the tunnel: only the PRR's, only for our address, to the TUN. */
  private onTunnelBatch(count: number): void {
    const ring = this.tunnel.ring;
    const { core, v } = this;
    const c = this.counters;
    const g = c.global;
    const out = this.toLan;
    out.slab = ring.slab;
    out.count = 0;
    for (let i = 0; i < count; i++) {
      const off = i * ring.slotSize + ring.headroom;
      const len = ring.lens[i]!;
      g[G.tunnel_packets]++;
      g[G.tunnel_bytes] += len;
      core.fromTunnel(ring.srcs, 16 * i, ring.slab, off, len, v);
      if (v.action !== Action.ToLan) {
        if (v.reason >= 0) c.dropsIn[v.reason]++;
        continue;
      }
      out.offsets[out.count] = v.off;
      out.lens[out.count++] = v.len;
    }
    this.flush(out, this.tun, G.to_lan_packets, G.to_lan_bytes);
  }

  private flush(tx: TxBatch, port: PacketPort, pk: number, by: number): void {
    if (tx.count === 0) return;
    const sent = port.send(tx);
    const g = this.counters.global;
    g[pk] += sent;
    for (let i = 0; i < sent; i++) g[by] += tx.lens[i]!;
    if (sent < tx.count) g[G.tx_errors] += tx.count - sent;
  }
}
