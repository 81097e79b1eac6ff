/**
 * The systemd units (provisioning/systemd/): each grants exactly the capabilities the lab test
 * proved sufficient and necessary (DAEMON_CAPS, test/provisioning/unprivileged.test.ts), runs as
 * its own user with the hardening on, and its directories agree with the config defaults; systemd
 * itself accepts the files (`systemd-analyze verify`) and rates their exposure
 * (`systemd-analyze security --offline`).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { parsePrrConfig } from '../../common/config/prr.js';
import { parseSmapConfig } from '../../common/config/smap.js';
import { DEFAULT_CONFIG as PRR_CONFIG } from '../../prr/verbs.js';
import { DEFAULT_CONFIG as SMAP_CONFIG } from '../../smap/verbs.js';
import { distPath, REPO_ROOT } from '../lab/paths.js';
import { DAEMON_CAPS } from '../lab/unprivileged.js';

const DIR = path.join(REPO_ROOT, 'provisioning/systemd');

/** A unit file as section -> key -> values (a repeated key adds values, as systemd reads lists). */
type Unit = Record<string, Record<string, string[]>>;
function parseUnit(text: string): Unit {
  const unit: Unit = {};
  let section: Record<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const head = /^\[(.+)\]$/.exec(line);
    if (head !== null) {
      section = unit[head[1]!] = {};
      continue;
    }
    const eq = line.indexOf('=');
    if (section === undefined || eq < 0) throw new Error(`not a unit line: ${line}`);
    (section[line.slice(0, eq)] ??= []).push(line.slice(eq + 1));
  }
  return unit;
}

const words = (vs: string[] | undefined): string[] => (vs ?? []).flatMap((v) => v.split(/\s+/)).filter(Boolean).sort();

/** Minimal valid configs, to read the defaults the daemons use. */
const prrDefaults = parsePrrConfig('[prr]\nipv4 = 198.51.100.1\ntunnel_ipv6 = 2001:db8:ffff::1\nshared_ipv4 = 192.0.2.0/30\n');
const smapDefaults = parseSmapConfig('[smap]\nwan_interface = wan\n[static]\nshared_ipv4 = 192.0.2.1\nports = 10000-10999\nprr_ipv6 = 2001:db8:ffff::1\n');

const UNITS = {
  prr: { config: PRR_CONFIG, socket: prrDefaults.prr.control_socket, state: [prrDefaults.registration.host_key, prrDefaults.registration.database] },
  smap: { config: SMAP_CONFIG, socket: smapDefaults.smap.control_socket, state: [] as string[] },
} as const;

const sysusers = readFileSync(path.join(DIR, 'aplus-sysusers.conf'), 'utf8');

for (const [name, want] of Object.entries(UNITS)) {
  const file = path.join(DIR, `${name}.service`);
  const text = readFileSync(file, 'utf8');
  const unit = parseUnit(text);
  const s = unit['Service']!;

  t.test(`${name}.service: capabilities, user, hardening`, async (t) => {
    const caps = DAEMON_CAPS.map((c) => `CAP_${c.toUpperCase()}`).sort();
    t.same(words(s['AmbientCapabilities']), caps, 'ambient capabilities = what the lab proved needed');
    t.same(words(s['CapabilityBoundingSet']), caps, 'bounding set = the same, nothing more');
    const user = s['User']?.[0];
    t.ok(user !== undefined && user !== 'root' && user !== '0', `a dedicated user (${user})`);
    t.match(sysusers, new RegExp(`^u ${user} `, 'm'), 'the user is declared for systemd-sysusers');
    for (const [k, v] of [['NoNewPrivileges', 'yes'], ['ProtectSystem', 'strict'], ['ProtectHome', 'yes'], ['PrivateTmp', 'yes'], ['DevicePolicy', 'closed'], ['DeviceAllow', '/dev/net/tun rw'], ['UMask', '0077']] as const) {
      t.same(s[k], [v], `${k}=${v}`);
    }
    t.same(words(s['RestrictAddressFamilies']), ['AF_INET', 'AF_INET6', 'AF_NETLINK', 'AF_UNIX'], 'only Unix, IPv4, IPv6 and netlink sockets');
    t.same(s['RestartPreventExitStatus'], ['2'], 'a bad config (exit 2) is not restarted in a loop');
  });

  t.test(`${name}.service: directories agree with the config defaults`, async (t) => {
    t.match(s['ExecStart']![0], new RegExp(`/${name} run --config ${want.config}$`), `runs ${name} run on ${want.config}`);
    t.same(s['ConfigurationDirectory'], [path.basename(path.dirname(want.config))], `config in ${path.dirname(want.config)}`);
    t.equal(path.dirname(want.socket), `/run/${s['RuntimeDirectory']![0]}`, `the default control socket ${want.socket} is in RuntimeDirectory`);
    for (const f of want.state) t.equal(path.dirname(f), `/var/lib/${s['StateDirectory']![0]}`, `${f} is in StateDirectory`);
  });
}

// systemd's own reading of the units. The ExecStart binaries are where `npm install -g` puts them
// (/usr/local/bin), absent here: verify checks they exist, so it gets copies that run the built CLIs.
const analyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
const noAnalyze = analyze.status === 0 ? undefined : 'systemd-analyze is missing (Debian package systemd, in test/lab/debian-packages.txt)';
t.test('systemd-analyze verify and security', { skip: process.env['CI'] ? undefined : noAnalyze }, async (t) => {
  const dir = t.testdir({});
  for (const name of Object.keys(UNITS)) {
    const bin = path.join(dir, name);
    writeFileSync(bin, `#!/bin/sh\nexec ${process.execPath} ${distPath(`${name}/cli.js`)} "$@"\n`);
    chmodSync(bin, 0o755);
    const unit = path.join(dir, `${name}.service`);
    writeFileSync(unit, readFileSync(path.join(DIR, `${name}.service`), 'utf8').replaceAll(`/usr/local/bin/${name}`, bin));
    const v = spawnSync('systemd-analyze', ['verify', '--man=no', '--generators=no', unit], { encoding: 'utf8' });
    t.equal(v.status, 0, `${name}.service: verify exits 0`);
    t.equal(v.stderr, '', `${name}.service: no warning (an unknown or misspelt key would be one)`);
    const sec = spawnSync('systemd-analyze', ['security', '--offline=yes', '--no-pager', unit], { encoding: 'utf8' });
    const m = /Overall exposure level for \S+: ([\d.]+) (\w+)/.exec(sec.stdout);
    t.ok(m !== null, `${name}.service: security gives an exposure level (${sec.stderr.trim()})`);
    // 10 is a unit with no hardening; below 3 is what a network daemon with two capabilities can
    // reach (the rest is AF_INET/AF_NETLINK, CAP_NET_ADMIN, no PrivateNetwork: its job).
    t.ok(Number(m?.[1]) < 3, `${name}.service: exposure ${m?.[1]} ${m?.[2]} (below 3)`);
  }
});
