import t from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Lab, isLabAddress, labUnavailableReason } from './lab.js';

const dist = fileURLToPath(new URL('../../dist/test/lab/lab.js', import.meta.url));

t.test('documentation prefixes only', async (t) => {
  for (const ok of ['192.0.2.1/24', '198.51.100.7', '203.0.113.255/32', '192.168.1.1/24', '2001:db8:1::1/64', 'fe80::1/64']) {
    t.ok(isLabAddress(ok), ok);
  }
  for (const bad of ['8.8.8.8', '10.0.0.1/8', '172.16.0.1', '192.0.3.1', '2001:4860::8888/64', '203.0.114.1', 'x.y.z.w', '256.1.1.1']) {
    t.notOk(isLabAddress(bad), bad);
  }
});

const reason = labUnavailableReason();
t.test('namespaces, links, MTU and cleanup', { skip: reason }, async (t) => {
  const lab = Lab.create('labt');
  t.teardown(() => lab.destroy());
  const a = lab.host('a');
  const b = lab.host('b');
  const r = lab.host('r');
  const ar = lab.link(a, r, { a: ['192.0.2.2/24', '2001:db8:1::2/64'], b: ['192.0.2.1/24', '2001:db8:1::1/64'] });
  lab.link(r, b, { a: ['198.51.100.1/24', '2001:db8:2::1/64'], b: ['198.51.100.2/24', '2001:db8:2::2/64'], mtu: 1280 });
  r.forwarding();
  a.route('default', { gw: '192.0.2.1' });
  a.route('default', { gw: '2001:db8:1::1' });
  b.route('default', { gw: '198.51.100.1' });
  b.route('default', { gw: '2001:db8:2::1' });

  const ping4 = await a.exec('ping', ['-c', '1', '-W', '2', '198.51.100.2']);
  t.equal(ping4.code, 0, 'IPv4 ping across the router');
  const ping6 = await a.exec('ping', ['-6', '-c', '1', '-W', '2', '2001:db8:2::2']);
  t.equal(ping6.code, 0, 'IPv6 ping across the router');

  t.match(r.run('ip', 'link', 'show', 'eth-b'), /mtu 1280/, 'per-link MTU');
  t.match(a.run('ip', 'link', 'show', ar.aDev), /mtu 1500/);
  // A DF ping larger than the 1280 link fails; one that fits passes.
  const big = await a.exec('ping', ['-c', '1', '-W', '2', '-M', 'do', '-s', '1400', '198.51.100.2']);
  t.not(big.code, 0, 'DF packet over the 1280 link does not pass');

  t.throws(() => a.addAddress(ar.aDev, '8.8.8.8/32'), { code: 'ERR_LAB' }, 'public address refused');
  t.throws(() => lab.link(a, b, { a: ['10.1.1.1/24'] }), /outside the documentation prefixes/);

  const sleeper = a.spawn('sleep', ['600']);
  lab.destroy();
  t.notOk(existsSync(`/run/netns/${a.name}`), 'namespace removed');
  await new Promise((r) => (sleeper.exitCode !== null || sleeper.signalCode !== null ? r(null) : sleeper.once('exit', r)));
  t.ok(sleeper.signalCode !== null || sleeper.exitCode !== null, 'process in the namespace killed');
});

function namespacesOf(pid: number): string[] {
  return existsSync('/run/netns') ? readdirSync('/run/netns').filter((n) => n.includes(`-${pid}-`)) : [];
}

for (const how of ['throw', 'sigint'] as const) {
  t.test(`namespaces removed when a lab process ends by ${how}`, { skip: reason ?? (existsSync(dist) ? undefined : 'dist not built (npm test builds it)') }, async (t) => {
    const script =
      `import { Lab } from ${JSON.stringify(dist)};` +
      `const lab = Lab.create('labx'); lab.host('one'); lab.host('two');` +
      `console.log('ready');` +
      (how === 'throw' ? `setTimeout(() => { throw new Error('boom'); }, 50);` : `setInterval(() => {}, 1000);`);
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    t.equal(namespacesOf(child.pid!).length, 2, 'two namespaces while running');
    if (how === 'sigint') child.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    t.not(code, 0, 'process failed or was interrupted');
    t.same(namespacesOf(child.pid!), [], 'no namespace left behind');
  });
}

t.test('sweep removes namespaces of dead lab processes', { skip: reason }, async (t) => {
  const name = 'ap-stale-999999-x';
  execFileSync('ip', ['netns', 'add', name]);
  t.teardown(() => {
    try {
      execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
    } catch {
      /* swept */
    }
  });
  Lab.sweep();
  t.notOk(existsSync(`/run/netns/${name}`), 'stale namespace swept');
});
