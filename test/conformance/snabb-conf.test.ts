/**
 * test/conformance/snabb-conf.ts: Snabb's YANG text read, and turned into a prr.ini that the
 * PRR's own loader (parsePrrModel) accepts with the same port sets, tunnel endpoints, ICMP
 * switches and MTUs; settings prr.ini cannot say are refused by name, never dropped silently.
 */
import t from 'tap';
import { formatIpv6 } from '../../common/native/addr6.js';
import { parsePrrModel } from '../../prr/model.js';
import { SnabbConfError, parseYangText, readSnabbConf, snabbToPrrIni } from './snabb-conf.js';

const CONF = `// a comment
softwire-config {
  binding-table {
    softwire { ipv4 192.0.2.7; psid 52; b4-ipv6 2001:db8:3::2; br-address 2001:db8::2;
      port-set { psid-length 8; reserved-ports-bit-count 6; } }
    softwire { ipv4 192.0.2.9; psid 0; b4-ipv6 2001:db8:4::2; br-address 2001:db8::1;
      port-set { psid-length 0; } }
  }
  /* block
     comment */
  external-interface { allow-incoming-icmp false; mtu 576; error-rate-limiting { packets 600; period 4; } }
  internal-interface { generate-icmp-errors false; hairpinning false; mtu 1280; reassembly { max-fragments-per-packet 1; } }
  instance {
    device "eth0";
    queue { id 0;
      external-interface { ip 198.51.100.1; mac 02:00:00:00:00:01; next-hop { mac 02:00:00:00:00:02; } }
      internal-interface { ip 2001:db8::1; mac 02:00:00:00:00:03; next-hop { ip 2001:db8::ff; } } }
  }
}`;

t.test('YANG text: statements, blocks, quoted arguments, comments', async (t) => {
  const s = parseYangText('a { b "x y"; c; d { e 1; } } // end', 'x.conf');
  t.equal(s.length, 1);
  t.equal(s[0]!.keyword, 'a');
  t.same(s[0]!.children.map((c) => [c.keyword, c.arg]), [['b', 'x y'], ['c', undefined], ['d', undefined]]);
  t.equal(s[0]!.children[2]!.children[0]!.arg, '1');
  t.throws(() => parseYangText('a { b 1; ', 'x.conf'), SnabbConfError, 'unclosed block');
  t.throws(() => parseYangText('a 1', 'x.conf'), SnabbConfError, 'statement without ; or block');
});

t.test('a Snabb conf as prr.ini, loaded by parsePrrModel', async (t) => {
  const c = readSnabbConf(CONF, 'x.conf');
  const ini = snabbToPrrIni(c);
  const m = parsePrrModel(ini, 'x.prr.ini');
  t.equal(m.policy.ipv4, (198 << 24 | 51 << 16 | 100 << 8 | 1) >>> 0, '[prr] ipv4 = external-interface ip');
  t.same(m.policy.brAddresses.map((b) => formatIpv6(b)), ['2001:db8::1', '2001:db8::2'], 'internal ip first, then the other br-addresses');
  t.equal(m.bindings.length, 2);
  t.equal(m.bindings[0]!.ports.toString(), 'psid:a=6/k=8/id=52', 'RFC 7597 a = reserved-ports-bit-count, k = psid-length');
  t.equal(m.bindings[0]!.br, 1, 'the softwire\'s br-address');
  t.equal(m.bindings[1]!.ports.size, 65536, 'psid-length 0: the whole address');
  t.equal(m.allowSystemPorts, true, 'a set holding ports below 1024 turns allow_system_ports on');
  t.equal(m.policy.hairpinning, false);
  t.equal(m.policy.internal.mtu, 1280);
  t.equal(m.tunnelMtu, 1240, 'tunnel MTU = internal MTU - 40');
  t.equal(m.policy.external.mtu, 576);
  t.equal(m.policy.internal.generateIcmpErrors, false);
  t.equal(m.policy.external.generateIcmpErrors, true, 'Snabb default');
  t.equal(m.policy.external.allowIncomingIcmp, false);
  t.same(m.policy.external.errorRateLimit, { packets: 600, seconds: 4 });
  t.same(m.policy.internal.errorRateLimit, { packets: 200, seconds: 2 }, 'Snabb default 200 per 2 s');
  t.equal(m.policy.external.reassembly.maxFragmentsPerPacket, 20, 'Snabb default');
  t.match(c.notes.join('\n'), /internal-interface\/reassembly .*kernel's/, 'IPv6 reassembly limits are noted as the kernel\'s');
  t.match(c.notes.join('\n'), /next-hop ip 2001:db8::ff/, 'next hops are noted as the kernel\'s');
});

t.test('what prr.ini cannot say is refused by name', async (t) => {
  const filtered = CONF.replace('mtu 576;', 'mtu 576; ingress-filter "len < 0";');
  t.throws(() => snabbToPrrIni(readSnabbConf(filtered, 'f.conf')), /ingress-filter "len < 0": packet filtering is nftables'/);
  const tiny = CONF.replace('mtu 576;', 'mtu 576; reassembly { max-fragments-per-packet 1; }');
  t.throws(() => snabbToPrrIni(readSnabbConf(tiny, 't.conf')), /max-fragments-per-packet 1: \[external\] reassembly_max_fragments is at least 2/);
  const small6 = CONF.replace('mtu 1280;', 'mtu 1200;');
  t.throws(() => snabbToPrrIni(readSnabbConf(small6, 's.conf')), /internal-interface\/mtu 1200/);
  t.throws(() => readSnabbConf(CONF.replace('hairpinning false;', 'hairpinning false; frobnicate 1;'), 'u.conf'), /internal-interface\/frobnicate is not/);
});
