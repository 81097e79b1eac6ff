import t from 'tap';
import { PortSetError } from '../common/errors.js';
import {
  bindingKey,
  isValidPortSet,
  parsePortSet,
  PortClaims,
  PortRange,
  PsidSet,
  type PortSet,
} from '../common/portset.js';

/** Runs of consecutive ports for which `has` is true, found by brute force over 0..65535. */
function runsOf(set: PortSet): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let p = 0; p <= 65535; p++) {
    if (!set.has(p)) continue;
    const last = out[out.length - 1];
    if (last !== undefined && last[1] === p - 1) last[1] = p;
    else out.push([p, p]);
  }
  return out;
}
const any = { allowSystemPorts: true };

t.test('text form: parse and print', async (t) => {
  const cases: Array<[string, string]> = [
    ['10000-11000', '10000-11000'],
    [' 11001 - 12000 ', '11001-12000'],
    ['20000', '20000-20000'],
    ['psid:a=6/k=8/id=52', 'psid:a=6/k=8/id=52'],
    ['psid:k=8/id=0x34', 'psid:a=6/k=8/id=52'],
    ['PSID:id=5/k=6/a=4', 'psid:a=4/k=6/id=5'],
  ];
  for (const [text, canon] of cases) {
    const set = parsePortSet(text);
    t.equal(set.toString(), canon, text);
    t.ok(parsePortSet(canon).equals(set), `${canon} round-trips`);
  }
  t.equal(parsePortSet('10000-11000').kind, 'range');
  t.equal(parsePortSet('psid:k=8/id=1').kind, 'psid');
  t.same(parsePortSet('psid:k=8/id=0x34').psid, { offset: 6, length: 8, id: 0x34 });
  t.equal(parsePortSet('10000-11000').psid, undefined);
});

t.test('text form: errors are PortSetError with the reason', async (t) => {
  const bad: Array<[string, RegExp]> = [
    ['', /expected "first-last"/],
    ['10000-', /expected "first-last"/],
    ['abc', /expected "first-last"/],
    ['10000,11000', /expected "first-last"/],
    ['12000-11000', /first port is above last port/],
    ['60000-70000', /ports are integers 0\.\.65535/],
    ['1000-2000', /system ports/],
    ['0-65535', /system ports/],
    ['psid:a=0/k=6/id=0', /system ports/],
    ['psid:a=8/k=8/id=0', /system ports/], // a = 8 leaves 256-511 in A = 1
    ['psid:a=6/k=11/id=0', /a \+ k <= 16/],
    ['psid:k=8/id=256', /PSID must be 0\.\.255/],
    ['psid:k=8', /expected "first-last"/],
    ['psid:k=8/id=1/k=9', /expected "first-last"/],
    ['psid:k=8,id=1', /expected "first-last"/],
  ];
  for (const [text, re] of bad) {
    t.throws(() => parsePortSet(text), PortSetError, text);
    t.throws(() => parsePortSet(text), re, text);
    t.equal(isValidPortSet(text), false, text);
  }
  t.equal(parsePortSet('1000-2000', any).size, 1001);
  t.equal(parsePortSet('psid:a=0/k=6/id=0', any).min, 0);
  t.equal(isValidPortSet('10000-11000'), true);
  t.throws(() => new PortRange(1.5, 2000, any), PortSetError);
});

t.test('the 2010 ranges: 10000-11000 and 11001-12000', async (t) => {
  const a = parsePortSet('10000-11000');
  const b = parsePortSet('11001-12000');
  t.equal(a.size, 1001);
  t.equal(b.size, 1000);
  t.notOk(a.overlaps(b));
  t.notOk(b.overlaps(a));
  t.ok(a.has(10000) && a.has(11000) && !a.has(9999) && !a.has(11001));
  t.ok(a.overlaps(parsePortSet('11000-11001')));
  t.same(a.chunks(), [[10000, 11000]]);
  t.notOk(a.equals(b));
});

// RFC 7597 Appendix A, the Basic Mapping Rule example (offset 6, PSID length 8, PSID 0x34); the
// same list appears in RFC 7599 Appendix A (errata 5324):
//   "Available ports (63 ranges): 1232-1235, 2256-2259, ...... , 63696-63699, 64720-64723"
t.test('RFC 7597 Appendix A example: a=6, k=8, PSID=0x34', async (t) => {
  const set = parsePortSet('psid:a=6/k=8/id=0x34');
  const chunks = set.chunks();
  t.equal(chunks.length, 63, '63 ranges');
  t.same(chunks.slice(0, 2), [[1232, 1235], [2256, 2259]]);
  t.same(chunks.slice(-2), [[63696, 63699], [64720, 64723]]);
  t.equal(set.size, 63 * 4);
  t.equal(set.min, 1232);
  t.equal(set.max, 64723);
  t.ok(set.has(1232) && set.has(1235) && set.has(64723));
  t.notOk(set.has(1236));
  t.notOk(set.has(0x34 * 4), 'A = 0 (port 208) is excluded');
  t.same(chunks, runsOf(set), 'chunks() agrees with has()');
});

