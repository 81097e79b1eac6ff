/**
 * The SMAP's forwarding core: a packet and the binding in, a verdict out. No I/O, no allocation
 * per packet, never throws on packet contents. The caller (smap/dataplane.ts, the unit tests)
 * counts the verdict and transmits it.
 *
 *   fromLan      IPv4 read from the TUN, already SNATed by the kernel (nftables `table ip smap`)
 *                -> check it really is ours, then encapsulate to the PRR
 *   fromTunnel   IPv4 out of an IPv6 packet -> only from the PRR, only to our shared address
 *                -> written to the TUN (the kernel un-NATs it and routes it to the LAN)
 *   fromTunnelError  an ICMPv6 Packet Too Big about a packet we sent to the PRR
 *                -> ICMPv4 Fragmentation Needed to its LAN sender, written to the TUN
 *
 * Path MTU (RFC 2473 §7, RFC 6333 §5.3). The tunnel MTU is smap0's MTU, so the kernel itself
 * answers a LAN packet with DF that is too big (Fragmentation Needed, before the TUN) and
 * fragments one without DF (IPv4 fragments, before NAT leaves them: the PRR reassembles). What
 * reaches the core over the tunnel MTU was queued before the MTU went down: with DF it gets
 * Fragmentation Needed here (rate-limited, like the kernel's); without DF it goes into the tunnel
 * as it is and the kernel fragments the IPv6 packet after encapsulation (the raw socket, pmtudisc
 * "want"; RFC 2473 §7.2), which the PRR's kernel reassembles. A packet the path dropped with a
 * Packet Too Big is gone: if it had DF its sender is told the new MTU (RFC 2473 §8.3); if not,
 * its retransmission (or the next datagram) is fragmented for the new MTU.
 *
 * The ICMPv4 errors the SMAP makes go to the packet's source, the shared address, through the
 * TUN: conntrack matches the quoted packet to the NATed flow (RELATED) and rewrites the error
 * for the LAN host, as it does for errors from the Internet. Their source is 192.0.0.2, the
 * address a softwire initiator uses for itself (RFC 7335, DS-Lite B4): the SMAP has no IPv4
 * address on the tunnel side, and its LAN address would arrive on the TUN as a martian.
 *
 * The kernel does the NAT; the core is defence in depth (RFC 7596 §5.1: the lwB4 must only send
 * from its own address and port set). A packet that escaped the SNAT (a rule missing, a
 * conntrack entry from before a binding change, a protocol nftables does not map) is dropped and
 * counted here rather than sent to the PRR, which would drop it too, with less to tell.
 *
 * The "port" of a packet is its TCP/UDP/SCTP/DCCP/UDP-Lite source port, the identifier of an
 * ICMP echo, or for an ICMP error the destination port of the packet it quotes (that packet came
 * from the Internet to us). Non-first fragments carry no port: the kernel made them from a packet
 * it had NATed (conntrack reassembles before NAT, the output path fragments after), so they are
 * sent on when their source is the shared address. Checksums are not verified here: packets from
 * the TUN come from our own kernel, and the kernel verifies what we write to the TUN.
 */
import {
  ICMP4_DEST_UNREACH,
  ICMP4_ECHO_REPLY,
  ICMP4_ECHO_REQUEST,
  ICMP4_UNREACH_FRAG_NEEDED,
  ICMP6_PACKET_TOO_BIG,
  PROTO_ICMP,
  PROTO_TCP,
  PROTO_UDP,
} from '../common/codec/constants.js';
import { buildIcmp4Error, decodeIcmp4, isIcmp4Error, newIcmp4Header } from '../common/codec/icmp4.js';
import { decodeIpv4, newIpv4Header, type Ipv4Header } from '../common/codec/ipv4.js';
import { DECODE_NO_VERIFY, DECODE_QUOTED, DecodeError } from '../common/codec/result.js';
import type { PortSet } from '../common/portset.js';
import { Drop, decodeDrop } from './counters.js';
import { tunnelMtuOfPtb } from './pmtu.js';

/** Source of the ICMPv4 errors the SMAP makes: 192.0.0.2 (RFC 7335, a softwire initiator's own address). */
export const SMAP_ICMP_SOURCE = 0xc0000002;
/** The SMAP's ICMPv4 errors: at most this many per second (a burst of as many), like a kernel's icmp_ratelimit. */
export const ICMP_PER_SECOND = 100;
const ICMP_TTL = 64;

const PROTO_DCCP = 33;
const PROTO_SCTP = 132;
const PROTO_UDPLITE = 136;

export const Action = { Drop: 0, ToPrr: 1, ToLan: 2 } as const;

