/**
 * The PRR's Prometheus metrics: one prom-client Registry whose collectors read the typed arrays
 * of prr/counters.ts and the binding table at scrape time. Nothing here runs per packet.
 *
 *   prr_packets_total{direction}           from_internet, to_internet, from_cpe, to_cpe, hairpin
 *   prr_bytes_total{direction}             the same directions, IPv4 bytes
 *   prr_drops_total{side,reason}           side = internet | tunnel (where the packet came from);
 *                                          every reason of DROP_REASON_NAMES and the reassembly's
 *   prr_icmp_{generated,rate_limited,policy_suppressed,relayed,translated}_total
 *   prr_icmp_frag_needed_total             Fragmentation Needed among the generated ones
 *   prr_tx_errors_total, prr_pmtu_lowered_total, prr_pmtu_raised_total (per-CPE path MTU events)
 *   prr_reassembly_{fragments,reassembled}_total{side}, prr_reassembly_{in_progress,fragments_held}{side},
 *   prr_reassembly_held_bytes{side}
 *   prr_bindings, prr_binding_table_bytes, prr_build_info{version,node}
 *   prr_subscriber_ports_allocated{subscriber}, prr_subscriber_{packets,bytes}_total{subscriber,direction},
 *   prr_subscriber_drops_total{subscriber}
 *   prr_subscriber_ports_active{subscriber}   distinct ports the CPE sent from in the last 60 s
 *                                          (observed by the PRR: prr/port-activity.ts)
 *   prr_subscriber_ports_in_use{subscriber,protocol}  the CPE's own conntrack count, reported with
 *                                          its last registration or renewal (prr/usage-reports.ts),
 *   prr_subscriber_usage_report_timestamp_seconds{subscriber}  and when it reported
 *   prr_pool_ports_capacity{pool,address}, prr_pool_ports_allocated{pool,address},
 *   prr_pool_ports_active{pool,address}, prr_ports_active_tracker_bytes
 *
 * Per-subscriber series follow `[metrics] per_subscriber`: `all`, `none`, or `top:N`, the N
 * subscribers with the most recent traffic. "Recent" is a score decayed with a 5-minute half-life,
 * updated at each scrape from the byte counters, so a subscriber that was busy an hour ago gives
 * way to one busy now, while the chosen set does not flap from one scrape to the next. A
 * subscriber's series are rebuilt at every scrape: a released subscriber's series disappear.
 * A subscriber with several bindings is reported once, its bindings summed (and ranked by its
 * busiest binding). Cost: one pass over the table per scrape and a size-N heap; about 0.1 s at
 * 200,000 bindings and 0.5 s at 1,000,000 (top:100, one core).
 *
 * The ports-active series exist only with `[metrics] ports_active = on` (the default); the
 * reported ones only with registration on.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import { labelValue, sampleValue, TextRegistry } from './metrics-text.js';
import { directionCounters, packageVersion, scrapedCounter } from '../common/metrics-server.js';
import { FIRST_USER_PORT, MAX_PORT } from '../common/portset.js';
import { DROP_REASON_NAMES, G, type ReassemblyView } from './counters.js';
import { poolRows, subscriberRows, TrafficScores, type PoolRow, type PrrMetricsOptions, type PrrMetricsSource, type SubscriberRow } from './metrics-subscribers.js';
import { USAGE_PROTOCOLS } from '../provisioning/protocol.js';
import { REASSEMBLY_DROP_NAMES } from './reassembly.js';

export { POOL_SERIES_LIMIT, topIds, TOP_HALF_LIFE_S, type PrrMetricsOptions, type PrrMetricsSource } from './metrics-subscribers.js';

/** Per-subscriber and pool rows are computed once per scrape: reused for this long (well under any scrape interval). */
const CACHE_MS = 200;

const DIRECTIONS = [
  ['from_internet', G.in4_packets, G.in4_bytes],
  ['to_internet', G.out4_packets, G.out4_bytes],
  ['from_cpe', G.in6_packets, G.in6_bytes],
  ['to_cpe', G.out6_packets, G.out6_bytes],
  ['hairpin', G.hairpin_packets, G.hairpin_bytes],
] as const;

const ICMP = [
  ['prr_icmp_generated_total', 'ICMPv4 errors the PRR originated (unreachable, time exceeded, fragmentation needed)', G.icmp4_generated],
  ['prr_icmp_rate_limited_total', 'ICMPv4 errors not sent because of the rate limit', G.icmp4_rate_limited],
  ['prr_icmp_policy_suppressed_total', 'ICMPv4 errors not sent because generate_icmp_errors is off', G.icmp4_policy_suppressed],
  ['prr_icmp_relayed_total', 'ICMPv4 errors from the Internet relayed to a CPE by the quoted port', G.icmp_relayed],
  ['prr_icmp_translated_total', 'ICMPv6 errors from the IPv6 core translated into ICMPv4 (RFC 2473 section 8)', G.icmp6_translated],
  ['prr_icmp_frag_needed_total', 'ICMPv4 Fragmentation Needed the PRR sent (packet with DF over the tunnel MTU of its CPE)', G.frag_needed_sent],
  ['prr_pmtu_lowered_total', "Times a binding's tunnel MTU was lowered by an ICMPv6 Packet Too Big", G.pmtu_lowered],
  ['prr_pmtu_raised_total', "Times a lowered tunnel MTU went back to the full one after [tunnel] pmtu_timeout (RFC 8201)", G.pmtu_raised],
] as const;


