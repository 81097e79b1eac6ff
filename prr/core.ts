/**
 * The PRR's forwarding core: a packet and the binding table in, a verdict out. No I/O, no
 * allocation per packet, never throws on packet contents. The caller (prr/dataplane.ts, the
 * conformance harness, the unit tests) counts the verdict and transmits it.
 *
 *   fromInternet   IPv4 read from the TUN     -> encapsulate to a CPE (by destination port)
 *   fromTunnel     IPv4 out of an IPv6 packet -> validate the source, then to the Internet
 *                                                (TUN) or, hairpinned, to another CPE
 *   fromTunnelError an ICMPv6 error about a packet we tunnelled -> ICMPv4 to its sender
 *                                                (RFC 2473 §8), and the CPE's path MTU
 *
 * The "port" of a packet is its TCP/UDP/SCTP/DCCP port, the identifier of an ICMP echo, or for
 * an ICMP error the port of the packet it quotes (RFC 7596 §8). In this design the kernel is the
 * IPv4 router on both sides of the TUN: it decrements TTL and answers TTL expiry for traffic it
 * routes, so the core decrements TTL only for hairpinned packets, which never leave the PRR, and
 * answers TTL expiry of customers' packets itself (see fromTunnel: the kernel's rate limit
 * would treat all customers of an address as one). Set `ttlByKernel: false` to have the core
 * act as the IPv4 hop itself, as a stand-alone lwAFTR does; the conformance harness does that.
 */
import {
  ICMP4_DEST_UNREACH,
  ICMP4_ECHO_REPLY,
  ICMP4_ECHO_REQUEST,
  ICMP4_TIME_EXCEEDED,
  ICMP4_TTL_EXCEEDED_TRANSIT,
  ICMP4_UNREACH_FRAG_NEEDED,
  ICMP4_UNREACH_HOST,
  ICMP6_DEST_UNREACH,
  ICMP6_PACKET_TOO_BIG,
  ICMP6_PARAM_PROBLEM,
  ICMP6_TIME_EXCEEDED,
  IPV6_HLEN,
  IPV6_MIN_MTU,
  PROTO_ICMP,
  PROTO_IPIP,
  PROTO_IPV6,
  PROTO_TCP,
  PROTO_UDP,
  TUNNEL_OVERHEAD,
} from '../common/codec/constants.js';
import { DECODE_QUOTED, DecodeError } from '../common/codec/result.js';
import { decodeIpv4, ipv4DecrementTtl, newIpv4Header, type Ipv4Header } from '../common/codec/ipv4.js';
import { buildIcmp4Error, decodeIcmp4, isIcmp4Error, newIcmp4Header } from '../common/codec/icmp4.js';
import { buildIcmp6Error } from '../common/codec/icmp6.js';
import { encodeIpv6, newIpv6Header, type Ipv6Header } from '../common/codec/ipv6.js';
import type { BindingTable } from './bindings.js';
import { Drop, decodeDrop } from './counters.js';
import type { PrrPolicy, SidePolicy } from './policy.js';
import { Ipv4Reassembler } from './reassembly.js';

const PROTO_DCCP = 33;
const PROTO_SCTP = 132;
const PROTO_UDPLITE = 136;

/**
 * Icmp6ToCpe: an ICMPv6 message (no IPv6 header) for the raw ICMPv6 socket, to the outer source
 * of a tunnel packet that failed source validation; the addresses are in `ip6` (see Verdict).
 */
export const Action = { Drop: 0, ToInternet: 1, ToCpe: 2, Icmp6ToCpe: 3 } as const;

/** ICMPv6 Destination Unreachable code 5: source address failed ingress/egress policy (RFC 4443 §3.1). */
export const ICMP6_UNREACH_POLICY = 5;
/**
 * The quoted outer IPv6 header of an Icmp6ToCpe error is rebuilt from what the raw socket
 * reports (source, destination, next header 4, payload length = the inner packet's length); the
 * rest is not known: traffic class 0, flow label 0, and this hop limit (the usual initial one).
 */
