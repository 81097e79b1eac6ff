/**
 * TUN offload byte work (common/native/src/gso.c) through its test exports, checked with the
 * project's codecs: the segmenter (what a TUN read with offloads hands on) and the coalescer
 * (what a batch toward the TUN becomes, one write() per item).
 */
import t from 'tap';
import { existsSync } from 'node:fs';
import { csumAdd, csumFold, pseudoSum4 } from '../../common/codec/checksum.js';
import { PROTO_TCP, PROTO_UDP, TCP_FLAG_ACK, TCP_FLAG_FIN, TCP_FLAG_PSH, TCP_FLAG_SYN } from '../../common/codec/constants.js';
import { decodeIpv4, encodeIpv4, newIpv4Header } from '../../common/codec/ipv4.js';
import { decodeTcp, encodeTcp, newTcpHeader, tcpSetChecksum4, tcpVerify4 } from '../../common/codec/tcp.js';
import { decodeUdp, encodeUdp, newUdpHeader, udpSetChecksum4, udpVerify4 } from '../../common/codec/udp.js';
import { gsoTesting } from '../../common/native/index.js';

const ADDON = new URL('../../common/native/build/Release/aplus_native.node', import.meta.url);
const SRC = 0xc0000202; // 192.0.2.2
const DST = 0xc0a80102; // 192.168.1.2
const TCP_CWR = 0x80;
const NEEDS_CSUM = 1;
const GSO_TCPV4 = 1;
const GSO_UDP_L4 = 5;

interface Seg {
  seq: number;
  len: number;
  flags?: number;
  id?: number;
  sport?: number;
  ack?: number;
  tcpOpts?: Buffer; // multiple of 4
  ipOpts?: Buffer; // multiple of 4
  fill?: number;
  ttl?: number;
  df?: boolean;
}

/** An IPv4 TCP segment with correct checksums; payload bytes follow the sequence number. */
function tcpPacket(s: Seg): Buffer {
  const ipOpts = s.ipOpts ?? Buffer.alloc(0);
  const tcpOpts = s.tcpOpts ?? Buffer.alloc(0);
  const ihl = 20 + ipOpts.length;
  const thl = 20 + tcpOpts.length;
  const buf = Buffer.alloc(ihl + thl + s.len);
  const ip = newIpv4Header();
  Object.assign(ip, { hlen: ihl, totalLen: buf.length, id: s.id ?? 100, df: s.df ?? true, ttl: s.ttl ?? 60, proto: PROTO_TCP, src: SRC, dst: DST });
  ipOpts.copy(buf, 20);
  encodeIpv4(buf, 0, ip);
  const th = newTcpHeader();
  Object.assign(th, { srcPort: s.sport ?? 443, dstPort: 11000, seq: s.seq >>> 0, ack: s.ack ?? 7777, dataOff: thl, flags: s.flags ?? TCP_FLAG_ACK, window: 501 });
  tcpOpts.copy(buf, ihl + 20);
  encodeTcp(buf, ihl, th);
  for (let i = 0; i < s.len; i++) buf[ihl + thl + i] = (s.fill ?? 0) + ((s.seq + i) & 0xff);
  tcpSetChecksum4(buf, ihl, buf.length - ihl, SRC, DST);
  return buf;
}

function udpPacket(len: number, id = 5): Buffer {
  const buf = Buffer.alloc(28 + len);
  const ip = newIpv4Header();
  Object.assign(ip, { totalLen: buf.length, id, proto: PROTO_UDP, src: SRC, dst: DST });
  encodeIpv4(buf, 0, ip);
  const u = newUdpHeader();
  Object.assign(u, { srcPort: 53, dstPort: 11001, length: 8 + len });
  encodeUdp(buf, 20, u);
  buf.fill(0x5a, 28);
  udpSetChecksum4(buf, 20, 8 + len, SRC, DST);
  return buf;
}

/** A consecutive run: ids id0.., seqs contiguous from seq0, payloads `lens`. */
function run(seq0: number, lens: number[], extra: Partial<Seg> = {}, id0 = 100): Seg[] {
  let seq = seq0;
  return lens.map((len, i) => {
    const s = { ...extra, seq, len, id: (id0 + i) & 0xffff };
    seq += len;
    return s;
  });
}

