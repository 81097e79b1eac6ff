/**
 * ICMPv4 (RFC 792): echo, errors that quote the offending packet, Fragmentation Needed with the
 * next-hop MTU (RFC 1191), and builders for a whole IPv4 packet carrying an error or echo reply.
 *
 *   |     Type      |     Code      |          Checksum             |
 *   |                  rest of header (32 bits)                     |
 *   |  echo: Identifier | Sequence    unreach/frag-needed: unused | Next-Hop MTU
 *   |     data / quoted packet (IP header + as much as fits) ...
 */
import {
  ICMP4_DEST_UNREACH,
  ICMP4_ECHO_REPLY,
  ICMP4_ECHO_REQUEST,
  ICMP4_ERROR_MAX_LEN,
  ICMP4_HLEN,
  ICMP4_OFF_CODE,
  ICMP4_OFF_CSUM,
  ICMP4_OFF_ID,
  ICMP4_OFF_TYPE,
  ICMP4_PARAM_PROBLEM,
  ICMP4_REDIRECT,
  ICMP4_SOURCE_QUENCH,
  ICMP4_TIME_EXCEEDED,
  ICMP4_UNREACH_FRAG_NEEDED,
  IPV4_MIN_HLEN,
  PROTO_ICMP,
} from './constants.js';
import { csumAdd, csumFix16, internetChecksum } from './checksum.js';
import { decodeIpv4, encodeIpv4, newIpv4Header, type Ipv4Header } from './ipv4.js';
import { DECODE_NO_VERIFY, DECODE_QUOTED, DecodeError } from './result.js';

/** A decoded ICMPv4 header. `rest` is authoritative for encode; id/seq/mtu are views of it. */
export interface Icmp4Header {
  type: number;
  code: number;
  csum: number;
  /** The 32-bit rest-of-header word. */
  rest: number;
  /** Echo identifier and sequence (high and low half of rest). */
  id: number;
  seq: number;
  /** Next-hop MTU of a Fragmentation Needed (low 16 bits of rest), else 0. */
  mtu: number;
  /** Offset of the quoted IPv4 header in an error message, else -1. */
  quoteOff: number;
}

export function newIcmp4Header(): Icmp4Header {
  return { type: 0, code: 0, csum: 0, rest: 0, id: 0, seq: 0, mtu: 0, quoteOff: -1 };
}

/** True for the error types that quote an offending packet. */
export function isIcmp4Error(type: number): boolean {
  return (
    type === ICMP4_DEST_UNREACH ||
    type === ICMP4_SOURCE_QUENCH ||
    type === ICMP4_REDIRECT ||
    type === ICMP4_TIME_EXCEEDED ||
    type === ICMP4_PARAM_PROBLEM
  );
}

/**
 * Decode the ICMPv4 message at buf[off, end) (`end`: the end of the IP payload). Returns off + 8,
 * or truncated / bad_checksum (verified over the whole message unless DECODE_NO_VERIFY or
 * DECODE_QUOTED). For errors h.quoteOff is the offset of the quoted IPv4 header: decode it with
 * decodeIpv4(..., DECODE_QUOTED).
 */
export function decodeIcmp4(buf: Buffer, off: number, h: Icmp4Header, end = buf.length, flags = 0): number {
  if (end > buf.length) end = buf.length;
  if (off < 0 || off + ICMP4_HLEN > end) return DecodeError.truncated;
  h.type = buf[off + ICMP4_OFF_TYPE];
  h.code = buf[off + ICMP4_OFF_CODE];
  h.csum = buf.readUInt16BE(off + ICMP4_OFF_CSUM);
  h.rest = buf.readUInt32BE(off + ICMP4_OFF_ID);
  h.id = h.rest >>> 16;
  h.seq = h.rest & 0xffff;
  h.mtu = h.type === ICMP4_DEST_UNREACH && h.code === ICMP4_UNREACH_FRAG_NEEDED ? h.rest & 0xffff : 0;
  h.quoteOff = isIcmp4Error(h.type) ? off + ICMP4_HLEN : -1;
  if ((flags & (DECODE_NO_VERIFY | DECODE_QUOTED)) === 0 && csumAdd(buf, off, end - off) !== 0xffff) {
    return DecodeError.bad_checksum;
  }
  return off + ICMP4_HLEN;
}

/**
 * Write the ICMPv4 header `h` (type, code, rest) at buf[off] and compute the checksum over the
 * `len`-byte message, whose body must already be in place. Returns off + 8 or no_space.
 */
export function encodeIcmp4(buf: Buffer, off: number, h: Icmp4Header, len: number): number {
  if (off < 0 || len < ICMP4_HLEN || off + len > buf.length) return DecodeError.no_space;
  buf[off + ICMP4_OFF_TYPE] = h.type & 0xff;
  buf[off + ICMP4_OFF_CODE] = h.code & 0xff;
  buf.writeUInt16BE(0, off + ICMP4_OFF_CSUM);
  buf.writeUInt32BE(h.rest >>> 0, off + ICMP4_OFF_ID);
  h.csum = internetChecksum(buf, off, len);
  buf.writeUInt16BE(h.csum, off + ICMP4_OFF_CSUM);
  return off + ICMP4_HLEN;
}

