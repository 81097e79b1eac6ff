import { readFileSync } from 'node:fs';
import t from 'tap';
import { ConfigError } from '../../common/errors.js';
import { loadPrrConfig, parsePrrConfig, summarizePrr } from '../../common/config/prr.js';
import { formatIpv4 } from '../../common/config/values.js';

const example = new URL('../../prr/prr.ini.example', import.meta.url);

const BASE = `[prr]
tunnel_ipv6 = 2001:db8:ffff::1
shared_ipv4 = 192.0.2.0/30
`;

t.test('the example file loads', async (t) => {
  const cfg = loadPrrConfig(example.pathname);
  t.same(cfg.prr.tunnel_ipv6, ['2001:db8:ffff::1']);
  t.same(cfg.prr.shared_ipv4.map(String), ['192.0.2.0/30', '198.51.100.7/32']);
  t.equal(cfg.subscriber.size, 3);
  t.equal(String(cfg.subscriber.get('cpe3')?.ports), 'psid:a=6/k=8/id=52');
  t.equal(summarizePrr(cfg), '3 subscribers, pools 192.0.2.0/30, 198.51.100.7/32');
  t.notMatch(readFileSync(example, 'utf8'), /\b(10\.|172\.(1[6-9]|2\d|3[01])\.)\d/, 'documentation prefixes only');
});

t.test('defaults', async (t) => {
  const cfg = parsePrrConfig(BASE);
  t.same(
    { ...cfg.prr, shared_ipv4: cfg.prr.shared_ipv4.map(String) },
    {
      tunnel_ipv6: ['2001:db8:ffff::1'],
      tun: 'prr0',
      shared_ipv4: ['192.0.2.0/30'],
      hairpinning: true,
      allow_system_ports: false,
      control_socket: '/run/prr/control.sock',
      log_level: 'info',
    },
  );
  t.same(cfg.tunnel, { mtu: 'auto' });
  t.same(cfg.metrics, { enabled: true, listen: { host: '127.0.0.1', port: 9150 }, per_subscriber: { mode: 'top', n: 100 } });
  t.equal(cfg.subscriber.size, 0);
  t.equal(summarizePrr(cfg), '0 subscribers, pool 192.0.2.0/30');
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
  const low = `${BASE}allow_system_ports = true\n[subscriber.ops]\nipv6 = 2001:db8:9::1\nshared_ipv4 = 192.0.2.3\nports = 1-1023\n`;
  t.equal(String(parsePrrConfig(low).subscriber.get('ops')?.ports), '1-1023', 'system ports when allowed');
});

const sub = (name: string, ipv6: string, ipv4: string, ports: string): string =>
  `[subscriber.${name}]\nipv6 = ${ipv6}\nshared_ipv4 = ${ipv4}\nports = ${ports}\n`;

// One row per rule: the text after BASE, and the exact message.
const errors: Array<[string, string, string]> = [
  ['overlap, ranges', sub('alice', '2001:db8:1::1', '192.0.2.1', '10000-11000') + sub('bob', '2001:db8:2::1', '192.0.2.1', '10500-11500'),
    'prr.ini:11 [subscriber.bob] ports: 10500-11500 on 192.0.2.1 overlaps [subscriber.alice] (line 4) ports 10000-11000'],
  ['overlap, psid in range', sub('alice', '2001:db8:1::1', '192.0.2.1', '1232-1232') + sub('bob', '2001:db8:2::1', '192.0.2.1', 'psid:k=8/id=0x34'),
    'prr.ini:11 [subscriber.bob] ports: psid:a=6/k=8/id=52 on 192.0.2.1 overlaps [subscriber.alice] (line 4) ports 1232-1232'],
  ['duplicate ipv6', sub('alice', '2001:db8:1::1', '192.0.2.1', '10000-11000') + sub('bob', '2001:DB8:1:0::1', '192.0.2.2', '10000-11000'),
    'prr.ini:9 [subscriber.bob] ipv6: 2001:db8:1::1 is also the address of [subscriber.alice] (line 4)'],
  ['outside the pools', sub('alice', '2001:db8:1::1', '203.0.113.1', '10000-11000'),
    'prr.ini:6 [subscriber.alice] shared_ipv4: 203.0.113.1 is outside the shared pools (192.0.2.0/30)'],
  ['system ports', sub('alice', '2001:db8:1::1', '192.0.2.1', '80-80'),
    'prr.ini:7 [subscriber.alice] ports: 80-80 includes system ports (0-1023); set [prr] allow_system_ports = true to allow them'],
  ['psid a=0', sub('alice', '2001:db8:1::1', '192.0.2.1', 'psid:a=0/k=6/id=0'),
    'prr.ini:7 [subscriber.alice] ports: psid:a=0/k=6/id=0 includes system ports (0-1023); set [prr] allow_system_ports = true to allow them'],
  ['missing ports', '[subscriber.alice]\nipv6 = 2001:db8:1::1\nshared_ipv4 = 192.0.2.1\n',
    'prr.ini:4 [subscriber.alice] ports: missing required key'],
  ['bad per_subscriber', '[metrics]\nper_subscriber = top:0\n',
    'prr.ini:5 [metrics] per_subscriber: expected all, none or top:N, got "top:0"'],
  ['bad mtu', '[tunnel]\nmtu = 12x\n', 'prr.ini:5 [tunnel] mtu: expected an integer 1240..65495 or "auto", got "12x"'],
  ['typo', '[tunnel]\nmut = 1400\n', 'prr.ini:5 [tunnel] mut: unknown key (did you mean mtu?)'],
  ['typo in section', '[subscribr.alice]\n', 'prr.ini:4 [subscribr.alice]: unknown section (did you mean [subscriber.alice]?)'],
];

t.test('cross-field rules name both sides', async (t) => {
  for (const [what, tail, message] of errors) {
    t.throws(() => parsePrrConfig(BASE + tail, 'prr.ini'), { name: 'ConfigError', message }, what);
  }
  const overlapPools = '[prr]\ntunnel_ipv6 = 2001:db8:ffff::1\nshared_ipv4 = 192.0.2.0/24, 192.0.2.7\n';
  t.throws(() => parsePrrConfig(overlapPools, 'prr.ini'), { message: 'prr.ini:3 [prr] shared_ipv4: pools 192.0.2.0/24 and 192.0.2.7/32 overlap' });
  t.throws(() => parsePrrConfig('[prr]\nshared_ipv4 = 192.0.2.0/30\n', 'prr.ini'), { message: 'prr.ini:1 [prr] tunnel_ipv6: missing required key' });
  t.throws(() => parsePrrConfig('', 'prr.ini'), ConfigError);
});