// RFC 7597 §5.1 (Figure 2): port = A·2^(16-a) + PSID·2^m + j, with A > 0 when a > 0. With the
// default a = 6 the 2^k PSIDs share 1024-65535 exactly, without overlap, and 0-1023 belong to none.
t.test('RFC 7597 §5.1: a=6 partitions 1024-65535 among the PSIDs', async (t) => {
  for (const k of [0, 4, 6, 10]) {
    const owners = new Uint8Array(65536);
    for (let id = 0; id < 2 ** k; id++) {
      const set = new PsidSet(6, k, id);
      t.equal(set.size, (65536 - 1024) / 2 ** k);
      for (const [first, last] of set.chunks()) for (let p = first; p <= last; p++) owners[p] = (owners[p] ?? 0) + 1;
    }
    t.equal(owners.subarray(0, 1024).every((n) => n === 0), true, `k=${k}: 0-1023 belong to no PSID`);
    t.equal(owners.subarray(1024).every((n) => n === 1), true, `k=${k}: each of 1024-65535 to exactly one`);
  }
  t.same(new PsidSet(6, 0, 0).chunks(), [[1024, 65535]], 'k=0: one run 1024-65535');
  t.ok(new PsidSet(6, 0, 0).equals(parsePortSet('1024-65535')));
  t.ok(new PsidSet(0, 0, 0, any).equals(parsePortSet('0-65535', any)));
});

t.test('chunks() and has() agree for every shape', async (t) => {
  const shapes: Array<[number, number, number]> = [
    [6, 8, 0x34], [6, 6, 0], [6, 6, 63], [4, 6, 5], [0, 6, 5], [0, 16, 4242], [10, 6, 7], [6, 10, 1023], [1, 3, 2], [5, 0, 0],
  ];
  for (const [a, k, id] of shapes) {
    const set = new PsidSet(a, k, id, any);
    const runs = runsOf(set);
    t.same(set.chunks(), runs, `a=${a} k=${k} id=${id}`);
    t.equal(set.size, runs.reduce((n, [f, l]) => n + l - f + 1, 0));
    t.equal(set.min, runs[0]?.[0]);
    t.equal(set.max, runs[runs.length - 1]?.[1]);
  }
});

t.test('overlaps(), checked against brute force', async (t) => {
  const sets: PortSet[] = [
    parsePortSet('10000-11000'),
    parsePortSet('1232-1232'),
    parsePortSet('1236-2255'),
    parsePortSet('64720-65535'),
    new PsidSet(6, 8, 0x34),
    new PsidSet(6, 8, 0x35),
    new PsidSet(6, 4, 3), // 0x34 >> 4: a superset of 0x34's ports
    new PsidSet(6, 4, 2),
    new PsidSet(4, 6, 13),
    new PsidSet(0, 6, 40, any),
    new PsidSet(10, 6, 1, any),
    new PsidSet(8, 2, 1, any),
  ];
  for (const x of sets) {
    for (const y of sets) {
      let truth = false;
      for (let p = 0; p <= 65535 && !truth; p++) truth = x.has(p) && y.has(p);
      t.equal(x.overlaps(y), truth, `${x} vs ${y}`);
    }
  }
  t.ok(new PsidSet(6, 4, 3).overlaps(new PsidSet(6, 8, 0x34)));
  t.notOk(new PsidSet(6, 8, 0x34).overlaps(new PsidSet(6, 8, 0x35)));
});

t.test('equals() compares ports, not spelling', async (t) => {
  t.ok(parsePortSet('psid:a=6/k=8/id=52').equals(new PsidSet(6, 8, 52)));
  t.notOk(new PsidSet(6, 8, 52).equals(new PsidSet(6, 8, 53)));
  t.ok(new PsidSet(0, 6, 40, any).equals(parsePortSet('40960-41983')), 'a=0: one contiguous run');
  t.notOk(new PsidSet(0, 6, 40, any).equals(parsePortSet('40960-41982')));
  t.notOk(new PsidSet(6, 8, 52).equals(parsePortSet('1232-1235')));
});

t.test('bindingKey packs (ipv4, port) into one exact number', async (t) => {
  t.equal(bindingKey(0xc0000201, 10000), 0xc0000201 * 65536 + 10000);
  t.equal(bindingKey(0xffffffff, 65535), 2 ** 48 - 1);
  t.ok(Number.isSafeInteger(bindingKey(0xffffffff, 65535)));
  t.not(bindingKey(1, 0), bindingKey(0, 65535));
});

t.test('PortClaims: a set is taken whole or not at all, checked against brute force', async (t) => {
  let seed = 99;
  const rnd = (n: number): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % n);
  const claims = new PortClaims();
  const taken = new Uint8Array(65536);
  let refused = 0;
  for (let i = 0; i < 300; i++) {
    const first = rnd(65536);
    const set = rnd(2) === 0 ? new PortRange(first, Math.min(65535, first + rnd(700)), any) : new PsidSet(rnd(7), 1 + rnd(10), 0, any);
    const psid = set.psid;
    const s = psid === undefined ? set : new PsidSet(psid.offset, psid.length, rnd(2 ** psid.length), any);
    let free = true;
    for (const [a, b] of s.chunks()) for (let p = a; p <= b; p++) if (taken[p]) free = false;
    t.equal(claims.claim(s), free, `${s}: ${free ? 'taken' : 'refused'}`);
    if (free) for (const [a, b] of s.chunks()) taken.fill(1, a, b + 1);
    else refused++;
  }
  t.ok(refused > 0, `some refused (${refused})`);
});
