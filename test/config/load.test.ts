import path from 'node:path';
import t from 'tap';
import { ConfigError } from '../../common/errors.js';
import { loadIni, parseIniText, scanIni } from '../../common/config/load.js';
import * as s from '../../common/config/schema.js';

const schema = s.defineSchema({
  sections: {
    main: {
      name: s.str({ required: true }),
      count: s.int({ min: 1, max: 10, default: 3 }),
      flag: s.bool({ default: false }),
      level: s.oneOf(['low', 'high'] as const, { default: 'low' }),
      addr4: s.ipv4(),
      addr6: s.ipv6(),
      net4: s.ipv4Prefix(),
      net6: s.ipv6Prefix(),
      ports: s.portSet(),
      pools: s.list(s.ipv4Prefix({ allowBare: true }), { default: [] }),
      wait: s.duration({ default: 30 }),
      file: s.filePath({ default: '/var/lib/x' }),
      listen: s.hostPort(),
      peer: s.host(),
      dev: s.ifName(),
      code: s.str({ pattern: /^[a-z]{3}$/, expect: 'three letters' }),
    },
    tunnel: {
      mtu: s.autoInt({ min: s.MTU_MIN, max: s.MTU_MAX, default: 'auto' }),
    },
  },
  patterns: {
    peer: { ipv6: s.ipv6({ required: true }), weight: s.int({ default: 1 }) },
  },
});

const parse = (text: string, file = '/etc/x/x.ini') => parseIniText(text, file, schema);

t.test('values, defaults and types', async (t) => {
  const cfg = parse(`
; a comment
# another
[main]
name = "quoted ; not a comment"
count = 7   ; inline comment
flag = yes
level = HIGH
addr4 = 192.0.2.1
addr6 = 2001:DB8:0::1
net4 = 192.0.2.0/24
net6 = 2001:db8::/32
ports = 10000-11000
pools = 192.0.2.0/30, 198.51.100.7
wait = 5m
file = keys/id
listen = [::1]:9150
peer = prr.example.net
dev = eth0
code = abc

[peer.alpha]
ipv6 = 2001:db8:1::1

[peer.beta]
ipv6 = 2001:db8:2::1
weight = 5
`);
  t.equal(cfg.main.name, 'quoted ; not a comment');
  t.equal(cfg.main.count, 7);
  t.equal(cfg.main.flag, true);
  t.equal(cfg.main.level, 'high');
  t.equal(cfg.main.addr4, 0xc0000201);
  t.equal(cfg.main.addr6, '2001:db8::1');
  t.equal(String(cfg.main.net4), '192.0.2.0/24');
  t.equal(String(cfg.main.net6), '2001:db8::/32');
  t.equal(String(cfg.main.ports), '10000-11000');
  t.same(cfg.main.pools.map(String), ['192.0.2.0/30', '198.51.100.7/32']);
  t.equal(cfg.main.wait, 300);
  t.equal(cfg.main.file, '/etc/x/keys/id', 'relative paths start at the config file');
  t.same(cfg.main.listen, { host: '::1', port: 9150 });
  t.equal(cfg.main.peer, 'prr.example.net');
  t.equal(cfg.tunnel.mtu, 'auto', 'an absent section gets its defaults');
  t.same([...cfg.peer.keys()], ['alpha', 'beta']);
  t.same(cfg.peer.get('alpha'), { ipv6: '2001:db8:1::1', weight: 1 });
  t.equal(cfg.peer.get('beta')?.weight, 5);
  // Types: keys with a default or `required` are never undefined; the others may be.
  const present: [string, number, boolean, 'low' | 'high', number | 'auto'] = [cfg.main.name, cfg.main.count, cfg.main.flag, cfg.main.level, cfg.tunnel.mtu];
  const optional: number | undefined = cfg.main.addr4;
  t.ok(present && optional !== undefined);

  const bare = parse('[main]\nname = x\ncount =\naddr4 =\n');
  t.equal(bare.main.count, 3, 'an empty value means the default');
  t.equal(bare.main.addr4, undefined);
  t.same(bare.main.pools, []);
  t.equal(bare.main.file, '/var/lib/x');
  t.equal(bare.peer.size, 0);
  t.equal(parse('[main]\nname = x\n[tunnel]\nmtu = 1400\n').tunnel.mtu, 1400);
  const crlf = '\uFEFF[main]\r\nname = x\r\n\r\ncount = 99\r\n';
  t.throws(() => parse(crlf), { message: '/etc/x/x.ini:4 [main] count: expected an integer 1..10, got "99"' }, 'BOM and CRLF keep line numbers');
});

