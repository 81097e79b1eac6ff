/**
 * IPv4 header (RFC 791), TTL decrement (RFC 1812 §5.3.1) and address text.
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |Version|  IHL  |Type of Service|          Total Length         |
 *   |         Identification        |Flags|      Fragment Offset    |
 *   |  Time to Live |    Protocol   |         Header Checksum       |
 *   |                       Source Address                          |
 *   |                    Destination Address                        |
 *   |                    Options                    |    Padding    |
 */
import {
  IPV4_FLAG_DF,
  IPV4_FLAG_MF,
  IPV4_FRAG_OFFSET_MASK,
  IPV4_MAX_HLEN,
  IPV4_MIN_HLEN,
  IPV4_OFF_CSUM,
  IPV4_OFF_DST,
  IPV4_OFF_FRAG,
  IPV4_OFF_ID,
  IPV4_OFF_PROTO,
  IPV4_OFF_SRC,
  IPV4_OFF_TOS,
  IPV4_OFF_TOTAL_LEN,
  IPV4_OFF_TTL,
  IPV4_OFF_VER_IHL,
  IPV4_VERSION,
} from './constants.js';
import { ConfigError } from '../errors.js';
import { csumAdd, csumFix16, internetChecksum } from './checksum.js';
import { DECODE_NO_VERIFY, DECODE_QUOTED, DecodeError } from './result.js';

/** A decoded IPv4 header. Reuse one per call site: decoding writes every field, allocates nothing. */
export interface Ipv4Header {
  version: number;
  /** Header length in bytes (IHL * 4), options included. */
  hlen: number;
  tos: number;
  totalLen: number;
  id: number;
  df: boolean;
  mf: boolean;
  /** Fragment offset in bytes (the field times 8). */
  fragOff: number;
  ttl: number;
  proto: number;
  csum: number;
  /** Addresses as unsigned 32-bit numbers. */
  src: number;
  dst: number;
  /** hlen - 20. Informational: encode uses hlen. */
  optLen: number;
}

export function newIpv4Header(): Ipv4Header {
  return {
    version: IPV4_VERSION,
    hlen: IPV4_MIN_HLEN,
    tos: 0,
    totalLen: IPV4_MIN_HLEN,
    id: 0,
    df: false,
    mf: false,
    fragOff: 0,
    ttl: 64,
    proto: 0,
    csum: 0,
    src: 0,
    dst: 0,
    optLen: 0,
  };
}

/**
 * Decode the IPv4 header at buf[off] (bytes up to `end` are valid) into `h`. Returns the offset
 * of the payload (off + hlen) or a negative DecodeError: truncated, bad_version, bad_ihl,
 * bad_total_length, bad_checksum. The header checksum is verified unless DECODE_NO_VERIFY or
 * DECODE_QUOTED; with DECODE_QUOTED the total length may run past `end`.
 * Fragments decode normally: look at h.mf and h.fragOff.
 */
export function decodeIpv4(buf: Buffer, off: number, h: Ipv4Header, end = buf.length, flags = 0): number {
  if (end > buf.length) end = buf.length;
  if (off < 0 || off + IPV4_MIN_HLEN > end) return DecodeError.truncated;
  const verIhl = buf[off + IPV4_OFF_VER_IHL];
  h.version = verIhl >>> 4;
  if (h.version !== IPV4_VERSION) return DecodeError.bad_version;
  h.hlen = (verIhl & 0x0f) << 2;
  if (h.hlen < IPV4_MIN_HLEN) return DecodeError.bad_ihl;
  if (off + h.hlen > end) return DecodeError.truncated;
  h.tos = buf[off + IPV4_OFF_TOS];
  h.totalLen = buf.readUInt16BE(off + IPV4_OFF_TOTAL_LEN);
  if (h.totalLen < h.hlen) return DecodeError.bad_total_length;
  if ((flags & DECODE_QUOTED) === 0 && off + h.totalLen > end) return DecodeError.truncated;
  h.id = buf.readUInt16BE(off + IPV4_OFF_ID);
  const frag = buf.readUInt16BE(off + IPV4_OFF_FRAG);
  h.df = (frag & IPV4_FLAG_DF) !== 0;
  h.mf = (frag & IPV4_FLAG_MF) !== 0;
  h.fragOff = (frag & IPV4_FRAG_OFFSET_MASK) << 3;
  h.ttl = buf[off + IPV4_OFF_TTL];
  h.proto = buf[off + IPV4_OFF_PROTO];
  h.csum = buf.readUInt16BE(off + IPV4_OFF_CSUM);
  h.src = buf.readUInt32BE(off + IPV4_OFF_SRC);
  h.dst = buf.readUInt32BE(off + IPV4_OFF_DST);
  h.optLen = h.hlen - IPV4_MIN_HLEN;
  if ((flags & (DECODE_NO_VERIFY | DECODE_QUOTED)) === 0 && csumAdd(buf, off, h.hlen) !== 0xffff) {
    return DecodeError.bad_checksum;
  }
  return off + h.hlen;
}

