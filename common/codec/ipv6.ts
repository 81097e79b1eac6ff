/**
 * IPv6 fixed header and extension-header walk (RFC 8200), address text (RFC 4291, RFC 5952).
 *
 *   +-------+---------------+---------------------------------------+
 *   |Version| Traffic Class |              Flow Label               |
 *   |        Payload Length         |  Next Header  |   Hop Limit   |
 *   |                    Source Address (16 bytes)                  |
 *   |                 Destination Address (16 bytes)                |
 *   +---------------------------------------------------------------+
 *
 * Addresses stay in the buffer: the decoder reports their offsets.
 */
import {
  IPV6_EXT_OFF_LEN,
  IPV6_EXT_OFF_NEXT,
  IPV6_FRAG_FLAG_M,
  IPV6_FRAG_HLEN,
  IPV6_FRAG_OFF_ID,
  IPV6_FRAG_OFF_OFFSET,
  IPV6_FRAG_OFFSET_MASK,
  IPV6_HLEN,
  IPV6_OFF_DST,
  IPV6_OFF_HOP_LIMIT,
  IPV6_OFF_NEXT,
  IPV6_OFF_PAYLOAD_LEN,
  IPV6_OFF_SRC,
  IPV6_OFF_VER_TC_FL,
  IPV6_VERSION,
  PROTO_AH,
  PROTO_DSTOPTS,
  PROTO_FRAGMENT,
  PROTO_HOPOPTS,
  PROTO_ROUTING,
} from './constants.js';
import { ConfigError } from '../errors.js';
import { parseIpv4 } from './ipv4.js';
import { DECODE_QUOTED, DecodeError } from './result.js';

/** The longest extension-header chain walked; longer chains are bad_ext_header. */
export const IPV6_MAX_EXT_HEADERS = 8;
const ADDR_LEN = 16;

/** A decoded IPv6 header; the last fields are filled by walkIpv6Ext. Reuse one per call site. */
export interface Ipv6Header {
  version: number;
  trafficClass: number;
  flowLabel: number;
  payloadLen: number;
  /** The fixed header's next header. */
  nextHeader: number;
  hopLimit: number;
  /** Offsets of the 16-byte addresses in the decoded buffer. */
  srcOff: number;
  dstOff: number;
  /** walkIpv6Ext: upper-layer protocol and the offset of its header. */
  proto: number;
  protoOff: number;
  extCount: number;
  /** walkIpv6Ext: offset of the Fragment header, -1 when there is none. */
  fragHdrOff: number;
  fragId: number;
  /** Fragment offset in bytes. */
  fragOff: number;
  fragMore: boolean;
  /** True for the first fragment (offset 0), and for a packet with no Fragment header. */
  fragFirst: boolean;
}

export function newIpv6Header(): Ipv6Header {
  return {
    version: IPV6_VERSION,
    trafficClass: 0,
    flowLabel: 0,
    payloadLen: 0,
    nextHeader: 0,
    hopLimit: 64,
    srcOff: 0,
    dstOff: 0,
    proto: 0,
    protoOff: 0,
    extCount: 0,
    fragHdrOff: -1,
    fragId: 0,
    fragOff: 0,
    fragMore: false,
    fragFirst: true,
  };
}

/**
 * Decode the fixed header at buf[off] into `h`. Returns off + 40 or truncated / bad_version.
 * The payload must fit before `end` unless DECODE_QUOTED. Jumbograms are not supported.
 */
export function decodeIpv6(buf: Buffer, off: number, h: Ipv6Header, end = buf.length, flags = 0): number {
  if (end > buf.length) end = buf.length;
  if (off < 0 || off + IPV6_HLEN > end) return DecodeError.truncated;
  const w = buf.readUInt32BE(off + IPV6_OFF_VER_TC_FL);
  h.version = w >>> 28;
  if (h.version !== IPV6_VERSION) return DecodeError.bad_version;
  h.trafficClass = (w >>> 20) & 0xff;
  h.flowLabel = w & 0xfffff;
  h.payloadLen = buf.readUInt16BE(off + IPV6_OFF_PAYLOAD_LEN);
  if ((flags & DECODE_QUOTED) === 0 && off + IPV6_HLEN + h.payloadLen > end) return DecodeError.truncated;
  h.nextHeader = buf[off + IPV6_OFF_NEXT];
  h.hopLimit = buf[off + IPV6_OFF_HOP_LIMIT];
  h.srcOff = off + IPV6_OFF_SRC;
  h.dstOff = off + IPV6_OFF_DST;
  return off + IPV6_HLEN;
}

