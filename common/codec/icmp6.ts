/**
 * ICMPv6 (RFC 4443): echo, errors that quote the offending packet, Packet Too Big (32-bit MTU),
 * Parameter Problem (32-bit pointer), and builders for a whole IPv6 packet carrying an error or
 * an echo reply. The checksum covers the IPv6 pseudo header (RFC 8200 §8.1).
 *
 *   |     Type      |     Code      |          Checksum             |
 *   |  echo: Identifier | Sequence      PTB: MTU     param: Pointer   |
 *   |     data / quoted packet (as much as fits in 1280 bytes) ...
 */
import {
  ICMP6_DEST_UNREACH,
  ICMP6_ECHO_REPLY,
  ICMP6_ECHO_REQUEST,
  ICMP6_ERROR_MAX_LEN,
  ICMP6_HLEN,
  ICMP6_INFO_MIN,
  ICMP6_OFF_CODE,
  ICMP6_OFF_CSUM,
  ICMP6_OFF_MTU,
  ICMP6_OFF_TYPE,
  ICMP6_PACKET_TOO_BIG,
  ICMP6_PARAM_PROBLEM,
  IPV6_HLEN,
  IPV6_OFF_DST,
  IPV6_OFF_SRC,
  PROTO_ICMPV6,
} from './constants.js';
import { csumAdd, csumFinish, csumFix16, pseudoSum6 } from './checksum.js';
import { decodeIpv6, encodeIpv6, newIpv6Header, walkIpv6Ext } from './ipv6.js';
import { DECODE_NO_VERIFY, DECODE_QUOTED, DecodeError } from './result.js';

/** A decoded ICMPv6 header. `rest` is authoritative for encode; the others are views of it. */
export interface Icmp6Header {
  type: number;
  code: number;
  csum: number;
  /** The 32-bit word after the checksum. */
  rest: number;
  /** Echo identifier and sequence (high and low half of rest). */
  id: number;
  seq: number;
  /** Packet Too Big: the MTU (all of rest), else 0. */
  mtu: number;
  /** Parameter Problem: the pointer (all of rest), else 0. */
  pointer: number;
  /** Offset of the quoted IPv6 header in an error message, else -1. */
  quoteOff: number;
}

export function newIcmp6Header(): Icmp6Header {
  return { type: 0, code: 0, csum: 0, rest: 0, id: 0, seq: 0, mtu: 0, pointer: 0, quoteOff: -1 };
}

/** True for error messages (types 0..127), which quote an offending packet. */
export function isIcmp6Error(type: number): boolean {
  return type < ICMP6_INFO_MIN;
}

/** ICMPv6 checksum of the `len`-byte message at buf[off] (its checksum field must read 0). */
export function icmp6Checksum(
  buf: Buffer,
  off: number,
  len: number,
  addr: Buffer,
  srcOff: number,
  dstOff: number,
): number {
  return csumFinish(csumAdd(buf, off, len, pseudoSum6(addr, srcOff, dstOff, PROTO_ICMPV6, len)));
}

/**
 * Decode the ICMPv6 message at buf[off, end) (`end`: the end of the IPv6 payload); the pseudo
 * header's addresses are at addr[srcOff] and addr[dstOff] (usually the same packet, at
 * Ipv6Header.srcOff/dstOff). Returns off + 8, or truncated / bad_checksum (not verified with
 * DECODE_NO_VERIFY or DECODE_QUOTED). For errors h.quoteOff is the offset of the quoted IPv6
 * header (decode it with DECODE_QUOTED).
 */
