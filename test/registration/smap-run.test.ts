/**
 * The SMAP's registration client inside `smap run`, end to end in network namespaces with the real
 * PRR (`prr run` with [registration] enabled): CPE 1 has [registration] with the PRR's host key
 * pinned and registers by itself, then its LAN reaches the Internet from a port of the leased set;
 * CPE 2 pins a wrong fingerprint: it is refused with a clear error and no binding is applied.
 */
import t from 'tap';
import { parsePortSet } from '../../common/portset.js';
import type { SmapStatus } from '../../smap/daemon.js';
import { generateEd25519 } from '../../provisioning/keys.js';
import { labUnavailableReason, waitFor } from '../lab/lab.js';
import { distMissingReason } from '../lab/prr-topology.js';
import { buildSmapLab, BR, INET, SHARED, type Cpe, type SmapLab } from '../lab/smap-topology.js';

t.test('smap run registers with the PRR over SSH', { skip: labUnavailableReason() ?? distMissingReason(), timeout: 180_000 }, async (t) => {
  const wrong = generateEd25519('not-the-prr').fingerprint;
  const l: SmapLab = await buildSmapLab('smapreg', [{ ports: '', register: {} }, { ports: '', register: { fingerprint: wrong } }]);
  t.teardown(() => l.destroy());
  const [cpe1, cpe2] = l.cpes;
  const status = async (cpe: Cpe): Promise<SmapStatus> => {
    const r = await l.cli(cpe.host, 'smap', ['status', '--config', cpe.config, '--json']);
    if (r.code !== 0) throw new Error(`smap status in ${cpe.host.short}: ${r.stderr.trim()}`);
    return JSON.parse(r.stdout) as SmapStatus;
  };
  l.startAgent(cpe1);
  l.startAgent(cpe2);
  await l.agentRunning(cpe1);
  await l.agentRunning(cpe2);

  await t.test('the agent registers by itself and its LAN reaches the Internet from the leased set', async (t) => {
    const s = await waitFor('cpe1 registered', async () => {
      const st = await status(cpe1);
      return st.state === 'running' ? st : undefined;
    }, 30_000, 200);
    t.equal(s.binding?.source, 'registration', 'the binding comes from registration');
    t.equal(s.binding?.shared_ipv4, SHARED, 'the shared address of the PRR');
    t.equal(s.binding?.port_count, l.registration!.defaultPorts, "the PRR's default set size");
    t.equal(s.binding?.prr_ipv6, BR, 'the tunnel endpoint of the lease');
    t.equal(s.registration?.state, 'registered');
    t.equal(s.registration?.subscriber, 'cpe1', 'the name from authorized_keys');
    t.ok(s.registration?.expires_at !== null && Date.parse(s.registration!.expires_at) > Date.now(), 'the lease expiry is shown');
    t.match(cpe1.log(), /registered as cpe1/, 'the agent logs the registration');
    const set = parsePortSet(s.binding!.ports);
    const body = (await cpe1.lan.exec('curl', ['-sS', '--max-time', '10', `http://${INET}/`])).stdout;
    const m = /^192\.0\.2\.100:(\d+)\n$/.exec(body);
    t.ok(m !== null, `curl from lan1 answered (${JSON.stringify(body)})`);
    t.ok(set.has(Number(m?.[1])), `seen at the server from port ${m?.[1]}, in the leased set ${s.binding!.ports}`);
    const human = await l.cli(cpe1.host, 'smap', ['status', '--config', cpe1.config]);
    t.match(human.stdout, /registration: \[2001:db8:ffff::1\]:2222 registered as cpe1, lease expires /, '`smap status` shows the registration');
  });

  await t.test('a wrong pinned host key fingerprint is refused and no binding is applied', async (t) => {
    await waitFor('cpe2 refusal', () => (/does not match the pinned host_key_fingerprint/.test(cpe2.log()) ? true : undefined), 30_000, 200);
    t.match(cpe2.log(), new RegExp(`host key ${l.registration!.hostKeyFingerprint.replace(/[+/]/g, '\\$&')} does not match the pinned host_key_fingerprint ${wrong.replace(/[+/]/g, '\\$&')}; refusing to register`), 'the error names both fingerprints');
    const s = await status(cpe2);
    t.equal(s.binding, null, 'no binding');
    t.equal(s.state, 'registering');
    t.equal(s.registration?.state, 'failing');
    t.match(s.registration?.last_error, /does not match/);
    t.not((await cpe2.host.exec('nft', ['list', 'table', 'ip', 'smap'])).code, 0, 'no nft table');
    t.equal((await cpe2.host.exec('ip', ['link', 'show', 'dev', 'smap0'])).code === 0, false, 'no TUN');
    const curl = await cpe2.lan.exec('curl', ['-sS', '--max-time', '3', `http://${INET}/`]);
    t.not(curl.code, 0, 'the LAN has no IPv4 Internet');
  });

  await t.test('the PRR restarts: the agent keeps forwarding on its binding, no re-registration', async (t) => {
    const before = await status(cpe1);
    const registrations = (cpe1.log().match(/registered as cpe1/g) ?? []).length;
    await l.restartPrr();
    const body = await waitFor('curl after the PRR restart', async () => {
      const r = await cpe1.lan.exec('curl', ['-sS', '--max-time', '5', `http://${INET}/`]);
      return r.code === 0 ? r.stdout : undefined;
    }, 20_000, 500);
    const m = /^192\.0\.2\.100:(\d+)\n$/.exec(body);
    t.ok(m !== null && parsePortSet(before.binding!.ports).has(Number(m[1])), `curl from lan1 after the restart, from port ${m?.[1]} in the same set`);
    const after = await status(cpe1);
    t.same(after.binding, before.binding, 'the same binding');
    t.equal(after.registration?.expires_at, before.registration?.expires_at, 'no new lease');
    t.equal((cpe1.log().match(/registered as cpe1/g) ?? []).length, registrations, 'no re-registration');
  });

  for (const cpe of [cpe1, cpe2]) cpe.agent?.kill('SIGTERM');
});
