/**
 * smap/metrics.ts: the collectors read the SMAP's typed arrays, its binding and tunnel MTU, and
 * the conntrack table (once per scrape) at scrape time; the output passes the real promtool.
 */
import t from 'tap';
import { parseIpv4 } from '../../common/config/values.js';
import { PortRange } from '../../common/portset.js';
import { Drop, G, SmapCounters, DROP_REASON_NAMES } from '../../smap/counters.js';
import { smapRegistry } from '../../smap/metrics.js';
import { labelValues, NO_PROMTOOL, promtoolCheckMetrics, promtoolPath, value } from './helpers.js';

const CONNTRACK = [
  'ipv4     2 tcp      6 117 TIME_WAIT src=192.168.1.2 dst=198.51.100.2 sport=54582 dport=80 src=198.51.100.2 dst=192.0.2.100 sport=80 dport=10001 [ASSURED] mark=0 zone=0 use=2',
  'ipv4     2 tcp      6 431999 ESTABLISHED src=192.168.1.2 dst=198.51.100.2 sport=54590 dport=443 src=198.51.100.2 dst=192.0.2.100 sport=443 dport=10002 [ASSURED] mark=0 use=1',
  'ipv4     2 tcp      6 431999 ESTABLISHED src=192.168.1.3 dst=198.51.100.9 sport=40000 dport=443 src=198.51.100.9 dst=192.0.2.100 sport=443 dport=10002 [ASSURED] mark=0 use=1',
  'ipv4     2 udp      17 29 src=192.168.1.2 dst=198.51.100.2 sport=41000 dport=53 src=198.51.100.2 dst=192.0.2.100 sport=53 dport=10003 mark=0 use=1',
  'ipv4     2 udp      17 29 src=192.168.1.2 dst=198.51.100.2 sport=41001 dport=5000 src=198.51.100.2 dst=192.0.2.100 sport=5000 dport=10004 mark=0 use=1',
  'ipv4     2 icmp     1 29 src=192.168.1.2 dst=198.51.100.2 type=8 code=0 id=24859 src=198.51.100.2 dst=192.0.2.100 type=0 code=0 id=10004 mark=0 use=1',
  'ipv4     2 udp      17 20 src=192.168.1.2 dst=192.168.1.1 sport=68 dport=67 src=192.168.1.1 dst=192.168.1.2 sport=67 dport=68 mark=0 use=1',
].join('\n');

type Offload = { on: boolean; super_packets_read: number; super_packets_written: number; refused: number } | null;

function world(opts: { conntrack?: () => Promise<string>; mtu?: number; natFailed?: () => Promise<number | undefined>; offload?: () => Offload } = {}) {
  const counters = new SmapCounters();
  let reads = 0;
  let clock = 5_000_000;
  const binding = { shared: parseIpv4('192.0.2.100')!, ports: new PortRange(10000, 10999) };
  const registry = smapRegistry(
    {
      counters,
      binding: () => binding,
      tunnelMtu: () => opts.mtu,
      conntrackTable: () => {
        reads++;
        return (opts.conntrack ?? (() => Promise.resolve(CONNTRACK)))();
      },
      ...(opts.natFailed === undefined ? {} : { natFailed: opts.natFailed }),
      ...(opts.offload === undefined ? {} : { offload: opts.offload }),
    },
    { now: () => clock },
  );
  const scrape = async (secs = 15): Promise<string> => {
    clock += secs * 1000;
    return registry.metrics();
  };
  return { counters, registry, scrape, reads: () => reads };
}

t.test('ports in use by protocol, flows by service, utilisation: from conntrack, read once per scrape', async (t) => {
  const w = world({ mtu: 1420 });
  const text = await w.scrape();
  t.equal(w.reads(), 1, 'one conntrack read for the whole scrape');
  t.equal(value(text, 'smap_ports_in_use', { protocol: 'tcp' }), 2, 'tcp: ports 10001 and 10002 (two flows share 10002)');
  t.equal(value(text, 'smap_ports_in_use', { protocol: 'udp' }), 2);
  t.equal(value(text, 'smap_ports_in_use', { protocol: 'icmp' }), 1);
  t.equal(value(text, 'smap_port_utilisation_ratio', { protocol: 'tcp' }), 2 / 1000);
  t.equal(value(text, 'smap_nat_flows', { service: 'http' }), 1);
  t.equal(value(text, 'smap_nat_flows', { service: 'https' }), 2);
  t.equal(value(text, 'smap_nat_flows', { service: 'dns' }), 1);
  t.equal(value(text, 'smap_nat_flows', { service: 'other' }), 2, 'udp 5000 and the ICMP echo');
  t.equal(value(text, 'smap_port_set_size'), 1000);
  t.equal(value(text, 'smap_tunnel_mtu_bytes'), 1420);
  t.equal(value(text, 'smap_conntrack_up'), 1);
  await w.scrape();
  t.equal(w.reads(), 2, 'the next scrape reads again');
});