export const QUOTE6_HOP_LIMIT = 64;
/** What to do with one packet. The packet to send is buf[off, off+len). */
export interface Verdict {
  action: number;
  /** Why the input packet was dropped (an index into DROP_REASON_NAMES), or -1. */
  reason: number;
  buf: Buffer;
  off: number;
  len: number;
  /** ToCpe: the binding to send to (its CPE IPv6 address and tunnel endpoint). */
  to: number;
  /** The binding the input came from (tunnel side), or -1. */
  from: number;
  /** fromTunnel: the source port (ICMP echo id) that passed source validation, or -1 (ports active). */
  srcPort: number;
  /** fromTunnel, with srcPort: the source address that passed it (the binding's shared address). */
  srcAddr: number;
  /** The packet to send is one the PRR made (an ICMPv4 error): it lives in a scratch buffer. */
  generated: boolean;
  hairpin: boolean;
  /** fromTunnelError: the binding whose tunnel MTU was lowered, or -1. */
  pmtuLowered: number;
  /**
   * The packet to send is not in the caller's buffer (a reassembled datagram, or a generated
   * packet): it lives in a buffer of the core's that the next call reuses, so copy or send it now.
   */
  foreign: boolean;
  /**
   * Icmp6ToCpe: the IPv6 header the core built for the checksum: the source (the BR address the
   * CPE used) at ip6[ip6Off + 8, +16), the destination (the CPE) at ip6[ip6Off + 24, +16).
   */
  ip6: Buffer;
  ip6Off: number;
}

export function newVerdict(): Verdict {
  return {
    action: 0, reason: -1, buf: Buffer.alloc(0), off: 0, len: 0, to: -1, from: -1, srcPort: -1, srcAddr: 0, generated: false, hairpin: false, pmtuLowered: -1,
    foreign: false, ip6: Buffer.alloc(0), ip6Off: 0,
  };
}

export interface CoreOptions {
  /** The kernel routes IPv4 on both sides of the TUN and handles TTL there (default true). */
  ttlByKernel?: boolean;
  /**
   * IPv4 toward the Internet leaves through a raw socket ([prr] ipv4_output = raw), not forwarded
   * by the kernel from the TUN: the core is then that hop, decrementing TTL and answering its
   * expiry with Time Exceeded to the CPE (default false).
   */
  ttlToInternet?: boolean;
  /** Milliseconds clock for the ICMP rate limits (default performance.now). */
  now?: () => number;
  /** Hop TTL of the ICMPv4 errors the PRR originates. */
  icmpTtl?: number;
  /** The IPv4 MTU of the tunnel when a binding has learned none (default internal.mtu - 40). */
  tunnelMtu?: number;
  /** How long a path MTU learnt from Packet Too Big holds, in ms ([tunnel] pmtu_timeout; default 10 minutes). */
  pmtuTimeoutMs?: number;
  /** Told when a binding's learnt MTU expires and the full tunnel MTU is tried again (for the log). */
  onPmtuRaised?: (binding: number, mtu: number) => void;
}

/** A path MTU learnt from Packet Too Big: until when it holds, the MTU set, the one it replaced. */
interface LearntMtu {
  until: number;
  mtu: number;
  prev: number;
}

