// The protocol parser and the registrar, without SSH: allocation, stickiness, store, races.
import t from 'tap';
import { EXIT_EXHAUSTED, EXIT_REFUSED, EXIT_USAGE, parseCommandLine, runCommand, type Peer } from '../../provisioning/protocol.js';
import { RegistrationStore } from '../../prr/store.js';
import { makeKey, makeRig, tempDir } from './helpers.js';
import { fingerprintOf } from '../../prr/registration-keys.js';
import ssh2 from 'ssh2';
import { parsePortSet } from '../../common/portset.js';
import path from 'node:path';

function fpOf(pub: string): string {
  const k = ssh2.utils.parseKey(pub);
  if (k instanceof Error || Array.isArray(k)) throw new Error('bad key');
  return fingerprintOf(k.getPublicSSH());
}

t.test('parseCommandLine: reads every flag, refuses the malformed', async (t) => {
  t.same([...parseCommandLine('register --ipv6 2001:db8::1 --ports 500').flags], [['ipv6', '2001:db8::1'], ['ports', '500']]);
  const bad: Array<[string, RegExp]> = [
    ['', /empty command/],
    ['shell', /unknown command "shell"/],
    ['register --ipv6', /needs a value/],
    ['register --ipv6 a --ipv6 b', /given twice/],
    ['register --bogus 1', /unexpected "--bogus"/],
    ['register 2001:db8::1', /unexpected/],
    ['register --ipv6 x\n', /control characters/],
    ['register --ipv6 ' + 'a'.repeat(600), /longer than 512/],
    ['toString', /unknown command/],
  ];
  for (const [line, re] of bad) t.throws(() => parseCommandLine(line), { exitCode: EXIT_USAGE, message: re }, JSON.stringify(line).slice(0, 40));
});

t.test('register, sticky, move, renew, status, release; store survives reopen', async (t) => {
  const dir = tempDir('svc');
  const a = makeKey(dir, 'a');
  const b = makeKey(dir, 'b');
  const rig = makeRig(dir, `name=cpe7 ${a.pub}\nports=500 ${b.pub}\n`);
  t.same(rig.store.mode, { journal: 'wal', synchronous: 2 }, 'WAL, synchronous = FULL');
  const pa: Peer = { fingerprint: fpOf(a.pub), address: 'test' };
  const pb: Peer = { fingerprint: fpOf(b.pub), address: 'test' };

  const r1 = runCommand(rig.registrar, pa, 'register --ipv6 2001:db8:1::1');
  t.equal(r1.exitCode, 0, r1.stderr);
  const l1 = JSON.parse(r1.stdout);
  t.match(l1, { subscriber: 'cpe7', ipv6: '2001:db8:1::1', shared_ipv4: '192.0.2.1', ports: '1024-2023', prr_ipv6: '2001:db8:ffff::1', mtu: 1460 });
  t.equal(l1.lease_seconds, 3600, 'the lease granted');
  t.equal(rig.table.size, 1);

  const r2 = JSON.parse(runCommand(rig.registrar, pa, 'register --ipv6 2001:db8:1::2 --ports 3000').stdout);
  t.match(r2, { shared_ipv4: '192.0.2.1', ports: '1024-2023', ipv6: '2001:db8:1::2' }, 'sticky set; the address moves');
  const id = rig.table.findSubscriber('cpe7')[0]!;
  t.ok(rig.table.ipv6Is(id, Buffer.from('20010db8000100000000000000000002', 'hex'), 0), 'the table follows');

  const rb = JSON.parse(runCommand(rig.registrar, pb, 'register --ipv6 2001:db8:2::1').stdout);
  t.match(rb, { ports: '2500-2999' }, 'ports=500 key: a 500-port range, first fit past the slot in use');
  t.equal(runCommand(rig.registrar, pb, 'register --ipv6 2001:db8:2::1').exitCode, 0, 'own address again is fine');
  const steal = runCommand(rig.registrar, pb, 'renew --ipv6 2001:db8:1::2');
  t.equal(steal.exitCode, EXIT_REFUSED);
  t.match(steal.stderr, /already bound to subscriber cpe7/);

  t.equal(JSON.parse(runCommand(rig.registrar, pa, 'status').stdout).ports, '1024-2023');
  t.equal(runCommand(rig.registrar, pa, 'renew').exitCode, 0);
  rig.store.close();

  // Restart: a new table and registrar over the same file see the same bindings.
  const again = makeRig(dir, `name=cpe7 ${a.pub}\nports=500 ${b.pub}\n`);
  t.equal(again.table.size, 2, 'both bindings restored from the store');
  t.equal(JSON.parse(runCommand(again.registrar, pa, 'register --ipv6 2001:db8:1::2').stdout).ports, '1024-2023', 'sticky across restart');
  t.same(JSON.parse(runCommand(again.registrar, pa, 'release').stdout), { subscriber: 'cpe7', released: true });
  t.same(JSON.parse(runCommand(again.registrar, pa, 'release').stdout), { subscriber: 'cpe7', released: false }, 'idempotent');
  t.equal(again.table.size, 1);
  t.equal(runCommand(again.registrar, pa, 'status').exitCode, EXIT_REFUSED);
  t.equal(again.registrar.allocator.allocated, 1, 'the set went back to the pool');
  again.store.close();
});

