/**
 * prr/metrics.ts: the collectors read the PRR's typed arrays and binding table at scrape time;
 * per-subscriber series follow [metrics] per_subscriber; the output passes the real promtool.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseIpv4, parseIpv4Prefix } from '../../common/config/values.js';
import { PortRange } from '../../common/portset.js';
import type { PerSubscriber } from '../../common/config/prr.js';
import { BindingTable } from '../../prr/bindings.js';
import { B, Drop, G, PER_BINDING, PrrCounters } from '../../prr/counters.js';
import { prrRegistry, topIds, TOP_HALF_LIFE_S } from '../../prr/metrics.js';
import { serveMetrics } from '../../common/metrics-server.js';
import { REASSEMBLY_DROP_NAMES } from '../../prr/reassembly.js';
import { REPO_ROOT } from '../lab/paths.js';
import { PortActivity } from '../../prr/port-activity.js';
import { UsageReports } from '../../prr/usage-reports.js';
import { labelValues, NO_PROMTOOL, promtoolCheckMetrics, promtoolPath, samples, value } from './helpers.js';

const SH = parseIpv4('192.0.2.100')!;
const v6 = (n: number): Buffer => {
  const b = Buffer.alloc(16);
  b.writeUInt32BE(0x20010db8, 0);
  b.writeUInt32BE(n, 12);
  return b;
};

/** A PRR's state without a data plane: four subscribers on 192.0.2.100/31, counters set by hand. */
function world(perSubscriber: PerSubscriber = { mode: 'all' }, extra: { activity?: PortActivity; usage?: UsageReports } = {}) {
  const table = new BindingTable();
  const counters = new PrrCounters();
  table.onChange = (id, what) => {
    if (what === 'add') counters.resetBinding(id);
  };
  const ids = {
    cpe1: table.add({ subscriber: 'cpe1', ipv6: v6(1), ipv4: SH, ports: new PortRange(10000, 11000) }),
    cpe2: table.add({ subscriber: 'cpe2', ipv6: v6(2), ipv4: SH, ports: new PortRange(11001, 12000) }),
    cpe3: table.add({ subscriber: 'cpe3', ipv6: v6(3), ipv4: SH + 1, ports: new PortRange(2048, 4095) }),
    cpe4: table.add({ subscriber: 'cpe4', ipv6: v6(4), ipv4: SH + 1, ports: new PortRange(4096, 5119) }),
  };
  let clock = 1_000_000;
  const pools = [parseIpv4Prefix('192.0.2.100/31')!];
  const registry = prrRegistry({ table, counters, pools, allowSystemPorts: false, ...extra }, { perSubscriber, now: () => clock });
  const traffic = (id: number, fromBytes: number, toBytes = 0): void => {
    const o = id * PER_BINDING;
    counters.perBinding[o + B.from_cpe_bytes]! += fromBytes;
    counters.perBinding[o + B.from_cpe_packets]! += Math.ceil(fromBytes / 1000);
    counters.perBinding[o + B.to_cpe_bytes]! += toBytes;
    counters.perBinding[o + B.to_cpe_packets]! += Math.ceil(toBytes / 1000);
  };
  /** Scrape `secs` seconds later (past the one-second row cache). */
  const scrape = async (secs = 15): Promise<string> => {
    clock += secs * 1000;
    return registry.metrics();
  };
  return { table, counters, ids, registry, traffic, scrape };
}