// One row per mistake: the text, and the exact one-line message.
const errors: Array<[string, string, string]> = [
  ['no =', '[main]\nname x\n', '/etc/x/x.ini:2: expected "key = value" or "[section]", got "name x"'],
  ['bad header', '[main\nname = x\n', '/etc/x/x.ini:1: bad section header "[main": expected [name]'],
  ['bad section name', '[ma in]\n', '/etc/x/x.ini:1: bad section name "ma in"'],
  ['key outside', 'name = x\n[main]\n', '/etc/x/x.ini:1: key "name" is outside any [section]'],
  ['array key', '[main]\nname[] = x\n', '/etc/x/x.ini:2 [main] name[]: array keys (key[]) are not used here; write one key with a comma-separated list'],
  ['bad key name', '[main]\nna-me = x\n', '/etc/x/x.ini:2 [main]: bad key name "na-me"'],
  ['unknown section, hint', '[mian]\n', '/etc/x/x.ini:1 [mian]: unknown section (did you mean [main]?)'],
  ['unknown section', '[zzz]\n', '/etc/x/x.ini:1 [zzz]: unknown section (known: [main] [tunnel] [peer.NAME])'],
  ['pattern typo', '[main]\nname = x\n[pear.alpha]\n', '/etc/x/x.ini:3 [pear.alpha]: unknown section (did you mean [peer.alpha]?)'],
  ['pattern without name', '[main]\nname = x\n[peer]\n', '/etc/x/x.ini:3 [peer]: section needs a name: [peer.NAME]'],
  ['repeated section', '[main]\nname = x\n[tunnel]\n[main]\n[main]\n', '/etc/x/x.ini:4 [main]: section repeated (first at line 1)'],
  ['unknown key, hint', '[main]\nname = x\ncuont = 2\n', '/etc/x/x.ini:3 [main] cuont: unknown key (did you mean count?)'],
  ['unknown key', '[tunnel]\nzzz = 2\n', '/etc/x/x.ini:2 [tunnel] zzz: unknown key (known: mtu)'],
  ['repeated key', '[main]\nname = x\nname = y\n', '/etc/x/x.ini:3 [main] name: key repeated (first at line 2)'],
  ['missing key', '[main]\ncount = 2\n', '/etc/x/x.ini:1 [main] name: missing required key'],
  ['missing key, empty', '[main]\nname =\n', '/etc/x/x.ini:2 [main] name: missing required key'],
  ['missing section', '[tunnel]\n', '/etc/x/x.ini [main] name: missing required key (section [main] is absent)'],
  ['missing in pattern', '[main]\nname = x\n[peer.a]\nweight = 2\n', '/etc/x/x.ini:3 [peer.a] ipv6: missing required key'],
  ['mtu', '[main]\nname = x\n[tunnel]\nmtu = 12x\n', '/etc/x/x.ini:4 [tunnel] mtu: expected an integer 1240..65495 or "auto", got "12x"'],
  ['mtu range', '[main]\nname = x\n[tunnel]\nmtu = 1000\n', '/etc/x/x.ini:4 [tunnel] mtu: expected an integer 1240..65495 or "auto", got "1000"'],
  ['int', '[main]\nname = x\ncount = 0\n', '/etc/x/x.ini:3 [main] count: expected an integer 1..10, got "0"'],
  ['bool', '[main]\nname = x\nflag = maybe\n', '/etc/x/x.ini:3 [main] flag: expected true or false, got "maybe"'],
  ['enum', '[main]\nname = x\nlevel = mid\n', '/etc/x/x.ini:3 [main] level: expected one of low, high, got "mid"'],
  ['ipv4', '[main]\nname = x\naddr4 = 192.0.2.256\n', '/etc/x/x.ini:3 [main] addr4: expected an IPv4 address, got "192.0.2.256"'],
  ['ipv6', '[main]\nname = x\naddr6 = 2001:db8::g\n', '/etc/x/x.ini:3 [main] addr6: expected an IPv6 address, got "2001:db8::g"'],
  ['host bits', '[main]\nname = x\nnet4 = 192.0.2.1/24\n', '/etc/x/x.ini:3 [main] net4: host bits are set in 192.0.2.1/24 (did you mean 192.0.2.0/24?)'],
  ['port set shape', '[main]\nname = x\nports = many\n', '/etc/x/x.ini:3 [main] ports: expected a port set ("10000-11000" or "psid:a=6/k=8/id=52"), got "many"'],
  ['port set rule', '[main]\nname = x\nports = 100-2000\n', '/etc/x/x.ini:3 [main] ports: port set 100-2000 includes system ports (0-1023), which are not allowed here'],
  ['list item', '[main]\nname = x\npools = 192.0.2.0/30, nope\n', '/etc/x/x.ini:3 [main] pools: expected a comma-separated list of an IPv4 prefix or address (192.0.2.0/24, 192.0.2.1); item "nope" is not one'],
  ['list hole', '[main]\nname = x\npools = 192.0.2.0/30,,192.0.2.9\n', '/etc/x/x.ini:3 [main] pools: expected a comma-separated list of an IPv4 prefix or address (192.0.2.0/24, 192.0.2.1); item "" is not one'],
  ['duration', '[main]\nname = x\nwait = soon\n', '/etc/x/x.ini:3 [main] wait: expected a duration (30s, 5m, 1h or seconds), got "soon"'],
  ['host:port', '[main]\nname = x\nlisten = 9150\n', '/etc/x/x.ini:3 [main] listen: expected host:port (127.0.0.1:9150, [::1]:9150), got "9150"'],
  ['pattern', '[main]\nname = x\ncode = abcd\n', '/etc/x/x.ini:3 [main] code: expected three letters, got "abcd"'],
];

