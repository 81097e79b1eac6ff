/**
 * The SMAP's registration client inside `smap run`, end to end in network namespaces with the real
 * PRR (`prr run` with [registration] enabled): CPE 1 has [registration] with the PRR's host key
 * pinned and registers by itself, then its LAN reaches the Internet from a port of the leased set;
 * CPE 2 pins a wrong fingerprint: it is refused with a clear error and no binding is applied.
 * Then the PRR restarts under the agent, the operator changes the key's set (`prr subscribers
 * authorize --set`, applied at the CPE's next request: `smap register`) and releases it; last, the
 * CPE's WAN address changes and the agent registers the new one by itself.
 */
import t from 'tap';
import { join } from 'node:path';
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

  await t.test('the PRR restarts under traffic: forwarding resumes on the same binding, no re-registration', async (t) => {
    const before = await status(cpe1);
    const registrations = (cpe1.log().match(/registered as cpe1/g) ?? []).length;
    // Traffic across the restart: a ping every 0.2 s from the LAN, timestamped (-D).
    const pinging = cpe1.lan.exec('ping', ['-D', '-n', '-i', '0.2', '-w', '20', INET], { timeoutMs: 30_000 });
    await new Promise((r) => setTimeout(r, 2000));
    await l.restartPrr();
    const restarted = Date.now() / 1000;
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
    const replies = [...(await pinging).stdout.matchAll(/^\[(\d+\.\d+)\] \d+ bytes from/gm)].map((m) => Number(m[1]));
    t.ok(replies.some((ts) => ts < restarted - 2), `echo replies before the restart (${replies.length} in all)`);
    t.ok(replies.filter((ts) => ts > restarted).length >= 10, `the ping going on through the restart gets replies again after it: ${replies.filter((ts) => ts > restarted).length}`);
  });

  const seenPort = async (): Promise<number | undefined> => {
    const r = await cpe1.lan.exec('curl', ['-sS', '--max-time', '5', `http://${INET}/`]);
    const m = /^192\.0\.2\.100:(\d+)\n$/.exec(r.stdout);
    return m === null ? undefined : Number(m[1]);
  };

  await t.test('the operator gives the key a new set: the next request carries it, the agent applies it, traffic uses it', async (t) => {
    const bad = await l.cli(l.prr, 'prr', ['subscribers', 'authorize', 'ssh-ed25519 nonsense', '--config', l.prrConfig]);
    t.equal(bad.code, 2, 'a bad key: exit 2');
    t.equal(bad.stderr.trim().split('\n').length, 1, `one line: ${bad.stderr.trim()}`);
    const auth = await l.cli(l.prr, 'prr', ['subscribers', 'authorize', join(l.dir, 'cpe1_key.pub'), '--name', 'cpe1', '--set', '20000-20999', '--config', l.prrConfig]);
    t.equal(auth.code, 0, auth.stderr);
    t.match(auth.stdout, /changed: SHA256:\S+ in .*authorized_keys: name=cpe1,set=20000-20999 ssh-ed25519 /);
    t.match(auth.stdout, /the running PRR re-read it: 2 keys/, 'no restart');
    t.equal(parsePortSet((await status(cpe1)).binding!.ports).has(20000), false, 'nothing changes before the next request');

    const reg = await l.cli(cpe1.host, 'smap', ['register', '--config', cpe1.config]);
    t.equal(reg.code, 0, reg.stderr);
    t.match(reg.stdout, /binding: registration 192\.0\.2\.100 ports 20000-20999 \(1000 ports\)/, '`smap register` shows the new binding');
    t.match(cpe1.log(), /binding changed: 192\.0\.2\.100 ports 20000-20999/);
    const table = (await cpe1.host.exec('nft', ['list', 'table', 'ip', 'smap'])).stdout;
    t.match(table, /192\.0\.2\.100:20000-20999/, 'the nft table has the new set');
    t.notMatch(table, /192\.0\.2\.100:(?!20000-20999)\d+-\d+/, 'and only it');
    const show = JSON.parse((await l.cli(l.prr, 'prr', ['subscribers', 'show', 'cpe1', '--json', '--config', l.prrConfig])).stdout) as { ports: string };
    t.equal(show.ports, '20000-20999', 'the PRR forwards for the new set');
    const port = await waitFor('curl from the new set', seenPort, 15_000, 500);
    t.ok(port >= 20000 && port <= 20999, `curl from lan1 seen from port ${port}, in the new set`);
  });

  await t.test('the operator releases the subscriber: gone at once, and the CPE registers anew', async (t) => {
    const rel = await l.cli(l.prr, 'prr', ['subscribers', 'release', 'cpe1', '--config', l.prrConfig]);
    t.equal(rel.code, 0, rel.stderr);
    t.not((await l.cli(l.prr, 'prr', ['subscribers', 'show', 'cpe1', '--config', l.prrConfig])).code, 0, 'no binding on the PRR');
    t.equal(await seenPort(), undefined, 'no traffic for a released subscriber');
    const reg = await l.cli(cpe1.host, 'smap', ['register', '--config', cpe1.config, '--json']);
    t.equal(reg.code, 0, reg.stderr);
    t.equal((JSON.parse(reg.stdout) as SmapStatus).registration?.state, 'registered');
    const port = await waitFor('curl after registering anew', seenPort, 15_000, 500);
    t.ok(port >= 20000 && port <= 20999, `traffic again, from port ${port} of the key's set`);
  });

  await t.test('the WAN address changes: the agent registers the new one at once, the same set, traffic follows', async (t) => {
    const before = (await status(cpe1)).binding;
    cpe1.host.addAddress('wan', '2001:db8:1::9/64');
    cpe1.host.run('ip', '-6', 'addr', 'del', `${cpe1.wan6}/64`, 'dev', 'wan');
    const shown = await waitFor('the PRR has the new address', async () => {
      const r = await l.cli(l.prr, 'prr', ['subscribers', 'show', 'cpe1', '--json', '--config', l.prrConfig]);
      const j = r.code === 0 ? (JSON.parse(r.stdout) as { ipv6: string; ports: string }) : undefined;
      return j?.ipv6 === '2001:db8:1::9' ? j : undefined;
    }, 20_000, 250);
    t.equal(shown.ports, before?.ports, 'the same set (sticky)');
    t.equal((await status(cpe1)).wan.ipv6, '2001:db8:1::9', 'the agent follows its WAN address');
    const port = await waitFor('curl from the new address', seenPort, 15_000, 500);
    t.ok(parsePortSet(before!.ports).has(port), `traffic flows again, from port ${port} of the set`);
  });

  for (const cpe of [cpe1, cpe2]) cpe.agent?.kill('SIGTERM');
});