t.test('global counters, drops by side and reason, ICMP, reassembly, bindings: read from the arrays', async (t) => {
  const w = world();
  const g = w.counters.global;
  g[G.in4_packets] = 11;
  g[G.in4_bytes] = 1100;
  g[G.out4_packets] = 12;
  g[G.out6_packets] = 13;
  g[G.out6_bytes] = 1300;
  g[G.in6_packets] = 14;
  g[G.hairpin_packets] = 2;
  g[G.icmp4_generated] = 3;
  g[G.icmp4_rate_limited] = 4;
  g[G.icmp4_policy_suppressed] = 5;
  g[G.icmp_relayed] = 6;
  g[G.icmp6_translated] = 7;
  g[G.pmtu_lowered] = 8;
  g[G.tx_errors] = 9;
  g[G.pmtu_raised] = 24;
  g[G.frag_needed_sent] = 25;
  w.counters.drops4[Drop.no_binding] = 21;
  w.counters.drops6[Drop.spoofed_ipv6] = 22;
  const drops = new Float64Array(REASSEMBLY_DROP_NAMES.length);
  drops[0] = 23;
  w.counters.reassembly.internet = { counters: { fragments: 30, reassembled: 10, drops }, inProgress: 2, fragmentsHeld: 5, bytesHeld: () => 4000 };
  const text = await w.scrape();
  const want: Array<[string, Record<string, string>, number]> = [
    ['prr_packets_total', { direction: 'from_internet' }, 11],
    ['prr_bytes_total', { direction: 'from_internet' }, 1100],
    ['prr_packets_total', { direction: 'to_internet' }, 12],
    ['prr_packets_total', { direction: 'to_cpe' }, 13],
    ['prr_bytes_total', { direction: 'to_cpe' }, 1300],
    ['prr_packets_total', { direction: 'from_cpe' }, 14],
    ['prr_packets_total', { direction: 'hairpin' }, 2],
    ['prr_icmp_generated_total', {}, 3],
    ['prr_icmp_rate_limited_total', {}, 4],
    ['prr_icmp_policy_suppressed_total', {}, 5],
    ['prr_icmp_relayed_total', {}, 6],
    ['prr_icmp_translated_total', {}, 7],
    ['prr_pmtu_lowered_total', {}, 8],
    ['prr_tx_errors_total', {}, 9],
    ['prr_pmtu_raised_total', {}, 24],
    ['prr_icmp_frag_needed_total', {}, 25],
    ['prr_drops_total', { side: 'internet', reason: 'no_binding' }, 21],
    ['prr_drops_total', { side: 'tunnel', reason: 'spoofed_ipv6' }, 22],
    ['prr_drops_total', { side: 'tunnel', reason: 'no_binding' }, 0],
    ['prr_drops_total', { side: 'internet', reason: REASSEMBLY_DROP_NAMES[0] }, 23],
    ['prr_reassembly_fragments_total', { side: 'internet' }, 30],
    ['prr_reassembly_reassembled_total', { side: 'internet' }, 10],
    ['prr_reassembly_in_progress', { side: 'internet' }, 2],
    ['prr_reassembly_fragments_held', { side: 'internet' }, 5],
    ['prr_reassembly_held_bytes', { side: 'internet' }, 4000],
    ['prr_bindings', {}, 4],
  ];
  for (const [name, labels, v] of want) t.equal(value(text, name, labels), v, `${name}${JSON.stringify(labels)}`);
  t.equal(labelValues(text, 'prr_drops_total', 'reason').length, 2 * (Object.keys(Drop).length + REASSEMBLY_DROP_NAMES.length), 'every reason on both sides, zeros too');
  t.ok((value(text, 'prr_binding_table_bytes') ?? 0) > 0, 'binding table memory');
  const version = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  t.equal(value(text, 'prr_build_info', { version, node: process.version }), 1, 'build info names the package version');

  // The arrays change; the next scrape shows it (nothing is cached beyond one scrape).
  g[G.in4_packets] = 111;
  t.equal(value(await w.scrape(), 'prr_packets_total', { direction: 'from_internet' }), 111, 'read again at the next scrape');
});

t.test('per subscriber (all): ports, packets, bytes, drops summed per subscriber name', async (t) => {
  const w = world({ mode: 'all' });
  w.traffic(w.ids.cpe1, 5000, 7000);
  w.counters.perBinding[w.ids.cpe2 * PER_BINDING + B.drops] = 4;
  const text = await w.scrape();
  t.same(labelValues(text, 'prr_subscriber_ports_allocated', 'subscriber').sort(), ['cpe1', 'cpe2', 'cpe3', 'cpe4']);
  t.equal(value(text, 'prr_subscriber_ports_allocated', { subscriber: 'cpe1' }), 1001);
  t.equal(value(text, 'prr_subscriber_ports_allocated', { subscriber: 'cpe3' }), 2048);
  t.equal(value(text, 'prr_subscriber_bytes_total', { subscriber: 'cpe1', direction: 'from_cpe' }), 5000);
  t.equal(value(text, 'prr_subscriber_bytes_total', { subscriber: 'cpe1', direction: 'to_cpe' }), 7000);
  t.equal(value(text, 'prr_subscriber_packets_total', { subscriber: 'cpe1', direction: 'from_cpe' }), 5);
  t.equal(value(text, 'prr_subscriber_packets_total', { subscriber: 'cpe1', direction: 'to_cpe' }), 7);
  t.equal(value(text, 'prr_subscriber_drops_total', { subscriber: 'cpe2' }), 4);

  // A second binding of the same subscriber (another address) is summed into one series.
  const extra = w.table.add({ subscriber: 'cpe1', ipv6: v6(1), ipv4: SH + 1, ports: new PortRange(20000, 20099) });
  w.traffic(extra, 100);
  const two = await w.scrape();
  t.equal(value(two, 'prr_subscriber_ports_allocated', { subscriber: 'cpe1' }), 1001 + 100);
  t.equal(value(two, 'prr_subscriber_bytes_total', { subscriber: 'cpe1', direction: 'from_cpe' }), 5100);
  t.equal(labelValues(two, 'prr_subscriber_ports_allocated', 'subscriber').filter((s) => s === 'cpe1').length, 1, 'one series for cpe1');
});

