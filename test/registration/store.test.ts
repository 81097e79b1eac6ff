// The registration store's start path (prr/store.ts): the per-row record, its migration from
// older stores, hand edits, the block read and its row-by-row fallback, through a real Registrar
// and BindingTable over a real SQLite file.
import path from 'node:path';
import t from 'tap';
import Database from 'better-sqlite3';
import { parseIpv6OrThrow } from '../../common/codec/ipv6.js';
import { LOAD_REC, RegistrationStore, recordOf, setOfRecord, type StoredBinding } from '../../prr/store.js';
import { makeRig, tempDir } from './helpers.js';

const V4 = 0xc0000201; // 192.0.2.1, the first of makeRig's pool
const ORIGINAL = `CREATE TABLE bindings (fingerprint TEXT PRIMARY KEY, subscriber TEXT NOT NULL UNIQUE, ipv6 TEXT NOT NULL,
  ipv4 INTEGER NOT NULL, ports TEXT NOT NULL, expires INTEGER NOT NULL, updated INTEGER NOT NULL) STRICT`;

const row = (i: number, extra: Partial<StoredBinding> = {}): StoredBinding => ({
  fingerprint: `SHA256:k${i}`, subscriber: `s${i}`, ipv6: `2001:db8::${(i + 1).toString(16)}`,
  ipv4: V4 + Math.floor(i / 64), ports: `${1024 + (i % 64) * 1000}-${1024 + (i % 64) * 1000 + 999}`, expires: 2e9, ...extra,
});

function columns(file: string): string[] {
  const db = new Database(file, { readonly: true });
  const c = db.prepare('SELECT name FROM pragma_table_info(?)').pluck().all('bindings') as string[];
  db.close();
  return c;
}

/** The table's binding of `name`: its address (hex), IPv4 and ports, or undefined. */
function bound(rig: ReturnType<typeof makeRig>, name: string): string | undefined {
  const [id, more] = rig.table.findSubscriber(name);
  if (id === undefined || more !== undefined) return undefined;
  return `${rig.table.ipv6Of(id).toString('hex')} ${rig.table.ipv4Of(id)} ${rig.table.portsOf(id)}`;
}
const want = (b: StoredBinding): string => `${parseIpv6OrThrow(b.ipv6).toString('hex')} ${b.ipv4} ${b.ports}`;

t.test('record: address, IPv4, set number and kind, read back', async (t) => {
  const r = recordOf('2001:db8::1', 0xc0000201, '1024-2023');
  t.equal(r.length, LOAD_REC);
  t.equal(r.subarray(0, 16).toString('hex'), '20010db8000000000000000000000001');
  t.equal(r.readUInt32BE(16), 0xc0000201);
  t.equal(setOfRecord(r.readUInt32BE(20), r[24]!).toString(), '1024-2023');
  const p = recordOf('2001:db8::1', 1, 'psid:a=6/k=8/id=0x34');
  t.equal(setOfRecord(p.readUInt32BE(20), p[24]!).toString(), 'psid:a=6/k=8/id=52');
  t.throws(() => recordOf('2001:db8::1', 1, '2000-1000'), /first port is above last/);
  t.throws(() => recordOf('nope', 1, '1024-2023'), /not an IPv6 address/);
});

