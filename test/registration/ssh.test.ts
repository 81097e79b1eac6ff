// The registration server with real clients: OpenSSH `ssh` and dropbear `dbclient`.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ssh2 from 'ssh2';
import t from 'tap';
import { RegistrationStore } from '../../prr/store.js';
import { dbclient, makeKey, makeRig, serve, ssh, tempDir, type ClientKey } from './helpers.js';

const lines = (s: string): string[] => s.split('\n').filter((l) => l !== '');

t.test('OpenSSH and dropbear clients register, stay sticky and release, on IPv4 and IPv6 loopback', async (t) => {
  const dir = tempDir('ssh');
  const a = makeKey(dir, 'a');
  const b = makeKey(dir, 'b');
  const rig = makeRig(dir, `name=cpe-a ${a.pub}\nname=cpe-b ${b.pub}\n`);
  const server = await serve(rig, '::');
  t.teardown(() => server.close());

  for (const host of ['127.0.0.1', '::1']) {
    const r1 = await ssh(a, host, server.port, 'register --ipv6 2001:db8:1::1');
    t.equal(r1.code, 0, `ssh ${host}: ${r1.stderr}`);
    t.equal(lines(r1.stdout).length, 1, 'one JSON document');
    const l1 = JSON.parse(r1.stdout);
    t.match(l1, { subscriber: 'cpe-a', shared_ipv4: '192.0.2.1', ports: '1024-2023', prr_ipv6: '2001:db8:ffff::1', lease_seconds: 3600, mtu: 1460 });
    const r2 = await ssh(a, host, server.port, 'register --ipv6 2001:db8:1::9');
    t.match(JSON.parse(r2.stdout), { ports: '1024-2023', ipv6: '2001:db8:1::9' }, 'sticky: same set, new address');

    const d1 = await dbclient(b, host, server.port, 'register --ipv6 2001:db8:2::1', dir);
    t.equal(d1.code, 0, `dbclient ${host}: ${d1.stderr}`);
    t.match(JSON.parse(d1.stdout), { subscriber: 'cpe-b', ports: '2024-3023' });
    const d2 = await dbclient(b, host, server.port, 'register --ipv6 2001:db8:2::1', dir);
    t.match(JSON.parse(d2.stdout), { ports: '2024-3023' }, 'dbclient: sticky');
    t.equal(rig.table.size, 2);

    const rel = await dbclient(b, host, server.port, 'release', dir);
    t.same(JSON.parse(rel.stdout), { subscriber: 'cpe-b', released: true });
    const rel2 = await ssh(a, host, server.port, 'release');
    t.same(JSON.parse(rel2.stdout), { subscriber: 'cpe-a', released: true });
    t.equal(rig.table.size, 0, 'both released');
    t.equal(rig.store.loadAll().length, 0);
  }
  t.ok(server.counters.requests_ok >= 12);
  rig.store.close();
});

t.test('malformed and oversized commands: non-zero status, one line, no change', async (t) => {
  const dir = tempDir('bad');
  const a = makeKey(dir, 'a');
  const rig = makeRig(dir, `${a.pub}\n`);
  const server = await serve(rig, '127.0.0.1');
  t.teardown(() => server.close());
  t.equal((await ssh(a, '127.0.0.1', server.port, 'register --ipv6 2001:db8::5')).code, 0);
  const before = JSON.stringify(rig.store.loadAll());
  const cases = [
    'register --ipv6 not-an-address',
    'register --ipv6 2001:db8::6 --ports 99999999',
    'register --ipv6 2001:db8::6 --ports 10',
    'register --ipv6 2001:db8::6 extra',
    `register --ipv6 ${'f'.repeat(4000)}`,
    'rm -rf /',
    'renew --ipv6 ::1',
  ];
  for (const cmd of cases) {
    const r = await ssh(a, '127.0.0.1', server.port, cmd);
    t.not(r.code, 0, cmd.slice(0, 40));
    t.equal(r.stdout, '');
    t.equal(lines(r.stderr).length, 1, `one line: ${r.stderr.trim().slice(0, 80)}`);
    t.match(r.stderr, /^error: /);
  }
  t.equal(JSON.stringify(rig.store.loadAll()), before, 'store unchanged');
  t.equal(rig.table.size, 1);
  t.match(JSON.parse((await ssh(a, '127.0.0.1', server.port, 'status')).stdout), { ipv6: '2001:db8::5' }, 'binding unchanged');
  rig.store.close();
});

