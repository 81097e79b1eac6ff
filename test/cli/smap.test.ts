import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const NAME = 'smap';

// ---- running the built CLI as an operator would ----------------------------------------------

/** The project root, whether this file runs from test/cli or from dist/test/cli. */
function projectRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
}
const ROOT = projectRoot();

/** Run dist/NAME/cli.js (built by `npm test`'s pretest, or `npx tsc -p .`). */
function runCli(args: string[]): { status: number | null; stdout: string; stderr: string; errLines: string[] } {
  const bin = path.join(ROOT, 'dist', NAME, 'cli.js');
  if (!existsSync(bin)) throw new Error(`${bin} is missing: build first (npx tsc -p .)`);
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  const errLines = r.stderr === '' ? [] : r.stderr.replace(/\n$/, '').split('\n');
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, errLines };
}

const GOOD = `[smap]
wan_interface = eth1

[static]
shared_ipv4 = 192.0.2.1
ports = 10000-11000
prr_ipv6 = 2001:db8:ffff::1
`;

t.test('smap check-config: a good file', async (t) => {
  const dir = t.testdir({ 'smap.ini': GOOD });
  const file = path.join(dir, 'smap.ini');
  const r = runCli(['check-config', '--config', file]);
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout, `ok: ${file}: static 192.0.2.1 ports 10000-11000 via 2001:db8:ffff::1, wan eth1, lan br-lan 192.168.1.0/24\n`);
  t.equal(r.stderr, '');
  t.equal(runCli(['check-config', '-c', path.join(ROOT, 'smap/smap.ini.example')]).status, 0);
});

const bad: Array<[string, string | null, string[], RegExp]> = [
  ['bad syntax', `${GOOD}[tunnel\n`, [], /^smap: \S+smap\.ini:8: bad section header "\[tunnel": expected \[name\]$/],
  ['unknown key', `${GOOD}lan_prefx = 192.168.2.0/24\n`, [], /^smap: \S+smap\.ini:8 \[static\] lan_prefx: unknown key/],
  ['bad value', GOOD.replace('2001:db8:ffff::1', '2001:db8:ffff::g'), [], /^smap: \S+smap\.ini:7 \[static\] prr_ipv6: expected an IPv6 address, got "2001:db8:ffff::g"$/],
  ['incomplete static', GOOD.replace('prr_ipv6 = 2001:db8:ffff::1\n', ''), [], /^smap: \S+smap\.ini:4 \[static\] prr_ipv6: a static binding needs/],
  ['missing file', null, [], /^smap: \S+missing\.ini: cannot read config file: no such file$/],
  ['bad flag', GOOD, ['-x'], /^smap: unknown option '-x' \(see smap --help\)$/],
];

t.test('smap check-config: every failure is one line and exit code 2', async (t) => {
  for (const [what, text, extra, re] of bad) {
    const dir = t.testdir(text === null ? {} : { 'smap.ini': text });
    const file = path.join(dir, text === null ? 'missing.ini' : 'smap.ini');
    const r = runCli(['check-config', '--config', file, ...extra]);
    t.equal(r.status, 2, `${what}: exit 2`);
    t.equal(r.errLines.length, 1, `${what}: one line on stderr`);
    t.match(r.errLines[0] ?? '', re, what);
  }
});
