/**
 * `prr run`: bring the PRR up from its model and keep it forwarding.
 *
 *   1. the tunnel socket (raw IPv6, next header 4) opens first, so the kernel never answers a
 *      CPE's packet with Parameter Problem while we start;
 *   2. the TUN (`prr0`) comes up with the tunnel MTU, and every shared pool is routed into it;
 *   3. static bindings go into the table, the data plane starts, the control socket listens.
 *
 * Bindings change at run time (control socket `bind`/`release`, SIGHUP re-reads the static
 * bindings of the config file) without a restart and without touching anyone else's traffic.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import type net from 'node:net';
import { PMTU_TIMEOUT_RFC_MIN } from '../common/config/schema.js';
import { formatHostPort } from '../common/config/values.js';
import { ConfigError, NativeError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { TUN_QUEUE } from '../common/native/ring.js';
import type { Icmp6Socket, TunDevice, Tunnel6Socket } from '../common/native/types.js';
import { ipv6ToString } from '../common/codec/ipv6.js';
import { BindingTable } from './bindings.js';
import { servePrrControl } from './control.js';
import { startPrrRegistration, type PrrRegistration } from './registration-start.js';
import { registrationMetrics } from './metrics-registration.js';
import { PrrCore } from './core.js';
import { PrrCounters } from './counters.js';
import { PrrDataplane } from './dataplane.js';
import { PortActivity } from './port-activity.js';
import { softAdvice } from './memory-advice.js';
import { prrRegistry } from './metrics.js';
import { serveMetrics, type MetricsServer } from '../common/metrics-server.js';
import { loadPrrModel, type PrrModel } from './model.js';
import type { StaticBinding } from './policy.js';

export interface PrrIo {
  /** rawOutput: send IPv4 through a raw socket in batches ([prr] ipv4_output = raw). */
  openTun(name: string, opts?: { rawOutput: boolean; offload?: boolean }): TunDevice;
  openTunnel(bind: string): Tunnel6Socket;
  /** The send-only raw ICMPv6 socket for ICMPv6 errors to CPEs (absent: none are sent). */
  openIcmp6?(bind: string): Icmp6Socket;
  /** Run `ip ...` (replaced in unit tests). */
  ip(args: string[]): void;
  /** Write a sysctl under /proc/sys (best effort). */
  sysctl(key: string, value: string): void;
  /** Memory advice for the big tables, given each buffer before it is filled (absent: none). */
  adviseMemory?(buf: ArrayBuffer): unknown;
}

export interface Prr {
  readonly model: PrrModel;
  readonly table: BindingTable;
  readonly counters: PrrCounters;
  readonly dataplane: PrrDataplane;
  /** The Prometheus listener ([metrics] enabled/listen), when it runs. */
  readonly metrics: MetricsServer | undefined;
  /** The SSH registration server, when [registration] enabled = true. */
  readonly registration: PrrRegistration | undefined;
  /** Re-read the config file's static bindings and apply the difference. */
  reload(): { added: number; changed: number; removed: number };
  stop(): Promise<void>;
}

function ipCommand(args: string[]): void {
  try {
    execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const msg = ((err as { stderr?: Buffer }).stderr?.toString() ?? String(err)).trim().split('\n')[0];
    throw new NativeError(`ip ${args.join(' ')}: ${msg}`);
  }
}

function writeSysctl(key: string, value: string): void {
  try {
    writeFileSync(`/proc/sys/${key}`, value);
  } catch {
    /* best effort: an absent key changes nothing we rely on */
  }
}