t.test('shell, pty, subsystem, port forwarding, agent forwarding refused; unknown key refused', async (t) => {
  const dir = tempDir('refuse');
  const a = makeKey(dir, 'a');
  const stranger = makeKey(dir, 'stranger');
  const rig = makeRig(dir, `${a.pub}\n`);
  const server = await serve(rig, '127.0.0.1');
  t.teardown(() => server.close());
  const port = server.port;
  const c = server.counters;

  const shell = await ssh(a, '127.0.0.1', port, '', ['-T']);
  t.not(shell.code, 0, 'no command: shell refused');
  const pty = await ssh(a, '127.0.0.1', port, 'status', ['-tt']);
  t.match(pty.stderr, /PTY allocation request failed/, 'pty refused');
  const sub = await ssh(a, '127.0.0.1', port, 'sftp', ['-s']);
  t.not(sub.code, 0, 'subsystem refused');
  const fwdL = await ssh(a, '127.0.0.1', port, '', ['-W', '127.0.0.1:22']);
  t.not(fwdL.code, 0, 'direct-tcpip refused');
  t.match(fwdL.stderr, /prohibited|failed/);
  const fwdR = await ssh(a, '127.0.0.1', port, 'status', ['-o', 'ExitOnForwardFailure=yes', '-R', '127.0.0.1:0:127.0.0.1:9']);
  t.not(fwdR.code, 0, 'tcpip-forward refused');
  t.ok(c.refused_requests >= 5, `refused requests counted: ${c.refused_requests}`);
  t.equal(rig.table.size, 0, 'nothing bound by any of that');

  // Agent forwarding needs an agent to forward: run one (and stop it, by its pid).
  const sock = path.join(dir, 'agent.sock');
  const agentOut = execFileSync('ssh-agent', ['-s', '-a', sock]).toString();
  const agentPid = Number(/SSH_AGENT_PID=(\d+)/.exec(agentOut)?.[1]);
  t.teardown(() => process.kill(agentPid, 'SIGTERM'));
  const before = c.refused_requests;
  const agent = await ssh(a, '127.0.0.1', port, 'register --ipv6 2001:db8::8', ['-A'], { ...process.env, SSH_AUTH_SOCK: sock });
  t.equal(agent.code, 0, 'the exec itself still runs');
  t.equal(c.refused_requests, before + 1, 'the agent forwarding request was refused');
  rig.registrar.release({ fingerprint: [...rig.keys.keys()][0]!, address: 'test' });

  const unknownBefore = c.auth_unknown_key;
  const u = await ssh(stranger, '127.0.0.1', port, 'register --ipv6 2001:db8::7');
  t.equal(u.code, 255);
  t.match(u.stderr, /Permission denied \(publickey\)/);
  const ud = await dbclient(stranger, '127.0.0.1', port, 'register --ipv6 2001:db8::7', dir);
  t.not(ud.code, 0, 'dbclient: unknown key refused');
  t.ok(c.auth_unknown_key > unknownBefore, `unknown keys counted: ${c.auth_unknown_key}`);
  t.equal(rig.table.size, 0);
  rig.store.close();
});

t.test('a bad signature for an authorized key is refused and counted', async (t) => {
  const dir = tempDir('badsig');
  const a = makeKey(dir, 'a');
  const rig = makeRig(dir, `${a.pub}\n`);
  const server = await serve(rig, '127.0.0.1');
  t.teardown(() => server.close());
  const pub = ssh2.utils.parseKey(a.pub) as ssh2.ParsedKey;
  // An "agent" that offers the authorized key and signs with garbage.
  class LyingAgent extends ssh2.BaseAgent<ssh2.ParsedKey> {
    getIdentities(cb: (err: Error | undefined, keys?: ssh2.ParsedKey[]) => void): void {
      cb(undefined, [pub]);
    }
    sign(_k: ssh2.ParsedKey, _d: Buffer, o: unknown, cb?: (err: Error | undefined, sig?: Buffer) => void): void {
      const done = (typeof o === 'function' ? o : cb) as (err: Error | undefined, sig?: Buffer) => void;
      done(undefined, Buffer.alloc(64, 1));
    }
  }
  const err = await new Promise<Error | undefined>((resolve) => {
    const c = new ssh2.Client();
    c.on('ready', () => {
      c.end();
      resolve(undefined);
    });
    c.on('error', (e) => resolve(e));
    c.connect({ host: '127.0.0.1', port: server.port, username: 'cpe', agent: new LyingAgent() });
  });
  t.match(err?.message, /authentication methods failed/);
  t.equal(server.counters.auth_bad_signature, 1);
  t.equal(server.counters.auth_ok, 0);
  rig.store.close();
});

