/**
 * UCI files (common/config/uci.ts) and the SMAP's UCI config turned into smap.ini (smap/uci.ts),
 * fed the package's real /etc/config/smap and broken variants of it.
 */
import { readFileSync } from 'node:fs';
import t from 'tap';
import { parseSmapConfig } from '../../common/config/smap.js';
import { parseUci, uciBool } from '../../common/config/uci.js';
import { ConfigError } from '../../common/errors.js';
import { smapIniFromUci } from '../../smap/uci.js';

const FILE = '/etc/config/smap';

/** The one-line ConfigError message `fn` throws ('' when it does not throw). */
function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return e instanceof ConfigError ? e.message : `not a ConfigError: ${String(e)}`;
  }
  return '';
}
const SHIPPED = readFileSync(new URL('../../provisioning/openwrt/files/smap.config', import.meta.url), 'utf8');
const FP = 'SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU';
/** The shipped file as the ISP's image leaves it (uci set smap.registration.prr_host=...). */
const PROVISIONED = SHIPPED.replace("option prr_host ''", "option prr_host '2001:db8:ffff::1'").replace("option host_key_fingerprint ''", `option host_key_fingerprint '${FP}'`);

t.test('UCI syntax: quoting, comments, lists, anonymous sections', async (t) => {
  const s = parseUci([
    'package smap',
    '# a comment',
    "config smap 'main'   # trailing comment",
    "\toption a 'one two'",
    '\toption b "say \\"hi\\" \\\\ ok"',
    "\toption c plain\\ word'+quoted'",
    '\toption d \'\'',
    "\tlist e 'x'",
    "\tlist e 'y'",
    'config other',
    "\toption f '#not a comment'",
    '',
  ].join('\n'), FILE);
  t.same(s.map((x) => [x.type, x.name, x.line]), [['smap', 'main', 3], ['other', undefined, 10]]);
  t.same(s[0]!.options.map((o) => [o.name, o.values, o.list, o.line]), [
    ['a', ['one two'], false, 4],
    ['b', ['say "hi" \\ ok'], false, 5],
    ['c', ['plain word+quoted'], false, 6],
    ['d', [''], false, 7],
    ['e', ['x', 'y'], true, 8],
  ]);
  t.same(s[1]!.options[0]!.values, ['#not a comment']);
});

t.test('UCI syntax errors: one line naming file and line', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ["config smap 'x\n", /^\/etc\/config\/smap:1: unterminated single quote$/],
    ['config smap\n\toption a "x\n', /^\/etc\/config\/smap:2: unterminated double quote$/],
    ["option a 'b'\n", /:1: option a is outside any config section$/],
    ['config smap\n\tvalue a b\n', /:2: expected config, option, list or package, got "value"$/],
    ['config smap\n\toption a\n', /:2: expected "option NAME 'value'"$/],
    ["config smap\n\toption a 'b' 'c'\n", /:2: expected "option NAME 'value'"$/],
    ['config sm-ap\n', /:1: bad section type "sm-ap"/],
    ["config smap\n\toption a-b 'c'\n", /:2: bad option name "a-b"/],
    ["config smap\n\toption a 'b'\n\toption a 'c'\n", /:3 \[smap\] a: option a repeated \(first at line 2\)$/],
  ];
  for (const [text, re] of cases) {
    t.match(errorOf(() => parseUci(text, FILE)), re, JSON.stringify(text));
  }
});

t.test('the shipped /etc/config/smap, provisioned, becomes a valid smap.ini', async (t) => {
  const r = smapIniFromUci(PROVISIONED, FILE);
  t.equal(r.enabled, true);
  const cfg = parseSmapConfig(r.ini, '/etc/smap/smap.ini');
  t.equal(cfg.smap.wan_interface, 'wan');
  t.equal(cfg.smap.lan_interface, 'br-lan');
  t.equal(cfg.registration.prr_host, '2001:db8:ffff::1');
  t.equal(cfg.registration.host_key_fingerprint, FP, 'a value with + / = survives');
  t.equal(cfg.registration.key_file, '/etc/smap/id_ed25519');
  t.equal(cfg.tunnel.mtu, 'auto');
  t.equal(cfg.tunnel.mtu_hook, '/usr/libexec/smap/dhcp-mtu');
  t.match(r.ini, /^; Written by `smap uci-to-ini` from \/etc\/config\/smap/);
  t.notMatch(r.ini, /enabled = "1"\n\[tunnel\]/, 'smap.enabled stays in UCI');
  t.equal(smapIniFromUci(PROVISIONED.replace("option enabled '1'", "option enabled 'no'"), FILE).enabled, false);
});

t.test('bad UCI config: one line naming the UCI file, line and option', async (t) => {
  const lineOf = (text: string, needle: string): number => text.split('\n').findIndex((l) => l.includes(needle)) + 1;
  const cases: Array<[string, string, RegExp]> = [
    ['unprovisioned (shipped as is)', SHIPPED, /^\/etc\/config\/smap:\d+ \[registration\] prr_host: no binding/],
    ['bad mtu', PROVISIONED.replace("option mtu 'auto'", "option mtu '99'"), new RegExp(`^/etc/config/smap:${lineOf(PROVISIONED, "option mtu 'auto'")} \\[tunnel\\] mtu: `)],
    ['unknown option', PROVISIONED.replace("option log_level 'info'", "option loglevel 'info'"), new RegExp(`^/etc/config/smap:${lineOf(PROVISIONED, 'option log_level')} \\[smap\\] loglevel: unknown key \\(did you mean log_level\\?\\)`)],
    ['a list', PROVISIONED.replace("option lan_prefix '192.168.1.0/24'", "list lan_prefix '192.168.1.0/24'"), /^\/etc\/config\/smap:\d+ \[smap\] lan_prefix: a list is not used here/],
    ['relative path', PROVISIONED.replace("'/etc/smap/id_ed25519'", "'id_ed25519'"), /^\/etc\/config\/smap:\d+ \[registration\] key_file: must be an absolute path, got "id_ed25519"$/],
    ['bad enabled', PROVISIONED.replace("option enabled '1'", "option enabled 'maybe'"), /^\/etc\/config\/smap:\d+ \[smap\] enabled: expected 1 or 0/],
    ['unknown section type', `${PROVISIONED}\nconfig tunel 'x'\n`, /^\/etc\/config\/smap:\d+ \[tunel\]: unknown section type \(known: smap, tunnel, static, registration, nat, metrics\)$/],
    ['repeated section type', `${PROVISIONED}\nconfig tunnel 'again'\n`, /^\/etc\/config\/smap:\d+ \[tunnel\]: section type repeated \(first at line \d+\)$/],
    ['bad fingerprint', PROVISIONED.replace(FP, 'SHA256:short'), /^\/etc\/config\/smap:\d+ \[registration\] host_key_fingerprint: /],
  ];
  for (const [what, text, re] of cases) {
    const msg = errorOf(() => smapIniFromUci(text, FILE));
    t.match(msg, re, what);
    t.notMatch(msg, /\n/, `${what}: one line`);
  }
});

t.test('UCI booleans', async (t) => {
  t.same(['1', 'yes', 'On', 'true', 'enabled', '0', 'no', 'off', 'false', 'disabled', '', 'x'].map((v) => uciBool(v, true)),
    [true, true, true, true, true, false, false, false, false, false, true, undefined]);
  t.equal(uciBool(undefined, false), false);
});