/**
 * What to do with one packet: send buf[off, off+len) (the input packet itself, never a copy), or,
 * when `generated`, the ICMPv4 error the core made in place of it: core.out[0, len), which the
 * next call reuses (copy it now). A generated error has `reason` set too: the input was dropped.
 */
export interface Verdict {
  action: number;
  /** Why the packet was dropped (an index into DROP_REASON_NAMES), or -1. */
  reason: number;
  off: number;
  len: number;
  /** The packet is a non-first fragment (sent on without a port check). */
  fragment: boolean;
  generated: boolean;
}

export function newVerdict(): Verdict {
  return { action: Action.Drop, reason: -1, off: 0, len: 0, fragment: false, generated: false };
}

/** What the core made or held back; the data plane moves these into the counters. */
export interface CoreEvents {
  fragNeeded: number;
  icmpRateLimited: number;
}

/** This CPE's binding: the shared IPv4 address, its port set, the PRR's IPv6 address (16 bytes). */
export interface SmapBinding {
  readonly shared: number;
  readonly ports: PortSet;
  readonly prr: Buffer;
}

export class SmapCore {
  private readonly ip: Ipv4Header = newIpv4Header();
  private readonly q: Ipv4Header = newIpv4Header();
  private readonly icmp = newIcmp4Header();
  private b: SmapBinding | undefined;
  private mtu_ = Number.POSITIVE_INFINITY;
  private tokens = ICMP_PER_SECOND;
  private last: number;
  /** The ICMPv4 error of a `generated` verdict. */
  readonly out = Buffer.alloc(1024);
  readonly events: CoreEvents = { fragNeeded: 0, icmpRateLimited: 0 };

  constructor(
    binding?: SmapBinding,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.b = binding;
    this.last = now();
  }

  /** The tunnel MTU (IPv4 bytes): larger LAN packets with DF get Fragmentation Needed. */
  get mtu(): number {
    return this.mtu_;
  }

  setMtu(mtu: number): void {
    this.mtu_ = mtu;
  }

  get binding(): SmapBinding | undefined {
    return this.b;
  }

  /** Replace the binding (a new registration or a reloaded [static] section); undefined = none. */
  setBinding(binding: SmapBinding | undefined): void {
    this.b = binding;
  }

  /** An IPv4 packet read from the TUN: to the PRR if its source is our address and port set. */
  fromLan(buf: Buffer, off: number, len: number, v: Verdict): void {
    reset(v);
    const b = this.b;
    if (b === undefined) return drop(v, Drop.no_binding);
    const ip = this.ip;
    const p = decodeIpv4(buf, off, ip, off + len, DECODE_NO_VERIFY);
    if (p < 0) return drop(v, p === DecodeError.bad_version ? Drop.not_ipv4 : decodeDrop(p));
    if (ip.src !== b.shared) return drop(v, Drop.not_shared_source);
    if (ip.fragOff !== 0) {
      v.fragment = true;
    } else {
      const r = this.checkPort(buf, p, off + ip.totalLen, ip, b);
      if (r >= 0) return drop(v, r);
      // Over the tunnel MTU (sent before it went down): DF -> tell the sender; else fragmented
      // by the kernel after encapsulation (see the top of the file).
      if (ip.df && ip.totalLen > this.mtu_) return this.fragNeeded(v, Drop.over_mtu_df, this.mtu_, buf, off, ip.totalLen, ip);
    }
    v.action = Action.ToPrr;
    v.off = off;
    v.len = ip.totalLen;
  }

  /**
   * An IPv4 packet received through the tunnel: `src6[srcOff..+16]` is the outer IPv6 source,
   * the inner packet is buf[off, off+len). Only the PRR may send to us, only for our address.
   */
  fromTunnel(src6: Buffer, srcOff: number, buf: Buffer, off: number, len: number, v: Verdict): void {
    reset(v);
    const b = this.b;
    if (b === undefined) return drop(v, Drop.no_binding);
    if (b.prr.compare(src6, srcOff, srcOff + 16) !== 0) return drop(v, Drop.not_from_prr);
    const ip = this.ip;
    const p = decodeIpv4(buf, off, ip, off + len, DECODE_NO_VERIFY);
    if (p < 0) return drop(v, p === DecodeError.bad_version ? Drop.not_ipv4 : decodeDrop(p));
    if (ip.dst !== b.shared) return drop(v, Drop.not_to_shared);
    v.action = Action.ToLan;
    v.fragment = ip.fragOff !== 0;
    v.off = off;
    v.len = ip.totalLen;
  }

