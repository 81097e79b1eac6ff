import { readFileSync } from 'node:fs';
import t from 'tap';
import { ConfigError } from '../../common/errors.js';
import { brIndexOf, loadPrrConfig, parsePrrConfig, parseRate, tunnelMtuOf } from '../../common/config/prr.js';
import { formatIpv4 } from '../../common/config/values.js';

/** What `fn` throws (tap's t.throws matches messages as substrings; these tests want them whole). */
function thrown(fn: () => unknown): Error | undefined {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  return undefined;
}

const example = new URL('../../prr/prr.ini.example', import.meta.url);

const BASE = `[prr]
ipv4 = 198.51.100.1
tunnel_ipv6 = 2001:db8:ffff::1
shared_ipv4 = 192.0.2.0/30
`;

const sub = (name: string, ipv6: string, ipv4: string, ports: string): string =>
  `[subscriber.${name}]\nipv6 = ${ipv6}\nshared_ipv4 = ${ipv4}\nports = ${ports}\n`;

t.test('the example file loads', async (t) => {
  const cfg = loadPrrConfig(example.pathname);
  t.equal(formatIpv4(cfg.prr.ipv4), '198.51.100.1');
  t.same(cfg.prr.tunnel_ipv6, ['2001:db8:ffff::1', '2001:db8:ffff::2']);
  t.same(cfg.prr.shared_ipv4.map(String), ['192.0.2.0/30', '198.51.100.7/32']);
  t.equal(cfg.subscriber.size, 3);
  t.equal(String(cfg.subscriber.get('cpe3')?.ports), 'psid:a=6/k=8/id=52');
  t.same([...cfg.subscriber.values()].map((x) => brIndexOf(cfg, x.br)), [0, 0, 1]);
  t.same(cfg.internal, parsePrrConfig(BASE).internal, 'the example spells out the defaults');
  t.same(cfg.external, parsePrrConfig(BASE).external);
  t.equal(tunnelMtuOf(cfg), 1460);
  t.notMatch(readFileSync(example, 'utf8'), /\b(10\.|172\.(1[6-9]|2\d|3[01])\.)\d/, 'documentation prefixes only');
});

t.test('defaults', async (t) => {
  const cfg = parsePrrConfig(BASE);
  t.same(
    { ...cfg.prr, shared_ipv4: cfg.prr.shared_ipv4.map(String) },
    {
      ipv4: 0xc6336401,
      tunnel_ipv6: ['2001:db8:ffff::1'],
      tun: 'prr0',
      ipv4_output: 'raw',
      shared_ipv4: ['192.0.2.0/30'],
      hairpinning: true,
      allow_system_ports: false,
      control_socket: '/run/prr/control.sock',
      log_level: 'info',
    },
  );
  t.same(cfg.tunnel, { mtu: 'auto', pmtu_timeout: 600, offload: 'auto' });
  const side = {
    mtu: 1500,
    generate_icmp_errors: true,
    allow_incoming_icmp: true,
    icmp_rate_limit: { packets: 1000, seconds: 1 },
    reassembly_max_packets: 1024,
    reassembly_max_fragments: 40,
    reassembly_timeout: 2,
  };
  t.same(cfg.internal, side);
  t.same(cfg.external, side);
  t.equal(tunnelMtuOf(cfg), 1460, 'auto = [internal] mtu - 40');
  t.same(cfg.metrics, { enabled: true, listen: { host: '127.0.0.1', port: 9150 }, per_subscriber: { mode: 'top', n: 100 }, ports_active: true });
  t.equal(cfg.subscriber.size, 0);
});

t.test('[internal], [external] and the tunnel MTU', async (t) => {
  const cfg = parsePrrConfig(`${BASE}
[internal]
mtu = 1280
generate_icmp_errors = no
icmp_rate_limit = 100/10s
reassembly_max_packets = 10
reassembly_max_fragments = 2
reassembly_timeout = 1m
[external]
mtu = 576
allow_incoming_icmp = false
icmp_rate_limit = 50
`);
  t.same(cfg.internal, {
    mtu: 1280,
    generate_icmp_errors: false,
    allow_incoming_icmp: true,
    icmp_rate_limit: { packets: 100, seconds: 10 },
    reassembly_max_packets: 10,
    reassembly_max_fragments: 2,
    reassembly_timeout: 60,
  });
  t.same([cfg.external.mtu, cfg.external.allow_incoming_icmp, cfg.external.icmp_rate_limit], [576, false, { packets: 50, seconds: 1 }]);
  t.equal(tunnelMtuOf(cfg), 1240, 'a 1280-byte IPv6 path leaves 1240');
  t.equal(tunnelMtuOf(parsePrrConfig(`${BASE}[tunnel]\nmtu = 1400\n`)), 1400, 'an explicit tunnel MTU below internal - 40');
  t.equal(tunnelMtuOf(parsePrrConfig(`${BASE}[tunnel]\nmtu = 1460\n`)), 1460, 'exactly internal - 40');
  t.equal(tunnelMtuOf(parsePrrConfig(`${BASE}[internal]\nmtu = 9000\n`)), 8960);
});