/**
 * Write the IPv4 header `h` at buf[off] and compute its checksum (stored in h.csum too).
 * The first 20 bytes are written from `h`; when h.hlen > 20 the options must already be in
 * buf[off+20, off+hlen). Returns off + hlen, or bad_ihl, bad_total_length, no_space.
 */
export function encodeIpv4(buf: Buffer, off: number, h: Ipv4Header): number {
  const hlen = h.hlen;
  if (hlen < IPV4_MIN_HLEN || hlen > IPV4_MAX_HLEN || (hlen & 3) !== 0) return DecodeError.bad_ihl;
  if (h.totalLen < hlen || h.totalLen > 0xffff) return DecodeError.bad_total_length;
  if (off < 0 || off + hlen > buf.length) return DecodeError.no_space;
  buf[off + IPV4_OFF_VER_IHL] = (IPV4_VERSION << 4) | (hlen >>> 2);
  buf[off + IPV4_OFF_TOS] = h.tos & 0xff;
  buf.writeUInt16BE(h.totalLen, off + IPV4_OFF_TOTAL_LEN);
  buf.writeUInt16BE(h.id & 0xffff, off + IPV4_OFF_ID);
  const frag = (h.df ? IPV4_FLAG_DF : 0) | (h.mf ? IPV4_FLAG_MF : 0) | ((h.fragOff >>> 3) & IPV4_FRAG_OFFSET_MASK);
  buf.writeUInt16BE(frag, off + IPV4_OFF_FRAG);
  buf[off + IPV4_OFF_TTL] = h.ttl & 0xff;
  buf[off + IPV4_OFF_PROTO] = h.proto & 0xff;
  buf.writeUInt16BE(0, off + IPV4_OFF_CSUM);
  buf.writeUInt32BE(h.src >>> 0, off + IPV4_OFF_SRC);
  buf.writeUInt32BE(h.dst >>> 0, off + IPV4_OFF_DST);
  h.csum = internetChecksum(buf, off, hlen);
  buf.writeUInt16BE(h.csum, off + IPV4_OFF_CSUM);
  return off + hlen;
}

/** Recompute and store the header checksum of the (already valid-length) header at buf[off]. */
export function ipv4UpdateChecksum(buf: Buffer, off: number): number {
  const hlen = (buf[off + IPV4_OFF_VER_IHL] & 0x0f) << 2;
  buf.writeUInt16BE(0, off + IPV4_OFF_CSUM);
  const csum = internetChecksum(buf, off, hlen);
  buf.writeUInt16BE(csum, off + IPV4_OFF_CSUM);
  return csum;
}

/**
 * Forwarding TTL decrement (RFC 1812 §5.3.1) with an incremental checksum update (RFC 1624).
 * Returns the new TTL; returns 0 without touching the packet when the TTL is 0 or 1, i.e. the
 * packet must be dropped (and an ICMP Time Exceeded sent).
 */
export function ipv4DecrementTtl(buf: Buffer, off: number): number {
  const ttl = buf[off + IPV4_OFF_TTL];
  if (ttl <= 1) return 0;
  const proto = buf[off + IPV4_OFF_PROTO];
  buf[off + IPV4_OFF_TTL] = ttl - 1;
  // TTL and protocol share the 16-bit word at offset 8.
  csumFix16(buf, off + IPV4_OFF_CSUM, (ttl << 8) | proto, ((ttl - 1) << 8) | proto);
  return ttl - 1;
}

/** Dotted-quad text of an address held as a 32-bit number. */
export function ipv4ToString(n: number): string {
  n >>>= 0;
  return `${n >>> 24}.${(n >>> 16) & 0xff}.${(n >>> 8) & 0xff}.${n & 0xff}`;
}

const CH_0 = 0x30;
const CH_9 = 0x39;
const CH_DOT = 0x2e;

/**
 * Parse strict dotted-quad text ("192.0.2.1": four decimal parts 0..255, no leading zeros, no
 * spaces) into an unsigned 32-bit number, or DecodeError.bad_address. Never throws.
 */
export function parseIpv4(s: string): number {
  let n = 0;
  let parts = 0;
  let part = -1; // -1: no digit yet in this part
  let digits = 0;
  for (let i = 0; i <= s.length; i++) {
    const c = i < s.length ? s.charCodeAt(i) : CH_DOT;
    if (c >= CH_0 && c <= CH_9) {
      if (part === 0) return DecodeError.bad_address; // leading zero
      part = part < 0 ? c - CH_0 : part * 10 + (c - CH_0);
      if (++digits > 3 || part > 255) return DecodeError.bad_address;
    } else if (c === CH_DOT) {
      if (part < 0 || ++parts > 4) return DecodeError.bad_address;
      n = n * 256 + part;
      part = -1;
      digits = 0;
    } else {
      return DecodeError.bad_address;
    }
  }
  return parts === 4 ? n : DecodeError.bad_address;
}

export function isValidIpv4(s: string): boolean {
  return parseIpv4(s) >= 0;
}

/** parseIpv4 for configuration: throws a ConfigError naming the text. */
export function parseIpv4OrThrow(s: string): number {
  const n = parseIpv4(s);
  if (n < 0) throw new ConfigError(`not an IPv4 address: "${s}"`);
  return n;
}