  /**
   * An ICMPv6 error from the tunnel socket's error queue about a packet we sent; `info` is the MTU
   * of a Packet Too Big, quoted[qoff, qoff+qlen) the start of the IPv4 packet it carried. A Packet
   * Too Big about a LAN packet with DF becomes Fragmentation Needed to its sender with the tunnel
   * MTU it leaves; anything else changes nothing here (the MTU itself is the daemon's: PathMtu).
   */
  fromTunnelError(type: number, info: number, quoted: Buffer, qoff: number, qlen: number, v: Verdict): void {
    reset(v);
    const b = this.b;
    if (type !== ICMP6_PACKET_TOO_BIG || b === undefined) return;
    const q = this.q;
    const p = decodeIpv4(quoted, qoff, q, qoff + qlen, DECODE_QUOTED);
    if (p < 0) return drop(v, decodeDrop(p));
    if (q.src !== b.shared) return drop(v, Drop.not_shared_source); // not a packet we sent
    if (!q.df || q.fragOff !== 0) return; // dropped on the path; the next ones are fragmented
    this.fragNeeded(v, -1, tunnelMtuOfPtb(info), quoted, qoff, Math.min(qlen, quoted.length - qoff), q);
  }

  /** Drop with `reason` and answer the (NATed) sender with Fragmentation Needed, within the rate limit. */
  private fragNeeded(v: Verdict, reason: number, mtu: number, buf: Buffer, off: number, len: number, ip: Ipv4Header): void {
    v.reason = reason;
    if (ip.proto === PROTO_ICMP && off + ip.hlen < off + len && isIcmp4Error(buf[off + ip.hlen]!)) return; // no error about an error
    const t = this.now();
    this.tokens = Math.min(ICMP_PER_SECOND, this.tokens + ((t - this.last) * ICMP_PER_SECOND) / 1000);
    this.last = t;
    if (this.tokens < 1) {
      this.events.icmpRateLimited++;
      return;
    }
    const n = buildIcmp4Error(this.out, 0, SMAP_ICMP_SOURCE, ip.src, ICMP_TTL, ICMP4_DEST_UNREACH, ICMP4_UNREACH_FRAG_NEEDED, mtu, buf, off, len);
    if (n < 0) return;
    this.tokens -= 1;
    this.events.fragNeeded++;
    v.action = Action.ToLan;
    v.generated = true;
    v.off = 0;
    v.len = n;
  }

  /** -1 when the packet's port is in the set, else a drop reason. */
  private checkPort(buf: Buffer, l4: number, end: number, ip: Ipv4Header, b: SmapBinding): number {
    const proto = ip.proto;
    if (proto === PROTO_TCP || proto === PROTO_UDP || proto === PROTO_SCTP || proto === PROTO_DCCP || proto === PROTO_UDPLITE) {
      if (l4 + 2 > end) return decodeDrop(DecodeError.truncated);
      return b.ports.has(buf.readUInt16BE(l4)) ? -1 : Drop.outside_set;
    }
    if (proto !== PROTO_ICMP) return Drop.no_port;
    const icmp = this.icmp;
    const r = decodeIcmp4(buf, l4, icmp, end, DECODE_NO_VERIFY);
    if (r < 0) return decodeDrop(r);
    if (icmp.type === ICMP4_ECHO_REQUEST || icmp.type === ICMP4_ECHO_REPLY) return b.ports.has(icmp.id) ? -1 : Drop.outside_set;
    if (!isIcmp4Error(icmp.type)) return Drop.no_port;
    // An error about a packet that came to us: it quotes our address as destination, and the
    // port that packet was sent to (its destination port, or the echo identifier) is ours.
    const q = this.q;
    const qp = decodeIpv4(buf, icmp.quoteOff, q, end, DECODE_QUOTED);
    if (qp < 0) return decodeDrop(qp);
    if (q.dst !== b.shared) return Drop.not_shared_source;
    if (q.fragOff !== 0) return Drop.no_port;
    const qproto = q.proto;
    if (qproto === PROTO_TCP || qproto === PROTO_UDP || qproto === PROTO_SCTP || qproto === PROTO_DCCP || qproto === PROTO_UDPLITE) {
      if (qp + 4 > end) return decodeDrop(DecodeError.truncated);
      return b.ports.has(buf.readUInt16BE(qp + 2)) ? -1 : Drop.outside_set;
    }
    if (qproto === PROTO_ICMP) {
      const r2 = decodeIcmp4(buf, qp, icmp, end, DECODE_QUOTED);
      if (r2 < 0) return decodeDrop(r2);
      if (icmp.type === ICMP4_ECHO_REQUEST || icmp.type === ICMP4_ECHO_REPLY) return b.ports.has(icmp.id) ? -1 : Drop.outside_set;
    }
    return Drop.no_port;
  }
}

function reset(v: Verdict): void {
  v.action = Action.Drop;
  v.reason = -1;
  v.off = 0;
  v.len = 0;
  v.fragment = false;
  v.generated = false;
}

function drop(v: Verdict, reason: number): void {
  v.action = Action.Drop;
  v.reason = reason;
}