function readSysctl(key: string): string | undefined {
  try {
    return readFileSync(`/proc/sys/${key}`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** True when the host forwards IPv4 (the decapsulated traffic must be routed on). */
export function ipv4ForwardingOn(): boolean {
  try {
    return readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim() === '1';
  } catch {
    return false;
  }
}

function addStatic(table: BindingTable, b: StaticBinding): number {
  return table.add({ subscriber: b.subscriber, ipv6: b.ipv6, ipv4: b.ipv4, ports: b.ports, br: b.br });
}

export async function startPrr(model: PrrModel, log: Logger, io: PrrIo): Promise<Prr> {
  if (readSysctl('net/ipv4/conf/all/rp_filter') !== '0') {
    log.warn('net.ipv4.conf.all.rp_filter is on: the ICMPv4 errors the PRR sends to Internet hosts (unreachable, Fragmentation Needed) leave through the TUN from [prr] ipv4 and are dropped by the reverse-path check; run `sysctl -w net.ipv4.conf.all.rp_filter=0`');
  }
  if (!ipv4ForwardingOn()) {
    log.warn('IPv4 forwarding is off on this host (net.ipv4.ip_forward = 0): decapsulated traffic will not reach the Internet; run `sysctl -w net.ipv4.ip_forward=1`');
  }
  // Sized for the static bindings plus room to grow (both double when full).
  const adviseMemory = io.adviseMemory !== undefined ? softAdvice((buf) => io.adviseMemory!(buf), log) : undefined;
  const table = new BindingTable(model.bindings.length + 1024, adviseMemory !== undefined ? { adviseMemory } : {});
  const counters = new PrrCounters();
  counters.attach(table); // per-binding counters in the binding records: one cache line a packet
  table.onChange = (id, what) => {
    if (what === 'add') counters.resetBinding(id);
  };
  for (const b of model.bindings) {
    try {
      addStatic(table, b);
    } catch (err) {
      throw new ConfigError((err as Error).message, { file: model.file });
    }
  }

  const brs = model.policy.brAddresses;
  const tunnel = io.openTunnel(brs.length === 1 ? ipv6ToString(brs[0]!, 0) : '::');
  let tun: TunDevice;
  let icmp6: Icmp6Socket | undefined;
  try {
    icmp6 = io.openIcmp6?.(brs.length === 1 ? ipv6ToString(brs[0]!, 0) : '::');
    tun = io.openTun(model.tun, { rawOutput: model.ipv4Output === 'raw', offload: model.offload });
    if (model.offload && tun.offload !== true) log.info(`${tun.name}: the kernel refused TUN offloads; one packet per read`);
    // The TUN carries IPv4 only: no link-local IPv6, no router solicitations or MLD into it.
    io.sysctl(`net/ipv6/conf/${tun.name}/disable_ipv6`, '1');
    // The ICMPv4 errors the core makes for Internet hosts come out of the TUN with the PRR's own
    // address ([prr] ipv4) as source: the kernel drops them as martians unless the TUN accepts
    // local sources and does no reverse-path check (conf/all/rp_filter must be 0 as well).
    io.sysctl(`net/ipv4/conf/${tun.name}/accept_local`, '1');
    io.sysctl(`net/ipv4/conf/${tun.name}/rp_filter`, '0');
    // A deep queue toward the process: a burst arriving while it is descheduled waits instead of
    // being dropped (the kernel's default, 500 packets, is a few milliseconds at line rate).
    io.ip(['link', 'set', 'dev', tun.name, 'mtu', String(model.tunnelMtu), 'txqueuelen', String(TUN_QUEUE), 'up']);
    for (const pool of model.pools) io.ip(['route', 'replace', String(pool), 'dev', tun.name]);
  } catch (err) {
    icmp6?.close();
    tunnel.close();
    throw err;
  }

  if (model.pmtuTimeout < PMTU_TIMEOUT_RFC_MIN) {
    log.warn(`${model.file} [tunnel] pmtu_timeout = ${model.pmtuTimeout} s is under the 5 minutes of RFC 8201 §4: for labs only`);
  }
  const core = new PrrCore(table, model.policy, {
    tunnelMtu: model.tunnelMtu,
    pmtuTimeoutMs: model.pmtuTimeout * 1000,
    ttlToInternet: model.ipv4Output === 'raw',
    onPmtuRaised: (id, mtu) => log.info(`path MTU toward ${table.subscriberOf(id)}: ${model.pmtuTimeout} s since the last Packet Too Big, trying tunnel MTU ${mtu} again`),
  });
  // Ports active: only when something reads it (the metrics), and not when turned off.
  const activity = model.metrics.enabled && model.metrics.portsActive ? new PortActivity(adviseMemory !== undefined ? { adviseMemory } : {}) : undefined;
  activity?.start();
  const dataplane = new PrrDataplane(core, counters, tun, tunnel, {
    log,
    onPmtu: (id, mtu) => log.info(`path MTU toward ${table.subscriberOf(id)} lowered: tunnel MTU ${mtu}`),
    ...(icmp6 !== undefined ? { icmp6 } : {}),
    ...(activity !== undefined ? { activity } : {}),
  });
  dataplane.start();

  const inPool = (ipv4: number): boolean => model.pools.some((p) => p.contains(ipv4));
  let control: net.Server | undefined;
  let registration: PrrRegistration | undefined;
  try {
    control = await servePrrControl(model.controlSocket, {
      table,
      counters,
      policy: model.policy,
      portOptions: { allowSystemPorts: model.allowSystemPorts },
      inPool,
      log,
      registration: () => registration && { reloadKeys: () => registration!.reloadKeys(), releaseByName: (name) => registration!.registrar.releaseByName(name) },
    });
  } catch (err) {
    dataplane.stop();
    throw new ConfigError(`cannot listen: ${(err as Error).message}`, { file: model.file, section: 'prr', key: 'control_socket' });
  }
  // Metrics are not worth a PRR that does not forward: a listener that fails is a warning.
  // SSH registration ([registration] enabled): its stored bindings go into the table now.
  try {
    registration = await startPrrRegistration(model, table, log);
  } catch (err) {
    await new Promise<void>((resolve) => control!.close(() => resolve()));
    dataplane.stop();
    throw err;
  }
  if (registration !== undefined) log.info(`registration: SSH on port ${registration.server.port}, host key ${registration.server.hostKeyFingerprint}`);

  let metrics: MetricsServer | undefined;
  if (model.metrics.enabled) {
    const registry = prrRegistry(
      { table, counters, pools: model.pools, allowSystemPorts: model.allowSystemPorts, activity, usage: registration?.usage },
      { perSubscriber: model.metrics.perSubscriber },
    );
    if (registration !== undefined) registrationMetrics(registry, { counters: registration.server.counters, registered: () => registration!.registrar.registered });
    try {
      metrics = await serveMetrics(registry, model.metrics.listen);
      log.info(`metrics on http://${formatHostPort(metrics.address)}/metrics`);
    } catch (err) {
      log.warn(`${model.file} [metrics] listen: ${(err as Error).message}; forwarding without metrics`);
    }
  }
  log.info(`forwarding: ${tun.name} mtu ${model.tunnelMtu}, tunnel ${tunnel.bind}, ${table.size} bindings, pools ${model.pools.join(', ')}`);

  const staticNames = new Set(model.bindings.map((b) => b.subscriber));
  // The table holds the bindings now; do not keep a second copy of a million of them alive.
  const kept: PrrModel = { ...model, bindings: [] };
  model = kept; // the closures above and below see the copy without the bindings
  return {
    model: kept,
    table,
    counters,
    dataplane,
    metrics,
    registration,
    reload() {
      const next = loadPrrModel(model.file);
      const want = new Map(next.bindings.map((b) => [b.subscriber, b]));
      let added = 0;
      let changed = 0;
      let removed = 0;
      for (const name of staticNames) {
        if (want.has(name)) continue;
        for (const id of table.findSubscriber(name)) table.remove(id);
        staticNames.delete(name);
        removed++;
      }
      for (const [name, b] of want) {
        const ids = table.findSubscriber(name);
        if (ids.length === 0) {
          addStatic(table, b);
          added++;
        } else {
          const id = ids[0]!;
          const cur = table.portsOf(id)!;
          const same = table.ipv6Is(id, b.ipv6, 0) && table.ipv4Of(id) === b.ipv4 && cur.equals(b.ports) && table.brOf(id) === b.br;
          if (!same) {
            table.change(id, { subscriber: name, ipv6: b.ipv6, ipv4: b.ipv4, ports: b.ports, br: b.br, mtu: table.mtuOf(id) });
            changed++;
          }
        }
        staticNames.add(name);
      }
      const keys = registration?.reloadKeys();
      log.info(`reloaded ${model.file}: ${added} added, ${changed} changed, ${removed} removed${keys !== undefined ? `; ${keys} authorized keys` : ''}`);
      return { added, changed, removed };
    },
    async stop() {
      await new Promise<void>((resolve) => (control ? control.close(() => resolve()) : resolve()));
      await metrics?.close();
      await registration?.close();
      dataplane.stop();
      activity?.stop();
      log.info('stopped');
    },
  };
}

export { ipCommand, writeSysctl };