t.test('icmp_rate_limit syntax', async (t) => {
  const ok: Array<[string, number, number]> = [
    ['1000', 1000, 1], ['1000/1s', 1000, 1], ['1000/s', 1000, 1], ['100/10s', 100, 10], ['6000/1m', 6000, 60],
    ['10 / 2', 10, 2], ['1/1h', 1, 3600],
  ];
  for (const [text, packets, seconds] of ok) t.same(parseRate(text), { packets, seconds }, text);
  for (const text of ['', 'x', '10/', '10/0s', '10/2h', '-1', '1.5/s', '10/1x', '/1s', '10000000000']) t.equal(parseRate(text), undefined, text);
  t.equal(thrown(() => parseRate('0/1s'))?.message, 'a rate of 0 sends nothing; set generate_icmp_errors = false instead');
});

t.test('a subscriber names its tunnel endpoint', async (t) => {
  const two = BASE.replace('tunnel_ipv6 = 2001:db8:ffff::1', 'tunnel_ipv6 = 2001:db8:ffff::1, 2001:db8:ffff::2');
  const cfg = parsePrrConfig(`${two}${sub('a', '2001:db8:1::1', '192.0.2.1', '10000-11000')}${sub('b', '2001:db8:2::1', '192.0.2.1', '11001-12000')}br = 2001:DB8:FFFF:0::2\n`);
  t.equal(cfg.subscriber.get('a')?.br, undefined);
  t.equal(cfg.subscriber.get('b')?.br, '2001:db8:ffff::2', 'canonical text');
  t.same([brIndexOf(cfg, cfg.subscriber.get('a')?.br), brIndexOf(cfg, cfg.subscriber.get('b')?.br)], [0, 1]);
});

t.test('static subscribers', async (t) => {
  const cfg = parsePrrConfig(`${BASE}
[metrics]
per_subscriber = all
[subscriber.alice]
ipv6 = 2001:db8:1:0::1
shared_ipv4 = 192.0.2.1
ports = 10000-11000
[subscriber.bob]
ipv6 = 2001:db8:2::1
shared_ipv4 = 192.0.2.1
ports = 11001-12000
`);
  t.same([...cfg.subscriber].map(([n, s]) => [n, s.ipv6, formatIpv4(s.shared_ipv4), String(s.ports)]), [
    ['alice', '2001:db8:1::1', '192.0.2.1', '10000-11000'],
    ['bob', '2001:db8:2::1', '192.0.2.1', '11001-12000'],
  ]);
  t.same(cfg.metrics.per_subscriber, { mode: 'all' });
  t.same(parsePrrConfig(`${BASE}[metrics]\nper_subscriber = top:5\n`).metrics.per_subscriber, { mode: 'top', n: 5 });
  t.same(parsePrrConfig(`${BASE}[metrics]\nper_subscriber = none\n`).metrics.per_subscriber, { mode: 'none' });
  t.equal(parsePrrConfig(`${BASE}[metrics]\nports_active = off\n`).metrics.ports_active, false, 'ports_active = off');
  const low = `${BASE}allow_system_ports = true\n[subscriber.ops]\nipv6 = 2001:db8:9::1\nshared_ipv4 = 192.0.2.3\nports = 1-1023\n`;
  t.equal(String(parsePrrConfig(low).subscriber.get('ops')?.ports), '1-1023', 'system ports when allowed');
  // One CPE with two port sets (two softwires, RFC 7596 §5.1): two sections, one IPv6 address.
  const two = parsePrrConfig(BASE + sub('alice', '2001:db8:1::1', '192.0.2.1', '10000-11000') + sub('alice2', '2001:DB8:1:0::1', '192.0.2.2', '10000-11000'));
  t.equal(two.subscriber.size, 2, 'two sections may share a CPE address');
});

