/**
 * The OpenWrt package (provisioning/openwrt/), tested with what runs here: every script is
 * shellcheck-clean as POSIX sh and runs under busybox ash; install.sh lays the package out in a
 * staging root that is inspected; the staged init script's start_service turns a real UCI file
 * into smap.ini with the staged bundle. procd, uci and dnsmasq's init script do not exist here:
 * their calls are recorded by small stand-ins (the conversion itself is never a stand-in).
 */
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import t from 'tap';
import { bundleSmap } from '../../provisioning/bundle.js';
import { Lab, labUnavailableReason, waitFor } from '../lab/lab.js';
import { REPO_ROOT } from '../lab/paths.js';

const PKG = join(REPO_ROOT, 'provisioning/openwrt');
const SCRIPTS = ['install.sh', 'files/smap.init', 'files/smap.hotplug', 'files/dhcp-mtu', 'files/smap.sh'];
const FP = 'SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU';

function has(tool: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
/** Outside CI a missing tool skips, saying so; in CI it fails (the package list installs it). */
const missing = (tool: string): string | false => (has(tool) || process.env['CI'] ? false : `${tool} is not installed (apt-get install ${tool})`);

interface Run { code: number | null; stdout: string; stderr: string }
function ash(script: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile('busybox', ['ash', script, ...args], { env: { PATH: `${dirname(process.execPath)}:/usr/sbin:/usr/bin:/sbin:/bin`, ...env }, timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : null, stdout, stderr }));
  });
}
const mode = (p: string): string => (statSync(p).mode & 0o7777).toString(8).padStart(4, '0');

