import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { Ipv4Prefix } from '../../common/config/values.js';
import { flushCommands, natFailures, portUsage } from '../../smap/conntrack.js';

const SHARED = 0xc0000264; // 192.0.2.100

// /proc/net/nf_conntrack lines and `conntrack -L` lines, mixed.
const TABLE = [
  'ipv4     2 tcp      6 117 TIME_WAIT src=192.168.1.2 dst=198.51.100.2 sport=54582 dport=80 src=198.51.100.2 dst=192.0.2.100 sport=80 dport=10001 [ASSURED] mark=0 zone=0 use=2',
  'ipv4     2 tcp      6 431999 ESTABLISHED src=192.168.1.2 dst=198.51.100.2 sport=54590 dport=443 src=198.51.100.2 dst=192.0.2.100 sport=443 dport=10002 [ASSURED] mark=0 use=1',
  'tcp      6 431999 ESTABLISHED src=192.168.1.3 dst=198.51.100.9 sport=40000 dport=443 src=198.51.100.9 dst=192.0.2.100 sport=443 dport=10002 [ASSURED] mark=0 use=1',
  'udp      17 29 src=192.168.1.2 dst=198.51.100.2 sport=41000 dport=53 src=198.51.100.2 dst=192.0.2.100 sport=53 dport=10003 mark=0 use=1',
  'icmp     1 29 src=192.168.1.2 dst=198.51.100.2 type=8 code=0 id=24859 src=198.51.100.2 dst=192.0.2.100 type=0 code=0 id=10004 mark=0 use=1',
  // not NATed to us: the LAN's own traffic to the router, another address, IPv6
  'ipv4     2 udp      17 20 src=192.168.1.2 dst=192.168.1.1 sport=68 dport=67 src=192.168.1.1 dst=192.168.1.2 sport=67 dport=68 mark=0 use=1',
  'ipv4     2 tcp      6 10 SYN_SENT src=192.168.1.2 dst=198.51.100.2 sport=1 dport=22 src=198.51.100.2 dst=192.0.2.101 sport=22 dport=10009 mark=0 use=1',
  'ipv6     10 udp      17 20 src=2001:db8::1 dst=2001:db8::2 sport=1 dport=2 src=2001:db8::2 dst=2001:db8::1 sport=2 dport=1 mark=0 use=1',
  'garbage',
  '',
].join('\n');

t.test('ports in use: distinct ports of the set per protocol, flows per service', async (t) => {
  const u = portUsage(TABLE, SHARED);
  t.same(u.byProtocol, { tcp: 2, udp: 1, icmp: 1 }, 'port 10002 is held by two TCP flows (two destinations): counted once');
  t.same(u.byService, { dns: 1, http: 1, https: 2, other: 1 });
  t.equal(u.flows, 5);
  t.same(portUsage('', SHARED), { byProtocol: { tcp: 0, udp: 0, icmp: 0 }, byService: { dns: 0, http: 0, https: 0, other: 0 }, flows: 0 });
});

t.test('flush: the LAN prefix, and whatever was NATed to the shared address', async (t) => {
  t.same(flushCommands(new Ipv4Prefix(0xc0a80100, 24), SHARED), [
    ['-D', '-f', 'ipv4', '-s', '192.168.1.0/24'],
    ['-D', '-f', 'ipv4', '-q', '192.0.2.100'],
  ]);
  t.same(flushCommands(new Ipv4Prefix(0xc0a80100, 24), undefined), [['-D', '-f', 'ipv4', '-s', '192.168.1.0/24']]);
});

t.test('flows the NAT refused: insert_failed summed over the CPUs of /proc/net/stat/nf_conntrack', async (t) => {
  const header = 'entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart';
  const row = (insertFailed: string): string => `0000000b  00000000 00000000 00000000 00000002 00000000 00000000 00000000 00000000 ${insertFailed} 00000000 00000000 00000000  00000000 00000000 00000000 00000000`;
  t.equal(natFailures(`${header}\n${row('00000003')}\n${row('0000001a')}\n`), 29, 'hexadecimal, one row per CPU');
  t.equal(natFailures(`${header}\n`), 0, 'no CPU rows: nothing refused');
  t.equal(natFailures(`${header}\n${row('zz')}\n`), undefined, 'a bad value: unknown, not a guess');
  t.equal(natFailures('something else\n1 2 3\n'), undefined, 'not that file');
  t.equal(natFailures(''), undefined, 'empty');
  // The real file parses, where conntrack is loaded (always in the lab tests, which use it).
  if (existsSync('/proc/net/stat/nf_conntrack')) {
    const real = natFailures(readFileSync('/proc/net/stat/nf_conntrack', 'utf8'));
    t.ok(real !== undefined && real >= 0, `this host's file: ${real}`);
  }
});
