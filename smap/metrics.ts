/**
 * The SMAP's Prometheus metrics: one prom-client Registry whose collectors read the typed arrays
 * of smap/counters.ts, the binding and the tunnel MTU at scrape time, and the conntrack table once
 * per scrape (smap/conntrack.ts). Nothing here runs per packet.
 *
 *   smap_ports_in_use{protocol}           distinct ports of the set held by NATed flows (tcp, udp, icmp)
 *   smap_port_utilisation_ratio{protocol} the same over the port set size
 *   smap_nat_flows{service}               NATed flows by the service of their original destination
 *                                         port (dns 53, http 80, https 443, other): the 2010 study's
 *                                         categories. Flows, not ports: the kernel may reuse one port
 *                                         of the set for flows to different destinations.
 *   smap_port_set_size                    ports in the binding's set
 *   smap_tunnel_packets_total{direction}  from_lan, to_prr, from_tunnel, to_lan
 *   smap_tunnel_bytes_total{direction}
 *   smap_drops_total{side,reason}         side = lan (toward the PRR) | tunnel (from it)
 *   smap_fragments_out_total, smap_tunnel_errors_total, smap_tx_errors_total
 *   smap_pmtu_lowered_total, smap_pmtu_raised_total   tunnel MTU moved by Packet Too Big / its expiry
 *   smap_icmp_frag_needed_total, smap_icmp_rate_limited_total   Fragmentation Needed sent to the LAN
 *   smap_tunnel_mtu_bytes                 the IPv4 MTU inside the tunnel (0 until the tunnel is up)
 *   smap_conntrack_up                     1 when the last conntrack read worked
 *   smap_ftp_alg_events_total{event}      the FTP ALG (smap/ftp-alg.ts): sessions, rewrites, refusals
 *   smap_ftp_alg_sessions, smap_ftp_alg_mappings   control connections relayed, data mappings waiting
 *   smap_build_info{version,node}
 */
import { Counter, Gauge, Registry } from 'prom-client';
import { directionCounters, packageVersion, scrapedCounter } from '../common/metrics-server.js';
import type { PortSet } from '../common/portset.js';
import { portUsage, SERVICES, type PortUsage } from './conntrack.js';
import { DROP_REASON_NAMES, G, type SmapCounters } from './counters.js';
import { FTP_EVENT_NAMES, type FtpAlgSnapshot } from './ftp-alg.js';

export interface SmapMetricsSource {
  counters: SmapCounters;
  /** The current binding (shared IPv4 as uint32, port set). */
  binding(): { shared: number; ports: PortSet };
  /** The tunnel MTU once the tunnel is up. */
  tunnelMtu(): number | undefined;
  /** The conntrack table as text (/proc/net/nf_conntrack or `conntrack -L`). */
  conntrackTable(): Promise<string>;
  /** New flows conntrack refused since boot (insert_failed), when readable. */
  natFailed?: () => Promise<number | undefined>;
  /** The FTP ALG's counters, when it runs. */
  ftpAlg?: () => FtpAlgSnapshot | undefined;
  /** TUN offloads once the TUN is open, when on: super-packets read and cut, written coalesced, refused. */
  offload?: () => { on: boolean; super_packets_read: number; super_packets_written: number; refused: number } | null;
}

export interface SmapMetricsOptions {
  /** Clock in milliseconds (tests). */
  now?: () => number;
}

/** One conntrack read serves every metric of a scrape: reused for this long. */
const CACHE_MS = 200;

const DIRECTIONS = [
  ['from_lan', G.lan_packets, G.lan_bytes],
  ['to_prr', G.to_prr_packets, G.to_prr_bytes],
  ['from_tunnel', G.tunnel_packets, G.tunnel_bytes],
  ['to_lan', G.to_lan_packets, G.to_lan_bytes],
] as const;

const SINGLE = [
  ['smap_fragments_out_total', 'Non-first IPv4 fragments sent on toward the PRR', G.fragments_out],
  ['smap_tunnel_errors_total', 'ICMPv6 errors and local send errors reported by the tunnel socket', G.tunnel_errors],
  ['smap_tx_errors_total', 'Packets the kernel refused on send', G.tx_errors],
  ['smap_pmtu_lowered_total', 'Times the tunnel MTU was lowered by an ICMPv6 Packet Too Big from the path to the PRR', G.pmtu_lowered],
  ['smap_pmtu_raised_total', 'Times a learnt tunnel MTU expired ([tunnel] pmtu_timeout) and the larger one was tried again (RFC 8201)', G.pmtu_raised],
  ['smap_icmp_frag_needed_total', 'ICMPv4 Fragmentation Needed sent to LAN hosts (DF packets over the tunnel MTU)', G.frag_needed_sent],
  ['smap_icmp_rate_limited_total', 'ICMPv4 errors not sent to LAN hosts because of the rate limit', G.icmp_rate_limited],
] as const;


