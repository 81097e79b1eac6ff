import t from 'tap';
import { Ipv4Prefix } from '../../common/config/values.js';
import { parsePortSet } from '../../common/portset.js';
import { ftpMappingText, removeTableText, renderTable, snatTarget } from '../../smap/nft.js';

const SHARED = 0xc0000264; // 192.0.2.100
const lan = new Ipv4Prefix(0xc0a80100, 24);

t.test('a contiguous range: one plain SNAT range', async (t) => {
  t.equal(snatTarget(SHARED, parsePortSet('10000-11000')), '192.0.2.100:10000-11000');
  t.equal(snatTarget(SHARED, parsePortSet('psid:a=0/k=0/id=0', { allowSystemPorts: true })), '192.0.2.100:0-65535', 'k = 0, a = 0: one run');
});

t.test('a PSID set: a round-robin map over every run, each run exactly once', async (t) => {
  const ports = parsePortSet('psid:a=6/k=6/id=5');
  const target = snatTarget(SHARED, ports);
  t.match(target, /^numgen inc mod 63 map \{ 0 : 192\.0\.2\.100 \. 1104-1119, 1 : 192\.0\.2\.100 \. 2128-2143, /);
  const runs = [...target.matchAll(/(\d+) : 192\.0\.2\.100 \. (\d+)-(\d+)/g)].map((m) => [Number(m[1]), Number(m[2]), Number(m[3])]);
  t.equal(runs.length, 63, '63 runs');
  t.same(runs.map((r) => r[0]), Array.from({ length: 63 }, (_, i) => i), 'keys 0..62, in order');
  let covered = 0;
  for (const [, first, last] of runs) {
    for (let p = first!; p <= last!; p++) if (ports.has(p)) covered++;
  }
  t.equal(covered, ports.size, 'the runs hold every port of the set and nothing else');
  t.equal(runs.reduce((n, r) => n + r[2]! - r[1]! + 1, 0), ports.size);
});

t.test('the table: atomic replace, SNAT for TCP/UDP/echo, LAN only, MSS clamp both ways', async (t) => {
  const text = renderTable({ tun: 'smap0', lanPrefix: lan, shared: SHARED, ports: parsePortSet('10000-11000'), mtu: 1460 });
  const lines = text.split('\n').filter((l) => !l.startsWith('#'));
  t.same(lines.slice(0, 3), ['table ip smap', 'delete table ip smap', 'table ip smap {'], 'create, delete, define: one transaction');
  t.match(text, '\t\toifname "smap0" meta l4proto { tcp, udp } snat ip to 192.0.2.100:10000-11000\n');
  t.match(text, '\t\toifname "smap0" icmp type echo-request snat ip to 192.0.2.100:10000-11000\n');
  t.match(text, '\t\toifname "smap0" snat ip to 192.0.2.100\n');
  t.match(text, 'oifname "smap0" ip saddr != 192.168.1.0/24 counter drop');
  t.match(text, 'oifname "smap0" tcp flags syn tcp option maxseg size > 1420 tcp option maxseg size set 1420');
  t.match(text, 'iifname "smap0" tcp flags syn tcp option maxseg size > 1420 tcp option maxseg size set 1420');
  t.notMatch(text, /helper/, 'no conntrack helper');
  t.equal(removeTableText(), 'table ip smap\ndelete table ip smap\n');
});

t.test('with the FTP ALG: the data map, the DNAT from the tunnel, the redirect of the LAN to port 21', async (t) => {
  const plain = renderTable({ tun: 'smap0', lanPrefix: lan, shared: SHARED, ports: parsePortSet('10000-11000'), mtu: 1460 });
  t.notMatch(plain, /ftp_data|redirect|prerouting/, 'without the ALG: none of it');
  const text = renderTable({ tun: 'smap0', lanPrefix: lan, shared: SHARED, ports: parsePortSet('10000-11000'), mtu: 1460, ftpProxyPort: 40123 });
  t.match(text, '\tmap ftp_data {\n\t\ttype ipv4_addr . inet_service : ipv4_addr . inet_service\n\t\tflags timeout\n\t}\n');
  t.match(text, '\t\ttype nat hook prerouting priority dstnat; policy accept;\n');
  t.match(text, '\t\tiifname "smap0" ip daddr 192.0.2.100 meta l4proto tcp dnat ip to ip saddr . tcp dport map @ftp_data\n');
  t.match(text, '\t\tiifname != "smap0" ip saddr 192.168.1.0/24 ip daddr != 192.168.1.0/24 fib daddr type != local tcp dport 21 redirect to :40123\n');
  const m = { server: 0xc6336402, port: 10005, client: 0xc0a80102, clientPort: 40000, timeoutSec: 60 };
  t.equal(ftpMappingText('add', m), 'add element ip smap ftp_data { 198.51.100.2 . 10005 timeout 60s : 192.168.1.2 . 40000 }\n');
  t.equal(ftpMappingText('delete', m), 'delete element ip smap ftp_data { 198.51.100.2 . 10005 }\n');
});
