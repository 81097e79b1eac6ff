/**
 * The SMAP's usage report (smap/conntrack.ts usageReport, smap/registration.ts): counted from the
 * conntrack table, sent with every registration over real SSH to the real registration server,
 * recorded by the PRR; against a PRR that does not know `--usage` the client registers without it.
 */
import path from 'node:path';
import t from 'tap';
import { memoryLogger } from '../../common/log.js';
import { EXIT_USAGE, ProtocolError, type LeaseReply, type RegistrationService } from '../../provisioning/protocol.js';
import { recordingUsage, UsageReports } from '../../prr/usage-reports.js';
import { startRegistrationServer } from '../../prr/registration.js';
import { portUsage, usageReport } from '../../smap/conntrack.js';
import { ensureClientKey, RegistrationClient } from '../../smap/registration.js';
import { makeRig, tempDir, WIDE, type Rig } from '../registration/helpers.js';

const SHARED = 0xc0000264; // 192.0.2.100
const CT = [
  'ipv4     2 tcp      6 117 ESTABLISHED src=192.168.1.2 dst=198.51.100.2 sport=54582 dport=443 src=198.51.100.2 dst=192.0.2.100 sport=443 dport=10001 [ASSURED] mark=0 use=1',
  'ipv4     2 tcp      6 117 ESTABLISHED src=192.168.1.2 dst=198.51.100.2 sport=54583 dport=80 src=198.51.100.2 dst=192.0.2.100 sport=80 dport=10002 [ASSURED] mark=0 use=1',
  'ipv4     2 udp      17 20 src=192.168.1.2 dst=198.51.100.2 sport=5353 dport=53 src=198.51.100.2 dst=192.0.2.100 sport=53 dport=10001 mark=0 use=1',
  'ipv4     2 sctp     132 20 src=192.168.1.2 dst=198.51.100.2 sport=9 dport=9 src=198.51.100.2 dst=192.0.2.100 sport=9 dport=10003 mark=0 use=1',
  'ipv4     2 icmp     1 29 src=192.168.1.2 dst=198.51.100.2 type=8 code=0 id=7 src=198.51.100.2 dst=192.0.2.100 type=0 code=0 id=10004 mark=0 use=1',
  'ipv4     2 tcp      6 117 ESTABLISHED src=192.168.1.2 dst=198.51.100.2 sport=1 dport=443 src=198.51.100.2 dst=192.0.2.99 sport=443 dport=10005 mark=0 use=1',
].join('\n');

t.test('usageReport: ports in use per protocol from conntrack, the rest as other', async (t) => {
  t.same(usageReport(portUsage(CT, SHARED)), { tcp: 2, udp: 1, icmp: 1, other: 1 }, 'another shared address is not ours');
  t.same(usageReport(portUsage('', SHARED)), { tcp: 0, udp: 0, icmp: 0, other: 0 });
});

function serveWith(rig: Rig, service: RegistrationService) {
  return startRegistrationServer({
    listen: { host: '127.0.0.1', port: 0 }, hostKeyFile: path.join(rig.dir, 'host_key'), keys: () => rig.keys, service,
    ratePerKey: WIDE, rateTotal: WIDE, log: rig.log,
  });
}

t.test('the client sends its report with each registration; the PRR records it', async (t) => {
  const dir = tempDir('usage-smap');
  const log = memoryLogger();
  const key = ensureClientKey(path.join(dir, 'id'), log);
  const rig = makeRig(dir, `name=cpe1 ${key.public}\n`);
  const reports = new UsageReports();
  const server = await serveWith(rig, recordingUsage(rig.registrar, reports));
  t.teardown(() => server.close());
  let ct = '';
  const leases: LeaseReply[] = [];
  const c = new RegistrationClient({
    endpoint: { host: '127.0.0.1', port: server.port, hostKeyFingerprint: server.hostKeyFingerprint, key },
    ipv6: '2001:db8:1::2', log, onLease: (l) => leases.push(l),
    usage: async () => usageReport(portUsage(ct, SHARED)),
  });
  t.teardown(() => c.stop());
  await c.start();
  t.equal(leases.length, 1, log.lines.join('\n'));
  t.same(reports.get('cpe1')?.usage, { tcp: 0, udp: 0, icmp: 0, other: 0 }, 'registered with an empty table');
  ct = CT;
  await c.setIpv6('2001:db8:1::2'); // registers again now, as a renewal does
  t.same(reports.get('cpe1')?.usage, { tcp: 2, udp: 1, icmp: 1, other: 1 }, 'the next request carries the new counts');
});

t.test('a PRR without --usage: the client registers without the report and keeps doing so', async (t) => {
  const dir = tempDir('usage-old');
  const log = memoryLogger();
  const key = ensureClientKey(path.join(dir, 'id'), log);
  const rig = makeRig(dir, `name=cpe2 ${key.public}\n`);
  let refused = 0;
  let plain = 0;
  // What a PRR from before --usage answers (the parser refused unknown flags with this line).
  const old: RegistrationService = {
    register: (peer, req) => {
      if (req.usage !== undefined) {
        refused++;
        throw new ProtocolError(EXIT_USAGE, 'register: unexpected "--usage"; usage: register --ipv6 ADDR [--ports N]');
      }
      plain++;
      return rig.registrar.register(peer, req);
    },
    renew: (peer, req) => rig.registrar.renew(peer, req),
    release: (peer) => rig.registrar.release(peer),
    status: (peer) => rig.registrar.status(peer),
  };
  const server = await serveWith(rig, old);
  t.teardown(() => server.close());
  const leases: LeaseReply[] = [];
  const c = new RegistrationClient({
    endpoint: { host: '127.0.0.1', port: server.port, hostKeyFingerprint: server.hostKeyFingerprint, key },
    ipv6: '2001:db8:2::2', log, onLease: (l) => leases.push(l),
    usage: async () => ({ tcp: 1, udp: 0, icmp: 0, other: 0 }),
  });
  t.teardown(() => c.stop());
  await c.start();
  t.equal(leases.length, 1, 'registered all the same');
  await c.setIpv6('2001:db8:2::2');
  t.equal(leases.length, 2);
  t.same([refused, plain], [1, 2], 'one refused attempt, then plain registrations only');
  t.match(log.lines.join('\n'), /does not take usage reports/);
});
