/**
 * Packet builders and readers for the PRR tests. Packets are BUILT with the project's codecs
 * (so checksums are what the core verifies) and READ back with a small independent RFC 1071
 * sum, so a test of the core's output does not only trust the codec it exercises.
 *
 *   udp4 / tcp4 / echo4 / icmpError4 / ipv4   -> a whole IPv4 packet in a new Buffer
 *   corrupt: 'ipv4' | 'l4'                    -> flip a bit of that checksum after building
 *   readIpv4 / readIcmp4                      -> fields of a packet the core produced
 */
import {
  ICMP4_ECHO_REPLY,
  ICMP4_ECHO_REQUEST,
  ICMP4_ERROR_MAX_LEN,
  IPV4_MIN_HLEN,
  PROTO_ICMP,
  PROTO_TCP,
  PROTO_UDP,
  TCP_FLAG_SYN,
  TCP_OPT_MSS,
  TCP_OPT_MSS_LEN,
} from '../../../common/codec/constants.js';
import { encodeIpv4, newIpv4Header, parseIpv4OrThrow } from '../../../common/codec/ipv4.js';
import { fragmentIpv4 } from '../../../common/codec/ipv4frag.js';
import { parseIpv6OrThrow } from '../../../common/codec/ipv6.js';
import { encodeUdp, newUdpHeader, udpSetChecksum4 } from '../../../common/codec/udp.js';
import { encodeTcp, newTcpHeader, tcpSetChecksum4 } from '../../../common/codec/tcp.js';
import { encodeIcmp4, icmp4EchoRest, newIcmp4Header } from '../../../common/codec/icmp4.js';

/** Dotted quad -> 32-bit number. */
export const ip4 = (s: string): number => parseIpv4OrThrow(s);
/** IPv6 text -> 16-byte Buffer. */
export const ip6 = (s: string): Buffer => parseIpv6OrThrow(s);

export interface Ipv4Opts {
  src: number;
  dst: number;
  ttl?: number;
  id?: number;
  tos?: number;
  df?: boolean;
  mf?: boolean;
  /** Fragment offset in bytes (a multiple of 8). */
  fragOff?: number;
  /** IPv4 options, a multiple of 4 bytes, at most 40. */
  options?: Buffer;
  /** After building, break this checksum (flip one bit of the field). */
  corrupt?: 'ipv4' | 'l4';
}

/** Payload bytes: a buffer, or a length (filled with a counting pattern). */
export type Data = Buffer | number | undefined;

function data(d: Data): Buffer {
  if (d === undefined) return Buffer.alloc(0);
  if (typeof d !== 'number') return d;
  const b = Buffer.alloc(d);
  for (let i = 0; i < d; i++) b[i] = (i * 7 + 3) & 0xff;
  return b;
}

/** A whole IPv4 packet around `payload` (no L4 checksum work: the payload is taken as is). */
export function ipv4(o: Ipv4Opts & { proto: number }, payload: Buffer): Buffer {
  const optLen = o.options?.length ?? 0;
  const hlen = IPV4_MIN_HLEN + optLen;
  const buf = Buffer.alloc(hlen + payload.length);
  o.options?.copy(buf, IPV4_MIN_HLEN);
  payload.copy(buf, hlen);
  const h = newIpv4Header();
  h.hlen = hlen;
  h.totalLen = buf.length;
  h.tos = o.tos ?? 0;
  h.id = o.id ?? 0x1234;
  h.df = o.df ?? false;
  h.mf = o.mf ?? false;
  h.fragOff = o.fragOff ?? 0;
  h.ttl = o.ttl ?? 64;
  h.proto = o.proto;
  h.src = o.src;
  h.dst = o.dst;
  const r = encodeIpv4(buf, 0, h);
  if (r < 0) throw new Error(`test packet: encodeIpv4 failed (${r})`);
  if (o.corrupt === 'ipv4') buf[10]! ^= 0x01;
  return buf;
}