t.test('the reply carries the lease granted, even when the clock ticks between commit and reply', async (t) => {
  const dir = tempDir('tick');
  const a = makeKey(dir, 'a');
  let clock = 1_700_000_000;
  const rig = makeRig(dir, `name=cpe7 ${a.pub}\n`, { now: () => clock++ }); // every reading is a second later
  const pa: Peer = { fingerprint: fpOf(a.pub), address: 'test' };
  const reg = JSON.parse(runCommand(rig.registrar, pa, 'register --ipv6 2001:db8:1::1').stdout);
  t.equal(reg.lease_seconds, 3600, 'register');
  const granted = rig.store.get(pa.fingerprint)!.expires;
  t.equal(JSON.parse(runCommand(rig.registrar, pa, 'renew').stdout).lease_seconds, 3600, 'renew');
  t.ok(rig.store.get(pa.fingerprint)!.expires > granted, 'the renewal was stored');
  t.equal(JSON.parse(runCommand(rig.registrar, pa, 'register --ipv6 2001:db8:1::2').stdout).lease_seconds, 3600, 'register again (a move)');
  const left = JSON.parse(runCommand(rig.registrar, pa, 'status').stdout).lease_seconds;
  t.ok(left < 3600 && left > 3590, `status counts down: ${left} s left`);
  rig.store.close();
});

t.test('policy: --ports bounds, malformed changes nothing, exhaustion', async (t) => {
  const dir = tempDir('pol');
  const a = makeKey(dir, 'a');
  const rig = makeRig(dir, `${a.pub}\n`);
  const pa: Peer = { fingerprint: fpOf(a.pub), address: 'test' };
  for (const line of ['register --ipv6 2001:db8::1 --ports 100', 'register --ipv6 2001:db8::1 --ports 5000']) {
    const r = runCommand(rig.registrar, pa, line);
    t.equal(r.exitCode, EXIT_REFUSED, line);
    t.match(r.stderr, /^error: --ports \d+: this PRR hands out 200-4000 ports\n$/);
  }
  for (const line of ['register --ipv6 not-an-address', 'register --ipv6 2001:db8::1 --ports -1', 'register --ipv6 2001:db8::1 --ports 1x']) {
    const r = runCommand(rig.registrar, pa, line);
    t.equal(r.exitCode, EXIT_USAGE, line);
    t.equal(r.stderr.split('\n').length, 2, 'one line');
  }
  t.equal(rig.table.size, 0, 'nothing changed');
  t.equal(rig.store.loadAll().length, 0);
  t.equal(rig.registrar.allocator.allocated, 0);
  rig.store.close();

  // One address, one slot of 64512 ports: the second key finds the pool exhausted.
  const d2 = tempDir('exh');
  const k = [makeKey(d2, 'k0'), makeKey(d2, 'k1')];
  const small = makeRig(d2, k.map((x) => x.pub).join('\n'), { pool: [0xc0000201], policy: { defaultPorts: 64512, maxPorts: 64512 } });
  const peers = k.map((x) => ({ fingerprint: fpOf(x.pub), address: 'test' }));
  // Both requests are started in the same tick; the event loop runs them one after the other.
  const results = await Promise.all(peers.map((p, i) => Promise.resolve().then(() => runCommand(small.registrar, p, `register --ipv6 2001:db8::${i + 1}`))));
  t.same(results.map((r) => r.exitCode).sort(), [0, EXIT_EXHAUSTED], 'exactly one of two racing registrations wins the last set');
  t.equal(small.table.size, 1);
  t.equal(small.store.loadAll().length, 1);
  small.store.close();
  t.equal(new RegistrationStore(path.join(d2, 'registrations.db')).loadAll().length, 1, 'and only the winner is stored');
});

