/**
 * Packets and bindings for `npm run bench -- prr`: the pre-built packets the TUN generator
 * (bench/prr-gen.ts) sends, and the PRR's bench config with N bindings.
 *
 * Bindings: one real CPE (`cpe`, 2001:db8:10::2, 192.0.2.1 ports 10000-11023, as the 2010
 * experiment's customers: the LAN behind the CPE namespace is SNATed into it) and N-1
 * generated ones, RFC 7597 PSID sets a=4/k=11 (2048 customers per address, 30 ports each,
 * PSID-mode lookup) on 192.0.2.2-255 then 203.0.113.0-255: 510 addresses, room for 1,044,480.
 * Only documentation prefixes are used, so a million customers cannot get 1000 ports each.
 */
import { writeFileSync } from 'node:fs';
import { parseIpv4 } from '../common/codec/ipv4.js';
import { ipv4UpdateChecksum } from '../common/codec/ipv4.js';
import { parseIpv6OrThrow } from '../common/codec/ipv6.js';
import { udpSetChecksum4, udpSetChecksum6 } from '../common/codec/udp.js';

export const PAYLOAD = 64; // UDP payload bytes of every generated packet
export const SINK_PORT = 9; // discard: the sinks count and drop it in prerouting
export const BR6 = '2001:db8:ffff::1';
export const CPE6 = '2001:db8:10::2';
export const CPE_V4 = '192.0.2.1';
export const CPE_PORTS = '10000-11023';
export const INET4 = '198.51.100.2';
const PSID_A = 4;
const PSID_K = 11;
const PER_ADDR = 1 << PSID_K;
const ADDRS = 254 + 256;
export const MAX_GENERATED = ADDRS * PER_ADDR;