export function decodeIcmp6(
  buf: Buffer,
  off: number,
  h: Icmp6Header,
  end: number,
  addr: Buffer,
  srcOff: number,
  dstOff: number,
  flags = 0,
): number {
  if (end > buf.length) end = buf.length;
  if (off < 0 || off + ICMP6_HLEN > end) return DecodeError.truncated;
  h.type = buf[off + ICMP6_OFF_TYPE];
  h.code = buf[off + ICMP6_OFF_CODE];
  h.csum = buf.readUInt16BE(off + ICMP6_OFF_CSUM);
  h.rest = buf.readUInt32BE(off + ICMP6_OFF_MTU);
  h.id = h.rest >>> 16;
  h.seq = h.rest & 0xffff;
  h.mtu = h.type === ICMP6_PACKET_TOO_BIG ? h.rest : 0;
  h.pointer = h.type === ICMP6_PARAM_PROBLEM ? h.rest : 0;
  h.quoteOff = isIcmp6Error(h.type) ? off + ICMP6_HLEN : -1;
  if ((flags & (DECODE_NO_VERIFY | DECODE_QUOTED)) === 0) {
    const len = end - off;
    if (csumAdd(buf, off, len, pseudoSum6(addr, srcOff, dstOff, PROTO_ICMPV6, len)) !== 0xffff) {
      return DecodeError.bad_checksum;
    }
  }
  return off + ICMP6_HLEN;
}

/**
 * Write the ICMPv6 header `h` (type, code, rest) at buf[off] and compute the checksum over the
 * `len`-byte message (body already in place) with addresses from addr[srcOff], addr[dstOff].
 * Returns off + 8 or no_space.
 */
export function encodeIcmp6(
  buf: Buffer,
  off: number,
  h: Icmp6Header,
  len: number,
  addr: Buffer,
  srcOff: number,
  dstOff: number,
): number {
  if (off < 0 || len < ICMP6_HLEN || off + len > buf.length) return DecodeError.no_space;
  buf[off + ICMP6_OFF_TYPE] = h.type & 0xff;
  buf[off + ICMP6_OFF_CODE] = h.code & 0xff;
  buf.writeUInt16BE(0, off + ICMP6_OFF_CSUM);
  buf.writeUInt32BE(h.rest >>> 0, off + ICMP6_OFF_MTU);
  h.csum = icmp6Checksum(buf, off, len, addr, srcOff, dstOff);
  buf.writeUInt16BE(h.csum, off + ICMP6_OFF_CSUM);
  return off + ICMP6_HLEN;
}

const ip = newIpv6Header();
const icmp = newIcmp6Header();

/**
 * Write at out[outOff] a whole IPv6 packet (no extension headers, traffic class and flow label
 * 0) from src[srcOff] to dst[dstOff] carrying an ICMPv6 error of `type`/`code`/`rest` that quotes
 * orig[origOff, origOff+origLen) cut so the packet is at most `maxLen` bytes (RFC 4443 §2.4(c):
 * 1280). Returns the packet length, truncated (orig range outside `orig`) or no_space. `out` may
 * hold `orig` (the quote is moved first) but the addresses must not lie where the packet goes.
 */
export function buildIcmp6Error(
  out: Buffer,
  outOff: number,
  src: Buffer,
  srcOff: number,
  dst: Buffer,
  dstOff: number,
  hopLimit: number,
  type: number,
  code: number,
  rest: number,
  orig: Buffer,
  origOff: number,
  origLen: number,
  maxLen = ICMP6_ERROR_MAX_LEN,
): number {
  const hdrs = IPV6_HLEN + ICMP6_HLEN;
  if (maxLen > 0xffff + IPV6_HLEN) maxLen = 0xffff + IPV6_HLEN;
  if (origOff < 0 || origLen < 0 || origOff > orig.length) return DecodeError.truncated;
  if (origOff + origLen > orig.length) origLen = orig.length - origOff;
  const quote = Math.min(origLen, maxLen - hdrs);
  if (quote < IPV6_HLEN && quote < origLen) return DecodeError.no_space;
  const total = hdrs + quote;
  if (outOff < 0 || outOff + total > out.length) return DecodeError.no_space;
  orig.copy(out, outOff + hdrs, origOff, origOff + quote);
  ip.trafficClass = 0;
  ip.flowLabel = 0;
  ip.payloadLen = ICMP6_HLEN + quote;
  ip.nextHeader = PROTO_ICMPV6;
  ip.hopLimit = hopLimit;
  encodeIpv6(out, outOff, ip, src, srcOff, dst, dstOff);
  icmp.type = type;
  icmp.code = code;
  icmp.rest = rest;
  encodeIcmp6(out, outOff + IPV6_HLEN, icmp, ICMP6_HLEN + quote, out, outOff + IPV6_OFF_SRC, outOff + IPV6_OFF_DST);
  return total;
}

