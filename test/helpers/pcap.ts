/**
 * Classic pcap files (not pcapng): read and write, with the offset of the IP packet in each frame.
 *
 * File header (24 bytes): magic, version 2.4, thiszone, sigfigs, snaplen, link type. The magic
 * gives the byte order and the timestamp unit: a1b2c3d4 microseconds, a1b23c4d nanoseconds.
 * Record header (16 bytes): seconds, micro/nanoseconds, captured length, original length.
 *
 * Link types understood for the IP offset: Ethernet (1, with 802.1Q/802.1ad tags), raw IP (101,
 * and 228/229), Linux cooked SLL (113) and SLL2 (276). Used by the codec tests and by the
 * conformance harness that replays Snabb's Ethernet pcaps.
 */
import { readFileSync, writeFileSync } from 'node:fs';

export const LINKTYPE_ETHERNET = 1;
export const LINKTYPE_RAW = 101;
export const LINKTYPE_LINUX_SLL = 113;
export const LINKTYPE_IPV4 = 228;
export const LINKTYPE_IPV6 = 229;
export const LINKTYPE_LINUX_SLL2 = 276;

const MAGIC_USEC = 0xa1b2c3d4;
const MAGIC_NSEC = 0xa1b23c4d;
const FILE_HLEN = 24;
const REC_HLEN = 16;
const ETH_HLEN = 14;
const ETH_OFF_TYPE = 12;
const VLAN_TAG_LEN = 4;
const SLL_HLEN = 16;
const SLL_OFF_PROTO = 14;
const SLL2_HLEN = 20;
const SLL2_OFF_PROTO = 0;
export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_IPV6 = 0x86dd;
const ETHERTYPE_VLAN = [0x8100, 0x88a8, 0x9100];

export interface PcapFrame {
  /** Timestamp: seconds, and micro- or nanoseconds (see Pcap.nanos). */
  tsSec: number;
  tsFrac: number;
  /** Length on the wire (may exceed data.length when the capture was cut by the snap length). */
  origLen: number;
  /** The captured bytes of the frame, link-layer header included. */
  data: Buffer;
  /** Offset of the IP header in data, or -1 when the frame does not carry IPv4 or IPv6. */
  ipOff: number;
  /** 4 or 6, or 0 when ipOff is -1. */
  ipVersion: number;
}

export interface Pcap {
  linkType: number;
  snaplen: number;
  nanos: boolean;
  frames: PcapFrame[];
}

function versionAt(data: Buffer, off: number): number {
  if (off < 0 || off >= data.length) return 0;
  const v = data[off] >>> 4;
  return v === 4 || v === 6 ? v : 0;
}

function byEtherType(data: Buffer, type: number, off: number): [number, number] {
  if (type === ETHERTYPE_IPV4 && versionAt(data, off) === 4) return [off, 4];
  if (type === ETHERTYPE_IPV6 && versionAt(data, off) === 6) return [off, 6];
  return [-1, 0];
}

/** [offset of the IP header, IP version] of a frame of `linkType`, or [-1, 0]. */
export function ipOffset(linkType: number, data: Buffer): [number, number] {
  switch (linkType) {
    case LINKTYPE_ETHERNET: {
      let p = ETH_OFF_TYPE;
      while (p + 2 <= data.length) {
        const type = data.readUInt16BE(p);
        if (ETHERTYPE_VLAN.includes(type)) {
          p += VLAN_TAG_LEN;
          continue;
        }
        return byEtherType(data, type, p + 2);
      }
      return [-1, 0];
    }
    case LINKTYPE_RAW:
    case LINKTYPE_IPV4:
    case LINKTYPE_IPV6: {
      const v = versionAt(data, 0);
      return v === 0 ? [-1, 0] : [0, v];
    }
    case LINKTYPE_LINUX_SLL:
      if (data.length < SLL_HLEN) return [-1, 0];
      return byEtherType(data, data.readUInt16BE(SLL_OFF_PROTO), SLL_HLEN);
    case LINKTYPE_LINUX_SLL2:
      if (data.length < SLL2_HLEN) return [-1, 0];
      return byEtherType(data, data.readUInt16BE(SLL2_OFF_PROTO), SLL2_HLEN);
    default:
      return [-1, 0];
  }
}