t.test('a store from before rec, with ipv6_hex: migrated when opened, loaded in blocks', async (t) => {
  const dir = tempDir('mig-hex');
  const file = path.join(dir, 'registrations.db');
  const db = new Database(file);
  db.exec(ORIGINAL);
  db.exec('ALTER TABLE bindings ADD COLUMN ipv6_hex TEXT');
  const put = db.prepare('INSERT INTO bindings VALUES (?, ?, ?, ?, ?, ?, 0, ?)');
  const rows = Array.from({ length: 100 }, (_, i) => row(i));
  for (const b of rows) put.run(b.fingerprint, b.subscriber, b.ipv6, b.ipv4, b.ports, b.expires, parseIpv6OrThrow(b.ipv6).toString('hex'));
  put.run('SHA256:bad', 'bad', '2001:db8::bad', V4 + 5, 'ports?', 2e9, 'ab'); // damaged text: no record
  const older = row(100, { ipv4: V4 + 1, ports: '60000-60999' });
  put.run(older.fingerprint, older.subscriber, older.ipv6, older.ipv4, older.ports, older.expires, null); // from before ipv6_hex
  rows.push(older);
  db.close();

  const rig = makeRig(dir, '');
  t.equal(rig.store.migrated, 101, 'every row with a text that parses got its record');
  t.same(columns(file).filter((c) => c === 'ipv6_hex' || c === 'rec'), ['rec'], 'ipv6_hex gone, rec there');
  const check = new Database(file, { readonly: true });
  const recs = check.prepare('SELECT ipv6, ipv4, ports, rec FROM bindings WHERE rec IS NOT NULL').raw().all() as Array<[string, number, string, Buffer]>;
  check.close();
  t.equal(recs.filter(([ipv6, ipv4, ports, rec]) => !rec.equals(recordOf(ipv6, ipv4, ports))).length, 0, 'the records made in SQL are the ones put() writes');
  t.equal(rig.table.size, 101);
  t.equal(rows.filter((b) => bound(rig, b.subscriber) !== want(b)).length, 0, 'every row in the table as stored');
  t.match(rig.log.lines.join('\n'), /registration of bad not restored: bad port set "ports\?"/);
  rig.store.close();

  const db2 = new Database(file, { readonly: true });
  const plan = db2.prepare('EXPLAIN QUERY PLAN SELECT fingerprint FROM bindings WHERE expires < ? ORDER BY expires').all(2e9) as Array<{ detail: string }>;
  db2.close();
  t.match(plan.map((p) => p.detail).join('; '), /USING INDEX bindings_expires/, 'the lease sweep finds ended leases through an index');
  const again = makeRig(dir, '');
  t.equal(again.store.migrated, 0, 'nothing to migrate the second time');
  t.equal(again.table.size, 101);
  again.store.close();
});

t.test('a store of the original schema (no ipv6_hex, no rec): migrated, and sticky after', async (t) => {
  const dir = tempDir('mig-orig');
  const file = path.join(dir, 'registrations.db');
  const db = new Database(file);
  db.exec(ORIGINAL);
  db.prepare('INSERT INTO bindings VALUES (?, ?, ?, ?, ?, ?, 0)').run('SHA256:a', 'old', '2001:db8:5::5', V4, 'psid:a=6/k=6/id=3', 2e9);
  db.close();
  const rig = makeRig(dir, '');
  t.equal(rig.store.migrated, 1);
  t.equal(bound(rig, 'old'), `20010db8000500000000000000000005 ${V4} psid:a=6/k=6/id=3`);
  t.ok(columns(file).includes('rec'));
  rig.store.close();
});

t.test('rows changed or added by hand (sqlite3): the text is the truth at the next start', async (t) => {
  const dir = tempDir('hand');
  const file = path.join(dir, 'registrations.db');
  const store = new RegistrationStore(file);
  store.putAll([row(0), row(1), row(2)]);
  store.put({ ...row(1), expires: 2e9 + 1 }); // a renewal: the record stays
  store.close();
  const db = new Database(file);
  db.prepare('UPDATE bindings SET ports = ?, ipv6 = ? WHERE subscriber = ?').run('40000-40099', '2001:db8::99', 's0');
  db.prepare('INSERT INTO bindings (fingerprint, subscriber, ipv6, ipv4, ports, expires, updated) VALUES (?, ?, ?, ?, ?, ?, 0)')
    .run('SHA256:h', 'by-hand', '2001:db8::77', V4 + 1, '5000-5999', 2e9);
  t.equal(db.prepare('SELECT count(*) FROM bindings WHERE rec IS NULL').pluck().get(), 2, 'the edited row lost its record, the inserted one has none');
  db.close();
  const rig = makeRig(dir, '');
  t.equal(rig.store.migrated, 2);
  t.equal(bound(rig, 's0'), `20010db8000000000000000000000099 ${V4} 40000-40099`, 'the edit is loaded');
  t.equal(bound(rig, 'by-hand'), `20010db8000000000000000000000077 ${V4 + 1} 5000-5999`);
  t.equal(bound(rig, 's1'), want(row(1)), 'the renewed row as it was');
  t.equal(bound(rig, 's2'), want(row(2)));
  rig.store.close();
});

