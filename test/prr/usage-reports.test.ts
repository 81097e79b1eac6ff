/**
 * `--usage` (provisioning/protocol.ts) and prr/usage-reports.ts: a CPE's conntrack report rides on
 * register and renew; it is kept only when the request succeeds; a malformed one is an error
 * reply that changes nothing (no binding, no lease, no report); requests without it still work.
 */
import t from 'tap';
import ssh2 from 'ssh2';
import { EXIT_REFUSED, EXIT_USAGE, formatUsage, parseUsage, runCommand, type Peer } from '../../provisioning/protocol.js';
import { fingerprintOf } from '../../prr/registration-keys.js';
import { recordingUsage, UsageReports } from '../../prr/usage-reports.js';
import { makeKey, makeRig, tempDir } from '../registration/helpers.js';

function peerOf(pub: string): Peer {
  const k = ssh2.utils.parseKey(pub);
  if (k instanceof Error || Array.isArray(k)) throw new Error('bad key');
  return { fingerprint: fingerprintOf(k.getPublicSSH()), address: 'test' };
}

t.test('parseUsage: any subset of tcp, udp, icmp, other; refuses the malformed', async (t) => {
  t.same(parseUsage('tcp=12,udp=3,icmp=0,other=1'), { tcp: 12, udp: 3, icmp: 0, other: 1 });
  t.same(parseUsage('udp=7'), { tcp: 0, udp: 7, icmp: 0, other: 0 }, 'left out = 0');
  t.equal(formatUsage({ tcp: 1, udp: 2, icmp: 3, other: 4 }), 'tcp=1,udp=2,icmp=3,other=4');
  t.same(parseUsage(formatUsage({ tcp: 65536, udp: 0, icmp: 9, other: 0 })), { tcp: 65536, udp: 0, icmp: 9, other: 0 }, 'round trip');
  const bad: Array<[string, RegExp]> = [
    ['', /expected tcp=N/],
    ['tcp', /expected tcp=N/],
    ['tcp=-1', /expected tcp=N/],
    ['tcp=1,', /expected tcp=N/],
    ['sctp=1', /expected tcp=N/],
    ['tcp=1.5', /expected tcp=N/],
    ['tcp=99999', /more than 65536/],
    ['tcp=1,tcp=2', /tcp given twice/],
  ];
  for (const [text, re] of bad) t.throws(() => parseUsage(text), { exitCode: EXIT_USAGE, message: re }, JSON.stringify(text));
});

t.test('reports ride on register and renew; a malformed one changes nothing', async (t) => {
  const dir = tempDir('usage');
  const a = makeKey(dir, 'a');
  const b = makeKey(dir, 'b');
  const rig = makeRig(dir, `name=cpe1 ${a.pub}\nname=cpe2 ${b.pub}\n`);
  const reports = new UsageReports(() => 5000);
  const svc = recordingUsage(rig.registrar, reports);
  const pa = peerOf(a.pub);
  const pb = peerOf(b.pub);

  // Malformed on the first registration: error line, no binding, no row, no report.
  const bad = runCommand(svc, pa, 'register --ipv6 2001:db8:1::1 --usage tcp=x');
  t.equal(bad.exitCode, EXIT_USAGE);
  t.match(bad.stderr, /^error: --usage tcp=x: expected tcp=N,udp=N,icmp=N,other=N/);
  t.equal(rig.table.size, 0, 'no binding');
  t.equal(rig.store.get(pa.fingerprint), undefined, 'no stored row');
  t.equal(reports.size, 0, 'no report');

  // An old client: no --usage.
  t.equal(runCommand(svc, pa, 'register --ipv6 2001:db8:1::1').exitCode, 0, 'register without --usage');
  t.equal(reports.get('cpe1'), undefined, 'nothing reported yet');
  const r = runCommand(svc, pa, 'register --ipv6 2001:db8:1::1 --usage tcp=12,udp=3');
  t.equal(r.exitCode, 0, r.stderr);
  t.same(reports.get('cpe1'), { usage: { tcp: 12, udp: 3, icmp: 0, other: 0 }, at: 5000 });

  // Malformed on renew: the lease is not extended, the last good report stays.
  const row = rig.store.get(pa.fingerprint)!;
  const badRenew = runCommand(svc, pa, 'renew --usage tcp=1,tcp=2');
  t.equal(badRenew.exitCode, EXIT_USAGE);
  t.same(rig.store.get(pa.fingerprint), row, 'stored row unchanged');
  t.same(reports.get('cpe1')?.usage, { tcp: 12, udp: 3, icmp: 0, other: 0 }, 'report unchanged');
  t.equal(runCommand(svc, pa, 'renew --usage tcp=40,icmp=1').exitCode, 0);
  t.same(reports.get('cpe1')?.usage, { tcp: 40, udp: 0, icmp: 1, other: 0 }, 'renew updates it');

  // A refused request (no binding for this key) records nothing.
  const refused = runCommand(svc, pb, 'renew --usage tcp=5');
  t.equal(refused.exitCode, EXIT_REFUSED, refused.stderr);
  t.equal(reports.get('cpe2'), undefined, 'refused: no report for cpe2');

  // release forgets it; so does prune when the binding leaves the table otherwise.
  t.equal(runCommand(svc, pa, 'release').exitCode, 0);
  t.equal(reports.get('cpe1'), undefined, 'released: forgotten');
  t.equal(runCommand(svc, pb, 'register --ipv6 2001:db8:2::1 --usage udp=2').exitCode, 0);
  reports.prune((name) => rig.table.findSubscriber(name).length > 0);
  t.ok(reports.get('cpe2') !== undefined, 'bound: kept by prune');
  for (const id of rig.table.findSubscriber('cpe2')) rig.table.remove(id);
  reports.prune((name) => rig.table.findSubscriber(name).length > 0);
  t.equal(reports.get('cpe2'), undefined, 'unbound: pruned');
});
