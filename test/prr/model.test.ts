import path from 'node:path';
import t from 'tap';
import { formatIpv4, ipv6Bytes } from '../../common/config/values.js';
import { parsePrrConfig } from '../../common/config/prr.js';
import { ConfigError } from '../../common/errors.js';
import { LEGACY_KEYS } from '../../prr/legacy.js';
import { detectFormat, loadPrrModel, parsePrrModel, summarizeModel, type PrrModel } from '../../prr/model.js';
import { DEFAULT_SIDE } from '../../prr/policy.js';

/** What `fn` throws (tap's t.throws matches messages as substrings; these tests want them whole). */
function thrown(fn: () => unknown): Error | undefined {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  return undefined;
}

const LEGACY = `PrrAddrV4 192.0.2.1
PrrAddrV6 2001:db8::1
IPv4Shared 192.0.2.100
Cpe1AddrV6 2001:db8:1::2
Cpe1PortRange 10000-11000
Cpe2AddrV6 2001:db8:2::2
Cpe2PortRange 11001-12000
`;

/** The prr.ini the flat file above stands for. */
const LEGACY_AS_INI = `[prr]
ipv4 = 192.0.2.1
tunnel_ipv6 = 2001:db8::1
shared_ipv4 = 192.0.2.100

[subscriber.cpe1]
ipv6 = 2001:db8:1::2
shared_ipv4 = 192.0.2.100
ports = 10000-11000

[subscriber.cpe2]
ipv6 = 2001:db8:2::2
shared_ipv4 = 192.0.2.100
ports = 11001-12000
`;

/** A model as plain values (addresses as text), for comparisons. */
function plain(m: PrrModel): Record<string, unknown> {
  const hex6 = (b: Buffer): string => b.toString('hex');
  return {
    ...m,
    policy: { ...m.policy, ipv4: formatIpv4(m.policy.ipv4), brAddresses: m.policy.brAddresses.map(hex6) },
    bindings: m.bindings.map((b) => ({ ...b, ipv6: hex6(b.ipv6), ipv4: formatIpv4(b.ipv4), ports: String(b.ports) })),
    pools: m.pools.map(String),
  };
}

t.test('the 2010 flat file: bindings, policy and every default', async (t) => {
  const m = parsePrrModel(LEGACY, '/etc/prr/aplus.conf');
  t.same(plain(m), {
    source: 'legacy',
    file: '/etc/prr/aplus.conf',
    policy: {
      ipv4: '192.0.2.1',
      brAddresses: [ipv6Bytes('2001:db8::1').toString('hex')],
      hairpinning: true,
      internal: DEFAULT_SIDE,
      external: DEFAULT_SIDE,
    },
    bindings: [
      { subscriber: 'cpe1', ipv6: ipv6Bytes('2001:db8:1::2').toString('hex'), ipv4: '192.0.2.100', ports: '10000-11000', br: 0 },
      { subscriber: 'cpe2', ipv6: ipv6Bytes('2001:db8:2::2').toString('hex'), ipv4: '192.0.2.100', ports: '11001-12000', br: 0 },
    ],
    tun: 'prr0',
    ipv4Output: 'raw',
    offload: true,
    pools: ['192.0.2.100/32'],
    tunnelMtu: 1460,
    pmtuTimeout: 600,
    allowSystemPorts: false,
    controlSocket: '/run/prr/control.sock',
    metrics: { enabled: true, listen: { host: '127.0.0.1', port: 9150 }, perSubscriber: { mode: 'top', n: 100 }, portsActive: true },
    logLevel: 'info',
    registration: parsePrrConfig('[prr]\nipv4 = 192.0.2.1\ntunnel_ipv6 = 2001:db8::1\nshared_ipv4 = 192.0.2.100\n').registration,
  });
  t.equal(m.registration.enabled, false, 'a flat file has no registration');
  t.equal(m.bindings[0]?.ports.size, 1001, '10000-11000 is 1001 ports, as in 2010');
  t.equal(m.bindings[0]?.ipv6.length, 16);
  t.equal(summarizeModel(m), '2 subscribers, pool 192.0.2.100/32, tunnel MTU 1460');
});

t.test('a flat file means the same as the prr.ini it stands for', async (t) => {
  const legacy = plain(parsePrrModel(LEGACY, 'f'));
  const ini = plain(parsePrrModel(LEGACY_AS_INI, 'f'));
  t.equal(ini.source, 'ini');
  t.same({ ...legacy, source: 'ini' }, ini);
});

