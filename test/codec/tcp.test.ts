import t from 'tap';
import { TCP_FLAG_ACK, TCP_FLAG_FIN, TCP_FLAG_PSH, TCP_FLAG_SYN, TCP_OPT_MSS } from '../../common/codec/constants.js';
import { decodeIpv4, newIpv4Header } from '../../common/codec/ipv4.js';
import { decodeIpv6, newIpv6Header } from '../../common/codec/ipv6.js';
import { DECODE_QUOTED, DecodeError } from '../../common/codec/result.js';
import {
  decodeTcp,
  encodeTcp,
  newTcpHeader,
  tcpClampMss,
  tcpFindOption,
  tcpMss,
  tcpRewriteDstPort,
  tcpRewriteSrcPort,
  tcpSetChecksum4,
  tcpSetChecksum6,
  tcpVerify4,
  tcpVerify6,
  type TcpHeader,
} from '../../common/codec/tcp.js';
import { checkTruncations, fuzz, roundTrip, type Codec } from '../helpers/codec.js';
import { kernelPackets } from '../helpers/fixtures.js';

const TCP: Codec<TcpHeader> = {
  name: 'tcp',
  fresh: newTcpHeader,
  decode: (buf, off, h, end) => decodeTcp(buf, off, h, end),
  encode: (buf, off, h, wire) => {
    wire.copy(buf, off + 20, 20, h.dataOff);
    return encodeTcp(buf, off, h);
  },
};

const packets = kernelPackets('tcp');
const v4 = packets.filter((p) => p[0] >>> 4 === 4);
const v6 = packets.filter((p) => p[0] >>> 4 === 6);
const SRC4 = 0xc0000201;
const DST4 = 0xc0000202;

/** Verify a whole IP packet's TCP checksum; returns [ok, TCP offset, TCP length]. */
function verify(p: Buffer): [boolean, number, number] {
  if (p[0] >>> 4 === 4) {
    const ip = newIpv4Header();
    const off = decodeIpv4(p, 0, ip);
    const len = ip.totalLen - ip.hlen;
    return [tcpVerify4(p, off, len, ip.src, ip.dst), off, len];
  }
  const ip = newIpv6Header();
  const off = decodeIpv6(p, 0, ip);
  return [tcpVerify6(p, off, ip.payloadLen, p, ip.srcOff, ip.dstOff), off, ip.payloadLen];
}

/** The checksum a full recomputation gives for the TCP segment in IP packet `p` (a copy). */
function recompute(p: Buffer): number {
  const q = Buffer.from(p);
  if (q[0] >>> 4 === 4) {
    const ip = newIpv4Header();
    const off = decodeIpv4(q, 0, ip);
    return tcpSetChecksum4(q, off, ip.totalLen - ip.hlen, ip.src, ip.dst);
  }
  const ip = newIpv6Header();
  const off = decodeIpv6(q, 0, ip);
  return tcpSetChecksum6(q, off, ip.payloadLen, q, ip.srcOff, ip.dstOff);
}

t.test('a kernel connection over IPv4 and IPv6', async (t) => {
  t.equal(v4.length, 10);
  t.equal(v6.length, 10);
  const h = newTcpHeader();
  for (const [pkts, mss, ipLen, port] of [[v4, 1460, 20, 40002], [v6, 1440, 40, 40003]] as const) {
    const syn = pkts[0];
    t.equal(decodeTcp(syn, ipLen, h), ipLen + 40);
    t.match(h, { srcPort: port, dstPort: 5301, flags: TCP_FLAG_SYN, ack: 0, dataOff: 40, optLen: 20, urg: 0 });
    t.equal(tcpMss(syn, ipLen), mss, `SYN carries MSS ${mss}`);
    const synAck = pkts[1];
    t.equal(decodeTcp(synAck, ipLen, h), ipLen + 40);
    t.equal(h.flags, TCP_FLAG_SYN | TCP_FLAG_ACK);
    const isn = h.seq;
    t.equal(tcpMss(synAck, ipLen), mss);
    const data = pkts.find((p) => p.toString('latin1').endsWith('aplus tcp hello\n'));
    t.ok(data, 'the data segment is there');
    if (data) {
      const off = decodeTcp(data, ipLen, h);
      t.equal(h.flags, TCP_FLAG_PSH | TCP_FLAG_ACK);
      t.equal(data.length - off, 16);
      t.equal(tcpMss(data, ipLen), 0, 'no MSS outside the handshake');
    }
    const fin = pkts.find((p) => decodeTcp(p, ipLen, h) > 0 && (h.flags & TCP_FLAG_FIN) !== 0 && h.srcPort === 5301);
    t.ok(fin);
    t.equal(h.seq, (isn + 1 + 16) >>> 0, "the server's FIN follows its 16 bytes");
    for (const p of pkts) {
      const [ok, off] = verify(p);
      t.ok(ok, 'checksum verifies');
      t.equal(recompute(p), p.readUInt16BE(off + 16), 'recomputes to the kernel value');
      roundTrip(t, TCP, p.subarray(off));
    }
  }
});

t.test('MSS clamp on the kernel SYNs', async (t) => {
  for (const syn of [v4[0], v6[0]]) {
    const off = syn[0] >>> 4 === 4 ? 20 : 40;
    const p = Buffer.from(syn);
    const orig = tcpMss(p, off);
    t.notOk(tcpClampMss(p, off, p.length, orig), 'at the limit: unchanged');
    t.notOk(tcpClampMss(p, off, p.length, 9000), 'under the limit: unchanged');
    t.ok(p.equals(syn));
    t.ok(tcpClampMss(p, off, p.length, 1380), 'over the limit: clamped');
    t.equal(tcpMss(p, off), 1380);
    t.ok(verify(p)[0], 'the incremental checksum verifies');
    t.equal(p.readUInt16BE(off + 16), recompute(p), 'equals full recomputation');
    const ack = Buffer.from(off === 20 ? v4[2] : v6[2]);
    t.notOk(tcpClampMss(ack, off, ack.length, 100), 'not a SYN: left alone');
  }
});

