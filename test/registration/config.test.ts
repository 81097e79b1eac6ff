// prr.ini [registration], the authorized-keys file, and startPrrRegistration from a prr.ini.
import { statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import t from 'tap';
import { loadPrrConfig, parsePrrConfig } from '../../common/config/prr.js';
import { memoryLogger } from '../../common/log.js';
import { BindingTable } from '../../prr/bindings.js';
import { loadPrrModel } from '../../prr/model.js';
import { parseAuthorizedKeys } from '../../prr/registration-keys.js';
import { startPrrRegistration } from '../../prr/registration-start.js';
import { makeKey, ssh, tempDir } from './helpers.js';

const BASE = `[prr]
ipv4 = 198.51.100.1
tunnel_ipv6 = 2001:db8:ffff::1
shared_ipv4 = 192.0.2.0/30
`;

t.test('[registration] defaults and checks', async (t) => {
  const r = parsePrrConfig(BASE).registration;
  t.same(r, {
    enabled: false,
    listen: { host: '::', port: 2222 },
    host_key: '/var/lib/prr/ssh_host_ed25519_key',
    authorized_keys: '/etc/prr/authorized_keys',
    database: '/var/lib/prr/registrations.db',
    lease: 86400,
    default_ports: 1000,
    min_ports: 200,
    max_ports: 4000,
    psid_length: 0,
    psid_offset: 6,
    rate_per_key: { packets: 10, seconds: 60 },
    rate_total: { packets: 1000, seconds: 1 },
  });
  t.same(parsePrrConfig(`${BASE}[registration]\nlisten = 127.0.0.1:2022\nlease = 1h\n`).registration.listen, { host: '127.0.0.1', port: 2022 });
  t.throws(() => parsePrrConfig(`${BASE}[registration]\nmin_ports = 500\nmax_ports = 400\n`), /min_ports: 500 is above max_ports 400/);
  t.throws(() => parsePrrConfig(`${BASE}[registration]\ndefault_ports = 100\n`), /default_ports: 100 is outside min_ports..max_ports/);
  t.throws(() => parsePrrConfig(`${BASE}[registration]\nlease = 10s\n`), /lease/);
  const ex = loadPrrConfig(new URL('../../prr/prr.ini.example', import.meta.url).pathname).registration;
  t.same(ex, parsePrrConfig(BASE).registration, 'the example spells out the defaults');
});

t.test('authorized keys: options, errors name the line', async (t) => {
  const dir = tempDir('keys');
  const [a, b, c] = [makeKey(dir, 'a'), makeKey(dir, 'b'), makeKey(dir, 'c')];
  const keys = parseAuthorizedKeys(`# comment\n${a.pub}\nname=cpe7,ports=500 ${b.pub}\nrestrict,no-pty,set="10000-10999",name="x1" ${c.pub} c@home\n`);
  const e = [...keys.values()];
  t.same(e.map((k) => [k.name, k.ports, k.set?.toString(), k.line]), [[undefined, undefined, undefined, 2], ['cpe7', 500, undefined, 3], ['x1', undefined, '10000-10999', 4]]);
  t.match(e[0]!.fingerprint, /^SHA256:[A-Za-z0-9+/]{43}$/);
  const bad: Array<[string, RegExp]> = [
    [`bogus=1 ${a.pub}`, /authorized:1: unknown option "bogus=1"/],
    [`ports=0 ${a.pub}`, /ports=0/],
    [`set=1-2 ${a.pub}`, /set=1-2/],
    [`name=a b ${a.pub}`, /expected|not a public key/],
    [`${a.pub}\n${a.pub}`, /authorized:2: the same key as line 1/],
    [`name=n ${a.pub}\nname=n ${b.pub}`, /name=n is also used on line 1/],
    ['ssh-ed25519 AAAAnotakey', /not a public key/],
  ];
  for (const [text, re] of bad) t.throws(() => parseAuthorizedKeys(text, 'authorized'), re, text.slice(0, 30));
});

t.test('startPrrRegistration from a prr.ini: host key made 0600, keys, store, a real client', async (t) => {
  const dir = tempDir('start');
  const a = makeKey(dir, 'a');
  writeFileSync(path.join(dir, 'authorized_keys'), `name=cpe1 ${a.pub}\n`);
  const ini = path.join(dir, 'prr.ini');
  const port = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '::1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
  writeFileSync(ini, `${BASE}[registration]\nenabled = true\nlisten = [::1]:${port}\nhost_key = keys/host\nauthorized_keys = authorized_keys\ndatabase = state/reg.db\n`);
  t.equal(await startPrrRegistration(loadPrrModel(ini), new BindingTable(), memoryLogger(), { ...parsePrrConfig(BASE).registration }), undefined, 'off unless enabled');
  const table = new BindingTable();
  const log = memoryLogger();
  const reg = (await startPrrRegistration(loadPrrModel(ini), table, log))!;
  t.teardown(() => reg.close());
  t.equal(statSync(path.join(dir, 'keys/host')).mode & 0o777, 0o600, 'host key generated with mode 0600');
  const r = await ssh(a, '::1', reg.server.port, 'register --ipv6 2001:db8:7::1');
  t.equal(r.code, 0, r.stderr);
  t.match(JSON.parse(r.stdout), { subscriber: 'cpe1', shared_ipv4: '192.0.2.0', ports: '1024-2023', prr_ipv6: '2001:db8:ffff::1', lease_seconds: 86400, mtu: 1460 });
  t.equal(table.findSubscriber('cpe1').length, 1, 'bound in the running table');
  t.match(log.lines.join('\n'), /host key SHA256:/);
});

t.test('[registration] psid_length and psid_offset', async (t) => {
  const base = '[prr]\nipv4 = 198.51.100.1\ntunnel_ipv6 = 2001:db8:ffff::1\nshared_ipv4 = 192.0.2.0/30\n[registration]\nenabled = true\n';
  const { parsePrrConfig } = await import('../../common/config/prr.js');
  t.match(parsePrrConfig(base + 'psid_length = 6\n', 'prr.ini').registration, { psid_length: 6, psid_offset: 6 });
  t.throws(() => parsePrrConfig(base + 'psid_length = 6\npsid_offset = 0\n', 'prr.ini'), { message: /prr\.ini:\d+ \[registration\] psid_offset: 0 puts port 0 in a set/ });
  t.throws(() => parsePrrConfig(base + 'psid_length = 12\npsid_offset = 6\n', 'prr.ini'), { message: /\[registration\] psid_length: psid_offset 6 \+ psid_length 12 is over 16 bits/ });
});
