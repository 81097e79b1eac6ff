import t from 'tap';
import { BindingTable, NO_BINDING, NOT_SHARED, type BindingInput } from '../../prr/bindings.js';
import { PortRange, PsidSet, parsePortSet, type PortSet } from '../../common/portset.js';

const V4 = 0xc0000201; // 192.0.2.1
const v6 = (n: number): Buffer => {
  const b = Buffer.alloc(16);
  b.writeUInt32BE(0x20010db8, 0);
  b.writeUInt32BE(n, 12);
  return b;
};
const bind = (subscriber: string, n: number, ports: PortSet, ipv4 = V4): BindingInput => ({ subscriber, ipv6: v6(n), ipv4, ports });

/** Reference answer: scan every binding's set. */
function brute(tbl: BindingTable, ipv4: number, port: number): number {
  let shared = false;
  for (const id of tbl.ids()) {
    if (tbl.ipv4Of(id) !== ipv4) continue;
    shared = true;
    if (tbl.portsOf(id)!.has(port)) return id;
  }
  return shared ? NO_BINDING : NOT_SHARED;
}

t.test('the original layout: two CPEs share one address with 10000-11000 and 11001-12000', async (t) => {
  const tbl = new BindingTable();
  const c1 = tbl.add(bind('cpe1', 1, new PortRange(10000, 11000)));
  const c2 = tbl.add(bind('cpe2', 2, new PortRange(11001, 12000)));
  for (const [port, want] of [[9999, NO_BINDING], [10000, c1], [10500, c1], [11000, c1], [11001, c2], [12000, c2], [12001, NO_BINDING], [0, NO_BINDING], [65535, NO_BINDING]] as const) {
    t.equal(tbl.lookupPort(V4, port), want, `port ${port}`);
  }
  t.equal(tbl.lookupPort(V4 + 1, 10000), NOT_SHARED, 'another address is not shared');
  t.equal(tbl.lookupIpv6(v6(1), 0), c1);
  t.equal(tbl.lookupIpv6(v6(2), 0), c2);
  t.equal(tbl.lookupIpv6(v6(3), 0), NO_BINDING);
  t.ok(tbl.ipv6Is(c1, v6(1), 0));
  t.notOk(tbl.ipv6Is(c1, v6(2), 0));
  t.throws(() => tbl.add(bind('cpe3', 3, new PortRange(10990, 11010))), /overlap subscriber cpe1/, 'overlap refused');
  t.equal(tbl.size, 2, 'refused add changed nothing');
  t.equal(tbl.lookupPort(V4, 11005), c2);
});

t.test('PSID mode: arithmetic lookup, reserved ports miss', async (t) => {
  const tbl = new BindingTable();
  const ids: number[] = [];
  for (let psid = 0; psid < 64; psid += 3) ids[psid] = tbl.add(bind(`p${psid}`, psid + 10, new PsidSet(6, 6, psid)));
  for (let port = 0; port < 65536; port += 7) t.equal(tbl.lookupPort(V4, port), brute(tbl, V4, port), `port ${port}`);
  t.equal(tbl.lookupPort(V4, 80), NO_BINDING, 'A = 0 ports belong to nobody');
  t.equal(tbl.lookupPort(V4, 1024 + 3 * 16), ids[3], 'first port of PSID 3');
});

t.test('mixed shapes on one address fall back to block mode and stay exact', async (t) => {
  const tbl = new BindingTable();
  tbl.add(bind('a', 1, new PsidSet(6, 6, 1)));
  tbl.add(bind('b', 2, new PsidSet(6, 6, 2)));
  tbl.add(bind('c', 3, new PsidSet(6, 4, 15))); // other k: block mode
  tbl.add(bind('d', 4, new PortRange(64000, 64003))); // inside PSID 15 of k=4? check exactness anyway
  let bad = 0;
  for (let port = 0; port < 65536; port++) if (tbl.lookupPort(V4, port) !== brute(tbl, V4, port)) bad++;
  t.equal(bad, 0, 'every port agrees with a scan of the sets');
});

