import t from 'tap';
import { formatIpv6, parseIpv6 } from '../../common/native/addr6.js';

t.test('IPv6 text round trip (RFC 5952 output)', async (t) => {
  const cases: Array<[string, string]> = [
    ['::', '::'],
    ['::1', '::1'],
    ['2001:db8::1', '2001:db8::1'],
    ['2001:0DB8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['fe80::1%eth0', 'fe80::1'],
    ['::ffff:192.0.2.1', '::ffff:c000:201'],
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
  ];
  for (const [inp, out] of cases) t.equal(formatIpv6(parseIpv6(inp)), out, inp);
  const b = Buffer.alloc(40);
  parseIpv6('2001:db8::7').copy(b, 20);
  t.equal(formatIpv6(b, 20), '2001:db8::7', 'at an offset');
  for (const bad of ['', '1::2::3', '192.0.2.1', '2001:db8::g', '1:2:3:4:5:6:7:8:9']) {
    t.throws(() => parseIpv6(bad), { code: 'ERR_NATIVE' }, JSON.stringify(bad));
  }
});
