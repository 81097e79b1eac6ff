import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const NAME = 'prr';

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

const GOOD = `[prr]
ipv4 = 198.51.100.1
tunnel_ipv6 = 2001:db8:ffff::1
shared_ipv4 = 192.0.2.0/30

[subscriber.cpe1]
ipv6 = 2001:db8:1::1
shared_ipv4 = 192.0.2.1
ports = 10000-11000

[subscriber.cpe2]
ipv6 = 2001:db8:2::1
shared_ipv4 = 192.0.2.1
ports = 11001-12000
`;

t.test('prr check-config: a good file', async (t) => {
  const dir = t.testdir({ 'prr.ini': GOOD });
  const file = path.join(dir, 'prr.ini');
  const r = runCli(['check-config', '--config', file]);
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout, `ok: ${file} (ini): 2 subscribers, pool 192.0.2.0/30, tunnel MTU 1460\n`);
  t.equal(r.stderr, '');
  const exampleFile = path.join(ROOT, 'prr/prr.ini.example');
  const example = runCli(['check-config', '-c', exampleFile]);
  t.equal(example.status, 0, example.stderr);
  t.equal(example.stdout, `ok: ${exampleFile} (ini): 3 subscribers, pools 192.0.2.0/30, 198.51.100.7/32, tunnel MTU 1460\n`);
});

/** The 2010 experiment's flat file, unchanged. */
const LEGACY = `PrrAddrV4 192.0.2.1
PrrAddrV6 2001:db8::1
IPv4Shared 192.0.2.100
Cpe1AddrV6 2001:db8:1::2
Cpe1PortRange 10000-11000
Cpe2AddrV6 2001:db8:2::2
Cpe2PortRange 11001-12000
`;

t.test('prr check-config: the 2010 flat file', async (t) => {
  const dir = t.testdir({ 'aplus.conf': LEGACY, 'eq.conf': `# the same, other separators\n${LEGACY.replace(/ /g, ' = ')}` });
  for (const name of ['aplus.conf', 'eq.conf']) {
    const file = path.join(dir, name);
    const r = runCli(['check-config', '--config', file]);
    t.equal(r.status, 0, r.stderr);
    t.equal(r.stdout, `ok: ${file} (legacy): 2 subscribers, pool 192.0.2.100/32, tunnel MTU 1460\n`, name);
    t.equal(r.stderr, '');
  }
});

// Each case: file text (or null: no file), extra args, and what the single stderr line must say.
const bad: Array<[string, string | null, string[], RegExp]> = [
  ['bad syntax', GOOD.replace('ports = 10000-11000', 'ports 10000-11000'), [], /^prr: \S+prr\.ini:9: expected "key = value" or "\[section\]", got "ports 10000-11000"$/],
  ['unknown key', GOOD.replace('[prr]\n', '[prr]\nhairpining = false\n'), [], /^prr: \S+prr\.ini:2 \[prr\] hairpining: unknown key \(did you mean hairpinning\?\)$/],
  ['bad value', `${GOOD}[tunnel]\nmtu = 12x\n`, [], /^prr: \S+prr\.ini:16 \[tunnel\] mtu: expected an integer 1240\.\.65495 or "auto", got "12x"$/],
  ['overlap', GOOD.replace('11001-12000', '10500-12000'), [], /^prr: \S+prr\.ini:14 \[subscriber\.cpe2\] ports: 10500-12000 on 192\.0\.2\.1 overlaps \[subscriber\.cpe1\] \(line 6\) ports 10000-11000$/],
  ['missing file', null, [], /^prr: \S+missing\.ini: cannot read config file: no such file$/],
  ['missing ipv4', GOOD.replace('ipv4 = 198.51.100.1\n', ''), [], /^prr: \S+prr\.ini:1 \[prr\] ipv4: missing required key$/],
  ['tunnel mtu too big', `${GOOD}[tunnel]\nmtu = 1500\n`, [], /^prr: \S+prr\.ini:16 \[tunnel\] mtu: 1500 does not fit in \[internal\] mtu 1500 - 40 = 1460; lower it or raise \[internal\] mtu$/],
  ['legacy: range without address', LEGACY.replace('Cpe2AddrV6 2001:db8:2::2\n', ''), [], /^prr: \S+prr\.ini:6 Cpe2PortRange: Cpe2 has a port range but no Cpe2AddrV6$/],
  ['legacy: overlap', LEGACY.replace('11001-12000', '10500-12000'), [], /^prr: \S+prr\.ini:7 Cpe2PortRange: 10500-12000 overlaps Cpe1PortRange \(line 5\) 10000-11000$/],
  ['legacy: system ports', LEGACY.replace('10000-11000', '1-1000'), [], /^prr: \S+prr\.ini:5 Cpe1PortRange: 1-1000 includes system ports \(0-1023\)/],
  ['neither format', 'hello world\n', [], /^prr: \S+prr\.ini:1: not a PRR config file: expected prr\.ini \(INI, starting with a \[section\] such as \[prr\]\) or the 2010 flat file \(PrrAddrV4, PrrAddrV6, IPv4Shared, CpeNAddrV6, CpeNPortRange lines\), got "hello world"$/],
  ['bad flag', GOOD, ['--bogus'], /^prr: unknown option '--bogus' \(see prr --help\)$/],
  ['flag without value', GOOD, ['--config'], /^prr: option '-c, --config <file>' argument missing/],
];

t.test('prr check-config: every failure is one line and exit code 2', async (t) => {
  for (const [what, text, extra, re] of bad) {
    const dir = t.testdir(text === null ? {} : { 'prr.ini': text });
    const file = path.join(dir, text === null ? 'missing.ini' : 'prr.ini');
    const args = extra[0] === '--config' ? ['check-config', ...extra] : ['check-config', '--config', file, ...extra];
    const r = runCli(args);
    t.equal(r.status, 2, `${what}: exit 2`);
    t.equal(r.errLines.length, 1, `${what}: one line on stderr`);
    t.match(r.errLines[0] ?? '', re, what);
    t.equal(r.stdout, '', `${what}: nothing on stdout`);
  }
});

t.test('prr: usage errors', async (t) => {
  for (const [args, re] of [
    [[], /^prr: missing command \(see prr --help\)$/],
    [['check-confg'], /^prr: unknown command 'check-confg' \(Did you mean check-config\?\)$/],
  ] as Array<[string[], RegExp]>) {
    const r = runCli(args);
    t.equal(r.status, 2);
    t.equal(r.errLines.length, 1);
    t.match(r.errLines[0] ?? '', re);
  }
  const help = runCli(['check-config', '--help']);
  t.equal(help.status, 0);
  t.match(help.stdout, /--config <file>.*default: "\/etc\/prr\/prr\.ini"/s);
});