function coalesce(pkts: Buffer[]): Array<{ hdr: Vnet; pkt: Buffer }> {
  const slab = Buffer.concat(pkts);
  const offs = new Int32Array(pkts.length);
  const lens = new Int32Array(pkts.length);
  let at = 0;
  pkts.forEach((p, i) => {
    offs[i] = at;
    lens[i] = p.length;
    at += p.length;
  });
  return gsoTesting.groCoalesce(slab, offs, lens, pkts.length).map((b) => ({ hdr: readVnet(b), pkt: b.subarray(10) }));
}

interface Vnet {
  flags: number;
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
}

// The TUN's vnet header is in the host's byte order (little-endian here).
const readVnet = (b: Buffer): Vnet => ({
  flags: b[0]!, gsoType: b[1]!, hdrLen: b.readUInt16LE(2), gsoSize: b.readUInt16LE(4), csumStart: b.readUInt16LE(6), csumOffset: b.readUInt16LE(8),
});

function vnet(h: Partial<Vnet>, pkt: Buffer): Buffer {
  const b = Buffer.alloc(10);
  b[0] = h.flags ?? 0;
  b[1] = h.gsoType ?? 0;
  b.writeUInt16LE(h.hdrLen ?? 0, 2);
  b.writeUInt16LE(h.gsoSize ?? 0, 4);
  b.writeUInt16LE(h.csumStart ?? 0, 6);
  b.writeUInt16LE(h.csumOffset ?? 0, 8);
  return Buffer.concat([b, pkt]);
}

/** What a kernel sends on a TSO device: one header, a pseudo-header sum in the checksum field. */
function superPacket(segs: Seg[]): Buffer {
  const first = tcpPacket(segs[0]!);
  const ihl = (first[0]! & 15) * 4;
  const thl = (first[ihl + 12]! >> 4) * 4;
  const last = segs[segs.length - 1]!;
  const parts = segs.map((s) => tcpPacket(s).subarray(ihl + thl));
  const pkt = Buffer.concat([first.subarray(0, ihl + thl), ...parts]);
  pkt.writeUInt16BE(pkt.length, 2);
  pkt[ihl + 13] = (segs[0]!.flags ?? TCP_FLAG_ACK) | ((last.flags ?? 0) & (TCP_FLAG_FIN | TCP_FLAG_PSH));
  pkt.writeUInt16BE(0, 10);
  pkt.writeUInt16BE(0xffff ^ csumAdd(pkt, 0, ihl), 10);
  pkt.writeUInt16BE(csumFold(pseudoSum4(SRC, DST, PROTO_TCP, pkt.length - ihl)), ihl + 16);
  return pkt;
}

const ip = newIpv4Header();
const th = newTcpHeader();

