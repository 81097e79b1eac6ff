import t from 'tap';
import {
  LINKTYPE_ETHERNET,
  LINKTYPE_LINUX_SLL,
  LINKTYPE_LINUX_SLL2,
  LINKTYPE_RAW,
  ethernetFrame,
  ipOffset,
  ipPacket,
  parsePcap,
  writePcap,
} from './pcap.js';
import { kernelPcap, kernelPackets } from './fixtures.js';

t.test('the kernel captures: link types and IP offsets', async (t) => {
  const cases: Array<[string, number, number, number]> = [
    ['ping4', LINKTYPE_ETHERNET, 14, 4],
    ['ping6', LINKTYPE_ETHERNET, 14, 6],
    ['ping4-sll', LINKTYPE_LINUX_SLL, 16, 4],
    ['ping6-sll2', LINKTYPE_LINUX_SLL2, 20, 6],
  ];
  for (const [name, linkType, ipOff, version] of cases) {
    const p = kernelPcap(name);
    t.equal(p.linkType, linkType, `${name}: link type`);
    t.equal(p.frames.length, 2, `${name}: request and reply`);
    t.equal(p.snaplen, 262144);
    t.notOk(p.nanos);
    for (const f of p.frames) {
      t.equal(f.ipOff, ipOff);
      t.equal(f.ipVersion, version);
      t.equal(f.origLen, f.data.length);
      t.ok(f.tsSec > 1_600_000_000 && f.tsFrac < 1_000_000, 'a plausible timestamp');
    }
  }
  const all = ['udp', 'tcp', 'unreach', 'frag'].map((n) => kernelPcap(n));
  t.same(all.map((p) => p.frames.length), [2, 20, 4, 6]);
  t.ok(all.every((p) => p.frames.every((f) => f.ipOff === 14)));
  t.same(kernelPackets('ping4').map((p) => p.length), [84, 84], 'IP packets cut to their length');
});

t.test('write then read back, every link type', async (t) => {
  const frames = kernelPcap('ping4').frames;
  const again = parsePcap(writePcap(frames, LINKTYPE_ETHERNET));
  t.same(again.frames.map((f) => [f.tsSec, f.tsFrac, f.data.toString('hex'), f.ipOff]), frames.map((f) => [f.tsSec, f.tsFrac, f.data.toString('hex'), 14]));
  const ips = frames.map(ipPacket);
  const raw = parsePcap(writePcap(ips.map((data) => ({ data })), LINKTYPE_RAW, { nanos: true }));
  t.equal(raw.linkType, LINKTYPE_RAW);
  t.ok(raw.nanos);
  t.same(raw.frames.map((f) => [f.ipOff, f.ipVersion]), [[0, 4], [0, 4]]);
  const eth = parsePcap(writePcap(ips.map((ip) => ({ data: ethernetFrame(ip) })), LINKTYPE_ETHERNET));
  t.ok(eth.frames.every((f, i) => f.data.subarray(14).equals(ips[i])), 'ethernetFrame wraps the packet');
  const six = ethernetFrame(kernelPackets('ping6')[0]);
  t.equal(six.readUInt16BE(12), 0x86dd);
  const cut = parsePcap(writePcap([{ data: frames[0].data }], LINKTYPE_ETHERNET, { snaplen: 40 }));
  t.equal(cut.frames[0].data.length, 40, 'snaplen cuts');
  t.equal(cut.frames[0].origLen, frames[0].data.length, 'origLen kept');
});

t.test('big-endian files', async (t) => {
  const le = writePcap([{ data: Buffer.from('4500', 'hex'), tsSec: 7, tsFrac: 9 }], LINKTYPE_RAW);
  const be = Buffer.alloc(le.length);
  be.writeUInt32BE(0xa1b23c4d, 0); // nanoseconds, big-endian
  be.writeUInt16BE(2, 4);
  be.writeUInt16BE(4, 6);
  be.writeUInt32BE(65535, 16);
  be.writeUInt32BE(LINKTYPE_RAW, 20);
  for (let o = 24; o < 40; o += 4) be.writeUInt32BE(le.readUInt32LE(o), o);
  le.copy(be, 40, 40);
  const p = parsePcap(be);
  t.ok(p.nanos);
  t.equal(p.snaplen, 65535);
  t.same([p.frames[0].tsSec, p.frames[0].tsFrac, p.frames[0].ipOff, p.frames[0].data.toString('hex')], [7, 9, 0, '4500']);
});

t.test('IP offsets for tagged, non-IP and short frames', async (t) => {
  const ip = kernelPackets('ping4')[0];
  const eth = ethernetFrame(ip);
  const tagged = Buffer.concat([eth.subarray(0, 12), Buffer.from('8100000588a80006', 'hex'), eth.subarray(12)]);
  t.same(ipOffset(LINKTYPE_ETHERNET, tagged), [22, 4], 'two VLAN tags');
  const arp = Buffer.from(eth);
  arp.writeUInt16BE(0x0806, 12);
  t.same(ipOffset(LINKTYPE_ETHERNET, arp), [-1, 0], 'ARP');
  const lying = Buffer.from(eth);
  lying.writeUInt16BE(0x86dd, 12);
  t.same(ipOffset(LINKTYPE_ETHERNET, lying), [-1, 0], 'EtherType and version disagree');
  t.same(ipOffset(LINKTYPE_ETHERNET, eth.subarray(0, 13)), [-1, 0]);
  t.same(ipOffset(LINKTYPE_ETHERNET, eth.subarray(0, 14)), [-1, 0]);
  t.same(ipOffset(LINKTYPE_LINUX_SLL, Buffer.alloc(10)), [-1, 0]);
  t.same(ipOffset(LINKTYPE_LINUX_SLL2, Buffer.alloc(10)), [-1, 0]);
  t.same(ipOffset(LINKTYPE_RAW, Buffer.from('00', 'hex')), [-1, 0]);
  t.same(ipOffset(LINKTYPE_RAW, Buffer.alloc(0)), [-1, 0]);
  t.same(ipOffset(147, ip), [-1, 0], 'unknown link type');
  t.throws(() => ipPacket({ tsSec: 0, tsFrac: 0, origLen: 0, data: arp, ipOff: -1, ipVersion: 0 }));
});

t.test('malformed files throw with a reason', async (t) => {
  t.throws(() => parsePcap(Buffer.alloc(10)), /too short/);
  t.throws(() => parsePcap(Buffer.alloc(24)), /bad magic/);
  const good = writePcap([{ data: Buffer.alloc(30) }], LINKTYPE_RAW);
  t.throws(() => parsePcap(good.subarray(0, 30)), /record header cut short/);
  t.throws(() => parsePcap(good.subarray(0, good.length - 1)), /record cut short/);
  t.equal(parsePcap(good.subarray(0, 24)).frames.length, 0, 'a header alone is an empty capture');
});
