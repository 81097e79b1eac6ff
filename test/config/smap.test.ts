import t from 'tap';
import { loadSmapConfig, parseSmapConfig, summarizeSmap } from '../../common/config/smap.js';

const example = new URL('../../smap/smap.ini.example', import.meta.url);
const FP = 'SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU';
const STATIC = '[smap]\nwan_interface = eth1\n[static]\nshared_ipv4 = 192.0.2.1\nports = 10000-11000\nprr_ipv6 = 2001:db8:ffff::1\n';

t.test('the example file loads', async (t) => {
  const cfg = loadSmapConfig(example.pathname);
  t.equal(cfg.smap.wan_interface, 'wan');
  t.equal(cfg.registration.prr_host, '2001:db8:ffff::1');
  t.equal(cfg.registration.host_key_fingerprint, FP);
  t.equal(summarizeSmap(cfg), 'registration with [2001:db8:ffff::1]:2222, wan wan, lan br-lan 192.168.1.0/24');
});

t.test('defaults, with a static binding', async (t) => {
  const cfg = parseSmapConfig(STATIC, '/etc/smap/smap.ini');
  t.same({ ...cfg.smap, lan_prefix: String(cfg.smap.lan_prefix) }, {
    wan_interface: 'eth1',
    wan_ipv6: undefined,
    lan_interface: 'br-lan',
    lan_prefix: '192.168.1.0/24',
    tun: 'smap0',
    log_level: 'info',
    control_socket: '/run/smap/control.sock',
  });
  t.same(cfg.tunnel, { mtu: 'auto', pmtu_timeout: 600, dnsmasq_snippet: undefined, offload: 'auto' });
  t.same(cfg.registration, { prr_host: undefined, prr_port: 2222, host_key_fingerprint: undefined, key_file: '/etc/smap/id_ed25519' });
  t.same(cfg.metrics, { enabled: true, listen: { host: '127.0.0.1', port: 9151 } });
  t.same(cfg.nat, { ftp: true }, 'the FTP ALG is on by default');
  t.same(parseSmapConfig(`${STATIC}[nat]\nftp = off\n`, '/etc/smap/smap.ini').nat, { ftp: false });
  t.equal(summarizeSmap(cfg), 'static 192.0.2.1 ports 10000-11000 via 2001:db8:ffff::1, wan eth1, lan br-lan 192.168.1.0/24');
  const rel = parseSmapConfig(`[smap]\nwan_interface = wan\n[registration]\nprr_host = prr.example.net\nhost_key_fingerprint = ${FP}\nkey_file = id\n`, '/etc/smap/smap.ini');
  t.equal(rel.registration.key_file, '/etc/smap/id');
  const tun = parseSmapConfig(`${STATIC}[tunnel]\nmtu = 1420\npmtu_timeout = 10m\ndnsmasq_snippet = dnsmasq.d/smap.conf\n`, '/etc/smap/smap.ini');
  t.same(tun.tunnel, { mtu: 1420, pmtu_timeout: 600, dnsmasq_snippet: '/etc/smap/dnsmasq.d/smap.conf', offload: 'auto' });
  t.equal(parseSmapConfig(`${STATIC}[tunnel]\noffload = off\n`).tunnel.offload, 'off', 'offload = off');
  t.throws(() => parseSmapConfig(`${STATIC}[tunnel]\noffload = on\n`, '/etc/smap/smap.ini'), /\[tunnel\] offload/, 'offload takes auto or off only');
  t.throws(() => parseSmapConfig(`${STATIC}[tunnel]\npmtu_timeout = 2s\n`, '/etc/smap/smap.ini'), /pmtu_timeout/, 'pmtu_timeout under 5 s is refused');
});

const errors: Array<[string, string, string]> = [
  ['half a static binding', '[smap]\nwan_interface = wan\n[static]\nshared_ipv4 = 192.0.2.1\nports = 10000-11000\n',
    'smap.ini:3 [static] prr_ipv6: a static binding needs shared_ipv4, ports and prr_ipv6 together'],
  ['no fingerprint', '[smap]\nwan_interface = wan\n[registration]\nprr_host = prr.example.net\n',
    'smap.ini:3 [registration] host_key_fingerprint: missing: the PRR host key must be pinned (ssh-keygen -lf on its host key)'],
  ['bad fingerprint', '[smap]\nwan_interface = wan\n[registration]\nprr_host = prr.example.net\nhost_key_fingerprint = MD5:ab:cd\n',
    'smap.ini:5 [registration] host_key_fingerprint: expected an OpenSSH host key fingerprint (SHA256: and 43 base64 characters), got "MD5:ab:cd"'],
  ['both', `${STATIC}[registration]\nprr_host = prr.example.net\nhost_key_fingerprint = ${FP}\n`,
    'smap.ini:8 [registration] prr_host: both [static] and [registration] give a binding; keep one'],
  ['neither', '[smap]\nwan_interface = wan\n',
    'smap.ini [registration] prr_host: no binding: set [registration] prr_host, or [static] shared_ipv4, ports and prr_ipv6'],
  ['no wan', '[static]\nshared_ipv4 = 192.0.2.1\n', 'smap.ini [smap] wan_interface: missing required key (section [smap] is absent)'],
  ['bad lan prefix', '[smap]\nwan_interface = wan\nlan_prefix = 192.168.1.1/24\n',
    'smap.ini:3 [smap] lan_prefix: host bits are set in 192.168.1.1/24 (did you mean 192.168.1.0/24?)'],
  ['bad port', `${STATIC}[registration]\nprr_port = 0\n`, 'smap.ini:8 [registration] prr_port: expected an integer 1..65535, got "0"'],
  ['bad ftp switch', `${STATIC}[nat]\nftp = maybe\n`, 'smap.ini:8 [nat] ftp: expected true or false, got "maybe"'],
  ['typo', '[smap]\nwan_interfce = wan\n', 'smap.ini:2 [smap] wan_interfce: unknown key (did you mean wan_interface?)'],
];

t.test('errors', async (t) => {
  for (const [what, text, message] of errors) t.throws(() => parseSmapConfig(text, 'smap.ini'), { name: 'ConfigError', message }, what);
});