t.test('random adds, changes and removes agree with a brute-force model', async (t) => {
  const tbl = new BindingTable(16);
  let seed = 7;
  const rnd = (n: number): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % n);
  const addrs = [V4, V4 + 1, V4 + 2];
  const live = new Map<string, number>();
  let refused = 0;
  for (let step = 0; step < 600; step++) {
    const op = rnd(10);
    const name = `s${rnd(80)}`;
    const first = 1024 + rnd(60000);
    const set = rnd(3) === 0 ? new PsidSet(6, 6, rnd(64)) : new PortRange(first, Math.min(65535, first + rnd(3000)));
    const input = bind(name, rnd(40), set, addrs[rnd(3)]!);
    try {
      if (live.has(name) && op < 3) {
        tbl.remove(live.get(name)!);
        live.delete(name);
      } else if (live.has(name)) {
        const id = live.get(name)!;
        tbl.change(id, input);
        t.equal(tbl.findSubscriber(name)[0], id, 'id stable across a change');
      } else {
        live.set(name, tbl.add(input));
      }
    } catch (err) {
      t.match((err as Error).message, /overlap/);
      refused++;
    }
  }
  t.ok(refused > 0, `some overlaps were refused (${refused})`);
  t.equal(tbl.size, live.size);
  let bad = 0;
  for (const a of addrs) for (let port = 0; port < 65536; port += 13) if (tbl.lookupPort(a, port) !== brute(tbl, a, port)) bad++;
  t.equal(bad, 0, 'port index agrees with the sets');
  // IPv6 index: every live binding is reachable through its address chain.
  for (const id of tbl.ids()) {
    let found = false;
    for (let x = tbl.lookupIpv6(tbl.ipv6Of(id), 0); x !== NO_BINDING; x = tbl.nextOfIpv6(x)) if (x === id) found = true;
    t.ok(found, `binding ${id} found by its IPv6 address`);
  }
});

t.test('neighbouring ranges that split 64-port blocks, and the name index, under churn', async (t) => {
  // 100-port slots, trimmed at either end now and then: most 64-port blocks are shared by two
  // bindings (a split), some by more (a fine table). Every port of every slot and every name's
  // ids are checked against a plain model after adds, removes and renames.
  const tbl = new BindingTable(16);
  let seed = 12345;
  const rnd = (n: number): number => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  const live = new Map<number, { name: string; slot: number; lo: number; hi: number }>();
  const byName = new Map<string, number[]>();
  const used = new Set<number>();
  const SLOTS = 640;
  const slotPort = (slot: number): number => 1024 + (slot & 63) * 100;
  let portBad = 0;
  let nameBad = 0;
  for (let step = 0; step < 6000; step++) {
    const op = rnd(10);
    if (op < 6 || live.size === 0) {
      const slot = rnd(SLOTS);
      if (used.has(slot)) continue;
      const lo = rnd(3) === 0 ? rnd(45) : 0;
      const hi = rnd(3) === 0 ? rnd(45) : 0;
      const name = `n${rnd(60)}`;
      const ipv6 = Buffer.alloc(16);
      ipv6.writeUInt32BE(rnd(100), 12);
      const id = tbl.add({ subscriber: name, ipv6, ipv4: V4 + (slot >> 6), ports: new PortRange(slotPort(slot) + lo, slotPort(slot) + 99 - hi) });
      used.add(slot);
      live.set(id, { name, slot, lo, hi });
      byName.set(name, [...(byName.get(name) ?? []), id]);
    } else {
      const ids = [...live.keys()];
      const id = ids[rnd(ids.length)]!;
      const b = live.get(id)!;
      byName.get(b.name)!.splice(byName.get(b.name)!.indexOf(id), 1);
      if (op < 8) {
        tbl.remove(id);
        live.delete(id);
        used.delete(b.slot);
      } else {
        b.name = `n${rnd(60)}`;
        tbl.change(id, { subscriber: b.name, ipv6: tbl.ipv6Of(id), ipv4: tbl.ipv4Of(id), ports: tbl.portsOf(id)! });
        byName.set(b.name, [...(byName.get(b.name) ?? []), id]);
      }
    }
    if (step % 499 !== 0) continue;
    const owner = new Map([...live].map(([id, b]) => [b.slot, { id, ...b }]));
    for (let slot = 0; slot < SLOTS; slot++) {
      for (let off = 0; off < 100; off++) {
        const o = owner.get(slot);
        const want = o !== undefined && off >= o.lo && off <= 99 - o.hi ? o.id : tbl.isShared(V4 + (slot >> 6)) ? NO_BINDING : NOT_SHARED;
        if (tbl.lookupPort(V4 + (slot >> 6), slotPort(slot) + off) !== want) portBad++;
      }
    }
    for (const [id, b] of live) if (tbl.subscriberOf(id) !== b.name) nameBad++;
    for (let i = 0; i < 60; i++) {
      const got = [...tbl.findSubscriber(`n${i}`)].sort((a, b) => a - b);
      const want = [...(byName.get(`n${i}`) ?? [])].sort((a, b) => a - b);
      if (JSON.stringify(got) !== JSON.stringify(want)) nameBad++;
    }
  }
  t.ok(live.size > 100, `${live.size} bindings live at the end`);
  t.equal(portBad, 0, 'every port of every slot maps to its owner, or to no binding');
  t.equal(nameBad, 0, 'every name finds exactly its bindings');
});