t.test('a set bound outside registration (control socket) is skipped, not handed out twice', async (t) => {
  const dir = tempDir('ctl');
  const a = makeKey(dir, 'a');
  const rig = makeRig(dir, `${a.pub}\n`);
  rig.table.add({ subscriber: 'manual', ipv6: Buffer.alloc(16, 7), ipv4: 0xc0000201, ports: parsePortSet('1024-2023') });
  const r = runCommand(rig.registrar, { fingerprint: fpOf(a.pub), address: 'test' }, 'register --ipv6 2001:db8::1');
  t.equal(r.exitCode, 0, r.stderr);
  t.match(JSON.parse(r.stdout), { shared_ipv4: '192.0.2.1', ports: '2024-3023' });
  t.match(rig.log.lines.join('\n'), /1024-2023 is held by manual, bound outside registration/);
  rig.store.close();
});

t.test('expiry: the binding leaves the table, the set stays with the key; an unauthorized key loses it', async (t) => {
  const dir = tempDir('exp');
  const [a, b] = [makeKey(dir, 'a'), makeKey(dir, 'b')];
  const rig = makeRig(dir, `name=ka ${a.pub}\nname=kb ${b.pub}\n`, { policy: { leaseSeconds: 60 } });
  const pa = { fingerprint: fpOf(a.pub), address: 'test' };
  const pb = { fingerprint: fpOf(b.pub), address: 'test' };
  const la = JSON.parse(runCommand(rig.registrar, pa, 'register --ipv6 2001:db8::a').stdout);
  t.equal(runCommand(rig.registrar, pb, 'register --ipv6 2001:db8::b').exitCode, 0);
  t.same(rig.registrar.expire(), { unbound: 0, freed: 0 }, 'nothing ended yet');
  // Age both rows past their lease, and withdraw key b.
  for (const r of rig.store.loadAll()) rig.store.put({ ...r, expires: 1 });
  rig.keys.delete(pb.fingerprint);
  t.same(rig.registrar.expire(), { unbound: 2, freed: 1 });
  t.equal(rig.table.size, 0, 'no traffic for ended leases');
  t.equal(rig.store.loadAll().length, 1, 'the authorized key keeps its row');
  t.equal(rig.registrar.allocator.allocated, 1);
  t.equal(JSON.parse(runCommand(rig.registrar, pa, 'status').stdout).lease_seconds, 0);
  const back = JSON.parse(runCommand(rig.registrar, pa, 'renew').stdout);
  t.equal(back.ports, la.ports, 'a late renew gets the same set back');
  t.equal(rig.table.size, 1);
  rig.store.close();
});

t.test('a store made before ipv6_hex: the column is added, old rows are parsed from their text', async (t) => {
  const dir = tempDir('migrate');
  const a = makeKey(dir, 'a');
  const Database = (await import('better-sqlite3')).default;
  const db = new Database(path.join(dir, 'registrations.db'));
  db.exec(`CREATE TABLE bindings (fingerprint TEXT PRIMARY KEY, subscriber TEXT NOT NULL UNIQUE, ipv6 TEXT NOT NULL, ipv4 INTEGER NOT NULL,
    ports TEXT NOT NULL, expires INTEGER NOT NULL, updated INTEGER NOT NULL) STRICT`);
  db.prepare('INSERT INTO bindings VALUES (?, ?, ?, ?, ?, ?, 0)').run(fpOf(a.pub), 'old', '2001:db8:5::5', 0xc0000201, '3024-4023', 2e9);
  db.close();
  const rig = makeRig(dir, `name=old ${a.pub}\n`);
  const id = rig.table.findSubscriber('old')[0]!;
  t.ok(rig.table.ipv6Is(id, Buffer.from('20010db8000500000000000000000005', 'hex'), 0), 'the old row is in the table');
  const pa: Peer = { fingerprint: fpOf(a.pub), address: 'test' };
  t.equal(JSON.parse(runCommand(rig.registrar, pa, 'renew --ipv6 2001:db8:5::6').stdout).ports, '3024-4023', 'sticky');
  rig.store.close();
  const again = makeRig(dir, `name=old ${a.pub}\n`);
  t.ok(again.table.ipv6Is(again.table.findSubscriber('old')[0]!, Buffer.from('20010db8000500000000000000000006', 'hex'), 0), 'rewritten with its hex form, read back');
  again.store.close();
});