/**
 * Walk the extension headers that start at `off` (what decodeIpv6 returned), beginning with
 * h.nextHeader, up to `end` (default: the end of the payload). Knows Hop-by-Hop (first only),
 * Routing, Destination Options, Fragment (once) and AH; anything else is the upper layer.
 * Sets h.proto/h.protoOff/h.extCount and the fragment fields. Returns h.protoOff, or truncated,
 * bad_ext_header, or fragment (a non-first fragment: h.proto/protoOff name what follows the
 * Fragment header, but the upper-layer header is not in this packet).
 */
export function walkIpv6Ext(buf: Buffer, off: number, h: Ipv6Header, end = off + h.payloadLen): number {
  if (end > buf.length) end = buf.length;
  h.extCount = 0;
  h.fragHdrOff = -1;
  h.fragId = 0;
  h.fragOff = 0;
  h.fragMore = false;
  h.fragFirst = true;
  let nh = h.nextHeader;
  let p = off;
  for (;;) {
    let len: number;
    if (nh === PROTO_HOPOPTS || nh === PROTO_ROUTING || nh === PROTO_DSTOPTS) {
      if (nh === PROTO_HOPOPTS && h.extCount !== 0) return DecodeError.bad_ext_header;
      if (p + 2 > end) return DecodeError.truncated;
      len = (buf[p + IPV6_EXT_OFF_LEN] + 1) << 3;
    } else if (nh === PROTO_FRAGMENT) {
      if (h.fragHdrOff >= 0) return DecodeError.bad_ext_header;
      if (p + IPV6_FRAG_HLEN > end) return DecodeError.truncated;
      const w = buf.readUInt16BE(p + IPV6_FRAG_OFF_OFFSET);
      h.fragHdrOff = p;
      h.fragOff = w & IPV6_FRAG_OFFSET_MASK;
      h.fragMore = (w & IPV6_FRAG_FLAG_M) !== 0;
      h.fragId = buf.readUInt32BE(p + IPV6_FRAG_OFF_ID);
      h.fragFirst = h.fragOff === 0;
      len = IPV6_FRAG_HLEN;
    } else if (nh === PROTO_AH) {
      if (p + 2 > end) return DecodeError.truncated;
      len = (buf[p + IPV6_EXT_OFF_LEN] + 2) << 2; // RFC 4302: in 4-byte units, minus 2
    } else {
      break;
    }
    if (h.extCount >= IPV6_MAX_EXT_HEADERS) return DecodeError.bad_ext_header;
    if (p + len > end) return DecodeError.truncated;
    nh = buf[p + IPV6_EXT_OFF_NEXT];
    p += len;
    h.extCount++;
    if (!h.fragFirst) {
      h.proto = nh;
      h.protoOff = p;
      return DecodeError.fragment;
    }
  }
  h.proto = nh;
  h.protoOff = p;
  return p;
}

/**
 * Write the fixed header `h` at buf[off], the addresses copied from src[srcOff] and dst[dstOff]
 * (they may be in `buf`). Returns off + 40 or no_space.
 */
export function encodeIpv6(
  buf: Buffer,
  off: number,
  h: Ipv6Header,
  src: Buffer,
  srcOff: number,
  dst: Buffer,
  dstOff: number,
): number {
  if (off < 0 || off + IPV6_HLEN > buf.length) return DecodeError.no_space;
  const w = (IPV6_VERSION << 28) | ((h.trafficClass & 0xff) << 20) | (h.flowLabel & 0xfffff);
  buf.writeUInt32BE(w >>> 0, off + IPV6_OFF_VER_TC_FL);
  buf.writeUInt16BE(h.payloadLen & 0xffff, off + IPV6_OFF_PAYLOAD_LEN);
  buf[off + IPV6_OFF_NEXT] = h.nextHeader & 0xff;
  buf[off + IPV6_OFF_HOP_LIMIT] = h.hopLimit & 0xff;
  src.copy(buf, off + IPV6_OFF_SRC, srcOff, srcOff + ADDR_LEN);
  dst.copy(buf, off + IPV6_OFF_DST, dstOff, dstOff + ADDR_LEN);
  return off + IPV6_HLEN;
}