/** Parse a whole pcap file. Throws on a file that is not classic pcap or is cut short. */
export function parsePcap(file: Buffer): Pcap {
  if (file.length < FILE_HLEN) throw new Error(`pcap: ${file.length} bytes is too short for a file header`);
  let le: boolean;
  let nanos: boolean;
  const be = file.readUInt32BE(0);
  const lm = file.readUInt32LE(0);
  if (be === MAGIC_USEC || be === MAGIC_NSEC) [le, nanos] = [false, be === MAGIC_NSEC];
  else if (lm === MAGIC_USEC || lm === MAGIC_NSEC) [le, nanos] = [true, lm === MAGIC_NSEC];
  else throw new Error(`pcap: bad magic 0x${be.toString(16)} (pcapng is not supported)`);
  const u32 = (o: number): number => (le ? file.readUInt32LE(o) : file.readUInt32BE(o));
  const snaplen = u32(16);
  const linkType = u32(20) & 0x0fffffff; // the high bits carry FCS information
  const frames: PcapFrame[] = [];
  let p = FILE_HLEN;
  while (p < file.length) {
    if (p + REC_HLEN > file.length) throw new Error(`pcap: record header cut short at byte ${p}`);
    const capLen = u32(p + 8);
    if (p + REC_HLEN + capLen > file.length) throw new Error(`pcap: record cut short at byte ${p}`);
    const data = Buffer.from(file.subarray(p + REC_HLEN, p + REC_HLEN + capLen));
    const [ipOff, ipVersion] = ipOffset(linkType, data);
    frames.push({ tsSec: u32(p), tsFrac: u32(p + 4), origLen: u32(p + 12), data, ipOff, ipVersion });
    p += REC_HLEN + capLen;
  }
  return { linkType, snaplen, nanos, frames };
}

export function readPcap(path: string): Pcap {
  return parsePcap(readFileSync(path));
}

export interface FrameToWrite {
  data: Buffer;
  tsSec?: number;
  tsFrac?: number;
  origLen?: number;
}

/** A little-endian classic pcap file holding `frames` (timestamps default to 0). */
export function writePcap(
  frames: readonly FrameToWrite[],
  linkType: number,
  opts: { snaplen?: number; nanos?: boolean } = {},
): Buffer {
  const snaplen = opts.snaplen ?? 262144;
  const size = FILE_HLEN + frames.reduce((n, f) => n + REC_HLEN + Math.min(f.data.length, snaplen), 0);
  const out = Buffer.alloc(size);
  out.writeUInt32LE(opts.nanos === true ? MAGIC_NSEC : MAGIC_USEC, 0);
  out.writeUInt16LE(2, 4);
  out.writeUInt16LE(4, 6);
  out.writeUInt32LE(snaplen, 16);
  out.writeUInt32LE(linkType, 20);
  let p = FILE_HLEN;
  for (const f of frames) {
    const capLen = Math.min(f.data.length, snaplen);
    out.writeUInt32LE(f.tsSec ?? 0, p);
    out.writeUInt32LE(f.tsFrac ?? 0, p + 4);
    out.writeUInt32LE(capLen, p + 8);
    out.writeUInt32LE(f.origLen ?? f.data.length, p + 12);
    f.data.copy(out, p + REC_HLEN, 0, capLen);
    p += REC_HLEN + capLen;
  }
  return out;
}

export function writePcapFile(path: string, frames: readonly FrameToWrite[], linkType: number): void {
  writeFileSync(path, writePcap(frames, linkType));
}

/** An Ethernet frame around an IP packet (the EtherType from its version nibble). */
export function ethernetFrame(
  ip: Buffer,
  dst: Buffer = Buffer.from('020000000002', 'hex'),
  src: Buffer = Buffer.from('020000000001', 'hex'),
): Buffer {
  const out = Buffer.alloc(ETH_HLEN + ip.length);
  dst.copy(out, 0, 0, 6);
  src.copy(out, 6, 0, 6);
  out.writeUInt16BE(ip.length > 0 && ip[0] >>> 4 === 6 ? ETHERTYPE_IPV6 : ETHERTYPE_IPV4, ETH_OFF_TYPE);
  ip.copy(out, ETH_HLEN);
  return out;
}

/** The IP packet of a frame as its own Buffer (throws when the frame carries none). */
export function ipPacket(frame: PcapFrame): Buffer {
  if (frame.ipOff < 0) throw new Error('pcap: frame carries no IP packet');
  return Buffer.from(frame.data.subarray(frame.ipOff));
}
