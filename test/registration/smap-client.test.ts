// smap/registration.ts against the real registration server: key on first start, pinning, renew.
import { statSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { memoryLogger } from '../../common/log.js';
import type { LeaseReply } from '../../provisioning/protocol.js';
import { parseSmapConfig } from '../../common/config/smap.js';
import { BACKOFF_MAX_MS, backoffDelayMs, bindingOfLease, endpointFromConfig, ensureClientKey, register, RegistrationClient, renewDelayMs, request, type PrrEndpoint } from '../../smap/registration.js';
import { makeRig, serve, tempDir } from './helpers.js';

t.test('renew and backoff delays', async (t) => {
  t.equal(renewDelayMs(3600, 0), 1_440_000, '0.4 of the lease');
  t.ok(renewDelayMs(3600, 0.999999) <= 2_160_000, 'up to 0.6');
  t.equal(backoffDelayMs(0, 0.5), 2500);
  t.equal(backoffDelayMs(3, 0.5), 20_000);
  t.equal(backoffDelayMs(50, 0.999), Math.round(BACKOFF_MAX_MS * 0.999), 'capped');
  t.equal(backoffDelayMs(0, 0), 1000, 'never zero');
});

t.test('key made on first start; register; pinned host key; mismatch refused', async (t) => {
  const dir = tempDir('smap');
  const log = memoryLogger();
  const keyFile = path.join(dir, 'etc/id_ed25519');
  const key = ensureClientKey(keyFile, log);
  t.equal(statSync(keyFile).mode & 0o777, 0o600, 'private key 0600');
  t.equal(ensureClientKey(keyFile, log).fingerprint, key.fingerprint, 'the same key on the next start');

  const rig = makeRig(dir, `name=cpe9 ${key.public}\n`);
  const server = await serve(rig, '::');
  t.teardown(() => server.close());
  const ep: PrrEndpoint = { host: '::1', port: server.port, hostKeyFingerprint: server.hostKeyFingerprint, key };

  const lease = await register(ep, '2001:db8:9::1');
  t.match(lease, { subscriber: 'cpe9', shared_ipv4: '192.0.2.1', ports: '1024-2023', mtu: 1460 });
  t.match(await register({ ...ep, host: '127.0.0.1' }, '2001:db8:9::2'), { ports: '1024-2023', ipv6: '2001:db8:9::2' }, 'sticky over IPv4 too');

  const wrong = 'SHA256:' + 'A'.repeat(43);
  await t.rejects(register({ ...ep, hostKeyFingerprint: wrong }, '2001:db8:9::3'), {
    code: 'ERR_HOST_KEY',
    message: new RegExp(`host key ${server.hostKeyFingerprint.replace(/[+/]/g, '.')} does not match the pinned host_key_fingerprint ${wrong}`),
  });
  t.equal(rig.table.subscriberOf(rig.table.findSubscriber('cpe9')[0]!), 'cpe9');
  t.equal(JSON.parse(await request(ep, 'status')).ipv6, '2001:db8:9::2', 'the mismatch sent nothing');
  await t.rejects(request(ep, 'register --ipv6 nope'), { code: 'ERR_REGISTRATION', exitCode: 2, message: /refused "register": --ipv6 nope: not an IPv6 address/ });

  const stranger = ensureClientKey(path.join(dir, 'other'), log);
  await t.rejects(register({ ...ep, key: stranger }, '2001:db8:9::4'), { code: 'ERR_REGISTRATION', message: /authentication/i });
});

t.test('RegistrationClient: registers, renews at about half the lease, backs off on failure', async (t) => {
  const dir = tempDir('smapc');
  const log = memoryLogger();
  const key = ensureClientKey(path.join(dir, 'id'), log);
  const rig = makeRig(dir, `name=cpe10 ${key.public}\n`, { policy: { leaseSeconds: 2 } });
  const server = await serve(rig, '127.0.0.1');
  t.teardown(() => server.close());
  const leases: LeaseReply[] = [];
  const c = new RegistrationClient({
    endpoint: { host: '127.0.0.1', port: server.port, hostKeyFingerprint: server.hostKeyFingerprint, key },
    ipv6: '2001:db8:10::1',
    log,
    onLease: (l) => leases.push(l),
    random: () => 0, // renew at 0.4 of 2 s
  });
  t.teardown(() => c.stop());
  await c.start();
  t.equal(leases.length, 1);
  await new Promise((r) => setTimeout(r, 2500));
  t.ok(leases.length >= 2, `renewed: ${leases.length} leases`);
  t.ok(leases.every((l) => l.ports === leases[0]!.ports), 'always the same set');

  // The PRR goes away: the client logs and schedules a retry rather than throwing.
  c.stop();
  await server.close();
  const c2 = new RegistrationClient({
    endpoint: { host: '127.0.0.1', port: server.port, hostKeyFingerprint: server.hostKeyFingerprint, key },
    ipv6: '2001:db8:10::1', log, onLease: (l) => leases.push(l), random: () => 0.5,
  });
  t.teardown(() => c2.stop());
  await c2.start();
  t.match(log.lines.join('\n'), /WARN .*PRR 127\.0\.0\.1:\d+: .*retrying in 3 s/);
});

t.test('endpointFromConfig and bindingOfLease', async (t) => {
  const dir = tempDir('smapcfg');
  const fp = 'SHA256:' + 'B'.repeat(43);
  const cfg = parseSmapConfig(`[smap]\nwan_interface = eth0\n[registration]\nprr_host = 2001:db8:ffff::1\nhost_key_fingerprint = ${fp}\nkey_file = ${dir}/id\n`);
  const ep = endpointFromConfig(cfg, 'smap.ini', memoryLogger());
  t.match(ep, { host: '2001:db8:ffff::1', port: 2222, hostKeyFingerprint: fp });
  t.equal(statSync(`${dir}/id`).mode & 0o777, 0o600, 'key made on first start');
  const b = bindingOfLease({ subscriber: 'x', ipv6: '2001:db8::1', shared_ipv4: '192.0.2.1', ports: 'psid:a=6/k=8/id=0x34', prr_ipv6: '2001:db8:ffff::1', lease_seconds: 60, mtu: 1460 });
  t.equal(b.shared, 0xc0000201);
  t.equal(b.ports.size, 252);
  t.equal(b.prr.length, 16);
  t.throws(() => bindingOfLease({ subscriber: 'x', ipv6: '', shared_ipv4: 'nope', ports: '1-2', prr_ipv6: '::', lease_seconds: 1, mtu: 1 }), { code: 'ERR_REGISTRATION' });
});