// One row per rule: the text after BASE, and the exact message.
const errors: Array<[string, string, string]> = [
  ['overlap, ranges', sub('alice', '2001:db8:1::1', '192.0.2.1', '10000-11000') + sub('bob', '2001:db8:2::1', '192.0.2.1', '10500-11500'),
    'prr.ini:12 [subscriber.bob] ports: 10500-11500 on 192.0.2.1 overlaps [subscriber.alice] (line 5) ports 10000-11000'],
  ['overlap, psid in range', sub('alice', '2001:db8:1::1', '192.0.2.1', '1232-1232') + sub('bob', '2001:db8:2::1', '192.0.2.1', 'psid:k=8/id=0x34'),
    'prr.ini:12 [subscriber.bob] ports: psid:a=6/k=8/id=52 on 192.0.2.1 overlaps [subscriber.alice] (line 5) ports 1232-1232'],
  ['one CPE, overlapping sets', sub('alice', '2001:db8:1::1', '192.0.2.1', '10000-11000') + sub('alice2', '2001:db8:1::1', '192.0.2.1', '10500-11500'),
    'prr.ini:12 [subscriber.alice2] ports: 10500-11500 on 192.0.2.1 overlaps [subscriber.alice] (line 5) ports 10000-11000'],
  ['outside the pools', sub('alice', '2001:db8:1::1', '203.0.113.1', '10000-11000'),
    'prr.ini:7 [subscriber.alice] shared_ipv4: 203.0.113.1 is outside the shared pools (192.0.2.0/30)'],
  ['system ports', sub('alice', '2001:db8:1::1', '192.0.2.1', '80-80'),
    'prr.ini:8 [subscriber.alice] ports: 80-80 includes system ports (0-1023); set [prr] allow_system_ports = true to allow them'],
  ['psid a=0', sub('alice', '2001:db8:1::1', '192.0.2.1', 'psid:a=0/k=6/id=0'),
    'prr.ini:8 [subscriber.alice] ports: psid:a=0/k=6/id=0 includes system ports (0-1023); set [prr] allow_system_ports = true to allow them'],
  ['missing ports', '[subscriber.alice]\nipv6 = 2001:db8:1::1\nshared_ipv4 = 192.0.2.1\n',
    'prr.ini:5 [subscriber.alice] ports: missing required key'],
  ['bad per_subscriber', '[metrics]\nper_subscriber = top:0\n',
    'prr.ini:6 [metrics] per_subscriber: expected all, none or top:N, got "top:0"'],
  ['bad mtu', '[tunnel]\nmtu = 12x\n', 'prr.ini:6 [tunnel] mtu: expected an integer 1240..65495 or "auto", got "12x"'],
  ['typo', '[tunnel]\nmut = 1400\n', 'prr.ini:6 [tunnel] mut: unknown key (did you mean mtu?)'],
  ['typo in section', '[subscribr.alice]\n', 'prr.ini:5 [subscribr.alice]: unknown section (did you mean [subscriber.alice]?)'],
  ['br not a tunnel endpoint', sub('alice', '2001:db8:1::1', '192.0.2.1', '10000-11000') + 'br = 2001:db8:ffff::9\n',
    'prr.ini:9 [subscriber.alice] br: 2001:db8:ffff::9 is not one of [prr] tunnel_ipv6 (2001:db8:ffff::1)'],
  ['subscriber on a tunnel endpoint', sub('alice', '2001:db8:ffff::1', '192.0.2.1', '10000-11000'),
    'prr.ini:6 [subscriber.alice] ipv6: 2001:db8:ffff::1 is a tunnel endpoint of the PRR ([prr] tunnel_ipv6)'],
  ['tunnel mtu over internal - 40', '[tunnel]\nmtu = 1461\n',
    'prr.ini:6 [tunnel] mtu: 1461 does not fit in [internal] mtu 1500 - 40 = 1460; lower it or raise [internal] mtu'],
  ['tunnel mtu over a small internal mtu', '[tunnel]\nmtu = 1400\n[internal]\nmtu = 1280\n',
    'prr.ini:6 [tunnel] mtu: 1400 does not fit in [internal] mtu 1280 - 40 = 1240; lower it or raise [internal] mtu'],
  ['internal mtu below 1280', '[internal]\nmtu = 1279\n', 'prr.ini:6 [internal] mtu: expected an integer 1280..65535, got "1279"'],
  ['external mtu below 68', '[external]\nmtu = 67\n', 'prr.ini:6 [external] mtu: expected an integer 68..65535, got "67"'],
  ['bad rate', '[external]\nicmp_rate_limit = 10/0s\n',
    'prr.ini:6 [external] icmp_rate_limit: expected packets per interval (1000/1s, 100/10s) or packets per second (1000), got "10/0s"'],
  ['zero rate', '[internal]\nicmp_rate_limit = 0\n',
    'prr.ini:6 [internal] icmp_rate_limit: a rate of 0 sends nothing; set generate_icmp_errors = false instead'],
  ['one fragment', '[internal]\nreassembly_max_fragments = 1\n',
    'prr.ini:6 [internal] reassembly_max_fragments: expected an integer 2..8192, got "1"'],
  ['no reassembly slots', '[external]\nreassembly_max_packets = 0\n',
    'prr.ini:6 [external] reassembly_max_packets: expected an integer 1..1048576, got "0"'],
  ['timeout too long', '[external]\nreassembly_timeout = 3m\n',
    'prr.ini:6 [external] reassembly_timeout: expected a duration (30s, 5m, 1h or seconds), got "3m"'],
  ['typo in a side', '[internal]\ngenerate_icmp_error = no\n', 'prr.ini:6 [internal] generate_icmp_error: unknown key (did you mean generate_icmp_errors?)'],
];

