/**
 * prr/port-activity.ts: distinct ports seen in the window, per port set and per address; the two
 * generations age out as the epoch advances; PSID sets count only their own ports.
 */
import t from 'tap';
import { PortRange, PsidSet } from '../../common/portset.js';
import { PortActivity } from '../../prr/port-activity.js';

const A = 0xc0000264; // 192.0.2.100
const B = 0xc0000265;

t.test('distinct ports per set and per address; repeats count once', async (t) => {
  const p = new PortActivity();
  for (const port of [10000, 10001, 10001, 10031, 10032, 11000, 11001]) p.mark(A, port);
  p.mark(B, 10000);
  t.equal(p.count(A, new PortRange(10000, 11000)), 5, '10000, 10001, 10031, 10032, 11000');
  t.equal(p.count(A, new PortRange(11001, 12000)), 1, '11001');
  t.equal(p.count(A, new PortRange(10001, 10031)), 2, 'range edges inside one word');
  t.equal(p.count(A, new PortRange(10002, 10030)), 0, 'nothing between');
  t.equal(p.countAddress(A), 6, 'per address');
  t.equal(p.countAddress(B), 1, 'the other address is apart');
  t.equal(p.count(0xc0000266, new PortRange(0, 65535, { allowSystemPorts: true })), 0, 'an address never seen');
  p.mark(A, 0);
  p.mark(A, 65535);
  t.equal(p.count(A, new PortRange(0, 65535, { allowSystemPorts: true })), 8, 'ports 0 and 65535 (word edges)');
  t.equal(p.bytes(), 2 * 16384, '16 KiB per address with traffic');
});

t.test('the window: a port stays active for one to two half-windows, then ages out', async (t) => {
  const p = new PortActivity();
  const set = new PortRange(10000, 10999);
  p.mark(A, 10000);
  p.rotate();
  t.equal(p.count(A, set), 1, 'one rotation later (no traffic since): still active');
  p.mark(A, 10001);
  t.equal(p.count(A, set), 2, 'old generation and new one together');
  p.rotate();
  t.equal(p.count(A, set), 1, 'two rotations after 10000: it is gone, 10001 stays');
  p.rotate();
  t.equal(p.count(A, set), 0, 'everything aged out');
  t.equal(p.countAddress(A), 0, 'per address too');
  p.mark(A, 10002);
  t.equal(p.count(A, set), 1, 'after a long silence only the new port (stale bits cleared)');
  for (let i = 0; i < 5; i++) p.rotate();
  p.mark(A, 10003);
  t.equal(p.count(A, set), 1, 'both generations cleared after many rotations');
});

t.test('PSID sets: only the set\'s own ports count', async (t) => {
  const p = new PortActivity();
  const mine = new PsidSet(6, 8, 52); // a=6, k=8: runs of 4 ports
  const other = new PsidSet(6, 8, 53);
  const [first] = mine.chunks()[0]!;
  const [otherFirst] = other.chunks()[0]!;
  p.mark(A, first);
  p.mark(A, first + 3);
  p.mark(A, otherFirst);
  t.equal(p.count(A, mine), 2, 'two of PSID 52');
  t.equal(p.count(A, other), 1, 'one of PSID 53');
});

t.test('prune forgets addresses that are no longer shared', async (t) => {
  const p = new PortActivity();
  p.mark(A, 10000);
  p.mark(B, 10000);
  p.prune((ip) => ip === B);
  t.equal(p.countAddress(A), 0);
  t.equal(p.countAddress(B), 1);
  t.equal(p.bytes(), 16384);
  p.mark(A, 10001); // the one-entry cache was A's: a new bitmap, not the pruned one
  t.equal(p.countAddress(A), 1);
});

t.test('peek reads the word mark would change, and marks nothing', async (t) => {
  const p = new PortActivity();
  t.equal(p.peek(A, 10000), 0, 'an address never seen');
  t.equal(p.countAddress(A), 0, 'peek did not make the address active');
  p.mark(A, 10001);
  t.equal(p.peek(A, 10000), 1 << (10001 & 31), 'the word of ports 9984-10015, port 10001 set');
  t.equal(p.peek(A, 10050), 0, 'another word');
  p.mark(B, 5);
  t.equal(p.peek(A, 10000), 1 << (10001 & 31), 'not the last address marked');
  t.equal(p.countAddress(A), 1, 'still one port');
});

t.test('bitmaps in chunks: a pruned address\'s slot is reused with its old bits cleared; chunks are advised', async (t) => {
  const advised: number[] = [];
  const p = new PortActivity({ adviseMemory: (b) => advised.push(b.byteLength) });
  for (let i = 0; i < 1500; i++) p.mark(0xc6336400 + i, i); // two chunks of 1024 addresses
  t.same(advised, [16 << 20, 16 << 20], 'each 16 MiB chunk advised once');
  p.prune((ip) => ip !== 0xc6336400 + 7);
  p.mark(0xcb007101, 20);
  t.equal(p.countAddress(0xcb007101), 1, 'the new address has only its own port');
  t.equal(p.countAddress(0xc6336400 + 8), 1, 'the others keep theirs');
  t.equal(p.bytes(), 1500 * 16384, '16 KiB per address');
});
