import t from 'tap';
import { ConfigError } from '../../common/errors.js';
import { formatIpv4 } from '../../common/config/values.js';
import { LEGACY_KEYS, legacyLineKey, looksLikeLegacyKey, parseLegacy, type LegacyConfig } from '../../prr/legacy.js';

/** What `fn` throws (tap's t.throws matches messages as substrings; these tests want them whole). */
function thrown(fn: () => unknown): Error | undefined {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  return undefined;
}

/** The 2010 experiment's file, as it was. */
const ORIGINAL = `PrrAddrV4 192.0.2.1
PrrAddrV6 2001:db8::1
IPv4Shared 192.0.2.100
Cpe1AddrV6 2001:db8:1::2
Cpe1PortRange 10000-11000
Cpe2AddrV6 2001:db8:2::2
Cpe2PortRange 11001-12000
`;

/** A LegacyConfig as plain text, for comparisons. */
function plain(l: LegacyConfig): unknown {
  return {
    prr: [formatIpv4(l.prrIpv4), l.prrIpv6, formatIpv4(l.shared)],
    cpes: l.cpes.map((c) => [c.n, c.name, c.ipv6, c.ports.first, c.ports.last, c.ports.size]),
  };
}

t.test('the original file reads to its exact bindings', async (t) => {
  const l = parseLegacy(ORIGINAL, 'aplus.conf');
  t.same(plain(l), {
    prr: ['192.0.2.1', '2001:db8::1', '192.0.2.100'],
    cpes: [
      [1, 'cpe1', '2001:db8:1::2', 10000, 11000, 1001],
      [2, 'cpe2', '2001:db8:2::2', 11001, 12000, 1000],
    ],
  });
  t.equal(l.cpes[0]?.ports.kind, 'range');
  t.ok(l.cpes[0]?.ports.has(11000), 'both ends included');
  t.notOk(l.cpes[1]?.ports.has(11000));
});

t.test('separators, quoting, comments, case and line ends', async (t) => {
  const want = plain(parseLegacy(ORIGINAL, 'a'));
  const variants: Array<[string, string]> = [
    ['KEY=VALUE', ORIGINAL.replace(/ /g, '=')],
    ['KEY = VALUE', ORIGINAL.replace(/ /g, ' = ')],
    ['tabs and padding', ORIGINAL.replace(/ /g, '\t  ').replace(/^/gm, '  ')],
    ['mixed', ORIGINAL.replace('PrrAddrV4 ', 'PrrAddrV4=').replace('Cpe1PortRange ', 'Cpe1PortRange =')],
    ['double quotes', ORIGINAL.replace(/ (\S+)$/gm, ' "$1"')],
    ['single quotes', ORIGINAL.replace(/ (\S+)$/gm, "='$1'")],
    ['quoted with blanks inside', ORIGINAL.replace('10000-11000', '" 10000 - 11000 "')],
    ['comments and blank lines', `# the 2010 test bed\n\n${ORIGINAL.replace('Cpe2AddrV6 2001:db8:2::2', 'Cpe2AddrV6 2001:db8:2::2   # the second WRT54GL\n   # indented comment\n')}`],
    ['comment after a quoted value', ORIGINAL.replace('192.0.2.100', '"192.0.2.100" # shared')],
    ['CRLF and a BOM', `\uFEFF${ORIGINAL.replace(/\n/g, '\r\n')}`],
    ['key case', ORIGINAL.replace('PrrAddrV4', 'PRRADDRV4').replace('Cpe1PortRange', 'cpe1portrange').replace('IPv4Shared', 'ipv4shared')],
    ['address spelling', ORIGINAL.replace('2001:db8:1::2', '2001:0DB8:1:0:0:0:0:2')],
    ['any order', ORIGINAL.split('\n').reverse().join('\n')],
  ];
  for (const [what, text] of variants) t.same(plain(parseLegacy(text, 'a')), want, what);
});

t.test('any N, gaps allowed, bindings ordered by N', async (t) => {
  const text = `Cpe12PortRange 20000-20999
Cpe12AddrV6 2001:db8:12::2
PrrAddrV4 192.0.2.1
Cpe3AddrV6 2001:db8:3::2
PrrAddrV6 2001:db8::1
Cpe3PortRange 30000-30199
IPv4Shared 192.0.2.100
`;
  t.same(plain(parseLegacy(text, 'a')), {
    prr: ['192.0.2.1', '2001:db8::1', '192.0.2.100'],
    cpes: [
      [3, 'cpe3', '2001:db8:3::2', 30000, 30199, 200],
      [12, 'cpe12', '2001:db8:12::2', 20000, 20999, 1000],
    ],
  });
  const many = Array.from({ length: 63 }, (_, i) => `Cpe${63 - i}AddrV6 2001:db8:${63 - i}::2\nCpe${63 - i}PortRange ${1024 * (63 - i)}-${1024 * (63 - i) + 1023}\n`).join('');
  const l = parseLegacy(`PrrAddrV4 192.0.2.1\nPrrAddrV6 2001:db8::1\nIPv4Shared 192.0.2.100\n${many}`, 'a');
  t.same(l.cpes.map((c) => c.n), Array.from({ length: 63 }, (_, i) => i + 1), '63 CPEs of 1024 ports, written backwards, ordered by N');
  t.same([String(l.cpes[0]?.ports), String(l.cpes[62]?.ports)], ['1024-2047', '64512-65535']);
  t.same(parseLegacy('PrrAddrV4 192.0.2.1\nPrrAddrV6 2001:db8::1\nIPv4Shared 192.0.2.100\n', 'a').cpes, [], 'no CPE at all');
});

