import t from 'tap';
import { ConfigError } from '../../common/errors.js';
import {
  formatIpv4,
  ipv6Bytes,
  parseBool,
  parseDuration,
  parseHost,
  parseHostPort,
  parseIfName,
  parseIpv4,
  parseIpv4Prefix,
  parseIpv6,
  parseIpv6Prefix,
} from '../../common/config/values.js';

t.test('IPv4 addresses', async (t) => {
  t.equal(parseIpv4('192.0.2.1'), 0xc0000201);
  t.equal(parseIpv4('255.255.255.255'), 0xffffffff);
  t.equal(parseIpv4('0.0.0.0'), 0);
  for (const bad of ['192.0.2', '192.0.2.256', '192.0.2.01', '192.0.2.1.5', 'a.b.c.d', '', '1e3.0.0.1']) {
    t.equal(parseIpv4(bad), undefined, bad);
  }
  t.equal(formatIpv4(0xc6336407), '198.51.100.7');
});

t.test('IPv4 prefixes', async (t) => {
  const p = parseIpv4Prefix('192.0.2.0/30');
  t.equal(String(p), '192.0.2.0/30');
  t.equal(p?.size, 4);
  t.same(p?.addresses().map(formatIpv4), ['192.0.2.0', '192.0.2.1', '192.0.2.2', '192.0.2.3']);
  t.ok(p?.contains(0xc0000203));
  t.notOk(p?.contains(0xc0000204));
  t.equal(parseIpv4Prefix('192.0.2.7'), undefined, 'a bare address is not a prefix by default');
  t.equal(String(parseIpv4Prefix('192.0.2.7', { allowBare: true })), '192.0.2.7/32');
  t.equal(String(parseIpv4Prefix('0.0.0.0/0')), '0.0.0.0/0');
  t.equal(parseIpv4Prefix('192.0.2.0/33'), undefined);
  t.equal(parseIpv4Prefix('192.0.2.0/24/1'), undefined);
  t.throws(() => parseIpv4Prefix('192.0.2.1/24'), { name: 'ConfigError', message: 'host bits are set in 192.0.2.1/24 (did you mean 192.0.2.0/24?)' });
  t.ok(parseIpv4Prefix('192.0.2.0/24')?.overlaps(parseIpv4Prefix('192.0.2.128/25') ?? assertNever()));
  t.notOk(parseIpv4Prefix('192.0.2.0/25')?.overlaps(parseIpv4Prefix('192.0.2.128/25') ?? assertNever()));
});

t.test('IPv6 addresses come out in RFC 5952 form', async (t) => {
  const cases: Array<[string, string]> = [
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // RFC 5952 §4.2.3: first of two equal runs
    ['2001:0DB8::0001', '2001:db8::1'], // §4.1, §4.3: no leading zeros, lower case
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // §4.2.2: one zero group is not compressed
    ['2001:db8:0:0:1:0:0:0', '2001:db8:0:0:1::'], // §4.2.3: the longest run
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['::ffff:192.0.2.1', '::ffff:c000:201'],
    ['64:ff9b::198.51.100.7', '64:ff9b::c633:6407'],
  ];
  for (const [text, canon] of cases) t.equal(parseIpv6(text), canon, text);
  for (const bad of ['1::2::3', '12345::', ':::', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7::8', 'fe80::1%eth0', '192.0.2.1', '', ':', '1:2:3:4:5:6:7']) {
    t.equal(parseIpv6(bad), undefined, bad);
  }
  t.same([...ipv6Bytes('2001:db8::1')], [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
  t.throws(() => ipv6Bytes('nope'), ConfigError);
});

t.test('IPv6 prefixes', async (t) => {
  t.equal(String(parseIpv6Prefix('2001:DB8::/32')), '2001:db8::/32');
  t.equal(String(parseIpv6Prefix('2001:db8:12:3400::/56')), '2001:db8:12:3400::/56');
  t.equal(parseIpv6Prefix('2001:db8::'), undefined);
  t.equal(parseIpv6Prefix('2001:db8::/129'), undefined);
  t.throws(() => parseIpv6Prefix('2001:db8::1/64'), /host bits are set in 2001:db8::1\/64 \(did you mean 2001:db8::\/64\?\)/);
  t.throws(() => parseIpv6Prefix('2001:db8:12:34ff::/56'), /did you mean 2001:db8:12:3400::\/56/);
});

t.test('durations, booleans, hosts, interface names', async (t) => {
  const durations: Array<[string, number | undefined]> = [
    ['90', 90], ['30s', 30], ['5m', 300], ['1h', 3600], ['2d', 172800], ['1h30m', 5400], ['1H', 3600],
    ['', undefined], ['5x', undefined], ['m', undefined], ['-5', undefined], ['1.5h', undefined], ['30m1h', undefined],
  ];
  for (const [text, secs] of durations) t.equal(parseDuration(text), secs, JSON.stringify(text));
  t.same(['true', 'Yes', 'on', '1', 'false', 'no', 'OFF', '0', 'maybe'].map(parseBool), [true, true, true, true, false, false, false, false, undefined]);
  t.same(parseHostPort('127.0.0.1:9150'), { host: '127.0.0.1', port: 9150 });
  t.same(parseHostPort('[2001:DB8::1]:9150'), { host: '2001:db8::1', port: 9150 });
  t.same(parseHostPort('prr.example.net:22'), { host: 'prr.example.net', port: 22 });
  for (const bad of ['127.0.0.1', '2001:db8::1:9150', '127.0.0.1:0', '127.0.0.1:65536', ':9150', '[nope]:1', 'a b:1']) {
    t.equal(parseHostPort(bad), undefined, bad);
  }
  t.equal(parseHost('2001:DB8::1'), '2001:db8::1');
  t.equal(parseHost('prr-1.example.net'), 'prr-1.example.net');
  t.equal(parseHost('-bad.example'), undefined);
  t.equal(parseHost('192.0.2.300'), undefined, 'digits and dots must be an IPv4 address');
  t.equal(parseIfName('br-lan'), 'br-lan');
  t.equal(parseIfName('eth0.100'), 'eth0.100');
  for (const bad of ['', 'a/b', 'has space', '..', 'sixteen-chars-xx']) t.equal(parseIfName(bad), undefined, bad);
});

function assertNever(): never {
  throw new Error('unreachable');
}
