import t from 'tap';
import { FakeNet6, fakeTunPair, settle } from '../../common/native/fake.js';
import { formatIpv6, parseIpv6, slotOffset, type Icmp6ErrorReport, type TxBatch } from '../../common/native/index.js';

/** count packets of `size` bytes, byte 0 = i, laid out at a 40-byte headroom. */
function batch(count: number, size: number, dst?: string, src?: string): TxBatch {
  const slab = Buffer.alloc(count * (size + 40));
  const offsets = new Int32Array(count);
  const lens = new Int32Array(count);
  const dsts = Buffer.alloc(16 * count);
  const srcs = src === undefined ? undefined : Buffer.alloc(16 * count);
  for (let i = 0; i < count; i++) {
    offsets[i] = i * (size + 40) + 40;
    lens[i] = size;
    slab.fill(i & 0xff, offsets[i]!, offsets[i]! + size);
    if (dst !== undefined) parseIpv6(dst).copy(dsts, 16 * i);
    if (src !== undefined) parseIpv6(src).copy(srcs!, 16 * i);
  }
  return { slab, offsets, lens, count, ...(dst !== undefined ? { dsts } : {}), ...(srcs ? { srcs } : {}) };
}

t.test('fake TUN pair passes batches both ways', async (t) => {
  const [a, b] = fakeTunPair('smap0', 'kernel0', { batch: 4 });
  const seen: number[] = [];
  const batches: number[] = [];
  b.start((n) => {
    batches.push(n);
    for (let i = 0; i < n; i++) seen.push(b.ring.slab[slotOffset(b.ring, i)]!);
  });
  t.equal(a.send(batch(10, 100)), 10);
  await settle();
  t.same(seen, [...Array(10).keys()]);
  t.same(batches, [4, 4, 2], 'at most ring.batch per call');
  t.equal(a.written.length, 10);
  t.equal(b.stats().rxPackets, 10);
  t.equal(b.stats().rxBatches, 3);
  t.equal(a.stats().txBytes, 1000);

  a.start(() => undefined);
  a.inject(Buffer.alloc(3000)); // over the 2008-byte slot room
  await settle();
  t.equal(a.stats().rxTruncated, 1);
  a.close();
  b.close();
  t.throws(() => a.send(batch(1, 10)), { code: 'ERR_NATIVE' });
});

t.test('fake IPv6 network: addresses, unreachable, Packet Too Big', async (t) => {
  const net = new FakeNet6({ mtu: 1280 });
  const prr = net.socket({ bind: '::', addresses: ['2001:db8::1', '2001:db8::2'] });
  const cpe = net.socket({ bind: '2001:db8:1::2' });
  const got: Array<[string, string, number]> = [];
  prr.start((n) => {
    for (let i = 0; i < n; i++) got.push([formatIpv6(prr.ring.srcs, 16 * i), formatIpv6(prr.ring.dsts, 16 * i), prr.ring.lens[i]!]);
  });
  const errors: Icmp6ErrorReport[] = [];
  cpe.onError((e) => errors.push(e));
  const back: string[] = [];
  cpe.start((n) => {
    for (let i = 0; i < n; i++) back.push(formatIpv6(cpe.ring.srcs, 16 * i));
  });

  t.equal(cpe.send(batch(2, 60, '2001:db8::2')), 2);
  await settle();
  t.same(got, [['2001:db8:1::2', '2001:db8::2', 60], ['2001:db8:1::2', '2001:db8::2', 60]], 'srcs and dsts');

  cpe.send(batch(1, 60, '2001:db8:99::1'));
  await settle();
  t.match(errors[0], { origin: 'icmp6', type: 1, code: 3, dst: '2001:db8:99::1', offender: '2001:db8::ffff' });
  t.equal(errors[0]!.payload.length, 60);

  cpe.setPmtuDiscover('do');
  t.equal(cpe.pathMtu('2001:db8::1'), 1280);
  t.equal(cpe.send(batch(1, 1400, '2001:db8::1')), 1, 'sent, lost in the network');
  await settle();
  t.match(errors[1], { origin: 'icmp6', type: 2, info: 1280, dst: '2001:db8::1' });
  t.equal(cpe.send(batch(1, 1400, '2001:db8::1')), 0, 'now fails locally');
  await settle();
  t.match(errors[2], { origin: 'local', info: 1280, offender: null });
  t.equal(cpe.stats().txEmsgsize, 1);
  t.equal(cpe.stats().errqueueMessages, 3);

  // Reply from the address the CPE used (srcs), as the PRR does.
  const reply = batch(1, 60, '2001:db8:1::2', '2001:db8::2');
  t.equal(prr.send(reply), 1);
  await settle();
  t.same(back, ['2001:db8::2'], 'source chosen per packet');
  t.throws(() => prr.send({ ...reply, dsts: undefined }), { code: 'ERR_NATIVE' }, 'dsts are required');
  cpe.close();
  prr.send(reply);
  await settle();
  t.same(back, ['2001:db8::2'], 'a closed socket receives nothing');
  prr.close();
  cpe.close();
});