t.test('many blocks, rowid gaps, UTF-8 names, a name with a newline (read row by row)', async (t) => {
  const dir = tempDir('blocks');
  const file = path.join(dir, 'registrations.db');
  const n = 40_000; // three blocks of 16384 and a part
  const rows = Array.from({ length: n }, (_, i) => row(i, i === 5 ? { subscriber: 'ünïcödé-€' } : i === 20_000 ? { subscriber: 'two\nlines' } : {}));
  const store = new RegistrationStore(file);
  store.putAll(rows);
  store.close();
  const db = new Database(file);
  db.prepare('DELETE FROM bindings WHERE rowid % 7 = 0 OR rowid BETWEEN 16000 AND 17000').run(); // holes, a block boundary inside one
  db.prepare('UPDATE bindings SET rowid = ? WHERE subscriber = ?').run(2 ** 50, 's3'); // a gap of 2^50 rowids
  const kept = new Set(db.prepare('SELECT subscriber FROM bindings').pluck().all() as string[]);
  db.close();
  const reader = new RegistrationStore(file);
  const blocks = [...reader.loadBlocks()].map((b) => `${b.n}${b.rowByRow ? ' row by row' : ''}`);
  reader.close();
  t.equal(blocks.length, 4, `blocks: ${blocks.join(', ')}`);
  t.equal(blocks.filter((b) => b.endsWith('row by row')).length, 1, 'only the block with the newline is read row by row');
  const pool = Array.from({ length: Math.ceil(n / 64) }, (_, i) => V4 + i);
  const rig = makeRig(dir, '', { pool });
  t.equal(rig.table.size, kept.size, `${kept.size} rows loaded`);
  t.ok(kept.has('ünïcödé-€') && kept.has('two\nlines'), 'both odd names kept');
  let bad = 0;
  for (const b of rows) if (bound(rig, b.subscriber) !== (kept.has(b.subscriber) ? want(b) : undefined)) bad++;
  t.equal(bad, 0, 'every kept row found by its name, as stored; no deleted one');
  const id = rig.table.findSubscriber('two\nlines')[0]!;
  t.equal(rig.table.subscriberOf(id), 'two\nlines');
  t.equal(rig.table.lookupIpv6(rig.table.ipv6Of(id), 0), id, 'and by its address');
  t.equal(rig.registrar.allocator.allocated, kept.size, 'every set held by the allocator');
  rig.store.close();
});

t.test('a store in UTF-16 (made by another tool): every block read row by row, the same bindings', async (t) => {
  const dir = tempDir('utf16');
  const file = path.join(dir, 'registrations.db');
  const db = new Database(file);
  db.pragma("encoding = 'UTF-16le'"); // before any table: the file's text encoding
  db.exec(ORIGINAL);
  db.close();
  const rows = Array.from({ length: 100 }, (_, i) => row(i, i === 7 ? { subscriber: 'ünï' } : {}));
  const store = new RegistrationStore(file);
  store.putAll(rows);
  const blocks = [...store.loadBlocks()];
  store.close();
  t.ok(blocks.length > 0 && blocks.every((b) => b.rowByRow), 'no block read through group_concat');
  const rig = makeRig(dir, '');
  t.equal(rig.table.size, 100);
  t.equal(rows.filter((b) => bound(rig, b.subscriber) !== want(b)).length, 0, 'every row in the table as stored');
  rig.store.close();
});