/** buildIcmp6Error for Packet Too Big with its 32-bit MTU. */
export function buildIcmp6PacketTooBig(
  out: Buffer,
  outOff: number,
  src: Buffer,
  srcOff: number,
  dst: Buffer,
  dstOff: number,
  hopLimit: number,
  mtu: number,
  orig: Buffer,
  origOff: number,
  origLen: number,
  maxLen = ICMP6_ERROR_MAX_LEN,
): number {
  const type = ICMP6_PACKET_TOO_BIG;
  return buildIcmp6Error(out, outOff, src, srcOff, dst, dstOff, hopLimit, type, 0, mtu, orig, origOff, origLen, maxLen);
}

/** buildIcmp6Error for Destination Unreachable with `code` (e.g. 4: port unreachable). */
export function buildIcmp6Unreachable(
  out: Buffer,
  outOff: number,
  src: Buffer,
  srcOff: number,
  dst: Buffer,
  dstOff: number,
  hopLimit: number,
  code: number,
  orig: Buffer,
  origOff: number,
  origLen: number,
  maxLen = ICMP6_ERROR_MAX_LEN,
): number {
  const type = ICMP6_DEST_UNREACH;
  return buildIcmp6Error(out, outOff, src, srcOff, dst, dstOff, hopLimit, type, code, 0, orig, origOff, origLen, maxLen);
}

/**
 * Write at out[outOff] the echo reply to the IPv6 echo request at req[reqOff, reqEnd): addresses
 * swapped, the given hop limit, extension headers dropped, same id/seq/data, checksum updated
 * incrementally (the pseudo-header sum does not change when the addresses swap). `out` may be
 * `req` at the same offset (in place); otherwise the two must not overlap. Returns the reply
 * length or an error: a decode error of the request (checksum verified), bad_icmp_type, no_space.
 */
export function buildIcmp6EchoReply(
  out: Buffer,
  outOff: number,
  req: Buffer,
  reqOff: number,
  reqEnd: number,
  hopLimit: number,
): number {
  let p = decodeIpv6(req, reqOff, ip, reqEnd);
  if (p < 0) return p;
  p = walkIpv6Ext(req, p, ip);
  if (p < 0) return p;
  if (ip.proto !== PROTO_ICMPV6 || ip.fragHdrOff >= 0) return DecodeError.bad_icmp_type;
  const end = reqOff + IPV6_HLEN + ip.payloadLen;
  const r = decodeIcmp6(req, p, icmp, end, req, ip.srcOff, ip.dstOff);
  if (r < 0) return r;
  if (icmp.type !== ICMP6_ECHO_REQUEST) return DecodeError.bad_icmp_type;
  const icmpLen = end - p;
  const total = IPV6_HLEN + icmpLen;
  if (outOff < 0 || outOff + total > out.length) return DecodeError.no_space;
  const q = outOff + IPV6_HLEN;
  req.copy(out, q, p, end);
  out[q + ICMP6_OFF_TYPE] = ICMP6_ECHO_REPLY;
  csumFix16(out, q + ICMP6_OFF_CSUM, (ICMP6_ECHO_REQUEST << 8) | icmp.code, (ICMP6_ECHO_REPLY << 8) | icmp.code);
  ip.payloadLen = icmpLen;
  ip.nextHeader = PROTO_ICMPV6;
  ip.hopLimit = hopLimit;
  if (out === req && outOff === reqOff) {
    for (let i = 0; i < 16; i++) {
      const a = out[outOff + IPV6_OFF_SRC + i];
      out[outOff + IPV6_OFF_SRC + i] = out[outOff + IPV6_OFF_DST + i];
      out[outOff + IPV6_OFF_DST + i] = a;
    }
    encodeIpv6(out, outOff, ip, out, outOff + IPV6_OFF_SRC, out, outOff + IPV6_OFF_DST);
  } else {
    encodeIpv6(out, outOff, ip, req, ip.dstOff, req, ip.srcOff);
  }
  return total;
}