/** The shared IPv4 address of generated binding i (0-based). */
export function genIpv4(i: number): string {
  const a = Math.floor(i / PER_ADDR);
  return a < 254 ? `192.0.2.${a + 2}` : `203.0.113.${a - 254}`;
}
export function genPsid(i: number): number {
  return i % PER_ADDR;
}
/** A source port of binding i's PSID set (A = 1 + i mod 15, j = 0). */
export function genPort(i: number): number {
  const A = 1 + (i % 15);
  return A * (1 << (16 - PSID_A)) + genPsid(i) * (1 << (16 - PSID_A - PSID_K));
}
export function genIpv6(i: number): string {
  const n = i + 1;
  return `2001:db8:c::${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
}
export function genPorts(i: number): string {
  return `psid:a=${PSID_A}/k=${PSID_K}/id=${genPsid(i)}`;
}

/** prr.ini text with the real CPE and `total - 1` generated bindings. */
export function prrIni(total: number, controlSocket: string, ipv4Output: 'raw' | 'tun' = 'raw'): string {
  if (total - 1 > MAX_GENERATED) throw new Error(`at most ${MAX_GENERATED + 1} bench bindings`);
  const parts = [
    `[prr]
ipv4 = 198.51.100.1
tunnel_ipv6 = ${BR6}
tun = prr0
ipv4_output = ${ipv4Output}
shared_ipv4 = 192.0.2.0/24, 203.0.113.0/24
control_socket = ${controlSocket}
log_level = warn

[subscriber.cpe]
ipv6 = ${CPE6}
shared_ipv4 = ${CPE_V4}
ports = ${CPE_PORTS}
`,
  ];
  for (let i = 0; i < total - 1; i++) {
    parts.push(`[subscriber.s${i}]\nipv6 = ${genIpv6(i)}\nshared_ipv4 = ${genIpv4(i)}\nports = ${genPorts(i)}\n`);
  }
  return parts.join('\n');
}

/**
 * A UDP datagram as a Linux host's unconnected socket sends it: DF set (IP_PMTUDISC_WANT, the
 * default) and IP ID 0 (an atomic datagram, RFC 6864). Not DF with ID 0, which almost no host
 * sends: the PRR's raw IPv4 output would have the kernel pick an ID for each (IP_HDRINCL fills a
 * zero ID of a non-DF packet by hashing source and destination into a table of up to 2 MB), a kernel cost
 * that grows with the number of addresses in the traffic and is no part of the PRR's lookups.
 */
function ipv4Udp(src: string, dst: string, sport: number, dport: number): Buffer {
  const len = 20 + 8 + PAYLOAD;
  const b = Buffer.alloc(len);
  b[0] = 0x45;
  b.writeUInt16BE(len, 2);
  b.writeUInt16BE(0x4000, 6); // DF
  b[8] = 64;
  b[9] = 17;
  const s = parseIpv4(src);
  const d = parseIpv4(dst);
  b.writeUInt32BE(s >>> 0, 12);
  b.writeUInt32BE(d >>> 0, 16);
  ipv4UpdateChecksum(b, 0);
  b.writeUInt16BE(sport, 20);
  b.writeUInt16BE(dport, 22);
  b.writeUInt16BE(8 + PAYLOAD, 24);
  b.fill(0x61, 28);
  udpSetChecksum4(b, 20, 8 + PAYLOAD, s, d);
  return b;
}

function ipv6Header(src: string, dst: string, nextHeader: number, payloadLen: number): Buffer {
  const h = Buffer.alloc(40);
  h[0] = 0x60;
  h.writeUInt16BE(payloadLen, 4);
  h[6] = nextHeader;
  h[7] = 64;
  parseIpv6OrThrow(src).copy(h, 8);
  parseIpv6OrThrow(dst).copy(h, 24);
  return h;
}

function ipv6Udp(src: string, dst: string, sport: number, dport: number): Buffer {
  const b = Buffer.concat([ipv6Header(src, dst, 17, 8 + PAYLOAD), Buffer.alloc(8 + PAYLOAD, 0x61)]);
  b.writeUInt16BE(sport, 40);
  b.writeUInt16BE(dport, 42);
  b.writeUInt16BE(8 + PAYLOAD, 44);
  udpSetChecksum6(b, 40, 8 + PAYLOAD, b, 8, 24);
  return b;
}

/** IPv4 UDP from a LAN-side source to the sink: what the kernel router forwards. */
export function kernelPackets(n: number): Buffer[] {
  return Array.from({ length: n }, (_, i) => ipv4Udp('192.168.2.10', INET4, 20000 + (i % 40000), SINK_PORT));
}

/** IPv6 UDP to the sink's NAT64 address: what tayga translates. */
export function taygaPackets(n: number, src: string, dst6: string): Buffer[] {
  return Array.from({ length: n }, (_, i) => ipv6Udp(src, dst6, 20000 + (i % 40000), SINK_PORT));
}

/**
 * IPv4-in-IPv6 from generated CPEs to the PRR: packet k comes from binding pick(k), from its
 * CPE address and a port of its set, to the sink.
 */
export function prrPackets(n: number, pick: (k: number) => number): Buffer[] {
  return Array.from({ length: n }, (_, k) => {
    const i = pick(k);
    const inner = ipv4Udp(genIpv4(i), INET4, genPort(i) + (k & 1), SINK_PORT);
    return Buffer.concat([ipv6Header(genIpv6(i), BR6, 4, inner.length), inner]);
  });
}

/** A deterministic spread of n picks over `bindings` generated bindings (a multiplicative walk). */
export function spread(bindings: number): (k: number) => number {
  const stride = 2_654_435_761 % bindings || 1;
  return (k) => Number((BigInt(k) * BigInt(stride) + 12345n) % BigInt(bindings));
}

/** The file the generator reads: u32 count, then u16 length + bytes per packet. */
export function writePacketFile(file: string, pkts: Buffer[]): void {
  const head = Buffer.alloc(4);
  head.writeUInt32LE(pkts.length);
  const parts: Buffer[] = [head];
  for (const p of pkts) {
    const l = Buffer.alloc(2);
    l.writeUInt16LE(p.length);
    parts.push(l, p);
  }
  writeFileSync(file, Buffer.concat(parts));
}
