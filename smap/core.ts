/**
 * The SMAP's forwarding core: a packet and the binding in, a verdict out. No I/O, no allocation
 * per packet, never throws on packet contents. The caller (smap/dataplane.ts, the unit tests)
 * counts the verdict and transmits it.
 *
 *   fromLan      IPv4 read from the TUN, already SNATed by the kernel (nftables `table ip smap`)
 *                -> check it really is ours, then encapsulate to the PRR
 *   fromTunnel   IPv4 out of an IPv6 packet -> only from the PRR, only to our shared address
 *                -> written to the TUN (the kernel un-NATs it and routes it to the LAN)
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
  ICMP4_ECHO_REPLY,
  ICMP4_ECHO_REQUEST,
  PROTO_ICMP,
  PROTO_TCP,
  PROTO_UDP,
} from '../common/codec/constants.js';
import { decodeIcmp4, isIcmp4Error, newIcmp4Header } from '../common/codec/icmp4.js';
import { decodeIpv4, newIpv4Header, type Ipv4Header } from '../common/codec/ipv4.js';
import { DECODE_NO_VERIFY, DECODE_QUOTED, DecodeError } from '../common/codec/result.js';
import type { PortSet } from '../common/portset.js';
import { Drop, decodeDrop } from './counters.js';

const PROTO_DCCP = 33;
const PROTO_SCTP = 132;
const PROTO_UDPLITE = 136;

export const Action = { Drop: 0, ToPrr: 1, ToLan: 2 } as const;

/** What to do with one packet: send buf[off, off+len) (the input packet itself, never a copy). */
export interface Verdict {
  action: number;
  /** Why the packet was dropped (an index into DROP_REASON_NAMES), or -1. */
  reason: number;
  off: number;
  len: number;
  /** The packet is a non-first fragment (sent on without a port check). */
  fragment: boolean;
}

export function newVerdict(): Verdict {
  return { action: Action.Drop, reason: -1, off: 0, len: 0, fragment: false };
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

  constructor(binding?: SmapBinding) {
    this.b = binding;
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
}

function drop(v: Verdict, reason: number): void {
  v.action = Action.Drop;
  v.reason = reason;
}