t.test('the IPv6 index under churn: shared addresses chained, deleted slots reused', async (t) => {
  const tbl = new BindingTable(16);
  let seed = 4242;
  const rnd = (n: number): number => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  const ADDRS = 300;
  const live = new Map<number, number>(); // id -> address number
  const freeV4: number[] = [];
  let nextV4 = V4;
  let bad = 0;
  for (let step = 0; step < 30_000; step++) {
    const op = rnd(10);
    const ids = [...live.keys()];
    if (op < 4 || ids.length < 10) {
      // A shared IPv4 address per binding: the ports never clash, only IPv6 addresses are shared.
      const a = rnd(ADDRS);
      live.set(tbl.add(bind(`c${a}`, a, new PortRange(2000, 2999), freeV4.pop() ?? nextV4++)), a);
    } else if (op < 8) {
      const id = ids[rnd(ids.length)]!;
      freeV4.push(tbl.ipv4Of(id));
      tbl.remove(id);
      live.delete(id);
    } else {
      const id = ids[rnd(ids.length)]!;
      const a = rnd(ADDRS);
      tbl.change(id, { subscriber: tbl.subscriberOf(id)!, ipv6: v6(a), ipv4: tbl.ipv4Of(id), ports: tbl.portsOf(id)! });
      live.set(id, a);
    }
    if (step % 1499 !== 0) continue;
    for (let a = 0; a < ADDRS + 5; a++) {
      const got: number[] = [];
      for (let x = tbl.lookupIpv6(v6(a), 0); x !== NO_BINDING && got.length <= live.size; x = tbl.nextOfIpv6(x)) got.push(x);
      const wanted = [...live].filter(([, b]) => b === a).map(([id]) => id);
      if (JSON.stringify(got.sort((x, y) => x - y)) !== JSON.stringify(wanted.sort((x, y) => x - y))) bad++;
    }
  }
  t.ok(live.size > 100, `${live.size} bindings live at the end`);
  t.equal(bad, 0, 'every address finds exactly its bindings; addresses without any find none');
});

t.test('addNamed: the name from bytes, as add() names it', async (t) => {
  const tbl = new BindingTable();
  const names = Buffer.from('one\nzwei\n', 'utf8');
  const a = tbl.addNamed(bind('ignored', 1, new PortRange(2000, 2999)), names, 0, 3);
  const b = tbl.addNamed(bind('ignored', 2, new PortRange(3000, 3999)), names, 4, 8);
  const c = tbl.add(bind('one', 3, new PortRange(4000, 4999)));
  t.same(tbl.findSubscriber('one'), [a, c]);
  t.same(tbl.findSubscriber('zwei'), [b]);
  t.same(tbl.findSubscriber('ignored'), []);
  t.equal(tbl.subscriberOf(b), 'zwei');
  t.equal(tbl.lookupIpv6(v6(2), 0), b);
  t.equal(tbl.lookupPort(V4, 3500), b);
  t.throws(() => tbl.add(bind('x', 4, new PortRange(3500, 3600))), /overlap subscriber zwei/);
});

