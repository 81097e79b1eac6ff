/**
 * The PRR and the SMAP as their systemd units run them (provisioning/systemd/): a non-root user
 * holding only CAP_NET_ADMIN and CAP_NET_RAW (ambient, inherited by the `ip`, `nft` and
 * `conntrack` they execute), no_new_privs, no supplementary groups. Two CPEs register over SSH,
 * and their LANs reach the Internet through the tunnel (HTTP and ping). Then each capability is
 * shown necessary: without it, each daemon stops at start with one error line. Last, the files
 * `prr init` writes run that way too, with the default control socket in a /run/prr of its own
 * (as RuntimeDirectory= gives it), and serve the host key whose fingerprint init printed.
 *
 * The capability set proved here is the one the unit files grant (test/provisioning/systemd.test.ts
 * checks that they grant DAEMON_CAPS).
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePortSet } from '../../common/portset.js';
import type { SmapStatus } from '../../smap/daemon.js';
import { labUnavailableReason, waitFor, type Host } from '../lab/lab.js';
import { distPath } from '../lab/paths.js';
import { distMissingReason } from '../lab/prr-topology.js';
import { buildSmapLab, BR, INET, SHARED, type Cpe, type SmapLab } from '../lab/smap-topology.js';
import { DAEMON_CAPS, NOBODY, tunNode, wrapCommand, type RunAs } from '../lab/unprivileged.js';

/** The capability bits of a capability set line of /proc/PID/status, as names. */
const CAP_BITS: Record<string, number> = { net_bind_service: 10, net_admin: 12, net_raw: 13 };
function capsOf(hex: string): string[] {
  const v = BigInt(`0x${hex}`);
  const named = Object.entries(CAP_BITS).filter(([, bit]) => (v >> BigInt(bit)) & 1n).map(([n]) => n);
  const known = named.reduce((m, n) => m | (1n << BigInt(CAP_BITS[n]!)), 0n);
  return v === known ? named.sort() : [...named.sort(), `other:0x${(v & ~known).toString(16)}`];
}