t.test('the schema defaults are the policy defaults', async (t) => {
  const m = parsePrrModel('[prr]\nipv4 = 198.51.100.1\ntunnel_ipv6 = 2001:db8:ffff::1\nshared_ipv4 = 192.0.2.0/30\n', 'f');
  t.same(m.policy.internal, DEFAULT_SIDE);
  t.same(m.policy.external, DEFAULT_SIDE);
  t.not(m.policy.internal, m.policy.external, 'each side its own object');
  t.equal(m.tunnelMtu, 1460);
  t.same(m.bindings, []);
});

t.test('prr.ini: sides, tunnel endpoints, tunnel MTU', async (t) => {
  const m = parsePrrModel(`; a PRR with two endpoints
[prr]
ipv4 = 198.51.100.1
tunnel_ipv6 = 2001:db8:ffff::1, 2001:db8:ffff::2
tun = prr7
shared_ipv4 = 192.0.2.0/30, 198.51.100.7
hairpinning = false
allow_system_ports = true
control_socket = run/ctl.sock
log_level = debug
[tunnel]
mtu = 1400
[internal]
mtu = 1480
generate_icmp_errors = false
icmp_rate_limit = 100/10s
reassembly_max_packets = 10
reassembly_max_fragments = 8
reassembly_timeout = 5s
[external]
mtu = 1400
allow_incoming_icmp = no
[metrics]
enabled = false
listen = [::1]:9999
per_subscriber = none
ports_active = off
[subscriber.b]
ipv6 = 2001:db8:2::1
shared_ipv4 = 198.51.100.7
ports = psid:k=8/id=3
br = 2001:db8:ffff::2
[subscriber.a]
ipv6 = 2001:db8:1::1
shared_ipv4 = 192.0.2.1
ports = 100-2000
`, '/etc/prr/prr.ini');
  const p = plain(m);
  t.same(p.policy, {
    ipv4: '198.51.100.1',
    brAddresses: [ipv6Bytes('2001:db8:ffff::1').toString('hex'), ipv6Bytes('2001:db8:ffff::2').toString('hex')],
    hairpinning: false,
    internal: {
      mtu: 1480,
      generateIcmpErrors: false,
      allowIncomingIcmp: true,
      errorRateLimit: { packets: 100, seconds: 10 },
      reassembly: { maxPackets: 10, maxFragmentsPerPacket: 8, timeoutMs: 5000 },
    },
    external: { ...DEFAULT_SIDE, mtu: 1400, allowIncomingIcmp: false },
  });
  t.same(p.bindings, [
    { subscriber: 'b', ipv6: ipv6Bytes('2001:db8:2::1').toString('hex'), ipv4: '198.51.100.7', ports: 'psid:a=6/k=8/id=3', br: 1 },
    { subscriber: 'a', ipv6: ipv6Bytes('2001:db8:1::1').toString('hex'), ipv4: '192.0.2.1', ports: '100-2000', br: 0 },
  ], 'file order; br by index');
  t.same([m.source, m.tun, m.tunnelMtu, m.allowSystemPorts, m.logLevel], ['ini', 'prr7', 1400, true, 'debug']);
  t.equal(m.controlSocket, path.resolve('/etc/prr/run/ctl.sock'), 'relative to the file');
  t.same(m.metrics, { enabled: false, listen: { host: '::1', port: 9999 }, perSubscriber: { mode: 'none' }, portsActive: false });
  t.equal(summarizeModel(m), '2 subscribers, pools 192.0.2.0/30, 198.51.100.7/32, tunnel MTU 1400');
  t.equal(parsePrrModel('[prr]\nipv4 = 198.51.100.1\ntunnel_ipv6 = 2001:db8:ffff::1\nshared_ipv4 = 192.0.2.0/30\n[internal]\nmtu = 1280\n', 'f').tunnelMtu, 1240, 'auto follows [internal] mtu');
});

