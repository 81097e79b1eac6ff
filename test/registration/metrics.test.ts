// The registration server's metrics, read from a real server driven by OpenSSH's `ssh`.
import { Registry } from 'prom-client';
import t from 'tap';
import { registrationMetrics } from '../../prr/metrics-registration.js';
import { makeKey, makeRig, serve, ssh, tempDir } from './helpers.js';

t.test('prr_registrations_total by command and result; rejected auth and refused requests counted', async (t) => {
  const dir = tempDir('metrics');
  const a = makeKey(dir, 'a');
  const stranger = makeKey(dir, 'stranger');
  const rig = makeRig(dir, `name=cpe-a ${a.pub}\n`, { pool: [0xc0000201], policy: { defaultPorts: 64512, maxPorts: 64512 } });
  const server = await serve(rig, '127.0.0.1', { perKey: { packets: 5, seconds: 3600 } });
  t.teardown(() => server.close());
  const registry = new Registry();
  registrationMetrics(registry, { counters: server.counters, registered: () => rig.registrar.registered });
  const value = async (series: string): Promise<number | undefined> => {
    const line = (await registry.metrics()).split('\n').find((l) => l.startsWith(`${series} `));
    return line === undefined ? undefined : Number(line.slice(series.length + 1));
  };

  t.equal((await ssh(a, '127.0.0.1', server.port, 'register --ipv6 2001:db8::1')).code, 0);
  t.equal((await ssh(a, '127.0.0.1', server.port, 'status')).code, 0);
  t.equal((await ssh(a, '127.0.0.1', server.port, 'register --ipv6 nope')).code, 2);
  t.equal((await ssh(a, '127.0.0.1', server.port, 'frobnicate')).code, 2);
  t.match((await ssh(a, '127.0.0.1', server.port, 'status', ['-tt'])).stderr, /PTY allocation request failed/, 'pty refused');
  const limited = await ssh(a, '127.0.0.1', server.port, 'status');
  t.match(limited.stderr, /rate limit/, 'the sixth request of the key is over its rate');
  t.equal((await ssh(stranger, '127.0.0.1', server.port, 'status')).code, 255);

  t.equal(await value('prr_registrations_total{command="register",result="ok"}'), 1);
  t.equal(await value('prr_registrations_total{command="register",result="usage"}'), 1, 'malformed');
  t.equal(await value('prr_registrations_total{command="unknown",result="usage"}'), 1, 'unknown command');
  t.equal(await value('prr_registrations_total{command="status",result="ok"}'), 2);
  t.equal(await value('prr_registrations_total{command="status",result="rate_limited"}'), 1);
  t.equal(await value('prr_registration_auth_rejected_total{reason="unknown_key"}'), server.counters.auth_unknown_key);
  t.ok(server.counters.auth_unknown_key >= 1, 'the stranger was refused');
  t.equal(await value('prr_registration_auth_rejected_total{reason="bad_signature"}'), 0);
  t.equal(await value('prr_registration_auth_ok_total'), 6);
  t.equal(await value('prr_registration_refused_requests_total{request="pty"}'), 1);
  t.equal(await value('prr_registered_bindings'), 1);
  t.ok((await value('prr_registration_connections_total'))! >= 7);
  rig.store.close();
});