export function smapRegistry(src: SmapMetricsSource, opts: SmapMetricsOptions = {}): Registry {
  const registry = new Registry();
  const registers = [registry];
  const g = src.counters.global;
  const now = opts.now ?? Date.now;

  // ---- conntrack: read once per scrape ---------------------------------------------------------
  let usage: PortUsage | undefined;
  let usageAt = -Infinity;
  let pending: Promise<PortUsage | undefined> | undefined;
  const current = (): Promise<PortUsage | undefined> => {
    const t = now();
    if (t - usageAt < CACHE_MS && t >= usageAt) return Promise.resolve(usage);
    pending ??= src
      .conntrackTable()
      .then(
        (text) => portUsage(text, src.binding().shared),
        () => undefined,
      )
      .then((u) => {
        usage = u;
        usageAt = now();
        pending = undefined;
        return u;
      });
    return pending;
  };

  new Gauge({
    name: 'smap_ports_in_use',
    help: 'Distinct ports of the port set held by NATed flows, by protocol (from conntrack)',
    labelNames: ['protocol'] as const,
    registers,
    async collect() {
      const u = await current();
      this.reset();
      if (u === undefined) return;
      for (const [protocol, n] of Object.entries(u.byProtocol)) this.set({ protocol }, n);
    },
  });
  new Gauge({
    name: 'smap_port_utilisation_ratio',
    help: 'Ports in use over the port set size, by protocol (each protocol has the whole set)',
    labelNames: ['protocol'] as const,
    registers,
    async collect() {
      const u = await current();
      this.reset();
      if (u === undefined) return;
      const size = src.binding().ports.size;
      for (const [protocol, n] of Object.entries(u.byProtocol)) this.set({ protocol }, size > 0 ? n / size : 0);
    },
  });
  new Gauge({
    name: 'smap_nat_flows',
    help: 'NATed flows by service of the original destination port (dns, http, https, other)',
    labelNames: ['service'] as const,
    registers,
    async collect() {
      const u = await current();
      this.reset();
      if (u === undefined) return;
      for (const service of SERVICES) this.set({ service }, u.byService[service]);
    },
  });
  new Gauge({
    name: 'smap_conntrack_up',
    help: '1 when the last read of the conntrack table worked, else 0',
    registers,
    async collect() {
      this.set((await current()) === undefined ? 0 : 1);
    },
  });
  new Gauge({
    name: 'smap_port_set_size',
    help: "Ports in the binding's port set",
    registers,
    collect() {
      this.set(src.binding().ports.size);
    },
  });
  new Gauge({
    name: 'smap_tunnel_mtu_bytes',
    help: 'The IPv4 MTU inside the tunnel (the TUN MTU); 0 until the tunnel is up',
    registers,
    collect() {
      this.set(src.tunnelMtu() ?? 0);
    },
  });

  // ---- counters --------------------------------------------------------------------------------
  directionCounters(registers, g, DIRECTIONS, { name: 'smap_tunnel_packets_total', help: 'IPv4 packets, by direction (from_lan, to_prr, from_tunnel, to_lan)' }, { name: 'smap_tunnel_bytes_total', help: 'IPv4 bytes, by direction (from_lan, to_prr, from_tunnel, to_lan)' });
  new Counter({
    name: 'smap_drops_total',
    help: 'Packets dropped, by the side they came from (lan: toward the PRR; tunnel: from it) and reason',
    labelNames: ['side', 'reason'] as const,
    registers,
    collect() {
      this.reset();
      const sides: Array<[string, Float64Array]> = [
        ['lan', src.counters.dropsOut],
        ['tunnel', src.counters.dropsIn],
      ];
      for (const [side, a] of sides) DROP_REASON_NAMES.forEach((reason, i) => this.inc({ side, reason }, a[i]!));
    },
  });
  for (const [name, help, slot] of SINGLE) scrapedCounter(registers, name, help, () => g[slot]!);
  const natFailed = src.natFailed;
  if (natFailed !== undefined) {
    new Counter({
      name: 'smap_nat_flows_failed_total',
      help: 'New flows the NAT could not place in the port set: every port toward that destination taken (conntrack insert_failed)',
      registers,
      async collect() {
        this.reset();
        const n = await natFailed();
        if (n !== undefined) this.inc(n);
      },
    });
  }
  const ftp = src.ftpAlg;
  if (ftp !== undefined) {
    new Counter({
      name: 'smap_ftp_alg_events_total',
      help: 'FTP ALG events: sessions, PORT/EPRT rewritten, and each kind of refusal',
      labelNames: ['event'] as const,
      registers,
      collect() {
        this.reset();
        const snap = ftp();
        if (snap !== undefined) for (const event of FTP_EVENT_NAMES) this.inc({ event }, snap.events[event]);
      },
    });
    for (const [name, help, key] of [
      ['smap_ftp_alg_sessions', 'FTP control connections the ALG relays now', 'active_sessions'],
      ['smap_ftp_alg_mappings', 'FTP data mappings waiting for the server (port of the set -> LAN client)', 'active_mappings'],
    ] as const) {
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(ftp()?.[key] ?? 0);
        },
      });
    }
  }
  const offload = src.offload;
  if (offload !== undefined) {
    new Counter({
      name: 'smap_offload_super_packets_total',
      help: 'TUN offloads: super-packets read from the TUN and cut (read), coalesced and written to it (written), refused and dropped (refused)',
      labelNames: ['event'] as const,
      registers,
      collect() {
        this.reset();
        const o = offload();
        if (o == null || !o.on) return;
        this.inc({ event: 'read' }, o.super_packets_read);
        this.inc({ event: 'written' }, o.super_packets_written);
        this.inc({ event: 'refused' }, o.refused);
      },
    });
  }
  new Gauge({
    name: 'smap_build_info',
    help: 'Always 1; the labels say which build runs',
    labelNames: ['version', 'node'] as const,
    registers,
  }).set({ version: packageVersion(), node: process.version }, 1);
  return registry;
}
