/**
 * prr/addr-index.ts: IPv4 address -> dense slot, against a Map under random adds and deletes
 * (deleted entries in probe chains, slot reuse, growth), with addresses above 2^31.
 */
import t from 'tap';
import { AddrIndex } from '../../prr/addr-index.js';

t.test('agrees with a Map under churn; slots are dense and reused', async (t) => {
  const ix = new AddrIndex();
  const model = new Map<number, number>();
  let x = 99;
  const rnd = (): number => (x = (Math.imul(x, 1103515245) + 12345) >>> 0);
  let bad = 0;
  for (let step = 0; step < 20_000; step++) {
    const ip = (0xc0000200 + (rnd() % 700)) >>> 0; // 192.0.2.0 and up: above 2^31
    if (rnd() % 3 === 0) {
      const s = ix.delete(ip);
      if (s !== (model.get(ip) ?? -1)) bad++;
      model.delete(ip);
    } else {
      const s = ix.add(ip);
      if (model.has(ip) ? s !== model.get(ip) : [...model.values()].includes(s)) bad++;
      model.set(ip, s);
    }
    if (ix.get(ip) !== (model.get(ip) ?? -1)) bad++;
  }
  t.equal(bad, 0, 'every answer as the Map\'s');
  t.equal(ix.size, model.size);
  for (const [ip, s] of model) if (ix.get(ip) !== s) bad++;
  t.equal(bad, 0, 'every address held, at its slot');
  t.same(new Map(ix.entries()), model, 'entries()');
  t.ok(ix.slotLimit <= 700, `slots reused: at most one per distinct address (${ix.slotLimit})`);
  t.equal(ix.get(0x0a000001), -1, 'an address never added');
  t.equal(ix.delete(0x0a000001), -1, 'deleting it changes nothing');
});
