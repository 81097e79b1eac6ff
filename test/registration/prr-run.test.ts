/**
 * Registration inside a running `prr run`: a CPE with no static binding registers over SSH with
 * OpenSSH's `ssh` from its own namespace, its traffic flows at once (no restart), and after the
 * PRR is restarted it keeps flowing with no re-registration (the binding comes from the store).
 */
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { labUnavailableReason, waitFor } from '../lab/lab.js';
import { buildPrrTopology, distMissingReason, BR6, CPES, INET4, ORIGINAL_SUBSCRIBERS, SHARED4 } from '../lab/prr-topology.js';
import { parsePortSet } from '../../common/portset.js';
import { ip4, udp4 } from '../prr/helpers/packets.js';
import { makeKey } from './helpers.js';

t.test('a CPE registers with a running PRR over SSH and keeps its binding across a restart', { skip: labUnavailableReason() ?? distMissingReason(), timeout: 180_000 }, async (t) => {
  const topo = buildPrrTopology('regrun');
  t.teardown(() => topo.destroy());
  const key = makeKey(topo.dir, 'cpe3key');
  writeFileSync(join(topo.dir, 'authorized_keys'), `name=cpe3 ${key.pub}\n`);
  const config = topo.writeConfig(ORIGINAL_SUBSCRIBERS, [
    '[registration]',
    'enabled = true',
    `listen = [${BR6}]:2222`,
    `host_key = ${join(topo.dir, 'host_key')}`,
    `authorized_keys = ${join(topo.dir, 'authorized_keys')}`,
    `database = ${join(topo.dir, 'registrations.db')}`,
    'default_ports = 500',
    '',
  ].join('\n'));
  let prr = await topo.startPrr(config);
  await prr.ready();
  await topo.startInet();
  const cpe3 = await topo.startDriver('cpe3');

  const register = (): ReturnType<typeof topo.cpes.cpe3.exec> =>
    topo.cpes.cpe3.exec('ssh', [
      '-F', '/dev/null', '-i', key.file, '-p', '2222', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no',
      '-o', 'UserKnownHostsFile=/dev/null', '-o', 'IdentitiesOnly=yes', '-o', 'LogLevel=ERROR', '-o', 'ConnectTimeout=10',
      `cpe@${BR6}`, `register --ipv6 ${CPES.cpe3.ipv6}`,
    ], { timeoutMs: 30_000 });
  const r = await register();
  t.equal(r.code, 0, `ssh register exits 0 (${r.stderr.trim()})`);
  const reply = JSON.parse(r.stdout) as { subscriber: string; shared_ipv4: string; ports: string; prr_ipv6: string };
  t.equal(reply.subscriber, 'cpe3', 'the name from authorized_keys');
  t.equal(reply.shared_ipv4, SHARED4, 'an address of the pool');
  const set = parsePortSet(reply.ports);
  t.equal(set.size, 500, 'the configured default size');
  for (const s of ORIGINAL_SUBSCRIBERS) t.notOk(set.overlaps(parsePortSet(s.ports)), `does not overlap ${s.name}'s static ${s.ports}`);
  t.equal(reply.prr_ipv6, BR6, 'the tunnel endpoint to use');

  const sport = set.min + 7;
  const echo = async (data: string): Promise<boolean> => {
    await cpe3.send(udp4({ src: ip4(SHARED4), dst: ip4(INET4), sport, dport: 7, data: Buffer.from(data) }));
    const got = await cpe3.receive((p) => p.includes(Buffer.from(data)), `echo "${data}"`, 5000);
    return got.pkt.readUInt16BE(22) === sport;
  };
  t.ok(await echo('registered-1'), 'traffic from the registered set flows at once');
  const pid = prr.pid;
  const list = await prr.subscribers('list');
  t.match(list.stdout, /cpe3\t2001:db8:3::2\t192\.0\.2\.100/, '`prr subscribers list` shows the registration');
  t.equal(prr.pid, pid, 'no restart');

  // Sticky: the same key gets the same set back.
  const again = await register();
  t.equal((JSON.parse(again.stdout) as { ports: string }).ports, reply.ports, 'the same set on a second registration');

  // Restart: the binding comes back from the store, no re-registration.
  const stopped = await prr.stop();
  t.equal(stopped.code, 0, 'PRR stopped cleanly');
  prr = await topo.startPrr(config);
  await prr.ready();
  t.not(prr.pid, pid, 'a new PRR process');
  await waitFor('cpe3 restored', async () => ((await prr.subscribers('show', 'cpe3')).code === 0 ? true : undefined), 10_000);
  t.ok(await echo('after-restart'), 'traffic flows after the restart without registering again');
  await prr.stop();
});
