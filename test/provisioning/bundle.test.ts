/**
 * The SMAP bundle (provisioning/bundle.ts): one file plus the addon, run from a directory with
 * no node_modules anywhere above it; then, in the SMAP lab, the bundled agent forwards for real
 * (one CPE registering over SSH, which exercises ssh2 without its optional native helpers, one
 * static).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { bundleSmap, type BundleResult } from '../../provisioning/bundle.js';
import { labUnavailableReason, waitFor } from '../lab/lab.js';
import type { SmapStatus } from '../../smap/daemon.js';
import { REPO_ROOT } from '../lab/paths.js';
import { buildSmapLab, INET, SHARED } from '../lab/smap-topology.js';

function run(cwd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, args, { cwd, env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' }, timeout: 30_000 }, (err, stdout, stderr) =>
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : null, stdout, stderr }));
  });
}

const dir = mkdtempSync(join(tmpdir(), 'aplus-bundle-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
let built: BundleResult | undefined;

t.before(async () => {
  built = await bundleSmap(dir);
});

t.test('the bundle holds the agent and no PRR code', async (t) => {
  const b = built!;
  t.ok(existsSync(b.bundle) && b.addon !== undefined && existsSync(b.addon), 'smap.mjs and aplus_native.node are written');
  t.ok(b.inputs.some((i) => i.includes('node_modules/ssh2/')), 'ssh2 is inside');
  t.notOk(b.inputs.some((i) => i.includes('better-sqlite3')), 'better-sqlite3 (PRR only) is not');
  t.notOk(b.inputs.some((i) => /^prr\//.test(i)), 'no module of prr/');
  const lic = readFileSync(join(b.dir, 'LICENSES.txt'), 'utf8');
  for (const p of ['ssh2@', 'commander@', 'prom-client@', 'ini@']) t.match(lic, new RegExp(`^${p}\\S+`, 'm'), `LICENSES.txt has ${p}`);
  t.notOk(existsSync(join(dir, '..', 'node_modules')) || existsSync(join(dir, 'node_modules')), 'no node_modules beside or above the bundle');
});

t.test('the bundle runs without node_modules: help, check-config, a bad config exits 2 with one line', async (t) => {
  const help = await run(dir, ['smap.mjs', '--help']);
  t.equal(help.code, 0, help.stderr);
  t.match(help.stdout, /run \[options\]/);
  t.match(help.stdout, /status \[options\]/);

  const bad = await run(dir, ['smap.mjs', 'status', '--config', join(dir, 'missing.ini')]);
  t.equal(bad.code, 2);
  t.equal(bad.stderr.trim().split('\n').length, 1, 'one line');
  t.match(bad.stderr, /missing\.ini/);

  const file = join(dir, 'smap.ini');
  writeFileSync(file, '[smap]\nwan_interface = wan\n[registration]\nprr_host = 2001:db8::1\nhost_key_fingerprint = SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU\n');
  const ok = await run(dir, ['smap.mjs', 'check-config', '--config', file]);
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, /^ok: .*registration with \[2001:db8::1\]:2222/);

  writeFileSync(file, '[smap]\nwan_interface = wan\n[tunnel]\nmtu = 99\n[static]\nshared_ipv4 = 192.0.2.1\nports = 1000-1999\nprr_ipv6 = 2001:db8::1\n');
  const badKey = await run(dir, ['smap.mjs', 'check-config', '--config', file]);
  t.equal(badKey.code, 2);
  t.match(badKey.stderr, /^smap: .*smap\.ini:\d+ \[tunnel\] mtu: /);
  t.equal(badKey.stderr.trim().split('\n').length, 1, 'one line');
});

t.test('the bundled agent forwards in the SMAP lab, registered over SSH and static', { skip: labUnavailableReason(), timeout: 180_000 }, async (t) => {
  const l = await buildSmapLab('pkgbundle', [{ ports: '', register: {} }, { ports: '20000-20009' }]);
  t.teardown(() => l.destroy());
  // [tunnel] mtu_hook (OpenWrt's dhcp-mtu): here a script that records what the agent gives it.
  const hookOut = join(l.dir, 'hook.out');
  const hook = join(l.dir, 'hook.sh');
  writeFileSync(hook, `#!/bin/sh\necho "$@" >>${hookOut}\n`, { mode: 0o755 });
  for (const cpe of l.cpes) writeFileSync(cpe.config, readFileSync(cpe.config, 'utf8').replace('[tunnel]\n', `[tunnel]\nmtu_hook = ${hook}\n`));
  for (const cpe of l.cpes) l.startAgent(cpe, built!.bundle);
  for (const cpe of l.cpes) await l.agentRunning(cpe);
  for (const [i, cpe] of l.cpes.entries()) {
    const body = await waitFor(`curl from lan${i + 1}`, async () => {
      const r = await cpe.lan.exec('curl', ['-sS', '--max-time', '3', `http://${INET}/`]);
      return r.code === 0 ? r.stdout : undefined;
    }, 60_000, 500);
    const m = /^192\.0\.2\.100:(\d+)\n$/.exec(body);
    t.ok(m !== null, `lan${i + 1} reaches the Internet from ${SHARED} (${body.trim()})`);
    const port = Number(m?.[1]);
    if (i === 1) t.ok(port >= 20000 && port <= 20009, `inside the static set: ${port}`);
  }
  t.match(l.cpes[0].log(), /registered as cpe1/, 'CPE 1 took its binding from the PRR');
  t.same(readFileSync(hookOut, 'utf8').trim().split('\n'), ['1460', '1460'], 'each agent ran mtu_hook with its tunnel MTU (WAN 1500 - 40)');

  // OpenWrt's hotplug on WAN up: the real script, with /etc/init.d/smap's `register` (procd's
  // SIGHUP) done by kill: the registered agent registers again at once.
  const cpe1 = l.cpes[0];
  const expires = async (): Promise<string | null | undefined> => {
    const r = await l.cli(cpe1.host, 'smap', ['status', '--config', cpe1.config, '--json']);
    return r.code === 0 ? (JSON.parse(r.stdout) as SmapStatus).registration?.expires_at : undefined;
  };
  const before = await expires();
  t.type(before, 'string', 'CPE 1 holds a lease');
  const init = join(l.dir, 'init-smap');
  writeFileSync(init, `#!/bin/sh\n[ "$1" = register ] && kill -HUP ${cpe1.agent!.pid}\n`, { mode: 0o755 });
  const hp = await cpe1.host.exec('env', ['ACTION=ifupdate', 'INTERFACE=wan6', 'DEVICE=wan', `SMAP_INI=${cpe1.config}`, `SMAP_INIT=${init}`,
    'busybox', 'ash', join(REPO_ROOT, 'provisioning/openwrt/files/smap.hotplug')]);
  t.equal(hp.code, 0, hp.stderr);
  const after = await waitFor('a new lease after the hotplug', async () => {
    const e = await expires();
    return e !== undefined && e !== before ? e : undefined;
  }, 30_000, 200);
  t.ok(after !== null && after! > before!, `registered again: lease now expires ${after}`);
  t.match(cpe1.log(), /reload: registering again as 2001:db8:1::2/);
  const body = await cpe1.lan.exec('curl', ['-sS', '--max-time', '5', `http://${INET}/`]);
  t.match(body.stdout, /^192\.0\.2\.100:\d+\n$/, 'and keeps forwarding');
});
