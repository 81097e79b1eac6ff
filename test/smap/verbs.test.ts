/** `smap run` and `smap status` as an operator runs them: failures are one line and exit code 2. */
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

function projectRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
}
const BIN = path.join(projectRoot(), 'dist', 'smap', 'cli.js');

function smap(args: string[]): { status: number | null; stdout: string; lines: string[] } {
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: build first (npx tsc -p .)`);
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, lines: r.stderr === '' ? [] : r.stderr.replace(/\n$/, '').split('\n') };
}

const REGISTRATION = '[smap]\nwan_interface = wan\n[registration]\nprr_host = 2001:db8:ffff::1\nhost_key_fingerprint = SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU\nkey_file = KEY\n';

t.test('failures: one line on stderr, exit code 2', async (t) => {
  const dir = t.testdir({ 'not-a-key': 'not a key\n', 'bad.ini': '[smap]\nwan_interface = wan\n[tunnel]\nmtu = 900\n' });
  writeFileSync(path.join(dir, 'reg.ini'), REGISTRATION.replace('KEY', path.join(dir, 'not-a-key')));
  const cases: Array<[string, string[], RegExp]> = [
    ['run: missing file', ['run', '--config', path.join(dir, 'none.ini')], /^smap: \S+none\.ini: cannot read config file: no such file$/],
    ['run: bad value', ['run', '--config', path.join(dir, 'bad.ini')], /^smap: \S+bad\.ini:4 \[tunnel\] mtu: expected an integer 1240\.\.65495 or "auto", got "900"$/],
    ['run: registration key unusable', ['run', '--config', path.join(dir, 'reg.ini')], /^smap: \S+reg\.ini \[registration\] key_file: cannot use the registration key: .*not an OpenSSH private key$/],
    ['status: no agent', ['status', '--socket', path.join(dir, 'none.sock')], /^smap: control socket \S+none\.sock: the agent is not running there \(is `smap run` started\?\)$/],
    ['status: bad flag', ['status', '--bogus'], /^smap: unknown option '--bogus'/],
  ];
  for (const [what, args, re] of cases) {
    const r = smap(args);
    t.equal(r.status, 2, `${what}: exit 2`);
    t.equal(r.lines.length, 1, `${what}: one line`);
    t.match(r.lines[0] ?? '', re, what);
  }
});