t.test('a bulk load: indexes built at the end agree with adds one by one', async (t) => {
  // The same bindings into two tables, one by one and in bulk, over a few bindings made before:
  // addresses and names repeat (within the bulk and with the bindings before it).
  const one = new BindingTable(16);
  const bulk = new BindingTable(16);
  const names = Buffer.from(Array.from({ length: 3000 }, (_, i) => `n${i % 700}`).join('\n'), 'utf8');
  const at: number[] = [0];
  for (let p = 0; p < names.length; p++) if (names[p] === 10) at.push(p + 1);
  at.push(names.length + 1);
  for (const tbl of [one, bulk]) {
    for (let i = 0; i < 20; i++) tbl.add(bind(`n${i}`, i, new PortRange(2000, 2999), V4 + 10_000 + i));
  }
  bulk.beginBulk();
  let ids = 0;
  for (let i = 0; i < 3000; i++) {
    const b = bind('', i % 900, new PortRange(1024 + (i % 60) * 1000, 1024 + (i % 60) * 1000 + 999), V4 + Math.floor(i / 60));
    if (bulk.addNamed(b, names, at[i]!, at[i + 1]! - 1) === one.add({ ...b, subscriber: `n${i % 700}` })) ids++;
  }
  t.equal(ids, 3000, 'the same ids');
  t.equal(bulk.lookupIpv6(v6(899), 0), NO_BINDING, 'not indexed yet');
  bulk.endBulk();
  let bad = 0;
  for (let a = 0; a < 905; a++) {
    const chain = (tbl: BindingTable): number[] => {
      const ids: number[] = [];
      for (let x = tbl.lookupIpv6(v6(a), 0); x !== NO_BINDING; x = tbl.nextOfIpv6(x)) ids.push(x);
      return ids.sort((x, y) => x - y);
    };
    if (JSON.stringify(chain(bulk)) !== JSON.stringify(chain(one))) bad++;
  }
  for (let i = 0; i < 705; i++) if (JSON.stringify(bulk.findSubscriber(`n${i}`)) !== JSON.stringify(one.findSubscriber(`n${i}`))) bad++;
  t.equal(bad, 0, 'every address chain and every name\'s ids (in the order added) the same');
  t.same(bulk.findSubscriber('n5'), [5, 20 + 5, 20 + 705, 20 + 1405, 20 + 2105, 20 + 2805]);
  // A bulk load ended by a change, before endBulk.
  bulk.beginBulk();
  const late = bulk.addNamed(bind('', 77777, new PortRange(5000, 5999), V4 + 20_000), names, 0, 2);
  bulk.change(late, bind('n0', 77778, new PortRange(5000, 5999), V4 + 20_000));
  t.equal(bulk.lookupIpv6(v6(77778), 0), late, 'the change ended the bulk load first');
  t.equal(bulk.lookupIpv6(v6(77777), 0), NO_BINDING);
});

