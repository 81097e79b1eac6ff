/**
 * TCP header (RFC 9293 §3.1), checksum with the IPv4/IPv6 pseudo header, MSS option read and
 * clamp (what the SMAP and PRR do to SYNs so segments fit the tunnel), port rewrites.
 *
 *   |          Source Port          |       Destination Port        |
 *   |                        Sequence Number                        |
 *   |                    Acknowledgment Number                      |
 *   |  Data |       |C|E|U|A|P|R|S|F|                               |
 *   | Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
 *   |           Checksum            |         Urgent Pointer        |
 *   |                    Options (data offset > 5)                  |
 */
import {
  PROTO_TCP,
  TCP_FLAG_SYN,
  TCP_MAX_HLEN,
  TCP_MIN_HLEN,
  TCP_OFF_ACK,
  TCP_OFF_CSUM,
  TCP_OFF_DATA_OFF,
  TCP_OFF_DST_PORT,
  TCP_OFF_FLAGS,
  TCP_OFF_SEQ,
  TCP_OFF_SRC_PORT,
  TCP_OFF_URG,
  TCP_OFF_WINDOW,
  TCP_OPT_EOL,
  TCP_OPT_MSS,
  TCP_OPT_MSS_LEN,
  TCP_OPT_NOP,
} from './constants.js';
import { csumAdd, csumFinish, csumFix16, pseudoSum4, pseudoSum6, rewrite16, swap16 } from './checksum.js';
import { DECODE_QUOTED, DecodeError } from './result.js';

export interface TcpHeader {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  /** Header length in bytes (data offset * 4), options included. */
  dataOff: number;
  /** The eight flag bits, CWR..FIN (TCP_FLAG_*). */
  flags: number;
  window: number;
  csum: number;
  urg: number;
  /** dataOff - 20. Informational: encode uses dataOff. */
  optLen: number;
}

export function newTcpHeader(): TcpHeader {
  return {
    srcPort: 0,
    dstPort: 0,
    seq: 0,
    ack: 0,
    dataOff: TCP_MIN_HLEN,
    flags: 0,
    window: 0,
    csum: 0,
    urg: 0,
    optLen: 0,
  };
}

/**
 * Decode the TCP header at buf[off]; `end` is the end of the segment (the IP payload). Returns
 * the offset of the data (off + dataOff), or truncated (fewer than 20 bytes) or bad_data_offset
 * (below 5 words, or options past `end` unless DECODE_QUOTED). The checksum is not verified
 * here: see tcpVerify4/tcpVerify6.
 */
export function decodeTcp(buf: Buffer, off: number, h: TcpHeader, end = buf.length, flags = 0): number {
  if (end > buf.length) end = buf.length;
  if (off < 0 || off + TCP_MIN_HLEN > end) return DecodeError.truncated;
  h.srcPort = buf.readUInt16BE(off + TCP_OFF_SRC_PORT);
  h.dstPort = buf.readUInt16BE(off + TCP_OFF_DST_PORT);
  h.seq = buf.readUInt32BE(off + TCP_OFF_SEQ);
  h.ack = buf.readUInt32BE(off + TCP_OFF_ACK);
  h.dataOff = (buf[off + TCP_OFF_DATA_OFF] >>> 4) << 2;
  if (h.dataOff < TCP_MIN_HLEN) return DecodeError.bad_data_offset;
  if ((flags & DECODE_QUOTED) === 0 && off + h.dataOff > end) return DecodeError.bad_data_offset;
  h.flags = buf[off + TCP_OFF_FLAGS];
  h.window = buf.readUInt16BE(off + TCP_OFF_WINDOW);
  h.csum = buf.readUInt16BE(off + TCP_OFF_CSUM);
  h.urg = buf.readUInt16BE(off + TCP_OFF_URG);
  h.optLen = h.dataOff - TCP_MIN_HLEN;
  return off + h.dataOff;
}

/**
 * Write the 20-byte fixed header `h` at buf[off], checksum as given (fill it with
 * tcpSetChecksum*); options, when dataOff > 20, must already be in place. Returns off + dataOff,
 * or bad_data_offset / no_space.
 */
export function encodeTcp(buf: Buffer, off: number, h: TcpHeader): number {
  const dataOff = h.dataOff;
  if (dataOff < TCP_MIN_HLEN || dataOff > TCP_MAX_HLEN || (dataOff & 3) !== 0) return DecodeError.bad_data_offset;
  if (off < 0 || off + dataOff > buf.length) return DecodeError.no_space;
  buf.writeUInt16BE(h.srcPort & 0xffff, off + TCP_OFF_SRC_PORT);
  buf.writeUInt16BE(h.dstPort & 0xffff, off + TCP_OFF_DST_PORT);
  buf.writeUInt32BE(h.seq >>> 0, off + TCP_OFF_SEQ);
  buf.writeUInt32BE(h.ack >>> 0, off + TCP_OFF_ACK);
  buf[off + TCP_OFF_DATA_OFF] = (dataOff >>> 2) << 4;
  buf[off + TCP_OFF_FLAGS] = h.flags & 0xff;
  buf.writeUInt16BE(h.window & 0xffff, off + TCP_OFF_WINDOW);
  buf.writeUInt16BE(h.csum & 0xffff, off + TCP_OFF_CSUM);
  buf.writeUInt16BE(h.urg & 0xffff, off + TCP_OFF_URG);
  return off + dataOff;
}