/** A SYN with options NOP, MSS 1460 (value at an odd offset), NOP x3; valid checksum. */
function oddSyn(): Buffer {
  const s = Buffer.from('9c4014b5000000010000000070020400 0000 0000 01 0204 05b4 010101'.replace(/ /g, ''), 'hex');
  tcpSetChecksum4(s, 0, s.length, SRC4, DST4);
  return s;
}

t.test('MSS clamp at an odd offset, malformed options', async (t) => {
  const s = oddSyn();
  t.equal(tcpFindOption(s, 0, s.length, TCP_OPT_MSS), 21);
  t.equal(tcpMss(s, 0), 1460);
  t.ok(tcpClampMss(s, 0, s.length, 1200));
  t.equal(tcpMss(s, 0), 1200);
  t.ok(tcpVerify4(s, 0, s.length, SRC4, DST4), 'checksum fixed with the byte-swapped words');

  const mal = (hex: string): Buffer => {
    const b = Buffer.from('9c4014b50000000100000000' + '70020400' + '00000000' + hex, 'hex');
    return b;
  };
  t.equal(tcpMss(mal('0200aaaaaaaaaaaa'), 0), DecodeError.bad_option, 'option length 0');
  t.equal(tcpMss(mal('03ff0101aaaaaaaa'), 0), DecodeError.bad_option, 'option runs past the header');
  t.equal(tcpMss(mal('01010101010101' + '02'), 0), DecodeError.bad_option, 'kind without length at the end');
  t.equal(tcpMss(mal('0203aaaa01010101'), 0), DecodeError.bad_option, 'MSS with length 3');
  t.equal(tcpMss(mal('0000000000000000'), 0), 0, 'EOL: no MSS');
  t.equal(tcpMss(mal('0303070101010101'), 0), 0, 'other options only');
  for (const hex of ['0200aaaaaaaaaaaa', '03ff0101aaaaaaaa', '0203aaaa01010101', '0000000000000000']) {
    const b = mal(hex);
    const copy = Buffer.from(b);
    t.notOk(tcpClampMss(b, 0, b.length, 100), `no clamp with ${hex}`);
    t.ok(b.equals(copy));
  }
  const cut = oddSyn();
  t.equal(tcpMss(cut, 0, 24), DecodeError.bad_data_offset, 'options past end');
  t.notOk(tcpClampMss(cut, 0, 24, 100));
  t.notOk(tcpClampMss(cut, 0, 10, 100));
  t.notOk(tcpClampMss(cut, -3, 40, 100));
  t.equal(tcpFindOption(cut, 0, 10, TCP_OPT_MSS), DecodeError.truncated);
  const badOff = oddSyn();
  badOff[12] = 0x40;
  t.equal(tcpFindOption(badOff, 0, badOff.length, TCP_OPT_MSS), DecodeError.bad_data_offset);
});

t.test('port rewrites', async (t) => {
  const p = Buffer.from(v6[3]);
  t.equal(tcpRewriteSrcPort(p, 40, 2000), 40003);
  t.equal(tcpRewriteDstPort(p, 40, 80), 5301);
  t.ok(verify(p)[0]);
  const h = newTcpHeader();
  decodeTcp(p, 40, h);
  t.match(h, { srcPort: 2000, dstPort: 80 });
});

t.test('errors, truncation, random bytes', async (t) => {
  const h = newTcpHeader();
  const syn = v4[0].subarray(20);
  const bad = Buffer.from(syn);
  bad[12] = 0x40;
  t.equal(decodeTcp(bad, 0, h), DecodeError.bad_data_offset);
  t.equal(decodeTcp(syn, 0, h, 39), DecodeError.bad_data_offset, 'options past the end');
  t.equal(decodeTcp(syn, 0, h, 39, DECODE_QUOTED), 40, 'QUOTED tolerates that');
  t.equal(decodeTcp(syn, -1, h), DecodeError.truncated);
  t.equal(encodeTcp(Buffer.alloc(60), 0, { ...h, dataOff: 18 }), DecodeError.bad_data_offset);
  t.equal(encodeTcp(Buffer.alloc(60), 0, { ...h, dataOff: 64 }), DecodeError.bad_data_offset);
  t.equal(encodeTcp(Buffer.alloc(60), 0, { ...h, dataOff: 22 }), DecodeError.bad_data_offset);
  t.equal(encodeTcp(Buffer.alloc(30), 0, { ...h, dataOff: 32 }), DecodeError.no_space);
  checkTruncations(t, 'tcp syn', syn, (b, end) => decodeTcp(b, 0, h, end), (n) => (n < 20 ? DecodeError.truncated : DecodeError.bad_data_offset));
  const seeds = [syn, oddSyn(), v6[3].subarray(40)];
  t.ok(fuzz(t, 'decodeTcp', (b) => decodeTcp(b, 0, h, b.length), seeds, 2000, 6, 64) > 0);
  t.ok(fuzz(t, 'tcpMss', (b) => tcpMss(b, 0, b.length), seeds, 2000, 7, 64) > 0);
  fuzz(t, 'tcpClampMss', (b) => (tcpClampMss(b, 0, b.length, 536) ? 1 : 0), seeds, 2000, 8, 64);
});