/** The PRR's registry; every value is read when Prometheus scrapes. */
export function prrRegistry(src: PrrMetricsSource, opts: PrrMetricsOptions): Registry {
  const registry = new TextRegistry();
  const registers = [registry];
  const { counters, table } = src;
  const now = opts.now ?? Date.now;
  const g = counters.global;

  directionCounters(registers, g, DIRECTIONS, { name: 'prr_packets_total', help: 'IPv4 packets handled, by direction (from_internet, to_internet, from_cpe, to_cpe, hairpin)' }, { name: 'prr_bytes_total', help: 'IPv4 bytes handled, by direction (from_internet, to_internet, from_cpe, to_cpe, hairpin)' });
  new Counter({
    name: 'prr_drops_total',
    help: 'Packets dropped, by the side they came from (internet, tunnel) and reason',
    labelNames: ['side', 'reason'] as const,
    registers,
    collect() {
      this.reset();
      const r = counters.reassembly;
      const sides: Array<[string, Float64Array, ReassemblyView | undefined]> = [
        ['internet', counters.drops4, r.internet],
        ['tunnel', counters.drops6, r.tunnel],
      ];
      for (const [side, a, view] of sides) {
        DROP_REASON_NAMES.forEach((reason, i) => this.inc({ side, reason }, a[i]!));
        REASSEMBLY_DROP_NAMES.forEach((reason, i) => this.inc({ side, reason }, view?.counters.drops[i] ?? 0));
      }
    },
  });
  for (const [name, help, slot] of ICMP) scrapedCounter(registers, name, help, () => g[slot]!);
  new Counter({
    name: 'prr_tx_errors_total',
    help: 'Packets the kernel refused to send (TUN or tunnel socket)',
    registers,
    collect() {
      this.reset();
      this.inc(g[G.tx_errors]!);
    },
  });

  // ---- reassembly (its own counters, per side) ----------------------------------------------
  const views = (): Array<[string, ReassemblyView]> => {
    const r = counters.reassembly;
    const out: Array<[string, ReassemblyView]> = [];
    if (r.internet) out.push(['internet', r.internet]);
    if (r.tunnel) out.push(['tunnel', r.tunnel]);
    return out;
  };
  new Counter({
    name: 'prr_reassembly_fragments_total',
    help: 'IPv4 fragments taken into reassembly, by side',
    labelNames: ['side'] as const,
    registers,
    collect() {
      this.reset();
      for (const [side, v] of views()) this.inc({ side }, v.counters.fragments);
    },
  });
  new Counter({
    name: 'prr_reassembly_reassembled_total',
    help: 'IPv4 datagrams reassembled, by side',
    labelNames: ['side'] as const,
    registers,
    collect() {
      this.reset();
      for (const [side, v] of views()) this.inc({ side }, v.counters.reassembled);
    },
  });
  new Gauge({
    name: 'prr_reassembly_in_progress',
    help: 'Datagrams partly reassembled now, by side',
    labelNames: ['side'] as const,
    registers,
    collect() {
      this.reset();
      for (const [side, v] of views()) this.set({ side }, v.inProgress);
    },
  });
  new Gauge({
    name: 'prr_reassembly_fragments_held',
    help: 'Fragments held for reassembly now, by side',
    labelNames: ['side'] as const,
    registers,
    collect() {
      this.reset();
      for (const [side, v] of views()) this.set({ side }, v.fragmentsHeld);
    },
  });
  new Gauge({
    name: 'prr_reassembly_held_bytes',
    help: 'Bytes held for reassembly now, by side',
    labelNames: ['side'] as const,
    registers,
    collect() {
      this.reset();
      for (const [side, v] of views()) this.set({ side }, v.bytesHeld());
    },
  });

  // ---- table ---------------------------------------------------------------------------------
  new Gauge({
    name: 'prr_bindings',
    help: 'Bindings (softwires) in the table',
    registers,
    collect() {
      this.set(table.size);
    },
  });
  new Gauge({
    name: 'prr_binding_table_bytes',
    help: "Memory held by the binding table's arrays",
    registers,
    collect() {
      this.set(table.bytes());
    },
  });
  new Gauge({
    name: 'prr_build_info',
    help: 'Always 1; the labels say which build runs',
    labelNames: ['version', 'node'] as const,
    registers,
  }).set({ version: packageVersion(), node: process.version }, 1);

  // ---- per subscriber: one table walk per scrape, shared by the five metrics -------------------
  const scores = opts.perSubscriber.mode === 'top' ? new TrafficScores() : undefined;
  // The five metrics share one walk: rows are reused for a second, so one scrape walks once.
  let rows: SubscriberRow[] = [];
  let rowsAt = -Infinity;
  const current = (): SubscriberRow[] => {
    const t = now();
    if (t - rowsAt >= CACHE_MS || t < rowsAt) {
      rows = subscriberRows(src, opts.perSubscriber, scores?.update(table, counters, t));
      rowsAt = t;
    }
    return rows;
  };
  // Written as text (prr/metrics-text.ts): with per_subscriber = all these are most of the series.
  const sub = (r: SubscriberRow): string => `subscriber="${labelValue(r.name)}"`;
  const family = (name: string, help: string, type: 'gauge' | 'counter', lines: (r: SubscriberRow, out: string[]) => void): void =>
    registry.registerFamily({ name, help, type, write: (out) => { for (const r of current()) lines(r, out); } });
  family('prr_subscriber_ports_allocated', 'Ports of the shared IPv4 address allocated to the subscriber (its port set size)', 'gauge', (r, out) => {
    out.push(`prr_subscriber_ports_allocated{${sub(r)}} ${sampleValue(r.ports)}`);
  });
  family('prr_subscriber_packets_total', 'IPv4 packets of the subscriber, by direction (from_cpe, to_cpe)', 'counter', (r, out) => {
    out.push(`prr_subscriber_packets_total{${sub(r)},direction="from_cpe"} ${sampleValue(r.fromPackets)}`, `prr_subscriber_packets_total{${sub(r)},direction="to_cpe"} ${sampleValue(r.toPackets)}`);
  });
  family('prr_subscriber_bytes_total', 'IPv4 bytes of the subscriber, by direction (from_cpe, to_cpe)', 'counter', (r, out) => {
    out.push(`prr_subscriber_bytes_total{${sub(r)},direction="from_cpe"} ${sampleValue(r.fromBytes)}`, `prr_subscriber_bytes_total{${sub(r)},direction="to_cpe"} ${sampleValue(r.toBytes)}`);
  });
  family('prr_subscriber_drops_total', "Packets dropped that were attributed to the subscriber's binding", 'counter', (r, out) => {
    out.push(`prr_subscriber_drops_total{${sub(r)}} ${sampleValue(r.drops)}`);
  });
  if (src.activity !== undefined) {
    family('prr_subscriber_ports_active', "Distinct ports of the subscriber's set its CPE sent from in the last 60 s (observed by the PRR)", 'gauge', (r, out) => {
      out.push(`prr_subscriber_ports_active{${sub(r)}} ${sampleValue(r.active)}`);
    });
  }
  if (src.usage !== undefined) {
    family('prr_subscriber_ports_in_use', "Ports of the subscriber's set in use by protocol, as its CPE counted them in conntrack and reported at its last registration or renewal", 'gauge', (r, out) => {
      if (r.reported === undefined) return;
      for (const protocol of USAGE_PROTOCOLS) out.push(`prr_subscriber_ports_in_use{${sub(r)},protocol="${protocol}"} ${sampleValue(r.reported.usage[protocol])}`);
    });
    family('prr_subscriber_usage_report_timestamp_seconds', "When the subscriber's CPE last reported its ports in use (Unix time)", 'gauge', (r, out) => {
      if (r.reported !== undefined) out.push(`prr_subscriber_usage_report_timestamp_seconds{${sub(r)}} ${sampleValue(r.reported.at / 1000)}`);
    });
  }

  // ---- per shared address ----------------------------------------------------------------------
  const perAddress = MAX_PORT + 1 - (src.allowSystemPorts ? 0 : FIRST_USER_PORT);
  let pool: PoolRow[] = [];
  let poolAt = -Infinity;
  const pools = (): typeof pool => {
    const t = now();
    if (t - poolAt >= CACHE_MS || t < poolAt) {
      pool = poolRows(src);
      poolAt = t;
    }
    return pool;
  };
  new Gauge({
    name: 'prr_pool_ports_capacity',
    help: 'Ports of a shared IPv4 address that can be allocated',
    labelNames: ['pool', 'address'] as const,
    registers,
    collect() {
      this.reset();
      for (const r of pools()) this.set({ pool: r.pool, address: r.address }, perAddress);
    },
  });
  new Gauge({
    name: 'prr_pool_ports_allocated',
    help: 'Ports of a shared IPv4 address allocated to subscribers',
    labelNames: ['pool', 'address'] as const,
    registers,
    collect() {
      this.reset();
      for (const r of pools()) this.set({ pool: r.pool, address: r.address }, r.allocated);
    },
  });
  const activity = src.activity;
  if (activity !== undefined) {
    new Gauge({
      name: 'prr_pool_ports_active',
      help: 'Distinct ports of a shared IPv4 address that CPEs sent from in the last 60 s',
      labelNames: ['pool', 'address'] as const,
      registers,
      collect() {
        this.reset();
        for (const r of pools()) this.set({ pool: r.pool, address: r.address }, r.active);
      },
    });
    new Gauge({
      name: 'prr_ports_active_tracker_bytes',
      help: 'Memory held by the ports-active bitmaps (16 KiB per shared address with traffic)',
      registers,
      collect() {
        this.set(activity.bytes());
      },
    });
  }
  return registry;
}