/** The rest-of-header word of an echo message, and of a Fragmentation Needed (RFC 1191). */
export function icmp4EchoRest(id: number, seq: number): number {
  return (((id & 0xffff) << 16) | (seq & 0xffff)) >>> 0;
}
export function icmp4FragNeededRest(mtu: number): number {
  return mtu & 0xffff;
}

const ip = newIpv4Header();
const icmp = newIcmp4Header();

/**
 * Write at out[outOff] a whole IPv4 packet (no options, TOS 0, ID 0, DF clear) from `src` to
 * `dst` carrying an ICMPv4 error of `type`/`code`/`rest` that quotes orig[origOff, origOff+origLen)
 * cut so the packet is at most `maxLen` bytes (RFC 1812 §4.3.2.3: 576). Returns the packet
 * length, truncated (orig range outside `orig`), or no_space (out too small, or maxLen below 28 +
 * the quoted IPv4 header). `out` may be the same buffer as `orig`: the quote is moved first.
 * Whether an error may be sent at all (not about an ICMP error, a broadcast, a non-first
 * fragment: RFC 1812 §4.3.2.7) is the caller's decision.
 */
export function buildIcmp4Error(
  out: Buffer,
  outOff: number,
  src: number,
  dst: number,
  ttl: number,
  type: number,
  code: number,
  rest: number,
  orig: Buffer,
  origOff: number,
  origLen: number,
  maxLen = ICMP4_ERROR_MAX_LEN,
): number {
  const hdrs = IPV4_MIN_HLEN + ICMP4_HLEN;
  if (maxLen > 0xffff) maxLen = 0xffff;
  if (origOff < 0 || origLen < 0 || origOff > orig.length) return DecodeError.truncated;
  if (origOff + origLen > orig.length) origLen = orig.length - origOff;
  const quote = Math.min(origLen, maxLen - hdrs);
  if (quote < IPV4_MIN_HLEN && quote < origLen) return DecodeError.no_space;
  const total = hdrs + quote;
  if (outOff < 0 || outOff + total > out.length) return DecodeError.no_space;
  orig.copy(out, outOff + hdrs, origOff, origOff + quote);
  icmp.type = type;
  icmp.code = code;
  icmp.rest = rest;
  encodeIcmp4(out, outOff + IPV4_MIN_HLEN, icmp, ICMP4_HLEN + quote);
  setIpv4(ip, src, dst, ttl, total);
  encodeIpv4(out, outOff, ip);
  return total;
}

/** buildIcmp4Error for Destination Unreachable / Fragmentation Needed with a next-hop MTU. */
export function buildIcmp4FragNeeded(
  out: Buffer,
  outOff: number,
  src: number,
  dst: number,
  ttl: number,
  mtu: number,
  orig: Buffer,
  origOff: number,
  origLen: number,
  maxLen = ICMP4_ERROR_MAX_LEN,
): number {
  const rest = icmp4FragNeededRest(mtu);
  const [type, code] = [ICMP4_DEST_UNREACH, ICMP4_UNREACH_FRAG_NEEDED];
  return buildIcmp4Error(out, outOff, src, dst, ttl, type, code, rest, orig, origOff, origLen, maxLen);
}

/**
 * Write at out[outOff] the echo reply to the IPv4 echo request at req[reqOff, reqEnd): addresses
 * swapped, the given TTL, options dropped, same id/seq/data, checksum updated incrementally.
 * `out` may be `req` itself (in place). Returns the reply length, or a decode error of the
 * request (with checksums verified), fragment (not a whole packet), bad_icmp_type, no_space.
 */
export function buildIcmp4EchoReply(
  out: Buffer,
  outOff: number,
  req: Buffer,
  reqOff: number,
  reqEnd: number,
  ttl: number,
): number {
  const p = decodeIpv4(req, reqOff, ip, reqEnd);
  if (p < 0) return p;
  if (ip.mf || ip.fragOff !== 0) return DecodeError.fragment;
  if (ip.proto !== PROTO_ICMP) return DecodeError.bad_icmp_type;
  const end = reqOff + ip.totalLen;
  const r = decodeIcmp4(req, p, icmp, end);
  if (r < 0) return r;
  if (icmp.type !== ICMP4_ECHO_REQUEST) return DecodeError.bad_icmp_type;
  const icmpLen = end - p;
  const total = IPV4_MIN_HLEN + icmpLen;
  if (outOff < 0 || outOff + total > out.length) return DecodeError.no_space;
  const src = ip.src;
  req.copy(out, outOff + IPV4_MIN_HLEN, p, end);
  const q = outOff + IPV4_MIN_HLEN;
  out[q + ICMP4_OFF_TYPE] = ICMP4_ECHO_REPLY;
  csumFix16(out, q + ICMP4_OFF_CSUM, (ICMP4_ECHO_REQUEST << 8) | icmp.code, (ICMP4_ECHO_REPLY << 8) | icmp.code);
  const id = ip.id;
  setIpv4(ip, ip.dst, src, ttl, total);
  ip.id = id;
  encodeIpv4(out, outOff, ip);
  return total;
}

function setIpv4(h: Ipv4Header, src: number, dst: number, ttl: number, total: number): void {
  h.hlen = IPV4_MIN_HLEN;
  h.tos = 0;
  h.totalLen = total;
  h.id = 0;
  h.df = false;
  h.mf = false;
  h.fragOff = 0;
  h.ttl = ttl;
  h.proto = PROTO_ICMP;
  h.src = src;
  h.dst = dst;
}