t.test('errors: one line naming file, line, section and key', async (t) => {
  for (const [what, text, message] of errors) {
    let err: unknown;
    try {
      parse(text);
    } catch (e) {
      err = e;
    }
    t.type(err, ConfigError, what);
    t.equal((err as Error | undefined)?.message, message, what);
    t.notMatch((err as Error | undefined)?.message ?? '', /\n/, `${what}: one line`);
  }
});

t.test('ConfigError carries the parts', async (t) => {
  const err = t.throws(() => parse('[main]\nname = x\ncount = 0\n')) as ConfigError;
  t.equal(err.code, 'ERR_CONFIG');
  t.equal(err.file, '/etc/x/x.ini');
  t.equal(err.section, 'main');
  t.equal(err.key, 'count');
  t.equal(err.reason, 'expected an integer 1..10, got "0"');
});

t.test('scanIni keeps sections, keys and lines; ini unquotes values', async (t) => {
  t.same(scanIni('[a] ; c\nk = "v;1"\nj = w \\; x # y\n', 'f'), [
    { name: 'a', line: 1, entries: [{ key: 'k', value: 'v;1', line: 2 }, { key: 'j', value: 'w ; x', line: 3 }] },
  ]);
});

t.test('check() runs after the schema, with a locator', async (t) => {
  const checked = s.defineSchema({
    sections: { a: { x: s.int({ default: 1 }), y: s.int({ default: 2 }) } },
    check(cfg, at) {
      if (cfg.a.x > cfg.a.y) throw at.error('a', 'x', `x (${cfg.a.x}) must not exceed y (${cfg.a.y}, line ${at.line('a', 'y') ?? '-'})`);
    },
  });
  t.same(parseIniText('[a]\nx = 1\n', 'f.ini', checked), { a: { x: 1, y: 2 } });
  t.throws(() => parseIniText('[a]\ny = 1\nx = 5\n', 'f.ini', checked), { message: 'f.ini:3 [a] x: x (5) must not exceed y (1, line 2)' });
  t.throws(() => parseIniText('[b]\n', 'f.ini', checked), { message: 'f.ini:1 [b]: unknown section (known: [a])' });
});

t.test('loadIni reads the file; an unreadable one is a one-line ConfigError', async (t) => {
  const dir = t.testdir({ 'good.ini': '[main]\nname = from file\n', sub: {} });
  t.equal(loadIni(path.join(dir, 'good.ini'), schema).main.name, 'from file');
  const missing = path.join(dir, 'missing.ini');
  t.throws(() => loadIni(missing, schema), { name: 'ConfigError', message: `${missing}: cannot read config file: no such file` });
  t.throws(() => loadIni(path.join(dir, 'sub'), schema), { message: `${path.join(dir, 'sub')}: cannot read config file: is a directory` });
});

t.test('did-you-mean stays quiet when nothing is close', async (t) => {
  t.equal(s.closest('tunel', ['tunnel', 'metrics']), 'tunnel');
  t.equal(s.closest('hairpining', ['hairpinning', 'tun']), 'hairpinning');
  t.equal(s.closest('xyz', ['tunnel', 'metrics']), undefined);
  t.equal(s.closest('mtv', ['mtu']), 'mtu');
  t.equal(s.closest('mian', ['main']), 'main', 'a swap counts as one edit');
  t.equal(s.closest('b', ['a']), undefined, 'no hints for one or two letters');
  t.equal(s.closest('PRR', ['prr']), 'prr', 'case is not an edit');
});