/** True when the 16-byte addresses a[aOff] and b[bOff] are equal (false if either is cut off). */
export function ipv6Equal(a: Buffer, aOff: number, b: Buffer, bOff: number): boolean {
  if (aOff < 0 || bOff < 0 || aOff + ADDR_LEN > a.length || bOff + ADDR_LEN > b.length) return false;
  for (let i = 0; i < ADDR_LEN; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}

/**
 * RFC 5952 text of the address at buf[off]: lower case, leading zeros dropped, the longest run
 * (first on a tie) of two or more zero groups as "::", IPv4-mapped addresses as ::ffff:a.b.c.d.
 * Returns "" when fewer than 16 bytes are there.
 */
export function ipv6ToString(buf: Buffer, off: number): string {
  if (off < 0 || off + ADDR_LEN > buf.length) return '';
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push(buf.readUInt16BE(off + 2 * i));
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return `::ffff:${buf[off + 12]}.${buf[off + 13]}.${buf[off + 14]}.${buf[off + 15]}`;
  }
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (a: number, b: number): string => g.slice(a, b).map((x) => x.toString(16)).join(':');
  if (best < 0) return hex(0, 8);
  return `${hex(0, best)}::${hex(best + bestLen, 8)}`;
}

const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

/** Parse ':'-separated groups into `g`; the last may be dotted IPv4 when `v4Last`. */
function parseGroups(text: string, v4Last: boolean, g: number[]): boolean {
  if (text === '') return true;
  const parts = text.split(':');
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    if (v4Last && i === parts.length - 1 && p.includes('.')) {
      const v4 = parseIpv4(p);
      if (v4 < 0) return false;
      g.push(v4 >>> 16, v4 & 0xffff);
    } else if (HEX_GROUP.test(p)) {
      g.push(parseInt(p, 16));
    } else {
      return false;
    }
  }
  return true;
}

/**
 * Parse IPv6 text (RFC 4291 §2.2: full, "::"-compressed, dotted IPv4 tail; no zone, no prefix)
 * into out[off, off+16). Returns false, leaving `out` untouched, on bad text or too little room.
 */
export function parseIpv6Into(s: string, out: Buffer, off: number): boolean {
  if (off < 0 || off + ADDR_LEN > out.length) return false;
  const dbl = s.indexOf('::');
  if (dbl >= 0 && s.indexOf('::', dbl + 1) >= 0) return false;
  const head: number[] = [];
  const tail: number[] = [];
  if (dbl < 0) {
    if (!parseGroups(s, true, head) || head.length !== 8) return false;
  } else {
    if (!parseGroups(s.slice(0, dbl), false, head)) return false;
    if (!parseGroups(s.slice(dbl + 2), true, tail)) return false;
    if (head.length + tail.length > 7) return false;
  }
  out.fill(0, off, off + ADDR_LEN);
  for (let i = 0; i < head.length; i++) out.writeUInt16BE(head[i], off + 2 * i);
  for (let i = 0; i < tail.length; i++) out.writeUInt16BE(tail[i], off + 2 * (8 - tail.length + i));
  return true;
}

export function isValidIpv6(s: string): boolean {
  return parseIpv6Into(s, Buffer.alloc(ADDR_LEN), 0);
}

/** Parse IPv6 text for configuration into a new 16-byte Buffer; throws a ConfigError. */
export function parseIpv6OrThrow(s: string): Buffer {
  const out = Buffer.alloc(ADDR_LEN);
  if (!parseIpv6Into(s, out, 0)) throw new ConfigError(`not an IPv6 address: "${s}"`);
  return out;
}