/** A token bucket: `packets` per `seconds`. */
class RateLimit {
  private tokens: number;
  private last: number;
  constructor(
    private readonly side: SidePolicy,
    private readonly now: () => number,
  ) {
    this.tokens = side.errorRateLimit.packets;
    this.last = now();
  }
  take(): boolean {
    const { packets, seconds } = this.side.errorRateLimit;
    const t = this.now();
    this.tokens = Math.min(packets, this.tokens + ((t - this.last) * packets) / (seconds * 1000));
    this.last = t;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/** Where generated ICMP went: counted by the caller from these. */
export interface CoreEvents {
  icmpGenerated: number;
  icmpRateLimited: number;
  icmpSuppressed: number;
  icmpRelayed: number;
  icmp6Translated: number;
  /** ICMPv6 errors made for CPEs (Destination Unreachable 5), and those the rate limit held back. */
  icmp6Generated: number;
  icmp6RateLimited: number;
  /** ICMPv4 Fragmentation Needed made (a subset of icmpGenerated). */
  fragNeeded: number;
  /** Learnt path MTUs that expired: the binding is back at its full tunnel MTU (RFC 8201 §4). */
  pmtuRaised: number;
}

export class PrrCore {
  readonly events: CoreEvents = { icmpGenerated: 0, icmpRateLimited: 0, icmpSuppressed: 0, icmpRelayed: 0, icmp6Translated: 0, icmp6Generated: 0, icmp6RateLimited: 0, fragNeeded: 0, pmtuRaised: 0 };
  private readonly ip: Ipv4Header = newIpv4Header();
  private readonly q: Ipv4Header = newIpv4Header();
  private readonly h6: Ipv6Header = newIpv6Header();
  private readonly icmp = newIcmp4Header();
  private readonly scratch = Buffer.alloc(2048);
  private readonly ttlByKernel: boolean;
  private readonly ttlToInternet: boolean;
  private readonly icmpTtl: number;
  private readonly defaultMtu: number;
  private readonly limit4: RateLimit;
  private readonly limit6: RateLimit;
  private readonly now: () => number;
  private readonly pmtuTimeoutMs: number;
  private readonly onPmtuRaised: ((binding: number, mtu: number) => void) | undefined;
  /**
   * The bindings whose MTU a Packet Too Big lowered. Checked lazily, when a packet goes to one of
   * them (a binding with no learnt MTU costs nothing; no timer per binding): once the entry has
   * expired the binding gets its full MTU back, and the next large packet is the probe (RFC 8201
   * §4). The kernel keeps its own path MTU per destination for net.ipv6.route.mtu_expires (600 s
   * by default, like pmtu_timeout): while it is lower, the kernel fragments the IPv6 packet
   * instead of sending it whole, so nothing is lost, and the next Packet Too Big comes once the
   * kernel has forgotten too.
   */
  private readonly learnt = new Map<number, LearntMtu>();
  /** IPv4 reassembly, before the port lookup (RFC 6333 §6.3): fragments from the Internet, and from CPEs. */
  readonly reasm4: Ipv4Reassembler;
  readonly reasm6: Ipv4Reassembler;
  /** Set by portOf: the port, and whether the packet was an ICMP error. */
  private port = 0;
  private isError = false;

  constructor(
    readonly table: BindingTable,
    readonly policy: PrrPolicy,
    opts: CoreOptions = {},
  ) {
    this.ttlByKernel = opts.ttlByKernel ?? true;
    this.ttlToInternet = opts.ttlToInternet ?? false;
    this.icmpTtl = opts.icmpTtl ?? 64;
    this.defaultMtu = opts.tunnelMtu ?? policy.internal.mtu - TUNNEL_OVERHEAD;
    const now = opts.now ?? (() => performance.now());
    this.now = now;
    this.pmtuTimeoutMs = opts.pmtuTimeoutMs ?? 600_000;
    this.onPmtuRaised = opts.onPmtuRaised;
    this.limit4 = new RateLimit(policy.external, now);
    const limits = (side: SidePolicy): { maxPackets: number; maxFragmentsPerPacket: number; timeoutMs: number } => ({
      maxPackets: side.reassembly.maxPackets,
      maxFragmentsPerPacket: side.reassembly.maxFragmentsPerPacket,
      timeoutMs: side.reassembly.timeoutMs,
    });
    this.reasm4 = new Ipv4Reassembler(limits(policy.external), now);
    this.reasm6 = new Ipv4Reassembler(limits(policy.internal), now);
    this.limit6 = new RateLimit(policy.internal, now);
  }

  /** The IPv4 MTU of the tunnel toward binding `id`: its learned path MTU, else the policy's. */
  tunnelMtu(id: number): number {
    let m = this.table.mtuOf(id);
    if (m > 0 && this.learnt.size > 0) m = this.expireMtu(id, m);
    return m > 0 ? m : this.defaultMtu;
  }

  /** How many bindings hold a path MTU learnt from Packet Too Big (not yet expired or checked). */
  get learntMtus(): number {
    return this.learnt.size;
  }

  /** Binding `id` has MTU `m` (> 0): when it is a learnt one that has expired, restore the one before. */
  private expireMtu(id: number, m: number): number {
    const l = this.learnt.get(id);
    if (l === undefined || this.now() < l.until) return m;
    this.learnt.delete(id);
    if (l.mtu !== m) return m; // the id holds another binding since (released, reused)
    this.table.setMtu(id, l.prev);
    this.events.pmtuRaised++;
    const full = l.prev > 0 ? l.prev : this.defaultMtu;
    this.onPmtuRaised?.(id, full);
    return full;
  }

  /** A Packet Too Big says binding `id`'s path carries `mtu` bytes of IPv4: lower, or refresh the timer. */
  private learnMtu(id: number, mtu: number, v: Verdict): void {
    const cur = this.tunnelMtu(id);
    if (mtu > cur) return;
    let l = this.learnt.get(id);
    if (l !== undefined && l.mtu !== this.table.mtuOf(id)) {
      this.learnt.delete(id); // left by a binding this id held before
      l = undefined;
    }
    const until = this.now() + this.pmtuTimeoutMs;
    if (mtu === cur) {
      if (l !== undefined) l.until = until; // RFC 8201 §4: the timer runs from the latest Packet Too Big
      return;
    }
    this.learnt.set(id, { until, mtu, prev: l?.prev ?? this.table.mtuOf(id) });
    this.table.setMtu(id, mtu);
    v.pmtuLowered = id;
  }

  // ---- IPv4 from the Internet --------------------------------------------------------------

  fromInternet(buf: Buffer, off: number, len: number, v: Verdict): void {
    reset(v);
    const ip = this.ip;
    let p = decodeIpv4(buf, off, ip, off + len);
    if (p < 0) return drop(v, p === DecodeError.bad_version ? Drop.not_ipv4 : decodeDrop(p));
    if (!this.table.isShared(ip.dst)) return drop(v, Drop.not_shared);
    if (ip.mf || ip.fragOff !== 0) {
      // Held (0), refused (< 0, counted by the reassembler), or a whole datagram in reasm4.out.
      const n = this.reasm4.push(buf, off, ip.totalLen, 0);
      if (n <= 0) return;
      buf = this.reasm4.out;
      off = 0;
      p = decodeIpv4(buf, 0, ip, n);
      if (p < 0) return drop(v, decodeDrop(p));
      v.foreign = true;
    }
    const end = off + ip.totalLen;
    if (ip.proto === PROTO_ICMP && !this.policy.external.allowIncomingIcmp) return drop(v, Drop.icmp_policy);
    const r = this.portOf(buf, p, end, ip, 'dst');
    if (r >= 0) return drop(v, r);
    const id = this.table.lookupPort(ip.dst, this.port);
    if (id < 0) {
      if (this.isError) return drop(v, Drop.icmp_unroutable);
      // RFC 7596 §6: no softwire for this port. Tell the sender, within the rate limit.
      return this.icmpToInternet(v, Drop.no_binding, ip, ICMP4_DEST_UNREACH, ICMP4_UNREACH_HOST, 0, buf, off, end);
    }
    if (!this.ttlByKernel && ip.ttl <= 1) {
      return this.icmpToInternet(v, Drop.ttl_expired, ip, ICMP4_TIME_EXCEEDED, ICMP4_TTL_EXCEEDED_TRANSIT, 0, buf, off, end);
    }
    const mtu = this.tunnelMtu(id);
    if (ip.totalLen > mtu && ip.df) {
      return this.icmpToInternet(v, Drop.over_mtu_df, ip, ICMP4_DEST_UNREACH, ICMP4_UNREACH_FRAG_NEEDED, mtu, buf, off, end);
    }
    if (!this.ttlByKernel) ipv4DecrementTtl(buf, off); // after the checks: errors quote the packet as it arrived
    if (this.isError) this.events.icmpRelayed++;
    // Over the MTU without DF: the IPv6 packet is fragmented after encapsulation, by the
    // kernel's raw socket (RFC 6333 §5.3, RFC 2473 §7.2), and the CPE's kernel reassembles it.
    v.action = Action.ToCpe;
    v.to = id;
    setPacket(v, buf, off, ip.totalLen);
  }

  // ---- IPv4 out of the tunnel --------------------------------------------------------------

  /**
   * `src6[srcOff..+16]` is the outer source (the CPE), `dst6[dstOff..+16]` the outer destination
   * (one of our tunnel endpoint addresses); the inner IPv4 packet is buf[off, off+len).
   */
  fromTunnel(src6: Buffer, srcOff: number, dst6: Buffer, dstOff: number, buf: Buffer, off: number, len: number, v: Verdict): void {
    reset(v);
    const ip = this.ip;
    const t = this.table;
    let p = decodeIpv4(buf, off, ip, off + len);
    if (p < 0) return drop(v, p === DecodeError.bad_version ? Drop.not_ipv4 : decodeDrop(p));
    if (ip.mf || ip.fragOff !== 0) {
      // Only known CPEs may hold reassembly state; each CPE has its own key space, since CPEs
      // share their IPv4 address and may pick the same IP id (RFC 6269 §5.1).
      const cpe = t.lookupIpv6(src6, srcOff);
      if (cpe < 0) return drop(v, Drop.unknown_cpe);
      const n = this.reasm6.push(buf, off, ip.totalLen, cpe + 1);
      if (n <= 0) return;
      buf = this.reasm6.out;
      off = 0;
      p = decodeIpv4(buf, 0, ip, n);
      if (p < 0) return drop(v, decodeDrop(p));
      v.foreign = true;
    }
    const end = off + ip.totalLen;
    if (ip.proto === PROTO_IPV6) return drop(v, Drop.tunnel_loop); // before source validation: it has no port
    // Source validation (RFC 7596 §5.2): the inner source address and port must be this CPE's.
    const r = this.portOf(buf, p, end, ip, 'src');
    if (r >= 0) return drop(v, r);
    const id = t.lookupPort(ip.src, this.port);
    if (id < 0 || !t.ipv6Is(id, src6, srcOff)) {
      const cpe = t.lookupIpv6(src6, srcOff);
      v.from = cpe; // a known CPE sending outside its set: the drop is counted against it
      const why = cpe >= 0 ? Drop.port_outside_set : id >= 0 ? Drop.spoofed_ipv6 : Drop.unknown_cpe;
      return this.icmp6ToCpe(v, why, src6, srcOff, dst6, dstOff, buf, off, ip.totalLen);
    }
    v.from = id;
    v.srcPort = this.port;
    v.srcAddr = ip.src;
    const br = this.policy.brAddresses[t.brOf(id)];
    if (br !== undefined && br.compare(dst6, dstOff, dstOff + 16, 0, 16) !== 0) {
      return this.icmp6ToCpe(v, Drop.wrong_endpoint, src6, srcOff, dst6, dstOff, buf, off, ip.totalLen);
    }
    if (!t.isShared(ip.dst)) {
      // The last hop's TTL: answered here, under [internal] icmp_rate_limit, not by the kernel,
      // whose per-destination limit (icmp_ratelimit: a burst of 6, then 1/s) would count every
      // customer of a shared address as one peer: traceroutes from two CPEs lose the PRR's hop.
      // With raw IPv4 output (ttlToInternet) the PRR is that hop and decrements TTL itself.
      if ((this.ttlByKernel || this.ttlToInternet) && ip.ttl <= 1) {
        return this.icmpToCpe(v, Drop.ttl_expired, id, ip, ICMP4_TIME_EXCEEDED, ICMP4_TTL_EXCEEDED_TRANSIT, 0, buf, off, end);
      }
      if (this.ttlToInternet) ipv4DecrementTtl(buf, off);
      v.action = Action.ToInternet;
      setPacket(v, buf, off, ip.totalLen);
      return;
    }
    // Hairpinning (RFC 7596 §6.2): customer to customer on the shared addresses.
    if (!this.policy.hairpinning) return drop(v, Drop.hairpin_disabled);
    const r2 = this.portOf(buf, p, end, ip, 'dst');
    if (r2 >= 0) return drop(v, r2);
    const to = t.lookupPort(ip.dst, this.port);
    if (to < 0) return drop(v, this.isError ? Drop.icmp_unroutable : Drop.no_binding);
    if (ip.ttl <= 1) {
      return this.icmpToCpe(v, Drop.ttl_expired, id, ip, ICMP4_TIME_EXCEEDED, ICMP4_TTL_EXCEEDED_TRANSIT, 0, buf, off, end);
    }
    const mtu = this.tunnelMtu(to);
    if (ip.totalLen > mtu && ip.df) {
      return this.icmpToCpe(v, Drop.over_mtu_df, id, ip, ICMP4_DEST_UNREACH, ICMP4_UNREACH_FRAG_NEEDED, mtu, buf, off, end);
    }
    ipv4DecrementTtl(buf, off); // after the checks: errors quote the packet as it arrived
    v.action = Action.ToCpe;
    v.to = to;
    v.hairpin = true;
    setPacket(v, buf, off, ip.totalLen);
  }

  // ---- ICMPv6 errors about tunnel packets ---------------------------------------------------

  /**
   * An ICMPv6 error (type, code, info = MTU for Packet Too Big) about a packet we sent into the
   * tunnel; quoted[qoff, qoff+qlen) is the start of the inner IPv4 packet it carried. Translated
   * per RFC 2473 §8.3 into an ICMPv4 error to that packet's sender; a Packet Too Big also lowers
   * the tunnel MTU of the binding it was for.
   */
  fromTunnelError(type: number, code: number, info: number, quoted: Buffer, qoff: number, qlen: number, v: Verdict): void {
    reset(v);
    if (!this.policy.internal.allowIncomingIcmp) return drop(v, Drop.icmp_policy); // ICMPv6 arriving on the IPv6 side
    const ip = this.q; // portOf reads a quoted packet's ICMP leniently (cut short, no checksum)
    const p = decodeIpv4(quoted, qoff, ip, qoff + qlen, DECODE_QUOTED);
    if (p < 0) return drop(v, decodeDrop(p));
    if (!this.table.isShared(ip.dst)) return drop(v, Drop.icmp_unroutable); // not a packet we tunnelled
    const qend = Math.min(quoted.length, qoff + qlen);
    // ... and to a port that is bound (a forged error about anything else is not relayed).
    if (this.portOf(quoted, p, qend, ip, 'dst') >= 0 || this.table.lookupPort(ip.dst, this.port) < 0) return drop(v, Drop.icmp_unroutable);
    let icmpType = ICMP4_DEST_UNREACH;
    let icmpCode = ICMP4_UNREACH_HOST;
    let rest = 0;
    if (type === ICMP6_PACKET_TOO_BIG) {
      const mtu = Math.max(IPV6_MIN_MTU, info) - TUNNEL_OVERHEAD; // RFC 8201 §4: never below 1280
      this.learnMtu(this.table.lookupPort(ip.dst, this.port), mtu, v);
      // Without DF the next packets are fragmented for the smaller MTU; nothing to tell.
      if (!ip.df) return drop(v, Drop.icmp_not_for_us);
      icmpCode = ICMP4_UNREACH_FRAG_NEEDED;
      rest = mtu;
    } else if (type === ICMP6_TIME_EXCEEDED && code !== 0) {
      return drop(v, Drop.icmp_not_for_us); // reassembly time exceeded: about IPv6 fragments, not the sender's packet
    } else if (type !== ICMP6_DEST_UNREACH && type !== ICMP6_TIME_EXCEEDED && type !== ICMP6_PARAM_PROBLEM) {
      return drop(v, Drop.icmp_not_for_us);
    }
    this.events.icmp6Translated++;
    // The sender is an Internet host, or a customer whose packet we hairpinned.
    if (this.table.isShared(ip.src)) {
      const r = this.portOf(quoted, p, qend, ip, 'src');
      const id = r < 0 ? this.table.lookupPort(ip.src, this.port) : -1;
      if (id < 0) return drop(v, Drop.icmp_unroutable);
      return this.icmpToCpe(v, -1, id, ip, icmpType, icmpCode, rest, quoted, qoff, qend);
    }
    return this.icmpToInternet(v, -1, ip, icmpType, icmpCode, rest, quoted, qoff, qend);
  }

  // ---- helpers -----------------------------------------------------------------------------

  /**
   * Find the port that selects the binding: this packet's `which` port, or for an ICMP error
   * the opposite port of the packet it quotes (that packet went the other way). Sets this.port
   * and this.isError; returns -1, or a drop reason (0 is a reason: truncated).
   */
  private portOf(buf: Buffer, l4: number, end: number, ip: Ipv4Header, which: 'src' | 'dst'): number {
    this.isError = false;
    const proto = ip.proto;
    if (proto === PROTO_TCP || proto === PROTO_UDP || proto === PROTO_SCTP || proto === PROTO_DCCP || proto === PROTO_UDPLITE) {
      if (l4 + 4 > end) return decodeDrop(DecodeError.truncated);
      this.port = buf.readUInt16BE(which === 'src' ? l4 : l4 + 2);
      return -1;
    }
    if (proto !== PROTO_ICMP) return Drop.no_port;
    const icmp = this.icmp;
    const r = decodeIcmp4(buf, l4, icmp, end, ip === this.q ? DECODE_QUOTED : 0);
    if (r < 0) return decodeDrop(r);
    if (icmp.type === ICMP4_ECHO_REQUEST || icmp.type === ICMP4_ECHO_REPLY) {
      this.port = icmp.id;
      return -1;
    }
    if (!isIcmp4Error(icmp.type) || ip === this.q) return Drop.no_port;
    // An error: the quoted packet travelled the opposite way, and its address must be ours.
    const q = this.q;
    const qp = decodeIpv4(buf, icmp.quoteOff, q, end, DECODE_QUOTED);
    if (qp < 0 || q.fragOff !== 0) return Drop.icmp_unroutable; // a non-first fragment quotes no ports
    const mine = which === 'dst' ? q.src : q.dst;
    const self = which === 'dst' ? ip.dst : ip.src;
    if (mine !== self) return Drop.icmp_unroutable;
    const r2 = this.portOf(buf, qp, end, q, which === 'dst' ? 'src' : 'dst');
    this.isError = true;
    return r2 < 0 ? -1 : Drop.icmp_unroutable;
  }

  /** Drop with `reason`, and send an ICMPv4 error to the packet's (Internet) source if allowed. */
  private icmpToInternet(v: Verdict, reason: number, ip: Ipv4Header, type: number, code: number, rest: number, buf: Buffer, off: number, end: number): void {
    v.reason = reason;
    if (!this.mayAnswer(ip, buf, off, end, false)) return;
    if (!this.policy.external.generateIcmpErrors) {
      this.events.icmpSuppressed++;
      return;
    }
    if (!this.limit4.take()) {
      this.events.icmpRateLimited++;
      return;
    }
    const n = buildIcmp4Error(this.scratch, 0, this.policy.ipv4, ip.src, this.icmpTtl, type, code, rest, buf, off, end - off);
    if (n < 0) return;
    this.countGenerated(type, code);
    v.action = Action.ToInternet;
    v.generated = true;
    v.foreign = true;
    setPacket(v, this.scratch, 0, n);
  }

  /** Drop with `reason`, and send an ICMPv4 error through the tunnel to binding `to`. */
  private icmpToCpe(v: Verdict, reason: number, to: number, ip: Ipv4Header, type: number, code: number, rest: number, buf: Buffer, off: number, end: number): void {
    v.reason = reason;
    if (!this.mayAnswer(ip, buf, off, end, true)) return;
    if (!this.policy.internal.generateIcmpErrors) {
      this.events.icmpSuppressed++;
      return;
    }
    if (!this.limit6.take()) {
      this.events.icmpRateLimited++;
      return;
    }
    const n = buildIcmp4Error(this.scratch, 0, this.policy.ipv4, ip.src, this.icmpTtl, type, code, rest, buf, off, end - off);
    if (n < 0) return;
    this.countGenerated(type, code);
    v.action = Action.ToCpe;
    v.to = to;
    v.generated = true;
    v.foreign = true;
    setPacket(v, this.scratch, 0, n);
  }

  /**
   * Drop with `reason` (source validation failed), and, when [internal] generate_icmp_errors and
   * the internal rate limit allow, answer the CPE with ICMPv6 Destination Unreachable code 5
   * (RFC 7596 §5.2, RFC 4443 §3.1) from the address it sent to. The quoted "offending packet" is
   * the outer IPv6 header rebuilt (see QUOTE6_HOP_LIMIT) and the inner packet, cut at 1280 bytes
   * for the whole error (RFC 4443 §2.4(c)). Never to a source that is not unicast (RFC 4443 §2.4(e)).
   */
  private icmp6ToCpe(v: Verdict, reason: number, src6: Buffer, srcOff: number, dst6: Buffer, dstOff: number, buf: Buffer, off: number, len: number): void {
    v.reason = reason;
    if (!this.policy.internal.generateIcmpErrors || !isUnicast6(src6, srcOff)) return;
    if (!this.limit6.take()) {
      this.events.icmp6RateLimited++;
      return;
    }
    // The offending packet goes where buildIcmp6Error puts its quote (after 40 + 8 bytes): in place.
    const s = this.scratch;
    const q = IPV6_HLEN + 8;
    const inner = Math.min(len, ICMP6_QUOTE_MAX - IPV6_HLEN);
    const h = this.h6;
    h.trafficClass = 0;
    h.flowLabel = 0;
    h.payloadLen = len;
    h.nextHeader = PROTO_IPIP;
    h.hopLimit = QUOTE6_HOP_LIMIT;
    encodeIpv6(s, q, h, src6, srcOff, dst6, dstOff);
    buf.copy(s, q + IPV6_HLEN, off, off + inner);
    const n = buildIcmp6Error(s, 0, dst6, dstOff, src6, srcOff, 255, ICMP6_DEST_UNREACH, ICMP6_UNREACH_POLICY, 0, s, q, IPV6_HLEN + inner);
    if (n < 0) return;
    this.events.icmp6Generated++;
    v.action = Action.Icmp6ToCpe;
    v.generated = true;
    v.foreign = true;
    v.ip6 = s;
    v.ip6Off = 0;
    setPacket(v, s, IPV6_HLEN, n - IPV6_HLEN);
  }

  private countGenerated(type: number, code: number): void {
    this.events.icmpGenerated++;
    if (type === ICMP4_DEST_UNREACH && code === ICMP4_UNREACH_FRAG_NEEDED) this.events.fragNeeded++;
  }

  /**
   * RFC 1812 §4.3.2.7: no ICMP error about an ICMP error, a non-first fragment, or to a non-unicast
   * source; nor toward the Internet about a packet that claims a customer's address as source.
   */
  private mayAnswer(ip: Ipv4Header, buf: Buffer, off: number, end: number, toCpe: boolean): boolean {
    if (ip.fragOff !== 0) return false;
    const s = ip.src >>> 24;
    if (ip.src === 0 || s === 127 || s >= 224) return false;
    if (!toCpe && this.table.isShared(ip.src) && !this.table.isShared(ip.dst)) return false;
    if (ip.proto === PROTO_ICMP) {
      const l4 = off + ip.hlen;
      if (l4 + 1 > end) return false;
      if (isIcmp4Error(buf[l4]!)) return false;
    }
    return true;
  }
}

/** The most of the offending packet an ICMPv6 error quotes: 1280 - 40 - 8 (RFC 4443 §2.4(c)). */
const ICMP6_QUOTE_MAX = IPV6_MIN_MTU - IPV6_HLEN - 8;

/** Not ::, ::1, or multicast (ff00::/8). */
function isUnicast6(a: Buffer, off: number): boolean {
  if (a[off] === 0xff) return false;
  for (let i = 0; i < 15; i++) if (a[off + i] !== 0) return true;
  return a[off + 15]! > 1;
}

function reset(v: Verdict): void {
  v.action = Action.Drop;
  v.reason = -1;
  v.to = -1;
  v.from = -1;
  v.srcPort = -1;
  v.generated = false;
  v.hairpin = false;
  v.pmtuLowered = -1;
  v.foreign = false;
  v.len = 0;
}

function drop(v: Verdict, reason: number): void {
  v.action = Action.Drop;
  v.reason = reason;
}

function setPacket(v: Verdict, buf: Buffer, off: number, len: number): void {
  v.buf = buf;
  v.off = off;
  v.len = len;
}
