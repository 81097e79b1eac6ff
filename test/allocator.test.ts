import t from 'tap';
import { PoolExhaustedError, PortSetError } from '../common/errors.js';
import { PortAllocator } from '../common/allocator.js';
import { PsidSet, parsePortSet } from '../common/portset.js';

const any = { allowSystemPorts: true };

const A0 = 0xc0000200; // 192.0.2.0

t.test('allocator: fills one address before the next, then runs out', async (t) => {
  const pool = new PortAllocator([A0 + 2, A0 + 1], { kind: 'range', size: 1000 });
  t.equal(pool.slotsPerAddress, 64);
  t.equal(pool.capacity, 128);
  const first = pool.allocate();
  t.equal(first.addr, A0 + 1, 'lowest address first');
  t.equal(first.set.toString(), '1024-2023');
  for (let i = 1; i < 64; i++) t.equal(pool.allocate().addr, A0 + 1);
  t.same(pool.usage(A0 + 1), { total: 64, allocated: 64, free: 0 });
  const next = pool.allocate();
  t.equal(next.addr, A0 + 2);
  t.equal(next.set.toString(), '1024-2023');
  for (let i = 1; i < 64; i++) pool.allocate();
  t.equal(pool.allocated, 128);
  t.throws(() => pool.allocate(), PoolExhaustedError);
  t.throws(() => pool.allocate(), /no free port set \(1000 ports from 1024\) left in 2 shared IPv4 addresses/);
  pool.release(A0 + 2, parsePortSet('33024-34023'));
  pool.release(A0 + 1, parsePortSet('5024-6023'));
  t.same(pool.usage(A0 + 1), { total: 64, allocated: 63, free: 1 });
  const again = pool.allocate();
  t.same([again.addr, again.set.toString()], [A0 + 1, '5024-6023'], 'a freed slot is reused, lowest address first');
  t.equal(pool.allocate().set.toString(), '33024-34023');
  t.throws(() => pool.release(A0 + 1, parsePortSet('5024-6024')), /192\.0\.2\.1 5024-6024 is not allocated/);
});

t.test('allocator: PSID policy hands out PSIDs in order', async (t) => {
  const pool = new PortAllocator([A0 + 1], { kind: 'psid', k: 6 });
  t.equal(pool.slotsPerAddress, 64);
  const sets = Array.from({ length: 64 }, () => pool.allocate().set);
  t.same(sets.slice(0, 3).map(String), ['psid:a=6/k=6/id=0', 'psid:a=6/k=6/id=1', 'psid:a=6/k=6/id=2']);
  t.equal(sets.some((x, i) => sets.some((y, j) => i !== j && x.overlaps(y))), false, 'no two overlap');
  t.throws(() => pool.allocate(), PoolExhaustedError);
  t.ok(pool.contains(A0 + 1));
  t.notOk(pool.contains(A0 + 2));
  // A range in a PSID pool: 1024-1055 holds the first 16-port runs of PSIDs 0 and 1 (m = 4).
  const psids = new PortAllocator([A0 + 1], { kind: 'psid', k: 6 });
  psids.reserve(A0 + 1, parsePortSet('1024-1055'));
  psids.reserve(A0 + 1, parsePortSet('0-1023', any)); // A = 0: in no PSID, touches no slot
  t.same(psids.usage(A0 + 1), { total: 64, allocated: 2, free: 62 });
  t.equal(psids.allocate().set.toString(), 'psid:a=6/k=6/id=2');
  t.throws(() => new PortAllocator([A0], { kind: 'psid', k: 6, a: 0 }), /below 1024/);
  t.throws(() => new PortAllocator([A0], { kind: 'range', size: 70000 }), PortSetError);
  t.throws(() => new PortAllocator([A0, A0], { kind: 'range', size: 1000 }), /listed twice/);
});

