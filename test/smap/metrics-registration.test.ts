// The SMAP's registration metrics over a real RegistrationClient and the real registration server.
import path from 'node:path';
import { Registry } from 'prom-client';
import t from 'tap';
import { memoryLogger } from '../../common/log.js';
import type { LeaseReply } from '../../provisioning/protocol.js';
import { smapRegistrationMetrics } from '../../smap/metrics-registration.js';
import { ensureClientKey, RegistrationClient } from '../../smap/registration.js';
import { makeRig, serve, tempDir } from '../registration/helpers.js';

t.test('smap_registration_state, lease remaining, smap_registrations_total by result', async (t) => {
  const dir = tempDir('smapmet');
  const key = ensureClientKey(path.join(dir, 'id'), memoryLogger());
  const rig = makeRig(dir, `name=cpe11 ${key.public}\n`, { policy: { leaseSeconds: 600 } });
  const server = await serve(rig, '127.0.0.1');
  t.teardown(() => server.close());
  const make = (fingerprint: string, onLease: (l: LeaseReply) => void): RegistrationClient => {
    const c = new RegistrationClient({ endpoint: { host: '127.0.0.1', port: server.port, hostKeyFingerprint: fingerprint, key }, ipv6: '2001:db8:11::1', log: memoryLogger(), onLease, random: () => 0.5 });
    t.teardown(() => c.stop());
    return c;
  };
  let lease: { at: number; reply: LeaseReply } | undefined;
  let client = make('SHA256:' + 'C'.repeat(43), () => undefined);
  let state: 'registering' | 'registered' | 'failing' = 'registering';
  const registry = new Registry();
  let clock = 1_000_000;
  smapRegistrationMetrics(registry, {
    state: () => state,
    leaseEndsAt: () => (lease === undefined ? undefined : lease.at + lease.reply.lease_seconds * 1000),
    counts: () => client.counts,
  }, () => clock);
  const value = async (series: string): Promise<number | undefined> => {
    const line = (await registry.metrics()).split('\n').find((l) => l.startsWith(`${series} `));
    return line === undefined ? undefined : Number(line.slice(series.length + 1));
  };
  t.equal(await value('smap_registration_state{state="registering"}'), 1);
  t.equal(await value('smap_registration_lease_remaining_seconds'), 0, 'no lease yet');

  await client.start();
  state = 'failing';
  t.equal(await value('smap_registrations_total{result="host_key_mismatch"}'), 1, 'a wrong pin is counted as such');
  t.equal(await value('smap_registrations_total{result="ok"}'), 0);
  t.equal(await value('smap_registration_state{state="failing"}'), 1);
  t.equal(await value('smap_registration_state{state="registering"}'), 0);
  client.stop();

  client = make(server.hostKeyFingerprint, (reply) => (lease = { at: clock, reply }));
  await client.start();
  state = 'registered';
  t.equal(await value('smap_registrations_total{result="ok"}'), 1);
  t.equal(await value('smap_registration_state{state="registered"}'), 1);
  clock += 100_000;
  t.equal(await value('smap_registration_lease_remaining_seconds'), 500, '600 s lease, 100 s later');
  rig.store.close();
});