t.test('cross-field rules name both sides', async (t) => {
  for (const [what, tail, message] of errors) {
    const e = thrown(() => parsePrrConfig(BASE + tail, 'prr.ini'));
    t.type(e, ConfigError, what);
    t.equal(e?.message, message, what);
  }
  const prr = (lines: string): string => `[prr]\n${lines}\n`;
  const whole: Array<[string, string, string]> = [
    ['pools overlap', prr('ipv4 = 198.51.100.1\ntunnel_ipv6 = 2001:db8:ffff::1\nshared_ipv4 = 192.0.2.0/24, 192.0.2.7'),
      'prr.ini:4 [prr] shared_ipv4: pools 192.0.2.0/24 and 192.0.2.7/32 overlap'],
    ['no tunnel_ipv6', prr('ipv4 = 198.51.100.1\nshared_ipv4 = 192.0.2.0/30'), 'prr.ini:1 [prr] tunnel_ipv6: missing required key'],
    ['no ipv4', prr('tunnel_ipv6 = 2001:db8:ffff::1\nshared_ipv4 = 192.0.2.0/30'), 'prr.ini:1 [prr] ipv4: missing required key'],
    ['ipv4 in a pool', prr('ipv4 = 192.0.2.2\ntunnel_ipv6 = 2001:db8:ffff::1\nshared_ipv4 = 192.0.2.0/30'),
      "prr.ini:2 [prr] ipv4: 192.0.2.2 is in the shared pool 192.0.2.0/30, whose ports belong to subscribers; use an address of the PRR's own"],
    ['ipv4 not unicast', prr('ipv4 = 224.0.0.1\ntunnel_ipv6 = 2001:db8:ffff::1\nshared_ipv4 = 192.0.2.0/30'),
      'prr.ini:2 [prr] ipv4: 224.0.0.1 is not a unicast address the PRR can send from'],
    ['ipv4 zero', prr('ipv4 = 0.0.0.0\ntunnel_ipv6 = 2001:db8:ffff::1\nshared_ipv4 = 192.0.2.0/30'),
      'prr.ini:2 [prr] ipv4: 0.0.0.0 is not a unicast address the PRR can send from'],
    ['bad ipv4', prr('ipv4 = 198.51.100\ntunnel_ipv6 = 2001:db8:ffff::1\nshared_ipv4 = 192.0.2.0/30'),
      'prr.ini:2 [prr] ipv4: expected an IPv4 address, got "198.51.100"'],
    ['endpoint twice', prr('ipv4 = 198.51.100.1\ntunnel_ipv6 = 2001:db8:ffff::1, 2001:db8:ffff:0::1\nshared_ipv4 = 192.0.2.0/30'),
      'prr.ini:3 [prr] tunnel_ipv6: 2001:db8:ffff::1 is listed twice'],
  ];
  for (const [what, text, message] of whole) {
    const e = thrown(() => parsePrrConfig(text, 'prr.ini'));
    t.type(e, ConfigError, what);
    t.equal(e?.message, message, what);
  }
  t.throws(() => parsePrrConfig('', 'prr.ini'), ConfigError);
});