t.test('change keeps the id; remove frees the ports; several bindings per CPE', async (t) => {
  const tbl = new BindingTable();
  const changes: string[] = [];
  tbl.onChange = (id, what) => changes.push(`${what}:${id}`);
  const a = tbl.add(bind('a', 1, new PortRange(2000, 2999)));
  const a2 = tbl.add(bind('a', 1, new PortRange(5000, 5999)));
  t.equal(tbl.lookupIpv6(v6(1), 0) === a || tbl.lookupIpv6(v6(1), 0) === a2, true);
  t.same(new Set([tbl.lookupIpv6(v6(1), 0), tbl.nextOfIpv6(tbl.lookupIpv6(v6(1), 0))]), new Set([a, a2]), 'both in the chain');
  tbl.change(a, bind('a', 9, new PortRange(3000, 3999)));
  t.equal(tbl.lookupPort(V4, 2500), NO_BINDING, 'old ports released');
  t.equal(tbl.lookupPort(V4, 3500), a, 'new ports bound to the same id');
  t.equal(tbl.lookupIpv6(v6(9), 0), a, 'new IPv6 indexed');
  t.equal(tbl.lookupIpv6(v6(1), 0), a2, 'the other binding of the old address remains');
  t.same(tbl.findSubscriber('a'), [a, a2], 'both bindings of subscriber a by name');
  tbl.remove(a2);
  t.same(tbl.findSubscriber('a'), [a], 'one left after a remove');
  t.equal(tbl.lookupIpv6(v6(1), 0), NO_BINDING);
  t.equal(tbl.lookupPort(V4, 5500), NO_BINDING);
  tbl.change(a, bind('renamed', 9, new PortRange(3000, 3999)));
  t.same(tbl.findSubscriber('a'), [], 'old name gone after a rename');
  t.same(tbl.findSubscriber('renamed'), [a], 'new name indexed');
  tbl.remove(a);
  t.same(tbl.findSubscriber('renamed'), [], 'no name left');
  t.equal(tbl.lookupPort(V4, 3500), NOT_SHARED, 'an address with no bindings is no longer shared');
  t.same(changes, [`add:${a}`, `add:${a2}`, `change:${a}`, `remove:${a2}`, `change:${a}`, `remove:${a}`]);
  t.throws(() => tbl.change(a, bind('a', 1, parsePortSet('4000-4100'))), /does not exist/);
});

t.test('1,000,000 bindings: lookups exact, memory small', async (t) => {
  const N = 1_000_000;
  const perAddr = 63; // 63 sets of 1024 ports above 1024
  const tbl = new BindingTable(N);
  const ip = Buffer.alloc(16);
  ip.writeUInt32BE(0x20010db8, 0);
  const base = 0xc6336400; // addresses are numbers here; this table does not check prefixes
  for (let i = 0; i < N; i++) {
    ip.writeUInt32BE(i, 12);
    const slot = i % perAddr;
    tbl.add({ subscriber: `c${i}`, ipv6: ip, ipv4: base + Math.floor(i / perAddr), ports: new PortRange(1024 + slot * 1024, 1024 + slot * 1024 + 1023) });
  }
  t.equal(tbl.size, N);
  let bad = 0;
  for (let i = 0; i < N; i += 997) {
    const slot = i % perAddr;
    if (tbl.lookupPort(base + Math.floor(i / perAddr), 1024 + slot * 1024 + 500) !== i) bad++;
    ip.writeUInt32BE(i, 12);
    if (tbl.lookupIpv6(ip, 0) !== i) bad++;
  }
  t.equal(bad, 0, 'sampled lookups exact');
  const mb = tbl.bytes() / 2 ** 20;
  t.ok(mb < 256, `typed arrays of the table: ${mb.toFixed(1)} MiB`);
});

