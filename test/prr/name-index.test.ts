// The binding table's names (prr/name-index.ts): UTF-8 bytes in one heap, an index by name, under
// churn against a plain model (heap growth, compaction, deleted slots, rehash).
import t from 'tap';
import { NameIndex } from '../../prr/name-index.js';

t.test('set, setBytes, is, first/next in the order added, remove', async (t) => {
  const ix = new NameIndex(16);
  ix.set(0, 'a');
  ix.set(1, 'b');
  const raw = Buffer.from('xx a\nünï€', 'utf8');
  ix.setBytes(2, raw, 3, 4); // "a"
  ix.setBytes(3, raw, 5, raw.length); // "ünï€"
  t.equal(ix.nameOf(2), 'a');
  t.equal(ix.nameOf(3), 'ünï€');
  t.equal(ix.first('ünï€'), 3);
  t.ok(ix.is(3, 'ünï€') && !ix.is(3, 'ünï') && !ix.is(0, 'b'));
  t.equal(ix.first('a'), 0);
  t.equal(ix.next(0), 2);
  t.equal(ix.next(2), -1);
  ix.remove(0);
  t.equal(ix.first('a'), 2, 'the next of the name heads it');
  t.equal(ix.nameOf(0), undefined);
  ix.remove(2);
  t.equal(ix.first('a'), -1);
  t.equal(ix.first('nope'), -1);
  ix.set(0, '');
  t.equal(ix.first(''), 0, 'an empty name is a name');
  const long = 'L'.repeat(5000);
  ix.set(2, long);
  t.equal(ix.nameOf(2), long, 'longer than the scratch buffer and the heap');
  t.equal(ix.first(long), 2);
  t.equal(ix.nameOf(99), undefined, 'beyond the ids');
});

t.test('churn against a plain model: names, order, heap compaction, slot reuse', async (t) => {
  const CAP = 512;
  const ix = new NameIndex(16);
  let cap = 16;
  let seed = 99;
  const rnd = (n: number): number => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  const model = new Map<number, string>();
  const order: number[] = []; // ids in the order they were named
  let bad = 0;
  let maxBytes = 0;
  for (let step = 0; step < 60_000; step++) {
    const id = rnd(CAP);
    if (id >= cap) {
      while (cap <= id) cap *= 2;
      ix.grow(cap);
    }
    if (model.has(id)) {
      ix.remove(id);
      model.delete(id);
      order.splice(order.indexOf(id), 1);
    } else {
      // Names of 1 to 40 characters, some shared by several ids, some not ASCII.
      const name = `${'n'.repeat(1 + rnd(30))}${rnd(50)}${rnd(4) === 0 ? 'é' : ''}`;
      if (rnd(2) === 0) ix.set(id, name);
      else {
        const b = Buffer.from(`>${name}<`);
        ix.setBytes(id, b, 1, b.length - 1);
      }
      model.set(id, name);
      order.push(id);
    }
    if (step > 1000) maxBytes = Math.max(maxBytes, ix.bytes());
    if (step % 997 !== 0) continue;
    for (let i = 0; i < cap; i++) if (ix.nameOf(i) !== model.get(i)) bad++;
    for (const name of new Set(model.values())) {
      const got: number[] = [];
      for (let x = ix.first(name); x >= 0; x = ix.next(x)) got.push(x);
      if (JSON.stringify(got) !== JSON.stringify(order.filter((x) => model.get(x) === name))) bad++;
    }
  }
  t.ok(model.size > 100, `${model.size} names at the end`);
  t.equal(bad, 0, 'every id has its name; every name its ids, in the order added');
  t.ok(maxBytes < 200_000, `memory stays bounded under churn: at most ${maxBytes} bytes`);
});
