// prr subscribers authorize: the authorized-keys rewrite, the control socket's reload_keys and
// release of a registered binding, and a key's new options reaching the CPE at its next request.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { memoryLogger } from '../../common/log.js';
import { authorizeFile, authorizeText } from '../../prr/authorize.js';
import { handleControl, type ControlContext } from '../../prr/control.js';
import { PrrCounters } from '../../prr/counters.js';
import { defaultPolicy } from '../../prr/policy.js';
import { loadAuthorizedKeys } from '../../prr/registration-keys.js';
import { runCommand, type Peer } from '../../provisioning/protocol.js';
import { makeKey, makeRig, tempDir } from '../registration/helpers.js';

t.test('authorizeText: add, change options in place, one-line errors that change nothing', async (t) => {
  const dir = tempDir('auth');
  const a = makeKey(dir, 'a');
  const b = makeKey(dir, 'b');
  const file = path.join(dir, 'authorized_keys');
  writeFileSync(file, `# CPEs\nname=cpe1 ${a.pub}\n`);

  const added = authorizeFile(file, b.pub, { name: 'cpe2', ports: '500' });
  t.equal(added.replaced, false);
  t.equal(readFileSync(file, 'utf8'), `# CPEs\nname=cpe1 ${a.pub}\nname=cpe2,ports=500 ${b.pub}\n`);
  const changed = authorizeFile(file, `${a.pub}\n`, { name: 'cpe1', set: '20000-20999' });
  t.equal(changed.replaced, true);
  t.equal(readFileSync(file, 'utf8'), `# CPEs\nname=cpe1,set=20000-20999 ${a.pub}\nname=cpe2,ports=500 ${b.pub}\n`, 'the line replaced where it was');
  const keys = loadAuthorizedKeys(file);
  t.equal(keys.get(changed.fingerprint)?.set?.toString(), '20000-20999');

  const before = readFileSync(file, 'utf8');
  const bad: Array<[string, object, RegExp]> = [
    ['not a key', {}, /^not a public key: expected "ssh-ed25519 AAAA\.\.\. \[comment\]"/],
    ['ssh-ed25519 AAAAnotbase64', {}, /^not a public key/],
    [b.pub, { ports: 'many' }, /^ports=many: expected a number of ports$/],
    [b.pub, { set: '10-5' }, /^set=10-5: /],
    [b.pub, { name: 'bad name' }, /^name=bad name: /],
    [b.pub, { ports: '500', set: '20000-20999' }, /disagree/],
    [b.pub, { name: 'cpe1' }, /authorized_keys:3: name=cpe1 is also used on line 2$/],
  ];
  for (const [key, o, re] of bad) {
    t.throws(() => authorizeFile(file, key, o), { message: re }, `${key.slice(0, 20)} ${JSON.stringify(o)}`);
    t.equal(readFileSync(file, 'utf8'), before, 'file unchanged');
  }
  t.throws(() => authorizeText('garbage line\n', 'keys', b.pub, {}), { message: /^keys:1: /, code: 'ERR_CONFIG' }, 'a broken file is named by line');
});

t.test('control socket: reload_keys makes a new key work at once; release frees a registered set', async (t) => {
  const dir = tempDir('authctl');
  const a = makeKey(dir, 'a');
  const b = makeKey(dir, 'b');
  const file = path.join(dir, 'authorized_keys');
  writeFileSync(file, `name=cpe1 ${a.pub}\n`);
  const rig = makeRig(dir, readFileSync(file, 'utf8'));
  const reloadKeys = (): number => {
    rig.keys.clear();
    for (const [k, v] of loadAuthorizedKeys(file)) rig.keys.set(k, v);
    return rig.keys.size;
  };
  const ctx: ControlContext = {
    table: rig.table, counters: new PrrCounters(), policy: defaultPolicy(0xc6336401, [Buffer.alloc(16)]), portOptions: {},
    inPool: () => true, log: memoryLogger(), registration: () => ({ reloadKeys, releaseByName: (n) => rig.registrar.releaseByName(n) }),
  };
  const pa: Peer = { fingerprint: [...rig.keys.keys()][0]!, address: 'test' };
  const pb: Peer = { fingerprint: authorizeText('', 'x', b.pub, {}).fingerprint, address: 'test' };
  t.match(runCommand(rig.registrar, pb, 'register --ipv6 2001:db8:2::1').stderr, /no longer authorized/, 'b is not authorized yet');

  authorizeFile(file, b.pub, { name: 'cpe2' });
  t.same(handleControl(ctx, { cmd: 'reload_keys' }), { ok: true, keys: 2 });
  t.match(JSON.parse(runCommand(rig.registrar, pb, 'register --ipv6 2001:db8:2::1').stdout), { subscriber: 'cpe2', ports: '1024-2023' }, 'b registers without a restart');
  t.match(JSON.parse(runCommand(rig.registrar, pa, 'register --ipv6 2001:db8:1::1').stdout), { subscriber: 'cpe1', ports: '2024-3023' });

  // Policy change: cpe1's key gets a fixed set; its next request moves it there, same id.
  const id = rig.table.findSubscriber('cpe1')[0]!;
  authorizeFile(file, a.pub, { name: 'cpe1', set: '20000-20999' });
  handleControl(ctx, { cmd: 'reload_keys' });
  const moved = JSON.parse(runCommand(rig.registrar, pa, 'renew').stdout);
  t.match(moved, { subscriber: 'cpe1', shared_ipv4: '192.0.2.1', ports: '20000-20999' }, 'the renew reply carries the new set');
  t.equal(rig.table.findSubscriber('cpe1')[0], id, 'changed in place: same binding id');
  t.equal(rig.table.portsOf(id)!.toString(), '20000-20999');
  t.equal(rig.store.get(pa.fingerprint)?.ports, '20000-20999', 'stored');
  t.equal(JSON.parse(runCommand(rig.registrar, pa, 'register --ipv6 2001:db8:1::1').stdout).ports, '20000-20999', 'sticky again');
  t.match(JSON.parse(runCommand(rig.registrar, pb, 'status').stdout), { ports: '1024-2023' }, 'the other CPE is untouched');
  t.equal(rig.registrar.allocator.usage(0xc0000201).allocated, 2, 'the old set went back to the pool');

  // ports= smaller than the set held: a new, smaller set.
  authorizeFile(file, b.pub, { name: 'cpe2', ports: '500' });
  handleControl(ctx, { cmd: 'reload_keys' });
  const smaller = JSON.parse(runCommand(rig.registrar, pb, 'renew').stdout);
  t.equal(smaller.ports.split('-').map(Number).reduce((x: number, y: number) => y - x + 1), 500, `a 500-port set: ${smaller.ports}`);

  // The operator's release: store, table and set, for good.
  t.same(handleControl(ctx, { cmd: 'release', name: 'cpe1' }), { ok: true, released: 1 });
  t.equal(rig.table.findSubscriber('cpe1').length, 0);
  t.equal(rig.store.get(pa.fingerprint), undefined, 'the row is gone: a restart does not bring it back');
  t.match(runCommand(rig.registrar, pa, 'renew').stderr, /register first/, 'its renew is refused: the CPE registers anew');
  t.throws(() => handleControl(ctx, { cmd: 'release', name: 'cpe1' }), { message: /no subscriber named "cpe1"/ });
  t.throws(() => handleControl({ ...ctx, registration: () => undefined }, { cmd: 'reload_keys' }), { message: /registration is not enabled/ });
  rig.store.close();
});