const F = 'legacy.conf';
const HEAD = 'PrrAddrV4 192.0.2.1\nPrrAddrV6 2001:db8::1\nIPv4Shared 192.0.2.100\n';
const CPE1 = 'Cpe1AddrV6 2001:db8:1::2\nCpe1PortRange 10000-11000\n';

// One row per failure: the text, and the exact message (file:line and key where there is a line).
const errors: Array<[string, string, string]> = [
  ['unknown key', `${HEAD}Tunnel 1\n`, `${F}:4 Tunnel: unknown key (known: ${LEGACY_KEYS.join(', ')})`],
  ['typo', `PrrAdrV4 192.0.2.1\n${HEAD.slice(HEAD.indexOf('\n') + 1)}`, `${F}:1 PrrAdrV4: unknown key (did you mean PrrAddrV4?)`],
  ['typo in a CPE key', `${HEAD}Cpe1AddrV4 2001:db8:1::2\n`, `${F}:4 Cpe1AddrV4: unknown key (did you mean Cpe1AddrV6?)`],
  ['CPE 0', `${HEAD}Cpe0AddrV6 2001:db8:1::2\n`, `${F}:4 Cpe0AddrV6: CPE numbers are 1, 2, 3, ... without leading zeros`],
  ['leading zero', `${HEAD}Cpe01AddrV6 2001:db8:1::2\n`, `${F}:4 Cpe01AddrV6: CPE numbers are 1, 2, 3, ... without leading zeros`],
  ['not a KEY VALUE line', `${HEAD}Cpe1AddrV6: 2001:db8:1::2\n`, `${F}:4: expected "KEY VALUE" or "KEY=VALUE", got "Cpe1AddrV6: 2001:db8:1::2"`],
  ['no value', `${HEAD}Cpe1AddrV6\n`, `${F}:4 Cpe1AddrV6: missing value`],
  ['empty value', `${HEAD}Cpe1AddrV6 =\n`, `${F}:4 Cpe1AddrV6: missing value`],
  ['only a comment', `${HEAD}Cpe1AddrV6= # later\n`, `${F}:4 Cpe1AddrV6: missing value`],
  ['empty quotes', `${HEAD}Cpe1AddrV6 ""\n`, `${F}:4 Cpe1AddrV6: missing value`],
  ['two values', `${HEAD}Cpe1AddrV6 2001:db8:1::2 2001:db8:1::3\n`, `${F}:4 Cpe1AddrV6: expected one value, got "2001:db8:1::2 2001:db8:1::3"`],
  ['unterminated quote', `${HEAD}Cpe1AddrV6 "2001:db8:1::2\n`, `${F}:4 Cpe1AddrV6: unterminated double quote`],
  ['text after a quote', `${HEAD}Cpe1AddrV6 '2001:db8:1::2'x\n`, `${F}:4 Cpe1AddrV6: expected one value, got "'2001:db8:1::2'x"`],
  ['address, no range', `${HEAD}${CPE1}Cpe2AddrV6 2001:db8:2::2\n`, `${F}:6 Cpe2AddrV6: Cpe2 has an address but no Cpe2PortRange`],
  ['range, no address', `${HEAD}Cpe2PortRange 11001-12000\n${CPE1}`, `${F}:4 Cpe2PortRange: Cpe2 has a port range but no Cpe2AddrV6`],
  ['bad PrrAddrV4', HEAD.replace('192.0.2.1', '192.0.2.256'), `${F}:1 PrrAddrV4: expected an IPv4 address, got "192.0.2.256"`],
  ['PrrAddrV4 an IPv6 address', HEAD.replace('192.0.2.1', '2001:db8::9'), `${F}:1 PrrAddrV4: expected an IPv4 address, got "2001:db8::9"`],
  ['bad PrrAddrV6', HEAD.replace('2001:db8::1', '2001:db8::g'), `${F}:2 PrrAddrV6: expected an IPv6 address, got "2001:db8::g"`],
  ['bad IPv4Shared', HEAD.replace('192.0.2.100', '192.0.2.0/24'), `${F}:3 IPv4Shared: expected an IPv4 address, got "192.0.2.0/24"`],
  ['bad CPE address', HEAD + CPE1.replace('2001:db8:1::2', '192.0.2.7'), `${F}:4 Cpe1AddrV6: expected an IPv6 address, got "192.0.2.7"`],
  ['range, one port', HEAD + CPE1.replace('10000-11000', '10000'), `${F}:5 Cpe1PortRange: expected a port range first-last (10000-11000), got "10000"`],
  ['range, words', HEAD + CPE1.replace('10000-11000', 'all'), `${F}:5 Cpe1PortRange: expected a port range first-last (10000-11000), got "all"`],
  ['range, reversed', HEAD + CPE1.replace('10000-11000', '11000-10000'), `${F}:5 Cpe1PortRange: bad port range 11000-10000: first port is above last port`],
  ['range, past 65535', HEAD + CPE1.replace('10000-11000', '60000-70000'), `${F}:5 Cpe1PortRange: bad port range 60000-70000: ports are integers 0..65535`],
  ['system ports', HEAD + CPE1.replace('10000-11000', '1000-2000'),
    `${F}:5 Cpe1PortRange: 1000-2000 includes system ports (0-1023), which the flat file cannot allow (prr.ini can, with [prr] allow_system_ports = true)`],
  ['overlap', `${HEAD}${CPE1}Cpe2AddrV6 2001:db8:2::2\nCpe2PortRange 11000-12000\n`,
    `${F}:7 Cpe2PortRange: 11000-12000 overlaps Cpe1PortRange (line 5) 10000-11000`],
  ['overlap, reported at the higher N', `${HEAD}Cpe9AddrV6 2001:db8:9::2\nCpe9PortRange 10500-10600\n${CPE1}`,
    `${F}:5 Cpe9PortRange: 10500-10600 overlaps Cpe1PortRange (line 7) 10000-11000`],
  ['overlap inside a wide range', `${HEAD}Cpe5AddrV6 2001:db8:5::2\nCpe5PortRange 2000-2999\nCpe1AddrV6 2001:db8:1::2\nCpe1PortRange 10000-20000\nCpe2AddrV6 2001:db8:2::2\nCpe2PortRange 20001-21000\nCpe3AddrV6 2001:db8:3::2\nCpe3PortRange 15000-15999\n`,
    `${F}:11 Cpe3PortRange: 15000-15999 overlaps Cpe1PortRange (line 7) 10000-20000`],
  ['key repeated', `${HEAD}${CPE1}Cpe1PortRange 20000-21000\n`, `${F}:6 Cpe1PortRange: key repeated (first at line 5)`],
  ['key repeated, other case', `${HEAD}prraddrv4 192.0.2.2\n`, `${F}:4 PrrAddrV4: key repeated (first at line 1)`],
  ['same CPE address twice', `${HEAD}${CPE1}Cpe2AddrV6 2001:db8:1:0::2\nCpe2PortRange 11001-12000\n`,
    `${F}:6 Cpe2AddrV6: 2001:db8:1::2 is also Cpe1AddrV6 (line 4)`],
  ['CPE on the PRR address', `${HEAD}Cpe1AddrV6 2001:db8::1\nCpe1PortRange 10000-11000\n`, `${F}:4 Cpe1AddrV6: 2001:db8::1 is PrrAddrV6, the PRR's own address`],
  ['PRR on the shared address', HEAD.replace('192.0.2.100', '192.0.2.1'),
    `${F}:3 IPv4Shared: 192.0.2.1 is also PrrAddrV4; the shared address belongs to the CPEs, the PRR needs its own`],
  ['PRR address not unicast', HEAD.replace('192.0.2.1', '127.0.0.1'), `${F}:1 PrrAddrV4: 127.0.0.1 is not a unicast address the PRR can send from`],
  ['no PrrAddrV4', HEAD.replace(/^PrrAddrV4.*\n/, ''), `${F} PrrAddrV4: missing required key`],
  ['no PrrAddrV6', HEAD.replace(/^PrrAddrV6.*\n/m, ''), `${F} PrrAddrV6: missing required key`],
  ['no IPv4Shared', HEAD.replace(/^IPv4Shared.*\n/m, ''), `${F} IPv4Shared: missing required key`],
];

t.test('every error names file:line and key', async (t) => {
  for (const [what, text, message] of errors) {
    const e = thrown(() => parseLegacy(text, F));
    t.type(e, ConfigError, what);
    t.equal(e?.message, message, what);
  }
});

t.test('format detection helpers', async (t) => {
  t.equal(legacyLineKey('PrrAddrV4 192.0.2.1'), 'PrrAddrV4');
  t.equal(legacyLineKey('Cpe1PortRange=10000-11000'), 'Cpe1PortRange');
  t.equal(legacyLineKey('[prr]'), undefined);
  for (const k of ['PrrAddrV4', 'prraddrv6', 'IPv4Shared', 'Cpe7AddrV6', 'Cpe12PortRange', 'PrrAdrV4']) t.ok(looksLikeLegacyKey(k), k);
  for (const k of ['tunnel_ipv6', 'mtu', 'foo']) t.notOk(looksLikeLegacyKey(k), k);
});