t.test('TUN offload byte work', { skip: existsSync(ADDON) ? false : 'native addon not built (npm ci)' }, async (t) => {
  t.test('segmenter: a TCP super-packet becomes the segments the sender meant', async (t) => {
    const segs = run(0xfffff000, [1400, 1400, 700], {}, 0xfffe);
    segs[0]!.flags = TCP_FLAG_ACK | TCP_CWR;
    segs[1]!.flags = TCP_FLAG_ACK;
    segs[2]!.flags = TCP_FLAG_ACK | TCP_FLAG_PSH | TCP_FLAG_FIN;
    const sp = superPacket(segs);
    t.equal(sp.length, 40 + 3500);
    const out = gsoTesting.gsoSplit(vnet({ flags: NEEDS_CSUM, gsoType: GSO_TCPV4, hdrLen: 40, gsoSize: 1400, csumStart: 20, csumOffset: 16 }, sp), 1500);
    t.ok(out !== null);
    t.equal(out!.length, 3);
    out!.forEach((seg, i) => {
      t.equal(decodeIpv4(seg, 0, ip), 20, `segment ${i}: IPv4 header and checksum valid`);
      t.equal(ip.totalLen, seg.length);
      t.equal(ip.id, (0xfffe + i) & 0xffff, 'one IPv4 id each, wrapping');
      t.ok(tcpVerify4(seg, 20, seg.length - 20, SRC, DST), `segment ${i}: TCP checksum verifies`);
      decodeTcp(seg, 20, th);
      t.equal(th.seq, (0xfffff000 + 1400 * i) >>> 0, 'seq advances by gso_size, wrapping');
    });
    t.same(out!.map((s) => s[33]), [TCP_FLAG_ACK | TCP_CWR, TCP_FLAG_ACK, TCP_FLAG_ACK | TCP_FLAG_PSH | TCP_FLAG_FIN], 'CWR on the first only, FIN/PSH on the last only');
    t.same(out, segs.map(tcpPacket), 'byte for byte the segments');
  });

  t.test('segmenter: a super-packet of more segments than a ring holds (small MSS)', async (t) => {
    const segs = run(7, Array(300).fill(100).concat([37]));
    const out = gsoTesting.gsoSplit(vnet({ flags: NEEDS_CSUM, gsoType: GSO_TCPV4, hdrLen: 40, gsoSize: 100, csumStart: 20, csumOffset: 16 }, superPacket(segs)), 1500, 128);
    t.same(out, segs.map(tcpPacket), '301 segments, cut 128 at a time, byte for byte');
  });

  t.test('segmenter: IPv4 options are repeated in every segment', async (t) => {
    const ipOpts = Buffer.from([0x94, 0x04, 0x00, 0x00]); // Router Alert
    const segs = run(1, [1000, 1000, 10], { ipOpts });
    const out = gsoTesting.gsoSplit(vnet({ flags: NEEDS_CSUM, gsoType: GSO_TCPV4, hdrLen: 44, gsoSize: 1000, csumStart: 24, csumOffset: 16 }, superPacket(segs)), 1500);
    t.same(out, segs.map(tcpPacket));
  });

  t.test('segmenter: UDP (USO) super-packet', async (t) => {
    const sp = Buffer.concat([udpPacket(0).subarray(0, 28), Buffer.alloc(2500, 0x5a)]);
    sp.writeUInt16BE(sp.length, 2);
    sp.writeUInt16BE(0, 10);
    sp.writeUInt16BE(0xffff ^ csumAdd(sp, 0, 20), 10);
    sp.writeUInt16BE(8 + 2500, 24);
    sp.writeUInt16BE(csumFold(pseudoSum4(SRC, DST, PROTO_UDP, 8 + 2500)), 26);
    const out = gsoTesting.gsoSplit(vnet({ flags: NEEDS_CSUM, gsoType: GSO_UDP_L4, hdrLen: 28, gsoSize: 1000, csumStart: 20, csumOffset: 6 }, sp), 1500);
    t.same(out?.map((s) => s.length), [1028, 1028, 528]);
    const u = newUdpHeader();
    out!.forEach((seg, i) => {
      t.equal(decodeIpv4(seg, 0, ip), 20);
      t.equal(ip.id, 5 + i);
      decodeUdp(seg, 20, u);
      t.equal(u.length, seg.length - 20, 'UDP length per datagram');
      t.not(seg.readUInt16BE(26), 0, 'a checksum, not "none"');
      t.ok(udpVerify4(seg, 20, seg.length - 20, SRC, DST), 'UDP checksum verifies');
    });
  });

  t.test('segmenter: a plain packet with a partial checksum is completed', async (t) => {
    const p = tcpPacket({ seq: 9, len: 300 });
    const partial = Buffer.from(p);
    partial.writeUInt16BE(csumFold(pseudoSum4(SRC, DST, PROTO_TCP, p.length - 20)), 36);
    t.same(gsoTesting.gsoSplit(vnet({ flags: NEEDS_CSUM, csumStart: 20, csumOffset: 16 }, partial), 1500), [p]);
    t.same(gsoTesting.gsoSplit(vnet({}, p), 1500), [p], 'no flags: as it is');
    t.equal(gsoTesting.gsoSplit(vnet({ flags: NEEDS_CSUM, csumStart: 20, csumOffset: 400 }, partial), 1500), null, 'checksum field outside: refused');
    t.equal(gsoTesting.gsoSplit(vnet({}, p), 200), null, 'over cap: refused');
  });

  t.test('segmenter refuses what it cannot cut', async (t) => {
    const sp = superPacket(run(1, [1000, 1000]));
    const h = { flags: NEEDS_CSUM, gsoType: GSO_TCPV4, hdrLen: 40, gsoSize: 1000, csumStart: 20, csumOffset: 16 };
    t.same(gsoTesting.gsoSplit(vnet(h, sp), 1040)?.length, 2, 'segments of exactly cap');
    t.equal(gsoTesting.gsoSplit(vnet(h, sp), 1039), null, 'a segment over cap');
    t.same(gsoTesting.gsoSplit(vnet(h, sp), 1500, 1), gsoTesting.gsoSplit(vnet(h, sp), 1500), 'more segments than free slots: cut over several calls, the same');
    t.equal(gsoTesting.gsoSplit(vnet({ ...h, gsoSize: 0 }, sp), 1500), null, 'gso_size 0');
    t.equal(gsoTesting.gsoSplit(vnet({ ...h, gsoType: GSO_UDP_L4 }, sp), 1500), null, 'UDP type on a TCP packet');
    t.equal(gsoTesting.gsoSplit(vnet({ ...h, gsoType: 4 }, sp), 1500), null, 'TCPv6');
    const v6 = Buffer.from(sp);
    v6[0] = 0x60;
    t.equal(gsoTesting.gsoSplit(vnet(h, v6), 1500), null, 'not IPv4');
    const frag = Buffer.from(sp);
    frag[6] = 0x20; // MF
    t.equal(gsoTesting.gsoSplit(vnet(h, frag), 1500), null, 'a fragment');
  });

  t.test('coalescer: a run of one flow becomes one super-packet the segmenter undoes', async (t) => {
    const segs = run(0xffffff00, [1448, 1448, 1448, 600], { tcpOpts: Buffer.from([1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]) }, 0xffff);
    segs[3]!.flags = TCP_FLAG_ACK | TCP_FLAG_PSH;
    const pkts = segs.map(tcpPacket);
    const out = coalesce(pkts);
    t.equal(out.length, 1);
    const { hdr, pkt } = out[0]!;
    t.same(hdr, { flags: NEEDS_CSUM, gsoType: GSO_TCPV4, hdrLen: 52, gsoSize: 1448, csumStart: 20, csumOffset: 16 });
    t.equal(decodeIpv4(pkt, 0, ip), 20, 'super-packet IPv4 header valid');
    t.equal(ip.totalLen, 52 + 3 * 1448 + 600);
    t.equal(pkt[33], TCP_FLAG_ACK | TCP_FLAG_PSH, 'PSH of the last');
    t.equal(pkt.readUInt16BE(36), csumFold(pseudoSum4(SRC, DST, PROTO_TCP, pkt.length - 20)), 'pseudo-header sum in the checksum field');
    const back = gsoTesting.gsoSplit(Buffer.concat([Buffer.from([hdr.flags, hdr.gsoType, 52, 0, 1448 & 0xff, 1448 >> 8, 20, 0, 16, 0]), pkt]), 1500);
    t.same(back, pkts, 'segmenting it again gives the original segments');
  });

  const shape = (out: Array<{ hdr: Vnet; pkt: Buffer }>): Array<[number, number]> => out.map((o) => [o.hdr.gsoType, o.pkt.length]);

  t.test('coalescer boundaries', async (t) => {
    const gap = run(1, [1000, 1000]).concat(run(2002, [1000, 1000], {}, 102));
    t.same(shape(coalesce(gap.map(tcpPacket))), [[1, 2040], [1, 2040]], 'a seq gap splits');

    const fin = run(1, [1000, 1000, 1000, 1000]);
    fin[1]!.flags = TCP_FLAG_ACK | TCP_FLAG_FIN;
    t.same(shape(coalesce(fin.map(tcpPacket))), [[0, 1040], [0, 1040], [1, 2040]], 'FIN is never coalesced; the flow restarts after it');

    const psh = run(1, [1000, 1000, 1000]);
    psh[0]!.flags = TCP_FLAG_ACK | TCP_FLAG_PSH;
    t.same(shape(coalesce(psh.map(tcpPacket))), [[0, 1040], [1, 2040]], 'PSH ends a super-packet');

    t.same(shape(coalesce(run(1, [1000, 500, 1000]).map(tcpPacket))), [[1, 1540], [0, 1040]], 'a short segment is the last');
    t.same(shape(coalesce(run(1, [1000, 1200]).map(tcpPacket))), [[0, 1040], [0, 1240]], 'a longer one does not join');

    const opts = run(1, [1000, 1000]);
    opts[0]!.tcpOpts = Buffer.from([1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
    opts[1]!.tcpOpts = Buffer.from([1, 1, 8, 10, 0, 0, 0, 2, 0, 0, 0, 2]);
    t.same(shape(coalesce(opts.map(tcpPacket))), [[0, 1052], [0, 1052]], 'different options (timestamps) split');

    const ipo = run(1, [1000, 1000], { ipOpts: Buffer.from([0x94, 4, 0, 0]) });
    t.same(shape(coalesce(ipo.map(tcpPacket))), [[0, 1044], [0, 1044]], 'IPv4 options: written one by one');

    t.same(shape(coalesce(run(1, [1000, 1000], {}, 7).map((s, i) => tcpPacket({ ...s, id: i === 0 ? 7 : 9 })))), [[0, 1040], [0, 1040]], 'ids not consecutive');
    t.same(shape(coalesce(run(1, [1000, 1000]).map((s, i) => tcpPacket({ ...s, ttl: 60 - i })))), [[0, 1040], [0, 1040]], 'TTL differs');
    t.same(shape(coalesce(run(1, [1000, 1000]).map((s, i) => tcpPacket({ ...s, ack: 100 + i })))), [[0, 1040], [0, 1040]], 'ack differs');

    const syn = [tcpPacket({ seq: 1, len: 0, flags: TCP_FLAG_SYN }), ...run(2, [1000, 1000]).map(tcpPacket)];
    t.same(shape(coalesce(syn)), [[0, 40], [1, 2040]], 'a pure SYN stays alone');
    t.same(shape(coalesce(run(1, [0, 0]).map(tcpPacket))), [[0, 40], [0, 40]], 'pure ACKs stay alone');

    const bad = run(1, [1000, 1000, 1000]).map(tcpPacket);
    bad[1]![100] ^= 0xff; // corrupt the payload: its checksum no longer verifies
    const b = coalesce(bad);
    t.same(shape(b), [[0, 1040], [0, 1040], [0, 1040]], 'a segment with a bad checksum is not hidden in a super-packet');
    t.same(b[1]!.pkt, bad[1], 'it is written as it came (the kernel drops it)');
  });

  t.test('coalescer: other packets and interleaved flows keep their order within a flow', async (t) => {
    const a = run(1, [1000, 1000, 1000]).map(tcpPacket);
    const b = run(5000, [800, 800], { sport: 444 }, 300).map(tcpPacket);
    const u = udpPacket(100);
    const out = coalesce([a[0]!, b[0]!, u, a[1]!, b[1]!, a[2]!]);
    t.same(shape(out), [[1, 3040], [1, 1640], [0, 128]], 'two super-packets in the order of their first segments, then the datagram');
    t.same(out[2]!.pkt, u);
    t.same(out[2]!.hdr, { flags: 0, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0 }, 'a single packet gets a zero vnet header');
  });

  t.test('coalescer: at most 64 segments and 64 KiB per super-packet', async (t) => {
    const many = run(1, Array(70).fill(100)).map(tcpPacket);
    t.same(coalesce(many).map((o) => o.pkt.length), [40 + 64 * 100, 40 + 6 * 100]);
    const big = run(1, Array(50).fill(1460)).map(tcpPacket);
    const out = coalesce(big);
    t.ok(out.every((o) => o.pkt.length <= 65535), 'under 64 KiB');
    t.equal(out.reduce((n, o) => n + (o.pkt.length - 40) / 1460, 0), 50, 'every segment written once');
    t.equal(out[0]!.pkt.length, 40 + 44 * 1460);
  });
});
