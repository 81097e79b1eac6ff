/**
 * `prr init` and `smap init`, run as an operator would (the built CLIs), checked with the loaders
 * the daemons use and with OpenSSH's own ssh-keygen.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { createLogger } from '../../common/log.js';
import { ensureHostKey } from '../../prr/registration.js';
import { parseAuthorizedKeys } from '../../prr/registration-keys.js';
import { distPath } from '../lab/paths.js';

function cli(which: 'prr' | 'smap', args: string[]): { status: number | null; stdout: string; stderr: string } {
  const bin = distPath(`${which}/cli.js`);
  if (!existsSync(bin)) throw new Error(`${bin} is missing: build first (npx tsc -p .)`);
  return spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 60_000 });
}

/** OpenSSH's fingerprint of a public key file. */
function keygenFingerprint(pub: string): string {
  const r = spawnSync('ssh-keygen', ['-lf', pub], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ssh-keygen -lf ${pub}: ${r.stderr.trim()}`);
  return r.stdout.split(' ')[1]!;
}

const mode = (f: string): number => statSync(f).mode & 0o777;
const quiet = createLogger('test', 'error');

t.test('prr init: starter config, authorized_keys and host key', async (t) => {
  const root = t.testdir({});
  const dir = path.join(root, 'etc/prr');
  const state = path.join(root, 'var/lib/prr');
  const args = ['init', '--dir', dir, '--state-dir', state];
  const r = cli('prr', args);
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stderr, '');
  const ini = path.join(dir, 'prr.ini');
  const key = path.join(state, 'ssh_host_ed25519_key');
  for (const f of [ini, path.join(dir, 'authorized_keys'), key, `${key}.pub`]) t.match(r.stdout, `wrote ${f}\n`, `wrote ${f}`);
  t.equal(mode(key), 0o600, 'host key 0600');
  t.equal(mode(state), 0o700, 'state directory 0700');
  const fp = /^host key fingerprint: (SHA256:\S+)$/m.exec(r.stdout)?.[1];
  t.ok(fp, 'prints the fingerprint');
  t.equal(keygenFingerprint(`${key}.pub`), fp, "the fingerprint is OpenSSH's (ssh-keygen -lf)");
  const loaded = ensureHostKey(key, quiet);
  t.ok(loaded.isPrivateKey(), "the key loads in the PRR's registration server");

  const check = cli('prr', ['check-config', '--config', ini]);
  t.equal(check.status, 0, `prr check-config accepts it (the loader of prr run): ${check.stderr}`);
  t.match(check.stdout, /pool 192\.0\.2\.0\/28, tunnel MTU 1460/);
  const text = readFileSync(ini, 'utf8');
  t.match(text, /^enabled = true$/m, 'registration on');
  t.match(text, `host_key = ${key}\n`, 'host key under the state directory');
  t.match(text, `database = ${path.join(state, 'registrations.db')}\n`);

  await t.test('refuses to overwrite without --force: one line, exit 2, nothing changed', async (t) => {
    const again = cli('prr', args);
    t.equal(again.status, 2);
    t.equal(again.stderr, `prr: ${ini} exists; --force replaces it\n`);
    t.equal(again.stdout, '');
    t.equal(readFileSync(`${key}.pub`, 'utf8').includes(loaded.getPublicSSH().toString('base64')), true, 'the host key is the same');
    // Only the key left from an earlier run: refused too.
    const lone = path.join(root, 'lone');
    t.equal(cli('prr', ['init', '--dir', lone, '--state-dir', state]).status, 2, 'an existing host key is refused as well');
    t.notOk(existsSync(path.join(lone, 'prr.ini')), 'and no prr.ini was written');
  });

  await t.test('--force replaces config and key, keeps authorized_keys', async (t) => {
    writeFileSync(path.join(dir, 'authorized_keys'), 'name=cpe1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPi9gq0SEbUuz+FXGHRCJyqFNvJ/bF5Hii2gdP1lKSnf smap\n');
    const f = cli('prr', [...args, '--force', '--ipv4', '203.0.113.1', '--shared-ipv4', '192.0.2.64/27']);
    t.equal(f.status, 0, f.stderr);
    const fp2 = /^host key fingerprint: (SHA256:\S+)$/m.exec(f.stdout)?.[1];
    t.not(fp2, fp, 'a new host key');
    t.equal(keygenFingerprint(`${key}.pub`), fp2);
    t.match(readFileSync(ini, 'utf8'), /^ipv4 = 203\.0\.113\.1$/m, 'the flags go into prr.ini');
    t.match(readFileSync(path.join(dir, 'authorized_keys'), 'utf8'), /^name=cpe1 /, "the operator's authorized_keys is kept");
    t.notMatch(f.stdout, `wrote ${path.join(dir, 'authorized_keys')}\n`, 'authorized_keys not rewritten');
  });

  await t.test('a bad flag value: one line naming the flag, exit 2, nothing written', async (t) => {
    const other = path.join(root, 'other');
    const bad = cli('prr', ['init', '--dir', other, '--state-dir', other, '--tunnel-ipv6', '2001:db8::zz']);
    t.equal(bad.status, 2);
    t.match(bad.stderr, /^prr: --tunnel-ipv6: .*\n$/);
    t.notOk(existsSync(other), 'nothing written');
  });
});

t.test('smap init: a plug-and-play CPE config from the PRR address and fingerprint', async (t) => {
  const root = t.testdir({});
  const prr = cli('prr', ['init', '--dir', path.join(root, 'prr'), '--state-dir', path.join(root, 'prr')]);
  const fp = /^host key fingerprint: (SHA256:\S+)$/m.exec(prr.stdout)![1]!;
  const dir = path.join(root, 'etc/smap');
  const state = path.join(root, 'var/lib/smap');
  const args = ['init', '--prr', '2001:db8:ffff::1', '--fingerprint', fp, '--dir', dir, '--state-dir', state, '--wan', 'eth1', '--lan', 'lan0'];
  const r = cli('smap', args);
  t.equal(r.status, 0, r.stderr);
  const ini = path.join(dir, 'smap.ini');
  const key = path.join(state, 'id_ed25519');
  t.equal(mode(key), 0o600, 'CPE key 0600');
  const check = cli('smap', ['check-config', '--config', ini]);
  t.equal(check.status, 0, check.stderr);
  t.equal(check.stdout, `ok: ${ini}: registration with [2001:db8:ffff::1]:2222, wan eth1, lan lan0 192.168.1.0/24\n`);
  t.match(readFileSync(ini, 'utf8'), `host_key_fingerprint = ${fp}\n`, "the PRR's fingerprint pinned");
  t.match(readFileSync(ini, 'utf8'), `key_file = ${key}\n`, 'the key under the state directory');

  // The printed line is what the PRR's operator adds: the PRR's parser reads it as this key.
  const line = /^ {2}(ssh-ed25519 \S+ \S+)$/m.exec(r.stdout)?.[1];
  t.ok(line, 'prints the authorized_keys line');
  const keys = parseAuthorizedKeys(`name=cpe7 ${line}\n`);
  const printedFp = /^key fingerprint: (SHA256:\S+)$/m.exec(r.stdout)?.[1];
  t.same([...keys.keys()], [printedFp], 'the PRR knows the key by the printed fingerprint');
  t.equal(keygenFingerprint(`${key}.pub`), printedFp, 'the same as ssh-keygen -lf');

  const again = cli('smap', args);
  t.equal(again.status, 2);
  t.equal(again.stderr, `smap: ${ini} exists; --force replaces it\n`);
  const bad = cli('smap', ['init', '--prr', '2001:db8:ffff::1', '--fingerprint', 'SHA256:short', '--dir', path.join(root, 'x')]);
  t.equal(bad.status, 2);
  t.match(bad.stderr, /^smap: --fingerprint: expected an OpenSSH host key fingerprint/);
  t.notOk(existsSync(path.join(root, 'x')), 'nothing written');
  const missing = cli('smap', ['init', '--fingerprint', fp]);
  t.equal(missing.status, 2, '--prr is required');
});