t.test('tunnel counters, drops by side and reason', async (t) => {
  const w = world();
  const g = w.counters.global;
  g[G.lan_packets] = 10;
  g[G.lan_bytes] = 1000;
  g[G.to_prr_packets] = 9;
  g[G.to_prr_bytes] = 900;
  g[G.tunnel_packets] = 8;
  g[G.tunnel_bytes] = 800;
  g[G.to_lan_packets] = 7;
  g[G.to_lan_bytes] = 700;
  g[G.fragments_out] = 3;
  g[G.tunnel_errors] = 2;
  g[G.tx_errors] = 1;
  w.counters.dropsOut[Drop.outside_set] = 5;
  w.counters.dropsIn[Drop.not_from_prr] = 6;
  const text = await w.scrape();
  for (const [d, p, b] of [['from_lan', 10, 1000], ['to_prr', 9, 900], ['from_tunnel', 8, 800], ['to_lan', 7, 700]] as const) {
    t.equal(value(text, 'smap_tunnel_packets_total', { direction: d }), p, `packets ${d}`);
    t.equal(value(text, 'smap_tunnel_bytes_total', { direction: d }), b, `bytes ${d}`);
  }
  t.equal(value(text, 'smap_fragments_out_total'), 3);
  t.equal(value(text, 'smap_tunnel_errors_total'), 2);
  t.equal(value(text, 'smap_tx_errors_total'), 1);
  t.equal(value(text, 'smap_drops_total', { side: 'lan', reason: 'outside_set' }), 5);
  t.equal(value(text, 'smap_drops_total', { side: 'tunnel', reason: 'not_from_prr' }), 6);
  t.equal(labelValues(text, 'smap_drops_total', 'reason').length, 2 * DROP_REASON_NAMES.length, 'every reason on both sides');
  t.equal(value(text, 'smap_tunnel_mtu_bytes'), 0, 'MTU 0 before the tunnel is up');
});

t.test('flows the NAT refused: smap_nat_flows_failed_total from conntrack, absent when unknown', async (t) => {
  let n: number | undefined = 17;
  const w = world({ natFailed: () => Promise.resolve(n) });
  t.equal(value(await w.scrape(), 'smap_nat_flows_failed_total'), 17);
  n = 20;
  t.equal(value(await w.scrape(), 'smap_nat_flows_failed_total'), 20, 'follows the kernel count');
  t.notMatch(await world().scrape(), /smap_nat_flows_failed_total/, 'no source: no family');
});

t.test('TUN offloads: super-packets by event while on, no series while off or before the TUN opens', async (t) => {
  let o: Offload = null;
  const w = world({ offload: () => o });
  t.equal(labelValues(await w.scrape(), 'smap_offload_super_packets_total', 'event').length, 0, 'no TUN yet');
  o = { on: false, super_packets_read: 0, super_packets_written: 0, refused: 0 };
  t.equal(labelValues(await w.scrape(), 'smap_offload_super_packets_total', 'event').length, 0, 'offloads off');
  o = { on: true, super_packets_read: 12, super_packets_written: 7, refused: 1 };
  const text = await w.scrape();
  t.equal(value(text, 'smap_offload_super_packets_total', { event: 'read' }), 12);
  t.equal(value(text, 'smap_offload_super_packets_total', { event: 'written' }), 7);
  t.equal(value(text, 'smap_offload_super_packets_total', { event: 'refused' }), 1);
});

t.test('conntrack unreadable: no port series, smap_conntrack_up 0, the rest still served', async (t) => {
  const w = world({ conntrack: () => Promise.reject(new Error('EACCES')) });
  const text = await w.scrape();
  t.equal(value(text, 'smap_conntrack_up'), 0);
  t.same(labelValues(text, 'smap_ports_in_use', 'protocol'), []);
  t.equal(value(text, 'smap_port_set_size'), 1000);
});

t.test('promtool check metrics accepts the exposition', { skip: promtoolPath() === undefined ? NO_PROMTOOL : false }, async (t) => {
  const w = world({ mtu: 1460 });
  w.counters.global[G.lan_packets] = 4;
  const r = promtoolCheckMetrics(await w.scrape());
  t.equal(r.code, 0, 'exit 0');
  t.equal(r.output, '', 'no lint problems');
});