t.test('a released subscriber: its series disappear at the next scrape', async (t) => {
  const w = world({ mode: 'all' });
  w.traffic(w.ids.cpe2, 3000);
  t.equal(value(await w.scrape(), 'prr_subscriber_bytes_total', { subscriber: 'cpe2', direction: 'from_cpe' }), 3000);
  w.table.remove(w.ids.cpe2);
  const text = await w.scrape();
  t.notOk([...samples(text).keys()].some((k) => k.includes('subscriber="cpe2"')), 'no series names cpe2');
  t.equal(value(text, 'prr_bindings'), 3);
  t.equal(value(text, 'prr_pool_ports_allocated', { pool: '192.0.2.100/31', address: '192.0.2.100' }), 1001, 'its ports are free again');
});

t.test('per_subscriber = none: no per-subscriber series at all', async (t) => {
  const w = world({ mode: 'none' });
  w.traffic(w.ids.cpe1, 5000);
  const text = await w.scrape();
  t.notOk([...samples(text).keys()].some((k) => k.startsWith('prr_subscriber_')), 'no prr_subscriber_ samples');
  t.equal(value(text, 'prr_packets_total', { direction: 'from_cpe' }), 0, 'global series still there');
});

t.test('per_subscriber = top:N: the N busiest by recent traffic', async (t) => {
  const w = world({ mode: 'top', n: 2 });
  w.traffic(w.ids.cpe3, 9_000_000);
  w.traffic(w.ids.cpe1, 5_000_000, 1_000_000);
  w.traffic(w.ids.cpe2, 10);
  let text = await w.scrape();
  t.same(labelValues(text, 'prr_subscriber_ports_allocated', 'subscriber').sort(), ['cpe1', 'cpe3'], 'the two busiest');
  t.equal(value(text, 'prr_subscriber_bytes_total', { subscriber: 'cpe3', direction: 'from_cpe' }), 9_000_000);
  t.equal(labelValues(text, 'prr_subscriber_bytes_total', 'subscriber').length, 4, 'two subscribers x two directions');

  // An hour on, cpe2 and cpe4 carry the traffic: old volume decays, the choice follows.
  w.traffic(w.ids.cpe2, 200_000);
  w.traffic(w.ids.cpe4, 100_000);
  text = await w.scrape(12 * TOP_HALF_LIFE_S);
  t.same(labelValues(text, 'prr_subscriber_ports_allocated', 'subscriber').sort(), ['cpe2', 'cpe4'], 'recent traffic wins over old volume');
  t.equal(value(text, 'prr_subscriber_bytes_total', { subscriber: 'cpe2', direction: 'from_cpe' }), 200_010, 'values are totals, not the score');

  // A quiet scrape later the choice stays (no flapping).
  text = await w.scrape();
  t.same(labelValues(text, 'prr_subscriber_ports_allocated', 'subscriber').sort(), ['cpe2', 'cpe4'], 'stable without new traffic');

  // N larger than the subscribers: everyone.
  const big = world({ mode: 'top', n: 100 });
  t.equal(labelValues(await big.scrape(), 'prr_subscriber_ports_allocated', 'subscriber').length, 4);
});

t.test('topIds: the N highest scores of live bindings, as a full sort would pick them', async (t) => {
  const table = new BindingTable();
  const n = 500;
  for (let i = 0; i < n; i++) table.add({ subscriber: `s${i}`, ipv6: v6(i + 1), ipv4: SH, ports: new PortRange(1024 + i * 100, 1024 + i * 100 + 99) });
  for (let i = 0; i < n; i += 7) table.remove(i); // holes: released ids are never picked
  const scores = new Float64Array(n);
  let seed = 42;
  for (let i = 0; i < n; i++) scores[i] = (seed = (seed * 1103515245 + 12345) % 2 ** 31) % 50; // many ties
  const live = [...table.ids()];
  for (const k of [1, 10, 77, live.length, live.length + 5]) {
    const want = [...live].sort((a, b) => scores[b]! - scores[a]! || a - b).slice(0, k);
    t.same(topIds(table, scores, k).sort((a, b) => a - b), want.sort((a, b) => a - b), `top ${k}`);
  }
});

t.test('pool series: every address of the pools, ports allocated and allocatable', async (t) => {
  const w = world();
  const text = await w.scrape();
  const pool = '192.0.2.100/31';
  t.equal(value(text, 'prr_pool_ports_allocated', { pool, address: '192.0.2.100' }), 2001);
  t.equal(value(text, 'prr_pool_ports_allocated', { pool, address: '192.0.2.101' }), 3072);
  t.equal(value(text, 'prr_pool_ports_capacity', { pool, address: '192.0.2.100' }), 65536 - 1024, 'system ports not allocatable');
  t.same(labelValues(text, 'prr_pool_ports_capacity', 'address').sort(), ['192.0.2.100', '192.0.2.101']);
});