t.test('allocator: static reservations', async (t) => {
  const pool = new PortAllocator([A0 + 1, A0 + 2], { kind: 'range', size: 1000 });
  // 10000-11000 touches slots 8 (9024-10023) and 9 (10024-11023).
  pool.reserve(A0 + 1, parsePortSet('10000-11000'));
  t.same(pool.usage(A0 + 1), { total: 64, allocated: 1, free: 62 });
  const got = Array.from({ length: 10 }, () => pool.allocate().set.toString());
  t.notOk(got.includes('9024-10023') || got.includes('10024-11023'), 'touched slots are skipped');
  t.equal(got[8], '11024-12023');
  // The original's second range shares slot 9 with the first reservation: fine, no port overlaps.
  pool.reserve(A0 + 1, parsePortSet('11001-11023'));
  t.throws(() => pool.reserve(A0 + 1, parsePortSet('10500-10600')), /192\.0\.2\.1 10500-10600 overlaps 192\.0\.2\.1 10000-11000 \(reserved\)/);
  t.throws(() => pool.reserve(A0 + 1, parsePortSet('2000-2100')), /192\.0\.2\.1 2000-2100 overlaps 192\.0\.2\.1 1024-2023 \(allocated\)/);
  t.throws(() => pool.reserve(A0 + 1, parsePortSet('1024-2023')), PortSetError, 'an allocated slot cannot be reserved');
  t.throws(() => pool.reserve(A0 + 9, parsePortSet('20000-21000')), /192\.0\.2\.9 is not in the shared IPv4 pool/);
  // Releasing the first frees slot 8, while slot 9 stays blocked by 11001-11023.
  pool.release(A0 + 1, parsePortSet('10000-11000'));
  t.equal(pool.allocate().set.toString(), '9024-10023');
  t.equal(pool.allocate().set.toString(), '13024-14023');
  pool.release(A0 + 1, parsePortSet('11001-11023'));
  t.equal(pool.allocate().set.toString(), '10024-11023');
  // A reservation that is exactly a slot takes the slot.
  pool.reserve(A0 + 2, parsePortSet('1024-2023'));
  t.equal(pool.allocate().addr, A0 + 1);
  t.same(pool.usage(A0 + 2), { total: 64, allocated: 1, free: 63 });
  pool.release(A0 + 2, parsePortSet('1024-2023'));
  t.same(pool.usage(A0 + 2), { total: 64, allocated: 0, free: 64 });
  // A PSID set in a range pool touches every slot it has a port in.
  pool.reserve(A0 + 2, new PsidSet(6, 4, 1));
  t.equal(pool.usage(A0 + 2).free, 0, 'psid k=4 has ports in all 64 slots of 1000');
  t.throws(() => pool.release(A0 + 2, new PsidSet(6, 4, 2)), /is not allocated/);
  pool.release(A0 + 2, new PsidSet(6, 4, 1));
  t.equal(pool.usage(A0 + 2).free, 64);
});

t.test('allocator: 1,048,576 allocations (16384 addresses x 64 sets of 1000 ports)', async (t) => {
  const base = 0x0a000000; // 10.0.0.0/18: a unit test, no packet leaves
  const n = 16384;
  const pool = new PortAllocator(Array.from({ length: n }, (_, i) => base + i), { kind: 'range', size: 1000 });
  const seen = new Uint8Array(n * 64);
  let dup = 0;
  let order = 0;
  for (let i = 0; i < n * 64; i++) {
    const { addr, set } = pool.allocate();
    const key = (addr - base) * 64 + ((set.min - 1024) / 1000);
    if (seen[key] === 1) dup++;
    seen[key] = 1;
    if (key !== i) order++;
  }
  t.equal(pool.allocated, 1048576);
  t.equal(dup, 0, 'no set handed out twice');
  t.equal(order, 0, 'addresses fill in order, slots in order');
  t.throws(() => pool.allocate(), PoolExhaustedError);
  t.ok(pool.footprintBytes < 512 * 1024, `memory-light: ${pool.footprintBytes} bytes for 1M sets`);
  pool.release(base + 9000, parsePortSet('7024-8023'));
  t.same(pool.allocate(), { addr: base + 9000, set: parsePortSet('7024-8023') });
});