const dir = mkdtempSync(join(tmpdir(), 'aplus-openwrt-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const root = join(dir, 'root');
/** Writes an executable stand-in under dir/bin. */
function standIn(name: string, body: string): string {
  mkdirSync(join(dir, 'bin'), { recursive: true });
  const f = join(dir, 'bin', name);
  writeFileSync(f, `#!/bin/sh\n${body}\n`);
  chmodSync(f, 0o755);
  return f;
}

t.test('every script is clean under shellcheck -s sh', { skip: missing('shellcheck') }, async (t) => {
  for (const s of SCRIPTS) {
    const r = await new Promise<Run>((resolve) => execFile('shellcheck', ['-s', 'sh', join(PKG, s)], (err, stdout, stderr) =>
      resolve({ code: err === null ? 0 : (err.code as number), stdout, stderr })));
    t.equal(r.code, 0, `${s}: ${r.stdout.trim()}`);
  }
});

t.test('the feed Makefile: dependencies, and the install step is install.sh', async (t) => {
  const mk = readFileSync(join(PKG, 'Makefile'), 'utf8');
  const deps = /^\s*DEPENDS:=(.*)$/m.exec(mk)?.[1]?.split(/\s+/) ?? [];
  for (const d of ['+node', '+kmod-tun', '+nftables', '+ip-full']) t.ok(deps.includes(d), `DEPENDS has ${d}`);
  t.match(mk, /define Package\/smap\/install\n\t\$\(CURDIR\)\/install\.sh \$\(1\) \$\(PKG_BUILD_DIR\)\/dist-bundle\n/);
  t.match(mk, /\/etc\/config\/smap\n/, 'conffiles keep the UCI config');
  for (const f of readFileSync(join(REPO_ROOT, 'common/native/binding.gyp'), 'utf8').match(/src\/[a-z0-9]+\.c/g) ?? []) {
    t.ok(existsSync(join(REPO_ROOT, 'common/native', f)), `the cross build's src/*.c has ${f}`);
  }
});

t.test('install.sh lays the package out in a staging root', { skip: missing('busybox') }, async (t) => {
  const bundle = await bundleSmap(join(dir, 'bundle'));
  const bad = await ash(join(PKG, 'install.sh'), [root, join(dir, 'nothing')]);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /^install\.sh: .*nothing\/smap\.mjs is missing \(npm run bundle\)\n$/);
  t.notOk(existsSync(root), 'a failed install writes nothing');

  const r = await ash(join(PKG, 'install.sh'), [root, bundle.dir]);
  t.equal(r.code, 0, r.stderr);
  const expect: Array<[string, string]> = [
    ['usr/lib/smap/smap.mjs', '0644'],
    ['usr/lib/smap/aplus_native.node', '0755'],
    ['usr/lib/smap/package.json', '0644'],
    ['usr/lib/smap/LICENSES.txt', '0644'],
    ['usr/bin/smap', '0755'],
    ['etc/init.d/smap', '0755'],
    ['etc/config/smap', '0644'],
    ['etc/hotplug.d/iface/90-smap', '0644'],
    ['usr/libexec/smap/dhcp-mtu', '0755'],
    ['etc/smap', '0700'],
  ];
  for (const [p, m] of expect) {
    t.ok(existsSync(join(root, p)), `${p} is installed`);
    if (existsSync(join(root, p))) t.equal(mode(join(root, p)), m, `${p} mode ${m}`);
  }
  t.equal(readFileSync(join(root, 'usr/lib/smap/smap.mjs'), 'utf8'), readFileSync(bundle.bundle, 'utf8'), 'the bundle as built');
  t.match(readFileSync(join(root, 'etc/init.d/smap'), 'utf8'), /^#!\/bin\/sh \/etc\/rc\.common\n/);

  const help = await ash(join(root, 'usr/bin/smap'), ['--help'], { SMAP_LIB: join(root, 'usr/lib/smap') });
  t.equal(help.code, 0, help.stderr);
  t.match(help.stdout, /uci-to-ini/, 'the staged /usr/bin/smap runs the staged bundle');
});

/** Runs the staged init script's functions under ash with procd's calls recorded. */
async function initScript(fn: string, uci: string): Promise<Run & { procd: string; ini: string }> {
  const log = join(dir, 'procd.log');
  rmSync(log, { force: true });
  const ini = join(dir, 'etc-smap', 'smap.ini');
  const harness = join(dir, 'init-harness.sh');
  writeFileSync(harness, [
    'procd_open_instance() { echo "open" >>"$PROCD_LOG"; }',
    'procd_set_param() { echo "param $*" >>"$PROCD_LOG"; }',
    'procd_close_instance() { echo "close" >>"$PROCD_LOG"; }',
    'procd_add_reload_trigger() { echo "trigger $*" >>"$PROCD_LOG"; }',
    'procd_send_signal() { echo "signal $*" >>"$PROCD_LOG"; }',
    `. ${join(root, 'etc/init.d/smap')}`,
    `${fn}`,
    '',
  ].join('\n'));
  const uciFile = join(dir, 'uci-smap');
  writeFileSync(uciFile, uci);
  const r = await ash(harness, [], {
    PROCD_LOG: log, SMAP_UCI: uciFile, SMAP_INI: ini, SMAP_BIN: join(root, 'usr/bin/smap'), SMAP_LIB: join(root, 'usr/lib/smap'),
  });
  return { ...r, procd: existsSync(log) ? readFileSync(log, 'utf8') : '', ini };
}

t.test('init script: start_service converts /etc/config/smap and starts the agent under procd', { skip: missing('busybox') }, async (t) => {
  t.ok(existsSync(join(root, 'etc/config/smap')), 'needs the staging root');
  const shipped = readFileSync(join(root, 'etc/config/smap'), 'utf8');
  const provisioned = shipped.replace("option prr_host ''", "option prr_host '2001:db8:ffff::1'").replace("option host_key_fingerprint ''", `option host_key_fingerprint '${FP}'`);

  const ok = await initScript('start_service', provisioned);
  t.equal(ok.code, 0, ok.stderr);
  t.equal(mode(dirname(ok.ini)), '0700', 'the key directory is root only');
  t.same(ok.procd.trim().split('\n'), [
    'open',
    `param command ${join(root, 'usr/bin/smap')} run --config ${ok.ini}`,
    'param respawn 3600 5 0',
    `param file ${join(dir, 'uci-smap')}`,
    'param stdout 1',
    'param stderr 1',
    'close',
  ]);
  const text = readFileSync(ok.ini, 'utf8');
  t.match(text, /^prr_host = "2001:db8:ffff::1"$/m);
  t.match(text, /^mtu_hook = "\/usr\/libexec\/smap\/dhcp-mtu"$/m);
  const check = await ash(join(root, 'usr/bin/smap'), ['check-config', '--config', ok.ini], { SMAP_LIB: join(root, 'usr/lib/smap') });
  t.equal(check.code, 0, check.stderr);
  t.match(check.stdout, /registration with \[2001:db8:ffff::1\]:2222, wan wan, lan br-lan 192\.168\.1\.0\/24/, 'the agent accepts the written smap.ini');

  const inode = statSync(ok.ini).ino;
  const again = await initScript('start_service', provisioned);
  t.equal(again.code, 0, again.stderr);
  t.equal(statSync(again.ini).ino, inode, 'an unchanged config is not written again (flash)');
  const changed = await initScript('start_service', provisioned.replace("option log_level 'info'", "option log_level 'debug'"));
  t.equal(changed.code, 0, changed.stderr);
  t.match(readFileSync(changed.ini, 'utf8'), /^log_level = "debug"$/m, 'a changed one is');

  const off = await initScript('start_service', provisioned.replace("option enabled '1'", "option enabled '0'"));
  t.equal(off.code, 0);
  t.equal(off.procd, '', 'disabled: no instance');

  const bad = await initScript('start_service', provisioned.replace("option mtu 'auto'", "option mtu 'big'"));
  t.not(bad.code, 0, 'a bad option fails the start');
  t.equal(bad.procd, '', 'and starts nothing');
  t.match(bad.stderr, /^smap: .*uci-smap:\d+ \[tunnel\] mtu: .*"big"\n$/, 'one line naming the UCI file, line and option');

  const unprovisioned = await initScript('start_service', shipped);
  t.not(unprovisioned.code, 0);
  t.match(unprovisioned.stderr, /\[registration\] prr_host: no binding/);

  const trig = await initScript('service_triggers; register', provisioned);
  t.same(trig.procd.trim().split('\n'), ['trigger smap', 'signal smap * 1'], 'reload on `uci commit smap`; register = SIGHUP');
});

t.test('first boot: the staged package, started from UCI, makes the key pair (0600) in the root-only directory', { skip: labUnavailableReason() || missing('busybox') }, async (t) => {
  // The package's paths, moved under a temporary /etc: the init script converts the UCI file,
  // then the staged /usr/bin/smap runs the agent, as procd would, in a network namespace.
  const etc = join(dir, 'fb-etc');
  const shipped = readFileSync(join(root, 'etc/config/smap'), 'utf8');
  const uci = shipped.replace("option prr_host ''", "option prr_host '2001:db8:ffff::1'").replace("option host_key_fingerprint ''", `option host_key_fingerprint '${FP}'`)
    .replace("'/etc/smap/id_ed25519'", `'${etc}/smap/id_ed25519'`)
    .replace("option log_level 'info'", `option log_level 'info'\n\toption control_socket '${join(dir, 'fb.sock')}'`)
    .replace("option enabled '1'\n\toption listen", "option enabled '0'\n\toption listen");
  writeFileSync(join(dir, 'uci-fb'), uci);
  const ini = join(etc, 'smap', 'smap.ini');
  const conv = await ash(join(root, 'etc/init.d/smap'), [], {});
  t.equal(conv.code, 0, 'the init script parses as a plain script');
  const harness = join(dir, 'fb-harness.sh');
  writeFileSync(harness, `procd_open_instance() { :; }\nprocd_set_param() { :; }\nprocd_close_instance() { :; }\n. ${join(root, 'etc/init.d/smap')}\nstart_service\n`);
  const started = await ash(harness, [], { SMAP_UCI: join(dir, 'uci-fb'), SMAP_INI: ini, SMAP_BIN: join(root, 'usr/bin/smap'), SMAP_LIB: join(root, 'usr/lib/smap') });
  t.equal(started.code, 0, started.stderr);
  t.notOk(existsSync(join(etc, 'smap', 'id_ed25519')), 'no key before the agent first runs');

  const lab = Lab.create('pkgkey');
  t.teardown(() => lab.destroy());
  const cpe = lab.host('cpe');
  const agent = cpe.spawn('busybox', ['ash', join(root, 'usr/bin/smap'), 'run', '--config', ini], {
    stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: `${dirname(process.execPath)}:/usr/sbin:/usr/bin:/sbin:/bin`, SMAP_LIB: join(root, 'usr/lib/smap') },
  });
  let log = '';
  agent.stderr?.setEncoding('utf8').on('data', (d: string) => (log += d));
  agent.stdout?.setEncoding('utf8').on('data', (d: string) => (log += d));
  const key = join(etc, 'smap', 'id_ed25519');
  await waitFor('the agent to make its key', () => (existsSync(`${key}.pub`) && /waiting for a global IPv6 address/.test(log) ? true : undefined), 30_000, 100);
  agent.kill('SIGTERM');
  t.equal(mode(join(etc, 'smap')), '0700', '/etc/smap is root only');
  t.equal(mode(key), '0600', 'the private key is 0600');
  t.match(readFileSync(`${key}.pub`, 'utf8'), /^ssh-ed25519 [A-Za-z0-9+/=]+ /, 'an OpenSSH public key beside it');
  t.match(log, /generated the registration key .*id_ed25519; add .*id_ed25519\.pub to the PRR's authorized_keys/, 'the agent says what to do with it');
});

t.test('hotplug: WAN up or changed makes the agent register again; nothing else does', { skip: missing('busybox') }, async (t) => {
  const ini = join(dir, 'hotplug.ini');
  writeFileSync(ini, '[smap]\nwan_interface = "eth1"\nlan_interface = "br-lan"\n');
  const calls = join(dir, 'init.calls');
  const init = standIn('fake-init', `echo "$*" >>${calls}`);
  const cases: Array<[Record<string, string>, boolean]> = [
    [{ ACTION: 'ifup', INTERFACE: 'wan6', DEVICE: 'eth1' }, true],
    [{ ACTION: 'ifupdate', INTERFACE: 'wan', DEVICE: 'eth1' }, true],
    [{ ACTION: 'ifup', INTERFACE: 'isp', DEVICE: 'eth1' }, true],
    [{ ACTION: 'ifdown', INTERFACE: 'wan6', DEVICE: 'eth1' }, false],
    [{ ACTION: 'ifup', INTERFACE: 'lan', DEVICE: 'br-lan' }, false],
    [{ ACTION: 'ifup', INTERFACE: 'guest', DEVICE: '' }, false],
  ];
  for (const [env, expected] of cases) {
    rmSync(calls, { force: true });
    const r = await ash(join(root, 'etc/hotplug.d/iface/90-smap'), [], { ...env, SMAP_INI: ini, SMAP_INIT: init });
    t.equal(r.code, 0, r.stderr);
    t.equal(existsSync(calls) ? readFileSync(calls, 'utf8') : '', expected ? 'register\n' : '', JSON.stringify(env));
  }
  rmSync(calls, { force: true });
  await ash(join(root, 'etc/hotplug.d/iface/90-smap'), [], { ACTION: 'ifup', INTERFACE: 'wan', SMAP_INI: join(dir, 'absent.ini'), SMAP_INIT: init });
  t.notOk(existsSync(calls), 'not converted yet (never started): nothing to signal');
});

t.test('dhcp-mtu hook: option 26 through uci, replaced, committed only on change', { skip: missing('busybox') }, async (t) => {
  const state = join(dir, 'uci.state');
  const ulog = join(dir, 'uci.log');
  // uci's command line over a "key=value" file (a list is several lines with the same key).
  standIn('uci', [
    `echo "$*" >>${ulog}`,
    '[ "$1" = -q ] && shift',
    'case "$1" in',
    `get) v=$(sed -n "s|^$2=||p" ${state} | tr '\\n' ' '); [ -n "$v" ] || exit 1; echo "\${v% }" ;;`,
    `add_list) echo "$2" >>${state} ;;`,
    `del_list) grep -vxF "$2" ${state} >${state}.new; mv ${state}.new ${state} ;;`,
    'commit) ;;',
    '*) exit 1 ;;',
    'esac',
  ].join('\n'));
  const reloads = join(dir, 'dnsmasq.calls');
  const dnsmasqInit = standIn('dnsmasq-init', `echo "$*" >>${reloads}`);
  const hook = (args: string[]): Promise<Run> =>
    ash(join(root, 'usr/libexec/smap/dhcp-mtu'), args, { PATH: `${join(dir, 'bin')}:/usr/bin:/bin`, DNSMASQ_INIT: dnsmasqInit });
  const reset = (lines: string[]): void => {
    writeFileSync(state, lines.map((l) => `${l}\n`).join(''));
    rmSync(ulog, { force: true });
    rmSync(reloads, { force: true });
  };
  const read = (f: string): string => (existsSync(f) ? readFileSync(f, 'utf8') : '');

  reset(['dhcp.lan=dhcp', 'dhcp.lan.dhcp_option=6,192.168.1.1', 'dhcp.lan.dhcp_option=26,1500']);
  let r = await hook(['1420']);
  t.equal(r.code, 0, r.stderr);
  t.same(read(state).trim().split('\n'), ['dhcp.lan=dhcp', 'dhcp.lan.dhcp_option=6,192.168.1.1', 'dhcp.lan.dhcp_option=26,1420'], 'the old MTU replaced, other options kept');
  t.match(read(ulog), /^commit dhcp$/m);
  t.equal(read(reloads), 'reload\n', 'dnsmasq reloaded');

  rmSync(ulog, { force: true });
  rmSync(reloads, { force: true });
  r = await hook(['1420']);
  t.equal(r.code, 0);
  t.notMatch(read(ulog), /commit/, 'unchanged: no commit (no flash write)');
  t.equal(read(reloads), '', 'and no reload');

  reset(['dhcp.guest=dhcp']);
  r = await hook(['1380', 'guest']);
  t.equal(r.code, 0, r.stderr);
  t.match(read(state), /^dhcp\.guest\.dhcp_option=26,1380$/m, 'another section by name');

  reset(['dhcp.lan=dhcp']);
  for (const [args, re, code] of [[['12x'], /expected the MTU as a number, got "12x"/, 2], [[], /got ""/, 2], [['100'], /outside 576\.\.65535/, 2],
    [['1420', 'nosuch'], /no dhcp section "nosuch"/, 1]] as const) {
    r = await hook([...args]);
    t.equal(r.code, code, `${args.join(' ')}: exit ${code}`);
    t.match(r.stderr, new RegExp(`^dhcp-mtu: .*${re.source}\\n$`), 'one line');
  }
  t.notMatch(read(ulog), /add_list|commit/, 'bad input changes nothing');
});