t.test('PSID policy: sets in PSID and range form, one address filled before the next, holes refilled first', async (t) => {
  const dir = tempDir('psid');
  const keys = Array.from({ length: 70 }, (_, i) => makeKey(dir, `k${i}`));
  const rig = makeRig(dir, keys.map((k, i) => `name=c${i} ${k.pub}`).join('\n') + '\n', { policy: { psid: { k: 6, a: 6 } } });
  const peer = (i: number): Peer => ({ fingerprint: fpOf(keys[i]!.pub), address: 'test' });
  const reg = (i: number, extra = ''): Record<string, unknown> => {
    const r = runCommand(rig.registrar, peer(i), `register --ipv6 2001:db8:${i + 1}::1${extra}`);
    t.equal(r.exitCode, 0, r.stderr);
    return JSON.parse(r.stdout);
  };
  const first = reg(0);
  t.match(first, { shared_ipv4: '192.0.2.1', ports: 'psid:a=6/k=6/id=0', psid: { offset: 6, length: 6, value: 0 } });
  const ranges = first['ranges'] as Array<[number, number]>;
  t.equal(ranges.length, 63, 'range form: 63 runs (A = 1..63)');
  t.same(ranges[0], [1024, 1039]);
  t.same(ranges[62], [64512, 64527]);
  t.equal(ranges.reduce((n, [a, b]) => n + b - a + 1, 0), 1008, '1008 ports');
  t.match(reg(1, ' --ports 500'), { ports: 'psid:a=6/k=6/id=1' }, 'a smaller request takes one PSID set');
  for (let i = 2; i < 64; i++) reg(i);
  t.match(reg(64), { shared_ipv4: '192.0.2.2', ports: 'psid:a=6/k=6/id=0' }, 'the 65th opens the next address');
  for (let i = 65; i < 68; i++) reg(i);
  // Five CPEs on the first address leave; the next five fill their holes, not the second address.
  for (const i of [3, 10, 20, 30, 40]) t.same(JSON.parse(runCommand(rig.registrar, peer(i), 'release').stdout).released, true);
  t.equal(rig.registrar.allocator.usage(0xc0000201).free, 5);
  for (const i of [3, 10, 20, 30, 40]) t.match(reg(i), { shared_ipv4: '192.0.2.1' }, `c${i} back on the first address`);
  t.equal(rig.registrar.allocator.usage(0xc0000201).free, 0, 'first address full again');
  t.equal(rig.registrar.allocator.usage(0xc0000202).allocated, 4, 'second address unchanged');
  // A larger request than one PSID set: a shorter PSID, two adjacent slots, no overlap.
  const big = reg(68, ' --ports 2000');
  t.match(big, { shared_ipv4: '192.0.2.2', ports: 'psid:a=6/k=5/id=2', psid: { offset: 6, length: 5, value: 2 } }, 'slots 4 and 5 of the second address');
  t.equal(parsePortSet(big['ports'] as string).size, 2016);
  t.equal(rig.registrar.allocator.usage(0xc0000202).free, 58, 'two slots taken for it');
  t.match(reg(69), { ports: 'psid:a=6/k=6/id=6' }, 'the next one-slot set follows it');
  // The range form of a range set is one run.
  const ranged = makeRig(tempDir('psidr'), `${keys[0]!.pub}\n`);
  t.same(JSON.parse(runCommand(ranged.registrar, peer(0), 'register --ipv6 2001:db8::1').stdout).ranges, [[1024, 2023]]);
  ranged.store.close();
  rig.store.close();
  // A restart reads the PSID sets back.
  const again = makeRig(dir, keys.map((k, i) => `name=c${i} ${k.pub}`).join('\n') + '\n', { policy: { psid: { k: 6, a: 6 } } });
  t.equal(again.table.size, 70);
  t.equal(JSON.parse(runCommand(again.registrar, peer(0), 'status').stdout).ports, 'psid:a=6/k=6/id=0');
  again.store.close();
});

t.test('a store with overlapping rows (damaged by hand): the second is not restored, and says so', async (t) => {
  const dir = tempDir('overlap');
  const store = new RegistrationStore(path.join(dir, 'registrations.db'));
  const row = { ipv4: 0xc0000201, expires: 2e9 };
  store.put({ ...row, fingerprint: 'SHA256:one', subscriber: 'one', ipv6: '2001:db8::1', ports: '1024-2023' });
  store.put({ ...row, fingerprint: 'SHA256:two', subscriber: 'two', ipv6: '2001:db8::2', ports: '1500-1599' });
  store.put({ ...row, fingerprint: 'SHA256:three', subscriber: 'three', ipv6: '2001:db8::3', ports: '2024-3023' });
  store.close();
  const rig = makeRig(dir, '');
  t.equal(rig.table.size, 2, 'one and three');
  t.same(rig.table.findSubscriber('two'), []);
  t.equal(rig.table.lookupPort(0xc0000201, 1550), rig.table.findSubscriber('one')[0], 'the port stays with the first');
  t.match(rig.log.lines.join('\n'), /registrations\.db: registration of two not restored: .*overlaps/);
  t.equal(rig.registrar.registered, 2);
  rig.store.close();
});