t.test('the format is told by the first meaningful line', async (t) => {
  const ini = '[prr]\nipv4 = 198.51.100.1\ntunnel_ipv6 = 2001:db8:ffff::1\nshared_ipv4 = 192.0.2.0/30\n';
  t.equal(detectFormat(ini, 'f'), 'ini');
  t.equal(detectFormat(`\uFEFF; comment\n# another\n\n   \n${ini}`, 'f'), 'ini');
  t.equal(detectFormat('  [subscriber.x]\n', 'f'), 'ini');
  t.equal(detectFormat(LEGACY, 'f'), 'legacy');
  t.equal(detectFormat(`# 2010\n\n${LEGACY.split('\n').reverse().join('\n')}`, 'f'), 'legacy');
  t.equal(detectFormat('Cpe3PortRange=10000-10999\n', 'f'), 'legacy');
  t.equal(detectFormat('prraddrv6 2001:db8::1\n', 'f'), 'legacy');
  t.equal(parsePrrModel(`# the 2010 file, as it was\n${LEGACY}`, 'f').source, 'legacy');
});

const formats = `prr.ini (INI, starting with a [section] such as [prr]) or the 2010 flat file (${LEGACY_KEYS.join(', ')} lines)`;
const notConfig: Array<[string, string, string]> = [
  ['empty', '', `x.conf: the file has no settings: expected ${formats}`],
  ['comments only', '# nothing\n; here\n\n', `x.conf: the file has no settings: expected ${formats}`],
  ['an INI key before any section', '\ntunnel_ipv6 = 2001:db8::1\n[prr]\n', `x.conf:2: not a PRR config file: expected ${formats}, got "tunnel_ipv6 = 2001:db8::1"`],
  ['something else', '{"prr": {}}\n', `x.conf:1: not a PRR config file: expected ${formats}, got "{\\"prr\\": {}}"`],
  ['a shell line', 'export FOO=bar\n', `x.conf:1: not a PRR config file: expected ${formats}, got "export FOO=bar"`],
  ['a broken header', '# c\n[prr\nipv4 = 192.0.2.1\n', 'x.conf:2: bad section header "[prr": expected [name]'],
  ['a flat-file typo on the first line', 'PrrAddrV5 192.0.2.1\n', 'x.conf:1 PrrAddrV5: unknown key (did you mean PrrAddrV4?)'],
  ['a flat-file error', LEGACY.replace('11001-12000', '10999-12000'), 'x.conf:7 Cpe2PortRange: 10999-12000 overlaps Cpe1PortRange (line 5) 10000-11000'],
  ['a prr.ini error', '[prr]\ntunnel_ipv6 = 2001:db8:ffff::1\nshared_ipv4 = 192.0.2.0/30\n', 'x.conf:1 [prr] ipv4: missing required key'],
  ['flat keys in a prr.ini', '[prr]\nPrrAddrV4 = 192.0.2.1\n', 'x.conf:2 [prr] PrrAddrV4: unknown key (known: ipv4, tunnel_ipv6, tun, ipv4_output, shared_ipv4, hairpinning, allow_system_ports, control_socket, log_level)'],
];

t.test('anything else is refused, naming the file and the accepted formats', async (t) => {
  for (const [what, text, message] of notConfig) {
    const e = thrown(() => parsePrrModel(text, 'x.conf'));
    t.type(e, ConfigError, what);
    t.equal(e?.message, message, what);
  }
});

t.test('loadPrrModel reads files of either format', async (t) => {
  const dir = t.testdir({ 'prr.ini': LEGACY_AS_INI, 'aplus.conf': LEGACY, 'empty.conf': '' });
  const ini = loadPrrModel(path.join(dir, 'prr.ini'));
  const legacy = loadPrrModel(path.join(dir, 'aplus.conf'));
  t.same([ini.source, ini.file, ini.bindings.length], ['ini', path.join(dir, 'prr.ini'), 2]);
  t.same([legacy.source, legacy.file, legacy.bindings.length], ['legacy', path.join(dir, 'aplus.conf'), 2]);
  const cases: Array<[string, string]> = [
    ['missing.conf', 'cannot read config file: no such file'],
    ['.', 'cannot read config file: is a directory'],
    ['empty.conf', `the file has no settings: expected ${formats}`],
  ];
  for (const [name, reason] of cases) {
    const file = path.join(dir, name);
    const e = thrown(() => loadPrrModel(file));
    t.type(e, ConfigError, name);
    t.equal(e?.message, `${file}: ${reason}`, name);
  }
  const example = loadPrrModel(new URL('../../prr/prr.ini.example', import.meta.url).pathname);
  t.equal(summarizeModel(example), '3 subscribers, pools 192.0.2.0/30, 198.51.100.7/32, tunnel MTU 1460');
  t.same(example.bindings.map((b) => b.br), [0, 0, 1]);
});
