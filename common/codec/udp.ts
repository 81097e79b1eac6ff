/**
 * UDP header (RFC 768), checksum with the IPv4 or IPv6 pseudo header (RFC 8200 §8.1), and port
 * rewrites with an incremental checksum update (RFC 1624).
 *
 *   |          Source Port          |       Destination Port        |
 *   |            Length             |           Checksum            |
 *
 * A checksum field of 0 means "none" (allowed over IPv4 only); a computed 0 is sent as 0xffff.
 */
import {
  PROTO_UDP,
  UDP_HLEN,
  UDP_OFF_CSUM,
  UDP_OFF_DST_PORT,
  UDP_OFF_LEN,
  UDP_OFF_SRC_PORT,
} from './constants.js';
import { csumAdd, csumFinish, pseudoSum4, pseudoSum6, rewrite16, udpCsumValue } from './checksum.js';
import { DECODE_QUOTED, DecodeError } from './result.js';

export interface UdpHeader {
  srcPort: number;
  dstPort: number;
  /** Header plus data, in bytes. */
  length: number;
  csum: number;
}

export function newUdpHeader(): UdpHeader {
  return { srcPort: 0, dstPort: 0, length: UDP_HLEN, csum: 0 };
}

/**
 * Decode the UDP header at buf[off]; `end` is the end of the IP payload. Returns off + 8, or
 * truncated (fewer than 8 bytes) or bad_udp_length (length < 8, or past `end` unless
 * DECODE_QUOTED). The checksum is not verified here: see udpVerify4/udpVerify6.
 */
export function decodeUdp(buf: Buffer, off: number, h: UdpHeader, end = buf.length, flags = 0): number {
  if (end > buf.length) end = buf.length;
  if (off < 0 || off + UDP_HLEN > end) return DecodeError.truncated;
  h.srcPort = buf.readUInt16BE(off + UDP_OFF_SRC_PORT);
  h.dstPort = buf.readUInt16BE(off + UDP_OFF_DST_PORT);
  h.length = buf.readUInt16BE(off + UDP_OFF_LEN);
  if (h.length < UDP_HLEN) return DecodeError.bad_udp_length;
  if ((flags & DECODE_QUOTED) === 0 && off + h.length > end) return DecodeError.bad_udp_length;
  h.csum = buf.readUInt16BE(off + UDP_OFF_CSUM);
  return off + UDP_HLEN;
}

/** Write the UDP header `h` at buf[off], checksum field as given (fill it with udpSetChecksum*). */
export function encodeUdp(buf: Buffer, off: number, h: UdpHeader): number {
  if (off < 0 || off + UDP_HLEN > buf.length) return DecodeError.no_space;
  buf.writeUInt16BE(h.srcPort & 0xffff, off + UDP_OFF_SRC_PORT);
  buf.writeUInt16BE(h.dstPort & 0xffff, off + UDP_OFF_DST_PORT);
  buf.writeUInt16BE(h.length & 0xffff, off + UDP_OFF_LEN);
  buf.writeUInt16BE(h.csum & 0xffff, off + UDP_OFF_CSUM);
  return off + UDP_HLEN;
}

function setChecksum(buf: Buffer, off: number, len: number, pseudo: number): number {
  buf.writeUInt16BE(0, off + UDP_OFF_CSUM);
  const csum = udpCsumValue(csumFinish(csumAdd(buf, off, len, pseudo)));
  buf.writeUInt16BE(csum, off + UDP_OFF_CSUM);
  return csum;
}

/** Compute and store the checksum of the `len`-byte datagram at buf[off] over IPv4. */
export function udpSetChecksum4(buf: Buffer, off: number, len: number, src: number, dst: number): number {
  return setChecksum(buf, off, len, pseudoSum4(src, dst, PROTO_UDP, len));
}

/** As udpSetChecksum4 over IPv6: the addresses are read from addr[srcOff] and addr[dstOff]. */
export function udpSetChecksum6(
  buf: Buffer,
  off: number,
  len: number,
  addr: Buffer,
  srcOff: number,
  dstOff: number,
): number {
  return setChecksum(buf, off, len, pseudoSum6(addr, srcOff, dstOff, PROTO_UDP, len));
}

/** True when the datagram's checksum verifies, or is 0 (none) as IPv4 allows. */
export function udpVerify4(buf: Buffer, off: number, len: number, src: number, dst: number): boolean {
  if (off < 0 || off + UDP_HLEN > buf.length) return false;
  if (buf.readUInt16BE(off + UDP_OFF_CSUM) === 0) return true;
  return csumAdd(buf, off, len, pseudoSum4(src, dst, PROTO_UDP, len)) === 0xffff;
}

/** True when the datagram's checksum verifies over IPv6; 0 (none) is invalid there (RFC 8200). */
export function udpVerify6(
  buf: Buffer,
  off: number,
  len: number,
  addr: Buffer,
  srcOff: number,
  dstOff: number,
): boolean {
  if (off < 0 || off + UDP_HLEN > buf.length) return false;
  if (buf.readUInt16BE(off + UDP_OFF_CSUM) === 0) return false;
  return csumAdd(buf, off, len, pseudoSum6(addr, srcOff, dstOff, PROTO_UDP, len)) === 0xffff;
}

/** Rewrite the source port of the UDP header at buf[off], fixing the checksum; returns the old port. */
export function udpRewriteSrcPort(buf: Buffer, off: number, port: number): number {
  return rewrite16(buf, off + UDP_OFF_SRC_PORT, port, off + UDP_OFF_CSUM, true);
}

/** Rewrite the destination port, fixing the checksum; returns the old port. */
export function udpRewriteDstPort(buf: Buffer, off: number, port: number): number {
  return rewrite16(buf, off + UDP_OFF_DST_PORT, port, off + UDP_OFF_CSUM, true);
}