t.test('ports active (observed) and ports in use (reported), per subscriber and per address', async (t) => {
  const activity = new PortActivity();
  const usage = new UsageReports(() => 1_700_000_000_000);
  const w = world({ mode: 'all' }, { activity, usage });
  for (let p = 10000; p < 10040; p++) activity.mark(SH, p); // cpe1: 40 ports
  activity.mark(SH, 10000); // a repeat counts once
  for (let p = 2048; p < 2051; p++) activity.mark(SH + 1, p); // cpe3: 3
  usage.set('cpe1', { tcp: 38, udp: 2, icmp: 0, other: 0 });
  let text = await w.scrape();
  t.equal(value(text, 'prr_subscriber_ports_active', { subscriber: 'cpe1' }), 40);
  t.equal(value(text, 'prr_subscriber_ports_active', { subscriber: 'cpe2' }), 0);
  t.equal(value(text, 'prr_subscriber_ports_active', { subscriber: 'cpe3' }), 3);
  t.equal(value(text, 'prr_subscriber_ports_in_use', { subscriber: 'cpe1', protocol: 'tcp' }), 38);
  t.equal(value(text, 'prr_subscriber_ports_in_use', { subscriber: 'cpe1', protocol: 'udp' }), 2);
  t.same(labelValues(text, 'prr_subscriber_ports_in_use', 'subscriber').sort(), ['cpe1', 'cpe1', 'cpe1', 'cpe1'], 'only reporting subscribers');
  t.equal(value(text, 'prr_subscriber_usage_report_timestamp_seconds', { subscriber: 'cpe1' }), 1_700_000_000);
  const pool = '192.0.2.100/31';
  t.equal(value(text, 'prr_pool_ports_active', { pool, address: '192.0.2.100' }), 40);
  t.equal(value(text, 'prr_pool_ports_active', { pool, address: '192.0.2.101' }), 3);
  t.equal(value(text, 'prr_ports_active_tracker_bytes'), 2 * 16384);
  activity.rotate();
  activity.rotate();
  w.table.remove(w.ids.cpe1);
  text = await w.scrape();
  t.equal(value(text, 'prr_subscriber_ports_active', { subscriber: 'cpe3' }), 0, 'aged out after a full window');
  t.equal(value(text, 'prr_subscriber_ports_in_use', { subscriber: 'cpe1', protocol: 'tcp' }), undefined, 'released: the report goes too');
  t.equal(usage.size, 0, 'and the report store forgets it');
  // Off: no series at all (not zeros that would look like idle CPEs).
  const off = await world().scrape();
  t.notMatch(off, /prr_subscriber_ports_active|prr_pool_ports_active|prr_subscriber_ports_in_use/);
});

t.test('promtool check metrics accepts the exposition (all series populated)', { skip: promtoolPath() === undefined ? NO_PROMTOOL : false }, async (t) => {
  for (const mode of [{ mode: 'all' }, { mode: 'top', n: 1 }, { mode: 'none' }] as PerSubscriber[]) {
    const activity = new PortActivity();
    const usage = new UsageReports();
    const w = world(mode, { activity, usage });
    w.traffic(w.ids.cpe1, 1000, 2000);
    activity.mark(SH, 10001);
    usage.set('cpe1', { tcp: 1, udp: 0, icmp: 0, other: 0 });
    w.counters.reassembly.tunnel = { counters: { fragments: 1, reassembled: 0, drops: new Float64Array(REASSEMBLY_DROP_NAMES.length) }, inProgress: 1, fragmentsHeld: 1, bytesHeld: () => 8 };
    const r = promtoolCheckMetrics(await w.scrape());
    t.equal(r.code, 0, `exit 0 (${mode.mode})`);
    t.equal(r.output, '', `no lint problems (${mode.mode})`);
  }
});

t.test('HTTP: GET /metrics serves the registry; other paths 404', async (t) => {
  const w = world();
  const server = await serveMetrics(w.registry, { host: '127.0.0.1', port: 0 });
  t.teardown(() => server.close());
  const base = `http://127.0.0.1:${server.address.port}`;
  const r = await fetch(`${base}/metrics`);
  t.equal(r.status, 200);
  t.match(r.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  t.equal(value(await r.text(), 'prr_bindings'), 4);
  t.equal((await fetch(`${base}/nope`)).status, 404);
  t.equal((await fetch(`${base}/metrics`, { method: 'POST' })).status, 405);
  await t.rejects(serveMetrics(w.registry, { host: '127.0.0.1', port: server.address.port }), /metrics listen 127\.0\.0\.1:\d+: .*EADDRINUSE/, 'a busy port is a clear error');
});