/** Flip one bit of the L4 checksum of the packet (UDP, TCP or ICMP). */
function corruptL4(buf: Buffer): void {
  const l4 = (buf[0]! & 0x0f) * 4;
  const proto = buf[9];
  const at = proto === PROTO_UDP ? 6 : proto === PROTO_TCP ? 16 : 2;
  buf[l4 + at]! ^= 0x01;
}

function finish(o: Ipv4Opts, proto: number, seg: Buffer): Buffer {
  const pkt = ipv4({ ...o, proto, corrupt: o.corrupt === 'ipv4' ? 'ipv4' : undefined }, seg);
  if (o.corrupt === 'l4') corruptL4(pkt);
  return pkt;
}

export interface UdpOpts extends Ipv4Opts {
  sport: number;
  dport: number;
  data?: Data;
}

export function udp4(o: UdpOpts): Buffer {
  const d = data(o.data);
  const seg = Buffer.alloc(8 + d.length);
  const u = newUdpHeader();
  u.srcPort = o.sport;
  u.dstPort = o.dport;
  u.length = seg.length;
  encodeUdp(seg, 0, u);
  d.copy(seg, 8);
  udpSetChecksum4(seg, 0, seg.length, o.src, o.dst);
  return finish(o, PROTO_UDP, seg);
}

export interface TcpOpts extends Ipv4Opts {
  sport: number;
  dport: number;
  /** TCP_FLAG_* bits; default SYN. */
  flags?: number;
  seq?: number;
  ack?: number;
  /** Add an MSS option with this value. */
  mss?: number;
  data?: Data;
}

export function tcp4(o: TcpOpts): Buffer {
  const d = data(o.data);
  const optLen = o.mss === undefined ? 0 : TCP_OPT_MSS_LEN;
  const hlen = 20 + optLen;
  const seg = Buffer.alloc(hlen + d.length);
  if (o.mss !== undefined) {
    seg[20] = TCP_OPT_MSS;
    seg[21] = TCP_OPT_MSS_LEN;
    seg.writeUInt16BE(o.mss, 22);
  }
  const h = newTcpHeader();
  h.srcPort = o.sport;
  h.dstPort = o.dport;
  h.seq = o.seq ?? 1000;
  h.ack = o.ack ?? 0;
  h.dataOff = hlen;
  h.flags = o.flags ?? TCP_FLAG_SYN;
  h.window = 65535;
  encodeTcp(seg, 0, h);
  d.copy(seg, hlen);
  tcpSetChecksum4(seg, 0, seg.length, o.src, o.dst);
  return finish(o, PROTO_TCP, seg);
}

/** A whole ICMPv4 message: header (type, code, rest) + body, checksum computed. */
function icmpMessage(type: number, code: number, rest: number, body: Buffer): Buffer {
  const msg = Buffer.alloc(8 + body.length);
  body.copy(msg, 8);
  const h = newIcmp4Header();
  h.type = type;
  h.code = code;
  h.rest = rest;
  encodeIcmp4(msg, 0, h, msg.length);
  return msg;
}

export interface EchoOpts extends Ipv4Opts {
  id: number;
  seq?: number;
  reply?: boolean;
  data?: Data;
}

export function echo4(o: EchoOpts): Buffer {
  const msg = icmpMessage(o.reply === true ? ICMP4_ECHO_REPLY : ICMP4_ECHO_REQUEST, 0, icmp4EchoRest(o.id, o.seq ?? 1), data(o.data ?? 16));
  return finish(o, PROTO_ICMP, msg);
}

export interface IcmpErrorOpts extends Ipv4Opts {
  type: number;
  code: number;
  /** The rest-of-header word (e.g. the next-hop MTU of a Fragmentation Needed). */
  rest?: number;
  /** The offending packet; quoted up to `quoteLen` bytes (default: as RFC 1812 allows, 548). */
  quote: Buffer;
  quoteLen?: number;
}

export function icmpError4(o: IcmpErrorOpts): Buffer {
  const n = Math.min(o.quote.length, o.quoteLen ?? ICMP4_ERROR_MAX_LEN - 28);
  const msg = icmpMessage(o.type, o.code, o.rest ?? 0, o.quote.subarray(0, n));
  return finish(o, PROTO_ICMP, msg);
}

