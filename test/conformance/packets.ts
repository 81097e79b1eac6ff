/**
 * Packet helpers for the conformance harness, written independently of common/codec so that the
 * harness does not check the core with the code under test: RFC 1071 checksums, IP packets out
 * of Ethernet frames, reassembly of IPv4 and IPv6 fragments (what the kernel does in this design),
 * a field-by-field description of IPv4 packets for readable differences, and small edits of
 * expected packets (for the cases where the PRR deliberately differs).
 */
import { formatIpv6 } from '../../common/native/addr6.js';
import type { PcapFrame } from '../helpers/pcap.js';

export const PROTO_ICMP = 1;
export const PROTO_IPIP = 4;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const PROTO_FRAG6 = 44;
export const PROTO_ICMP6 = 58;

// ---- checksums ---------------------------------------------------------------------------------

/** RFC 1071 one's-complement sum of buf[off, off+len), folded, not inverted. */
function sum16(buf: Buffer, off: number, len: number): number {
  let s = 0;
  for (let i = 0; i + 1 < len; i += 2) s += buf.readUInt16BE(off + i);
  if (len % 2 === 1) s += buf[off + len - 1]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

export function ihl(p: Buffer): number {
  return (p[0]! & 0x0f) * 4;
}

/** Recompute the IPv4 header checksum in place. */
export function fixIpv4Checksum(p: Buffer): void {
  p.writeUInt16BE(0, 10);
  p.writeUInt16BE(~sum16(p, 0, ihl(p)) & 0xffff, 10);
}

/** Recompute the ICMPv4 checksum of an IPv4/ICMP packet in place. */
export function fixIcmp4Checksum(p: Buffer): void {
  const h = ihl(p);
  const len = p.readUInt16BE(2) - h;
  p.writeUInt16BE(0, h + 2);
  p.writeUInt16BE(~sum16(p, h, len) & 0xffff, h + 2);
}

export function ipv4ChecksumOk(p: Buffer): boolean {
  return sum16(p, 0, ihl(p)) === 0xffff;
}

// ---- frames ------------------------------------------------------------------------------------

/** The IP packet of a frame, cut to the length its header gives (Ethernet padding dropped). */
export function ipOf(frame: PcapFrame): Buffer | undefined {
  if (frame.ipOff < 0) return undefined;
  const p = frame.data.subarray(frame.ipOff);
  const len = frame.ipVersion === 4 ? p.readUInt16BE(2) : 40 + p.readUInt16BE(4);
  return Buffer.from(p.subarray(0, Math.min(len, p.length)));
}

export const ip4Text = (p: Buffer, off: number): string => `${p[off]}.${p[off + 1]}.${p[off + 2]}.${p[off + 3]}`;
export const ip6Text = (p: Buffer, off: number): string => formatIpv6(p, off);

export const isFragment4 = (p: Buffer): boolean => (p.readUInt16BE(6) & 0x3fff) !== 0;
export const isFragment6 = (p: Buffer): boolean => p[6] === PROTO_FRAG6;

// ---- reassembly --------------------------------------------------------------------------------

interface Held {
  first: Buffer | undefined;
  parts: Array<{ off: number; data: Buffer }>;
  end: number; // -1 until the last fragment is in
  count: number;
}

function complete(h: Held): Buffer | undefined {
  if (h.end < 0 || h.first === undefined) return undefined;
  const parts = [...h.parts].sort((a, b) => a.off - b.off);
  let at = 0;
  for (const x of parts) {
    if (x.off > at) return undefined;
    at = Math.max(at, x.off + x.data.length);
  }
  if (at !== h.end) return undefined;
  const data = Buffer.alloc(h.end);
  for (const x of parts) x.data.copy(data, x.off);
  return data;
}

export interface Reassembled {
  pkt: Buffer;
  /** How many fragments it was made of (1: it was not fragmented). */
  fragments: number;
}

/**
 * IPv4 packets with their fragments put back together, each whole datagram at the place of the
 * fragment that completed it. The header is the first fragment's, with MF and the offset cleared.
 */
export function reassemble4(pkts: Buffer[]): Reassembled[] {
  const out: Reassembled[] = [];
  const held = new Map<string, Held>();
  for (const p of pkts) {
    if (!isFragment4(p)) {
      out.push({ pkt: p, fragments: 1 });
      continue;
    }
    const key = `${ip4Text(p, 12)}>${ip4Text(p, 16)}/${p[9]}/${p.readUInt16BE(4)}`;
    const h = held.get(key) ?? { first: undefined, parts: [], end: -1, count: 0 };
    held.set(key, h);
    const frag = p.readUInt16BE(6);
    const off = (frag & 0x1fff) * 8;
    const data = p.subarray(ihl(p), p.readUInt16BE(2));
    h.parts.push({ off, data });
    h.count++;
    if (off === 0) h.first = p;
    if ((frag & 0x2000) === 0) h.end = off + data.length;
    const body = complete(h);
    if (body === undefined) continue;
    const hl = ihl(h.first!);
    const whole = Buffer.concat([h.first!.subarray(0, hl), body]);
    whole.writeUInt16BE(whole.length, 2);
    whole.writeUInt16BE(h.first!.readUInt16BE(6) & 0x4000, 6);
    fixIpv4Checksum(whole);
    out.push({ pkt: whole, fragments: h.count });
    held.delete(key);
  }
  return out;
}

/**
 * IPv6 packets with their fragments (a Fragment header right after the fixed header, as in these
 * captures) put back together, as the kernel hands them to a raw socket.
 */
export function reassemble6(pkts: Buffer[]): Reassembled[] {
  const out: Reassembled[] = [];
  const held = new Map<string, Held & { nh: number }>();
  for (const p of pkts) {
    if (!isFragment6(p)) {
      out.push({ pkt: p, fragments: 1 });
      continue;
    }
    const key = `${ip6Text(p, 8)}>${ip6Text(p, 24)}/${p.readUInt32BE(44)}`;
    const h = held.get(key) ?? { first: undefined, parts: [], end: -1, count: 0, nh: 0 };
    held.set(key, h);
    const fo = p.readUInt16BE(42);
    const off = fo & 0xfff8;
    const data = p.subarray(48, 40 + p.readUInt16BE(4));
    h.parts.push({ off, data });
    h.count++;
    if (off === 0) {
      h.first = p;
      h.nh = p[40]!;
    }
    if ((fo & 1) === 0) h.end = off + data.length;
    const body = complete(h);
    if (body === undefined) continue;
    const whole = Buffer.concat([h.first!.subarray(0, 40), body]);
    whole.writeUInt16BE(body.length, 4);
    whole[6] = h.nh;
    out.push({ pkt: whole, fragments: h.count });
    held.delete(key);
  }
  return out;
}

// ---- field-by-field description ----------------------------------------------------------------

/** An IPv4 packet as named fields, for differences that say what differs. */
export function fields4(p: Buffer, prefix = '', quoted = false): Array<[string, string]> {
  const f: Array<[string, string]> = [];
  if (p.length < 20) return [[`${prefix}bytes`, p.toString('hex')]];
  const h = ihl(p);
  const frag = p.readUInt16BE(6);
  f.push(
    [`${prefix}version/ihl`, `0x${p[0]!.toString(16)}`],
    [`${prefix}tos`, `0x${p[1]!.toString(16)}`],
    [`${prefix}total length`, String(p.readUInt16BE(2))],
    [`${prefix}id`, String(p.readUInt16BE(4))],
    [`${prefix}flags`, `${frag & 0x4000 ? 'DF' : ''}${frag & 0x2000 ? 'MF' : ''}` || '-'],
    [`${prefix}fragment offset`, String((frag & 0x1fff) * 8)],
    [`${prefix}ttl`, String(p[8])],
    [`${prefix}protocol`, String(p[9])],
    [`${prefix}header checksum`, `0x${p.readUInt16BE(10).toString(16)}`],
    [`${prefix}source`, ip4Text(p, 12)],
    [`${prefix}destination`, ip4Text(p, 16)],
  );
  if (h > 20) f.push([`${prefix}options`, p.subarray(20, h).toString('hex')]);
  const l4 = p.subarray(h);
  if (p[9] === PROTO_ICMP && l4.length >= 8 && !quoted) {
    f.push(
      [`${prefix}icmp type/code`, `${l4[0]}/${l4[1]}`],
      [`${prefix}icmp checksum`, `0x${l4.readUInt16BE(2).toString(16)}`],
      [`${prefix}icmp rest (id/seq, MTU)`, `0x${l4.readUInt32BE(4).toString(16)}`],
    );
    const t = l4[0]!;
    if (t === 3 || t === 11 || t === 12) f.push(...fields4(Buffer.from(l4.subarray(8)), `${prefix}quoted `, true));
    else f.push([`${prefix}icmp data`, l4.subarray(8).toString('hex')]);
  } else if ((p[9] === PROTO_TCP || p[9] === PROTO_UDP) && l4.length >= 4) {
    f.push([`${prefix}ports`, `${l4.readUInt16BE(0)} > ${l4.readUInt16BE(2)}`], [`${prefix}l4 rest`, l4.subarray(4).toString('hex')]);
  } else {
    f.push([`${prefix}payload`, l4.toString('hex')]);
  }
  return f;
}

const short = (s: string): string => (s.length > 48 ? `${s.slice(0, 48)}... (${s.length / 2} bytes)` : s);

/** The fields that differ between two IPv4 packets, as `name: expected X, got Y`. */
export function diff4(expected: Buffer, got: Buffer): string[] {
  const a = new Map(fields4(expected));
  const b = new Map(fields4(got));
  const out: string[] = [];
  for (const k of new Set([...a.keys(), ...b.keys()])) {
    const x = a.get(k);
    const y = b.get(k);
    if (x !== y) out.push(`${k}: expected ${short(x ?? '(none)')}, got ${short(y ?? '(none)')}`);
  }
  if (out.length === 0 && !expected.equals(got)) out.push(`bytes differ: expected ${short(expected.toString('hex'))}, got ${short(got.toString('hex'))}`);
  return out;
}

// ---- edits of expected packets (deliberate differences) ------------------------------------------

/** A copy with the TTL set (header checksum fixed). */
export function withTtl(p: Buffer, ttl: number): Buffer {
  const q = Buffer.from(p);
  q[8] = ttl;
  fixIpv4Checksum(q);
  return q;
}

/** A copy with the IPv4 id set (header checksum fixed). */
export function withId(p: Buffer, id: number): Buffer {
  const q = Buffer.from(p);
  q.writeUInt16BE(id, 4);
  fixIpv4Checksum(q);
  return q;
}

/** An ICMPv4 error with its quote replaced by the start of `original` (the packet as it arrived). */
export function withQuote(icmp: Buffer, original: Buffer): Buffer {
  const q = Buffer.from(icmp);
  const at = ihl(q) + 8;
  original.copy(q, at, 0, Math.min(original.length, q.length - at));
  fixIcmp4Checksum(q);
  return q;
}

/** An ICMPv4 Fragmentation Needed with the next-hop MTU set. */
export function withNextHopMtu(icmp: Buffer, mtu: number): Buffer {
  const q = Buffer.from(icmp);
  q.writeUInt16BE(mtu, ihl(q) + 6);
  fixIcmp4Checksum(q);
  return q;
}