t.test('rate limit per key and overall', async (t) => {
  const dir = tempDir('rate');
  const a = makeKey(dir, 'a');
  const b = makeKey(dir, 'b');
  const rig = makeRig(dir, `${a.pub}\n${b.pub}\n`);
  const server = await serve(rig, '127.0.0.1', { perKey: { packets: 2, seconds: 3600 }, total: { packets: 3, seconds: 3600 } });
  t.teardown(() => server.close());
  t.equal((await ssh(a, '127.0.0.1', server.port, 'register --ipv6 2001:db8::1')).code, 0);
  t.equal((await ssh(a, '127.0.0.1', server.port, 'status')).code, 0);
  const third = await ssh(a, '127.0.0.1', server.port, 'status');
  t.not(third.code, 0);
  t.match(third.stderr, /rate limit/);
  t.equal((await ssh(b, '127.0.0.1', server.port, 'register --ipv6 2001:db8::2')).code, 0, 'another key has its own bucket');
  const over = await ssh(b, '127.0.0.1', server.port, 'status');
  t.match(over.stderr, /rate limit/, 'the overall bucket is empty');
  t.equal(server.counters.rate_limited, 2);
  rig.store.close();
});

t.test('two real clients racing for the last set: exactly one wins', async (t) => {
  const dir = tempDir('race');
  const a = makeKey(dir, 'a');
  const b = makeKey(dir, 'b');
  const rig = makeRig(dir, `${a.pub}\n${b.pub}\n`, { pool: [0xc0000201], policy: { defaultPorts: 64512, maxPorts: 64512 } });
  const server = await serve(rig, '127.0.0.1');
  t.teardown(() => server.close());
  const [ra, rb] = await Promise.all([
    ssh(a, '127.0.0.1', server.port, 'register --ipv6 2001:db8::a'),
    dbclient(b, '127.0.0.1', server.port, 'register --ipv6 2001:db8::b', dir),
  ]);
  t.same([ra.code, rb.code].sort(), [0, 4], `one acknowledged, one exhausted (exit 4): ${ra.stderr.trim()} ${rb.stderr.trim()}`);
  const loser = ra.code === 0 ? rb : ra;
  t.match(loser.stderr, /error: no free port set/);
  t.equal(rig.table.size, 1);
  t.equal(rig.store.loadAll().length, 1);
  rig.store.close();
});

function startChild(dir: string, keysFile: string): Promise<{ child: ChildProcess; port: number; bindings: number }> {
  const file = path.join(path.dirname(fileURLToPath(import.meta.url)), 'server-child.ts');
  const child = spawn(process.execPath, [...process.execArgv, file, dir, keysFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /port (\d+) bindings (\d+)/.exec(out);
      if (m !== null) resolve({ child, port: Number(m[1]), bindings: Number(m[2]) });
    });
    child.on('exit', (code) => reject(new Error(`server child exited ${code}`)));
  });
}

t.test('kill -9 during a burst loses no acknowledged registration', async (t) => {
  const dir = tempDir('kill');
  const N = 40;
  const keys: ClientKey[] = [];
  for (let i = 0; i < N; i++) keys.push(makeKey(dir, `k${i}`));
  const keysFile = path.join(dir, 'authorized_keys');
  writeFileSync(keysFile, keys.map((k, i) => `name=cpe${i} ${k.pub}`).join('\n') + '\n');
  const first = await startChild(dir, keysFile);

  const acked = new Map<number, { ports: string; shared_ipv4: string }>();
  let next = 0;
  let killed = false;
  const worker = async (): Promise<void> => {
    while (next < N) {
      const i = next++;
      const r = await ssh(keys[i]!, '127.0.0.1', first.port, `register --ipv6 2001:db8:${i + 1}::1`);
      if (r.code === 0) acked.set(i, JSON.parse(r.stdout));
      if (acked.size >= N / 2 && !killed) {
        killed = true;
        first.child.kill('SIGKILL');
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  t.ok(killed, 'killed mid-burst');
  t.ok(acked.size >= N / 2 && acked.size < N, `${acked.size} of ${N} acknowledged before the kill`);

  const rows = new Map(new RegistrationStore(path.join(dir, 'registrations.db')).loadAll().map((r) => [r.subscriber, r]));
  for (const [i, lease] of acked) t.equal(rows.get(`cpe${i}`)?.ports, lease.ports, `cpe${i} stored`);

  const second = await startChild(dir, keysFile);
  t.teardown(() => second.child.kill('SIGKILL'));
  t.ok(second.bindings >= acked.size, `restart loaded ${second.bindings} bindings`);
  for (const [i, lease] of acked) {
    const r = await ssh(keys[i]!, '127.0.0.1', second.port, 'status');
    t.match(JSON.parse(r.stdout), { ports: lease.ports, shared_ipv4: lease.shared_ipv4 }, `cpe${i} after restart`);
  }
});
