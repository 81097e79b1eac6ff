/**
 * The PRR's packet loop (prr/dataplane.ts) over in-memory TUN and tunnel sockets: what leaves
 * for a CPE when the core reassembled a datagram larger than the tunnel MTU.
 * Layout: test/prr/helpers/layout.ts (cpe1 holds 192.0.2.100 ports 10000-11000).
 */
import t from 'tap';
import { decodeIpv4, newIpv4Header } from '../../common/codec/ipv4.js';
import { DECODE_NO_VERIFY } from '../../common/codec/result.js';
import { memoryLogger } from '../../common/log.js';
import { FakeNet6, FakeTun, settle } from '../../common/native/fake.js';
import { PrrCounters } from '../../prr/counters.js';
import { PrrDataplane } from '../../prr/dataplane.js';
import { BR, CPE2, INET, SHARED, makeLab } from './helpers/layout.js';
import { fragment, readIpv4, udp4 } from './helpers/packets.js';

/** A PRR data plane on fakes, and what each CPE's socket receives. */
function rig(): { dp: PrrDataplane; counters: PrrCounters; tun: FakeTun; got: Map<string, Buffer[]>; cpe: ReturnType<FakeNet6['socket']>; cpe2: ReturnType<FakeNet6['socket']> } {
  const lab = makeLab();
  const counters = new PrrCounters();
  const net = new FakeNet6();
  const tun = new FakeTun('prr0');
  const tunnel = net.socket({ bind: '2001:db8::1' });
  const got = new Map<string, Buffer[]>([['cpe1', []], ['cpe2', []]]);
  const listen = (name: string, addr: string): ReturnType<FakeNet6['socket']> => {
    const s = net.socket({ bind: addr });
    s.start((n) => {
      for (let i = 0; i < n; i++) got.get(name)!.push(Buffer.from(s.ring.slab.subarray(i * s.ring.slotSize + s.ring.headroom, i * s.ring.slotSize + s.ring.headroom + s.ring.lens[i]!)));
    });
    return s;
  };
  const cpe = listen('cpe1', '2001:db8:1::2');
  const cpe2 = listen('cpe2', '2001:db8:2::2');
  const dp = new PrrDataplane(lab.core, counters, tun, tunnel, { log: memoryLogger() });
  dp.start();
  t.teardown(() => {
    dp.stop();
    cpe.close();
    cpe2.close();
  });
  return { dp, counters, tun, got, cpe, cpe2 };
}

/** Put fragments together by offset (they must tile the datagram exactly). */
function join(frags: Buffer[]): Buffer {
  const parts = frags.map((f) => {
    const h = newIpv4Header();
    decodeIpv4(f, 0, h, f.length, DECODE_NO_VERIFY);
    return { h, f };
  }).sort((a, b) => a.h.fragOff - b.h.fragOff);
  let at = 0;
  const data: Buffer[] = [];
  for (const { h, f } of parts) {
    if (h.fragOff !== at) throw new Error(`gap or overlap at ${at}: fragment at ${h.fragOff}`);
    data.push(f.subarray(h.hlen, h.totalLen));
    at += h.totalLen - h.hlen;
  }
  if (parts.at(-1)!.h.mf) throw new Error('the last fragment has MF');
  const first = parts[0]!.f;
  return Buffer.concat([first.subarray(0, parts[0]!.h.hlen), ...data]);
}

t.test('a datagram reassembled from the Internet, over the tunnel MTU, reaches the CPE as IPv4 fragments of that MTU', async (t) => {
  const { counters, tun, got, cpe } = rig();
  const dgram = udp4({ src: INET, dst: SHARED, sport: 5060, dport: 10500, id: 0x4242, data: 4000 });
  for (const f of fragment(dgram, 1500)) tun.inject(f);
  await settle();
  const frags = got.get('cpe1')!;
  t.equal(frags.length, 3, 'three fragments for a 4028-byte datagram and a 1460-byte tunnel');
  t.ok(frags.every((f) => f.length <= 1460), `each fits the tunnel MTU: ${frags.map((f) => f.length).join(', ')}`);
  t.equal(cpe.stats().rxTruncated, 0, 'nothing too big for the CPE\'s receive slots');
  const whole = join(frags);
  t.equal(whole.subarray(20).toString('hex'), dgram.subarray(20).toString('hex'), 'they reassemble to the datagram sent');
  t.ok(frags.every((f) => readIpv4(f, 0, f.length).headerOk), 'every fragment header checksum is valid');
  const snap = counters.snapshot();
  t.equal(snap.global['fragments_to_cpe'], 3, 'fragments_to_cpe counts them');
  t.equal(snap.global['out6_packets'], 3, 'and they are the packets sent into the tunnel');
  t.equal(snap.reassembly['internet']!['reassembled'], 1, 'one datagram reassembled');
  t.equal(got.get('cpe2')!.length, 0, 'nothing for the other CPE');
});

t.test('a reassembled datagram that fits the tunnel MTU goes whole; a hairpinned one over it is fragmented too', async (t) => {
  const { counters, tun, got, cpe2 } = rig();
  const small = udp4({ src: INET, dst: SHARED, sport: 5060, dport: 10501, id: 7, data: 1200 });
  for (const f of fragment(small, 600)) tun.inject(f);
  await settle();
  t.same(got.get('cpe1')!.map((p) => p.toString('hex')), [small.toString('hex')], 'one packet, the datagram as sent');
  t.equal(counters.snapshot().global['fragments_to_cpe'], undefined, 'no fragments made');

  // cpe2 (11001-12000) to cpe1's port on the shared address, in fragments through the tunnel.
  const hair = udp4({ src: SHARED, dst: SHARED, sport: 11500, dport: 10500, id: 9, data: 3000 });
  got.get('cpe1')!.length = 0;
  const frs = fragment(hair, 1460);
  const offsets = new Int32Array(frs.length);
  frs.reduce((at, f, i) => ((offsets[i] = at), at + f.length), 0);
  cpe2.send({ slab: Buffer.concat(frs), offsets, lens: Int32Array.from(frs.map((f) => f.length)), count: frs.length, dsts: Buffer.concat(frs.map(() => BR)), srcs: Buffer.concat(frs.map(() => CPE2)) });
  await settle();
  const frags = got.get('cpe1')!;
  t.ok(frags.length >= 3 && frags.every((f) => f.length <= 1460), `cpe1 got ${frags.length} fragments within the MTU`);
  const whole = join(frags);
  t.equal(whole.subarray(20).toString('hex'), hair.subarray(20).toString('hex'), 'the hairpinned datagram, reassembled');
  t.equal(readIpv4(whole, 0, whole.length).ttl, 63, 'TTL decremented once, by the PRR as the hop');
});