function procStatus(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

t.test('the PRR and the SMAP run as a non-root user with CAP_NET_ADMIN and CAP_NET_RAW only', { skip: labUnavailableReason() ?? distMissingReason(), timeout: 240_000 }, async (t) => {
  const devDir = mkdtempSync(join(tmpdir(), 'aplus-tun-'));
  t.teardown(() => rmSync(devDir, { recursive: true, force: true }));
  const node = tunNode(devDir);
  const runAs: RunAs = { ...NOBODY, caps: DAEMON_CAPS, ...(node !== undefined ? { tunNode: node } : {}) };
  const l: SmapLab = await buildSmapLab('unpriv', [{ ports: '', register: {} }, { ports: '', register: {} }], { runAs });
  t.teardown(() => l.destroy());
  const status = async (cpe: Cpe): Promise<SmapStatus> => {
    const r = await l.cli(cpe.host, 'smap', ['status', '--config', cpe.config, '--json']);
    if (r.code !== 0) throw new Error(`smap status in ${cpe.host.short}: ${r.stderr.trim()}`);
    return JSON.parse(r.stdout) as SmapStatus;
  };
  for (const cpe of l.cpes) l.startAgent(cpe);
  for (const cpe of l.cpes) await l.agentRunning(cpe);

  await t.test('the daemons hold only the two capabilities, as nobody', async (t) => {
    for (const [what, pid] of [['smap', l.cpes[0].agent!.pid!], ['smap', l.cpes[1].agent!.pid!]] as const) {
      const st = procStatus(pid);
      t.match(st['Name'], /node/, `${what}: the pid is the daemon itself`);
      t.equal(st['Uid']!.split(/\s+/)[0], String(NOBODY.uid), `${what}: runs as uid ${NOBODY.uid}`);
      t.equal(st['Groups'], '', `${what}: no supplementary groups`);
      t.equal(st['NoNewPrivs'], '1', `${what}: no_new_privs`);
      for (const set of ['CapEff', 'CapPrm', 'CapBnd', 'CapAmb']) t.same(capsOf(st[set]!), ['net_admin', 'net_raw'], `${what}: ${set}`);
    }
    // The PRR's process: the one in its namespace running prr/cli.js (pgrep would see the whole host).
    const prrPid = Number(execFileSync('ip', ['netns', 'pids', l.prr.name], { encoding: 'utf8' }).split(/\s+/).find((p) => p !== '' && readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('prr/cli.js\0run')));
    const st = procStatus(prrPid);
    t.equal(st['Uid']!.split(/\s+/)[0], String(NOBODY.uid), 'prr: runs as nobody');
    t.same(capsOf(st['CapEff']!), ['net_admin', 'net_raw'], 'prr: CapEff');
    // Network sysctls of the namespace are writable with CAP_NET_ADMIN (net_ctl_permissions).
    t.equal(l.prr.run('cat', '/proc/sys/net/ipv6/conf/prr0/disable_ipv6').trim(), '1', 'prr: wrote its sysctls (no IPv6 on prr0)');
  });

  await t.test('both CPEs register and their LANs reach the Internet through the tunnel', async (t) => {
    for (const cpe of l.cpes) {
      const s = await waitFor(`${cpe.host.short} registered`, async () => {
        const st = await status(cpe);
        return st.state === 'running' ? st : undefined;
      }, 30_000, 200);
      t.equal(s.binding?.source, 'registration', `${cpe.host.short}: binding from registration`);
      t.equal(cpe.host.run('cat', '/proc/sys/net/ipv6/conf/smap0/disable_ipv6').trim(), '1', `${cpe.host.short}: the agent wrote its sysctls (no IPv6 on smap0)`);
      t.match(cpe.host.run('nft', 'list', 'table', 'ip', 'smap'), /snat .*192\.0\.2\.100/, `${cpe.host.short}: the agent's nft -f (run as nobody) installed its table`);
      const set = parsePortSet(s.binding!.ports);
      const body = (await cpe.lan.exec('curl', ['-sS', '--max-time', '10', `http://${INET}/`])).stdout;
      const m = /^192\.0\.2\.100:(\d+)\n$/.exec(body);
      t.ok(m !== null && set.has(Number(m[1])), `curl from ${cpe.lan.short}: seen from ${SHARED}:${m?.[1]}, in ${s.binding!.ports}`);
      const ping = await cpe.lan.exec('ping', ['-c', '2', '-W', '3', INET]);
      t.equal(ping.code, 0, `ping from ${cpe.lan.short} through the tunnel`);
      // The MTU the agent set on smap0 through `ip` (as nobody): a full-size DF packet passes, one
      // byte more is answered by the CPE with Fragmentation Needed (README, Troubleshooting).
      const mtu = s.tunnel.mtu!;
      const fits = await cpe.lan.exec('ping', ['-c', '1', '-W', '3', '-M', 'do', '-s', String(mtu - 28), INET]);
      t.equal(fits.code, 0, `${cpe.lan.short}: a ${mtu}-byte DF ping passes`);
      const over = await cpe.lan.exec('ping', ['-c', '1', '-W', '3', '-M', 'do', '-s', String(mtu - 27), INET]);
      t.match(over.stdout + over.stderr, new RegExp(`Frag needed and DF set \\(mtu = ${mtu}\\)`), `${cpe.lan.short}: ${mtu + 1} bytes get Frag needed (mtu = ${mtu})`);
    }
    const list = await l.cli(l.prr, 'prr', ['subscribers', 'list', '--config', l.prrConfig]);
    t.match(list.stdout, /cpe1\t2001:db8:1::2\t192\.0\.2\.100/, 'the PRR lists the registrations (root over its control socket)');
    t.match(list.stdout, /cpe2\t2001:db8:2::2\t192\.0\.2\.100/);
    const s = await status(l.cpes[0]);
    // /proc/net/nf_conntrack is 0440 root: the agent reads the table with `conntrack -L` instead.
    t.ok(s.ports_in_use.flows > 0, `the agent reads conntrack as nobody (${s.ports_in_use.flows} flows: ${JSON.stringify(s.ports_in_use.byProtocol)})`);
    t.match(l.cpes[0].log(), /registered as cpe1/);
    t.notMatch(l.cpes[0].log(), /EACCES|EPERM|permission denied/i, 'no permission error in the agent log');
  });

  await t.test('each capability is needed: without it each daemon stops at start with one line', async (t) => {
    // A namespace of its own with what each daemon needs to get as far as its privileged steps.
    const solo: Host = l.lab.host('solo');
    solo.addAddress('lo', '2001:db8:ffff::9/128');
    l.lab.link(solo, l.lab.host('solopeer'), { aDev: 'wan', a: ['2001:db8:9::2/64'] });
    const prrIni = join(l.dir, 'solo-prr.ini');
    writeFileSync(prrIni, ['[prr]', 'ipv4 = 198.51.100.1', 'tunnel_ipv6 = 2001:db8:ffff::9', 'shared_ipv4 = 192.0.2.200', `control_socket = ${join(l.dir, 'solo-prr.sock')}`, '[metrics]', 'enabled = false', ''].join('\n'));
    const smapIni = join(l.dir, 'solo-smap.ini');
    writeFileSync(smapIni, ['[smap]', 'wan_interface = wan', 'wan_ipv6 = 2001:db8:9::2', 'lan_interface = lo', `control_socket = ${join(l.dir, 'solo-smap.sock')}`,
      '[static]', 'shared_ipv4 = 192.0.2.200', 'ports = 10000-10999', `prr_ipv6 = ${BR}`, '[metrics]', 'enabled = false', ''].join('\n'));
    solo.run('chown', `${NOBODY.uid}:${NOBODY.gid}`, prrIni, smapIni);
    const expected: Record<string, Record<string, RegExp>> = {
      prr: { net_raw: /raw IPv6 socket|socket.*(EPERM|not permitted)/i, net_admin: /TUNSETIFF|SO_RCVBUFFORCE|not permitted/i },
      smap: { net_raw: /raw IPv6 socket|socket.*(EPERM|not permitted)/i, net_admin: /TUNSETIFF|SO_RCVBUFFORCE|not permitted/i },
    };
    for (const which of ['prr', 'smap'] as const) {
      for (const missing of DAEMON_CAPS) {
        const caps = DAEMON_CAPS.filter((c) => c !== missing);
        const [cmd, args] = wrapCommand({ ...runAs, caps }, process.execPath, [distPath(`${which}/cli.js`), 'run', '--config', which === 'prr' ? prrIni : smapIni]);
        const r = await solo.exec(cmd, args, { timeoutMs: 30_000 });
        const lines = r.stderr.trim().split('\n');
        t.not(r.code, 0, `${which} without ${missing}: exits non-zero`);
        t.match(lines[lines.length - 1], expected[which]![missing]!, `${which} without ${missing}: ${r.stderr}`);
      }
    }
  });

  await t.test("what `prr init` writes runs as the unit runs it, and serves the printed host key", async (t) => {
    const solo = l.lab.host('solo');
    const etc = join(l.dir, 'init-etc');
    const state = join(l.dir, 'init-state');
    const init = await solo.exec(process.execPath, [distPath('prr/cli.js'), 'init', '--dir', etc, '--state-dir', state, '--tunnel-ipv6', '2001:db8:ffff::9', '--shared-ipv4', '192.0.2.200']);
    t.equal(init.code, 0, init.stderr);
    const fp = /^host key fingerprint: (SHA256:\S+)$/m.exec(init.stdout)![1]!;
    solo.run('chown', '-R', `${NOBODY.uid}:${NOBODY.gid}`, state); // systemd does this for StateDirectory=
    // The default control socket, /run/prr/control.sock, in a /run of its own (RuntimeDirectory=prr).
    const child = solo.spawn(...wrapCommand({ ...runAs, runtimeDir: 'prr' }, process.execPath, [distPath('prr/cli.js'), 'run', '--config', join(etc, 'prr.ini')]), { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
    await waitFor('prr run on the init config', () => {
      if (child.exitCode !== null) throw new Error(`prr exited ${child.exitCode}: ${out.trim()}`);
      return out.includes('prr: running') ? true : undefined;
    }, 20_000);
    t.match(out, `host key ${fp}`, 'it logs the fingerprint init printed');
    const scan = await solo.exec('ssh-keyscan', ['-p', '2222', '-t', 'ed25519', '2001:db8:ffff::9'], { timeoutMs: 15_000 });
    const served = await solo.exec('ssh-keygen', ['-lf', '-'], { input: scan.stdout });
    t.equal(served.stdout.split(' ')[1], fp, 'an SSH client sees that key (ssh-keyscan)');
    const exited = new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    child.kill('SIGTERM');
    t.equal(await exited, 0, 'SIGTERM stops it cleanly');
  });
});