t.test('lookupPorts answers as lookupPort does, pair by pair (PSID mode, block mode, splits, fine tables, misses)', async (t) => {
  const tbl = new BindingTable();
  for (let i = 0; i < 40; i++) tbl.add(bind(`p${i}`, 1000 + i, new PsidSet(6, 6, i + 1), 0xc0000201));
  for (let i = 0; i < 40; i++) tbl.add(bind(`k${i}`, 2000 + i, new PsidSet(0, 10, i, { allowSystemPorts: true }), 0xc0000202));
  tbl.add(bind('r1', 3000, new PortRange(1024, 2047), 0xc0000203));
  tbl.add(bind('r2', 3001, new PortRange(2048, 2050), 0xc0000203)); // a fine table (three owners in a block)
  tbl.add(bind('r3', 3002, new PortRange(2051, 2100), 0xc0000203)); // a split at 2101
  const n = 5000;
  const ips = new Uint32Array(n);
  const ports = new Uint16Array(n);
  const addrs = [0xc0000201, 0xc0000202, 0xc0000203, 0xc0000204];
  let x = 12345;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    ips[i] = addrs[(x >>> 8) % 4]!;
    ports[i] = i % 3 === 0 ? 1000 + (x % 1200) : x & 0xffff;
  }
  const out = new Int32Array(n);
  tbl.lookupPorts(ips, ports, n, out);
  let same = 0;
  const kinds = new Set<number>();
  for (let i = 0; i < n; i++) {
    const want = tbl.lookupPort(ips[i]!, ports[i]!);
    if (out[i] === want) same++;
    kinds.add(want < 0 ? want : 0);
  }
  t.equal(same, n, 'every answer the same');
  t.same([...kinds].sort(), [NOT_SHARED, NO_BINDING, 0].sort(), 'bindings, unbound ports and unshared addresses were all asked');
});

t.test('port tables in shared chunks: addresses that come and go, and a PSID table turned block table, stay exact', async (t) => {
  const tbl = new BindingTable();
  const ids = new Map<number, number>(); // address -> its one binding
  let x = 7;
  const rnd = (): number => (x = (Math.imul(x, 1103515245) + 12345) >>> 0);
  for (let step = 0; step < 3000; step++) {
    const ip = 0xcb007100 + (rnd() % 60);
    const had = ids.get(ip);
    if (had !== undefined) {
      tbl.remove(had);
      ids.delete(ip);
    } else {
      const ports = rnd() % 2 === 0 ? new PsidSet(4, 8, rnd() % 256, { allowSystemPorts: true }) : new PortRange(2000 + (rnd() % 100), 3000);
      ids.set(ip, tbl.add(bind(`a${step}`, step, ports, ip)));
    }
  }
  let bad = 0;
  for (let a = 0; a < 60; a++) {
    const ip = 0xcb007100 + a;
    for (let p = 0; p < 65536; p += 37) if (tbl.lookupPort(ip, p) !== brute(tbl, ip, p)) bad++;
  }
  t.equal(bad, 0, 'after 3000 adds and removes on 60 addresses (tables freed and reused)');
  // A PSID address gets a range: its table becomes a block table in another place of the chunks.
  const ip = 0xcb007200;
  const p1 = tbl.add(bind('psid', 90001, new PsidSet(4, 8, 3, { allowSystemPorts: true }), ip));
  const r = tbl.add(bind('range', 90002, new PortRange(100, 199, { allowSystemPorts: true }), ip));
  for (let p = 0; p < 65536; p += 7) if (tbl.lookupPort(ip, p) !== brute(tbl, ip, p)) bad++;
  t.equal(bad, 0, 'mixed shapes on one address');
  t.equal(tbl.lookupPort(ip, 150), r);
  t.equal(tbl.lookupPort(ip, [...new PsidSet(4, 8, 3, { allowSystemPorts: true }).chunks()][0]![0]), p1);
});

t.test('the memory advice is given the big buffers before they are filled', async (t) => {
  const seen: number[] = [];
  const tbl = new BindingTable(1024, {
    adviseMemory: (buf) => {
      seen.push(buf.byteLength);
      t.ok(new Uint8Array(buf).every((b) => b === 0), 'untouched when advised');
    },
  });
  t.ok(seen.length >= 2, 'records and IPv6 index at construction');
  t.ok(seen.includes(48 + 1024 * 64), 'the records (64 bytes each, behind 48 bytes of alignment)');
  const before = seen.length;
  tbl.add(bind('a', 1, new PortRange(10000, 10999)));
  t.ok(seen.slice(before).includes(16 << 20), 'a chunk of port tables (16 MiB) with the first address');
  tbl.ensureCapacity(5000);
  t.ok(seen.includes(48 + 8192 * 64), 'the grown records');
  t.equal(tbl.lookupPort(V4, 10500), 0, 'and the table works');
});