/** Rewrite one IPv4 header byte and recompute the header checksum (for malformed-field cases). */
export function withHeaderByte(pkt: Buffer, at: number, value: number): Buffer {
  const b = Buffer.from(pkt);
  b[at] = value;
  b.writeUInt16BE(0, 10);
  const hlen = Math.min(b.length, Math.max(20, (b[0]! & 0x0f) * 4));
  b.writeUInt16BE(~sum16(b, 0, hlen) & 0xffff, 10);
  return b;
}

/** As withHeaderByte for the 16-bit total length field. */
export function withTotalLength(pkt: Buffer, totalLen: number): Buffer {
  const b = withHeaderByte(pkt, 2, totalLen >>> 8);
  return withHeaderByte(b, 3, totalLen & 0xff);
}

// ---- reading what the core produced (independent of the codecs) -----------------------------

/** RFC 1071 ones'-complement sum, folded, not complemented. */
export function sum16(b: Buffer, off: number, len: number, initial = 0): number {
  let s = initial;
  for (let i = 0; i < len; i += 2) s += (b[off + i]! << 8) | (i + 1 < len ? b[off + i + 1]! : 0);
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

export interface Ipv4View {
  version: number;
  hlen: number;
  totalLen: number;
  ttl: number;
  proto: number;
  df: boolean;
  src: number;
  dst: number;
  /** The header checksum verifies. */
  headerOk: boolean;
  /** The UDP/TCP (pseudo header) or ICMP checksum verifies over the whole payload. */
  l4Ok: boolean;
  payload: Buffer;
}

/** Read the IPv4 packet at b[off, off+len). */
export function readIpv4(b: Buffer, off: number, len: number): Ipv4View {
  const p = Buffer.from(b.subarray(off, off + len));
  const hlen = (p[0]! & 0x0f) * 4;
  const totalLen = p.readUInt16BE(2);
  const proto = p[9]!;
  const src = p.readUInt32BE(12);
  const dst = p.readUInt32BE(16);
  const payload = p.subarray(hlen, totalLen);
  let l4Ok = false;
  if (proto === PROTO_ICMP) l4Ok = sum16(payload, 0, payload.length) === 0xffff;
  else if (proto === PROTO_UDP || proto === PROTO_TCP) {
    const pseudo = (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + proto + payload.length;
    l4Ok = sum16(payload, 0, payload.length, pseudo) === 0xffff;
  }
  return {
    version: p[0]! >>> 4,
    hlen,
    totalLen,
    ttl: p[8]!,
    proto,
    df: (p.readUInt16BE(6) & 0x4000) !== 0,
    src,
    dst,
    headerOk: sum16(p, 0, hlen) === 0xffff,
    l4Ok,
    payload,
  };
}

export interface Icmp4View extends Ipv4View {
  type: number;
  code: number;
  rest: number;
  /** Low 16 bits of rest: the next-hop MTU of a Fragmentation Needed. */
  mtu: number;
  /** The quoted packet (errors): everything after the 8-byte ICMP header. */
  quote: Buffer;
}

export function readIcmp4(b: Buffer, off: number, len: number): Icmp4View {
  const ip = readIpv4(b, off, len);
  const m = ip.payload;
  const rest = m.length >= 8 ? m.readUInt32BE(4) : 0;
  return { ...ip, type: m[0] ?? -1, code: m[1] ?? -1, rest, mtu: rest & 0xffff, quote: m.subarray(8) };
}

/** A seeded PRNG (mulberry32): the fuzz loops are reproducible. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** The fragments of an IPv4 packet for `mtu` (DF must be clear), at most 64. */
export function fragment(pkt: Buffer, mtu: number): Buffer[] {
  const out = Array.from({ length: 64 }, () => Buffer.alloc(mtu));
  const lens: number[] = [];
  const n = fragmentIpv4(pkt, 0, pkt.length, mtu, out, 0, lens);
  if (n < 0) throw new Error(`fragmentIpv4: ${n}`);
  return out.slice(0, n).map((b, i) => b.subarray(0, lens[i]));
}