function setChecksum(buf: Buffer, off: number, len: number, pseudo: number): number {
  buf.writeUInt16BE(0, off + TCP_OFF_CSUM);
  const csum = csumFinish(csumAdd(buf, off, len, pseudo));
  buf.writeUInt16BE(csum, off + TCP_OFF_CSUM);
  return csum;
}

/** Compute and store the checksum of the `len`-byte segment at buf[off] over IPv4. */
export function tcpSetChecksum4(buf: Buffer, off: number, len: number, src: number, dst: number): number {
  return setChecksum(buf, off, len, pseudoSum4(src, dst, PROTO_TCP, len));
}

/** As tcpSetChecksum4 over IPv6: the addresses are read from addr[srcOff] and addr[dstOff]. */
export function tcpSetChecksum6(
  buf: Buffer,
  off: number,
  len: number,
  addr: Buffer,
  srcOff: number,
  dstOff: number,
): number {
  return setChecksum(buf, off, len, pseudoSum6(addr, srcOff, dstOff, PROTO_TCP, len));
}

export function tcpVerify4(buf: Buffer, off: number, len: number, src: number, dst: number): boolean {
  if (off < 0 || off + TCP_MIN_HLEN > buf.length) return false;
  return csumAdd(buf, off, len, pseudoSum4(src, dst, PROTO_TCP, len)) === 0xffff;
}

export function tcpVerify6(
  buf: Buffer,
  off: number,
  len: number,
  addr: Buffer,
  srcOff: number,
  dstOff: number,
): boolean {
  if (off < 0 || off + TCP_MIN_HLEN > buf.length) return false;
  return csumAdd(buf, off, len, pseudoSum6(addr, srcOff, dstOff, PROTO_TCP, len)) === 0xffff;
}

/**
 * Find option `kind` in the TCP header at buf[off] (bytes up to `end` valid). Returns its offset,
 * 0 when absent (an option never sits at offset 0: it follows 20 header bytes), or truncated /
 * bad_data_offset / bad_option. Stops at End of Option List.
 */
export function tcpFindOption(buf: Buffer, off: number, end: number, kind: number): number {
  if (end > buf.length) end = buf.length;
  if (off < 0 || off + TCP_MIN_HLEN > end) return DecodeError.truncated;
  const optEnd = off + ((buf[off + TCP_OFF_DATA_OFF] >>> 4) << 2);
  if (optEnd < off + TCP_MIN_HLEN || optEnd > end) return DecodeError.bad_data_offset;
  let p = off + TCP_MIN_HLEN;
  while (p < optEnd) {
    const k = buf[p];
    if (k === TCP_OPT_EOL) return 0;
    if (k === TCP_OPT_NOP) {
      p++;
      continue;
    }
    if (p + 1 >= optEnd) return DecodeError.bad_option;
    const len = buf[p + 1];
    if (len < 2 || p + len > optEnd) return DecodeError.bad_option;
    if (k === kind) return p;
    p += len;
  }
  return 0;
}

/**
 * The MSS option's value in the segment at buf[off]: the MSS, 0 when there is none, or a
 * negative error (tcpFindOption's, or bad_option for an MSS option whose length is not 4).
 */
export function tcpMss(buf: Buffer, off: number, end = buf.length): number {
  const p = tcpFindOption(buf, off, end, TCP_OPT_MSS);
  if (p <= 0) return p;
  if (buf[p + 1] !== TCP_OPT_MSS_LEN) return DecodeError.bad_option;
  return buf.readUInt16BE(p + 2);
}

/**
 * Clamp the MSS option of a SYN segment at buf[off] to `limit`, in place: when the option says
 * more, rewrite it and fix the TCP checksum incrementally. Returns true when it changed the
 * segment; false for non-SYN segments, segments without an MSS option or with malformed options,
 * and MSS values already within the limit. Never throws.
 */
export function tcpClampMss(buf: Buffer, off: number, end: number, limit: number): boolean {
  if (end > buf.length) end = buf.length;
  if (off < 0 || off + TCP_MIN_HLEN > end) return false;
  if ((buf[off + TCP_OFF_FLAGS] & TCP_FLAG_SYN) === 0) return false;
  const p = tcpFindOption(buf, off, end, TCP_OPT_MSS);
  if (p <= 0 || buf[p + 1] !== TCP_OPT_MSS_LEN) return false;
  const valOff = p + 2;
  const old = buf.readUInt16BE(valOff);
  limit &= 0xffff;
  if (old <= limit) return false;
  buf.writeUInt16BE(limit, valOff);
  // A value at an odd distance from the header start adds to the sum byte-swapped (RFC 1071 §2(B)).
  if (((valOff - off) & 1) === 0) csumFix16(buf, off + TCP_OFF_CSUM, old, limit);
  else csumFix16(buf, off + TCP_OFF_CSUM, swap16(old), swap16(limit));
  return true;
}

/** Rewrite the source port of the TCP header at buf[off], fixing the checksum; returns the old port. */
export function tcpRewriteSrcPort(buf: Buffer, off: number, port: number): number {
  return rewrite16(buf, off + TCP_OFF_SRC_PORT, port, off + TCP_OFF_CSUM);
}

/** Rewrite the destination port, fixing the checksum; returns the old port. */
export function tcpRewriteDstPort(buf: Buffer, off: number, port: number): number {
  return rewrite16(buf, off + TCP_OFF_DST_PORT, port, off + TCP_OFF_CSUM);
}
