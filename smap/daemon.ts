/**
 * `smap run`: bring the CPE agent up from its config and keep it forwarding.
 *
 *   1. the control socket listens (so `smap status` answers while we wait), and the tunnel socket
 *      (raw IPv6, next header 4) opens before any PRR packet can arrive;
 *   2. the WAN IPv6 address: `[smap] wan_ipv6`, or the first usable global address of the WAN
 *      interface, waited for (SLAAC) and then followed (smap/wan.ts);
 *   3. the TUN (`smap0`) comes up with the tunnel MTU (`auto` = WAN MTU - 40) as the IPv4 default
 *      route; the nftables table (smap/nft.ts) goes in with one `nft -f`; the LAN's conntrack
 *      entries are flushed (a new binding: RFC 7596 §5.1); the dnsmasq snippet is written;
 *   4. the data plane starts.
 *
 * The binding comes from `[static]`; `reload()` (SIGHUP) re-reads it and applies a change in
 * place: new table, flushed conntrack, new tunnel endpoint (with [registration], SIGHUP registers
 * again at once instead). On stop the TUN closes (its routes
 * go with it), the table and the snippet are removed.
 *
 * With `[registration]` instead, the agent starts with no binding: once the WAN address is known
 * it registers with the PRR over SSH (smap/registration.ts), and nothing of step 3 happens (no
 * TUN, no default route, no table: the LAN has no IPv4 Internet rather than a half-working one)
 * until the first lease. Each later lease that differs goes through setBinding, the path of
 * SIGHUP; a new WAN address registers again at once, and so does SIGHUP (OpenWrt's hotplug on
 * WAN up); while the PRR is unreachable the client backs off and the last binding keeps forwarding.
 *
 * Path MTU (smap/pmtu.ts): an ICMPv6 Packet Too Big from the path to the PRR (the tunnel socket's
 * error queue) lowers the tunnel MTU; smap0's MTU, the MSS clamp (the nft table, rewritten in one
 * transaction) and the dnsmasq snippet follow, and the data plane answers the LAN sender with
 * Fragmentation Needed. After [tunnel] pmtu_timeout without a new one the full MTU comes back.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type net from 'node:net';
import path from 'node:path';
import { loadSmapConfig, type SmapConfig } from '../common/config/smap.js';
import { formatHostPort, formatIpv4, ipv6Bytes } from '../common/config/values.js';
import { serveControl } from '../common/control.js';
import { ConfigError, NativeError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { TUN_QUEUE } from '../common/native/ring.js';
import { formatIpv6 } from '../common/native/addr6.js';
import type { TunDevice, Tunnel6Socket } from '../common/native/types.js';
import { TUNNEL_OVERHEAD } from '../common/codec/constants.js';
import { flushCommands, natedFlows, natFailures, portUsage, usageReport, type PortUsage } from './conntrack.js';
import { SmapCore, type SmapBinding } from './core.js';
import { G, SmapCounters, type CounterSnapshot } from './counters.js';
import { SmapDataplane } from './dataplane.js';
import { smapRegistry } from './metrics.js';
import { smapRegistrationMetrics } from './metrics-registration.js';
import { serveMetrics, type MetricsServer } from '../common/metrics-server.js';
import { ftpMappingText, removeTableText, renderTable } from './nft.js';
import { FtpAlg, type FtpAlgSnapshot } from './ftp-alg.js';
import { linkMtu, monitorAddresses, pickWanAddress } from './wan.js';
import { PathMtu } from './pmtu.js';
import { PMTU_TIMEOUT_RFC_MIN } from '../common/config/schema.js';
import { ICMP6_PACKET_TOO_BIG } from '../common/codec/constants.js';
import { bindingOfLease, endpointFromConfig, RegistrationClient } from './registration.js';
import type { LeaseReply } from '../provisioning/protocol.js';

export interface SmapIo {
  /** offload: ask for TUN offloads ([tunnel] offload = auto); the device says if it got them. */
  openTun(name: string, offload: boolean): TunDevice;
  openTunnel(bind: string): Tunnel6Socket;
  /** Run `ip ARGS` (throws NativeError with ip's message). */
  ip(args: string[]): void;
  /** Run `ip -j ARGS` and parse its JSON (throws NativeError). */
  ipJson(args: string[]): unknown;
  /** Feed `input` to `nft -f -` (throws NativeError with nft's first error line). */
  nft(input: string): void;
  /** Run `conntrack ARGS`; "0 flow entries" is not an error. */
  conntrack(args: string[]): void;
  /** The conntrack table as text (/proc/net/nf_conntrack, or `conntrack -L`). */
  conntrackTable(): Promise<string>;
  /** Conntrack's statistics (/proc/net/stat/nf_conntrack), for the flows it refused. */
  conntrackStats?(): Promise<string>;
  readSysctl(key: string): string | undefined;
  /** Write a sysctl under /proc/sys (best effort). */
  sysctl(key: string, value: string): void;
  writeFile(file: string, text: string): void;
  removeFile(file: string): void;
  /** Call onEvent after IPv6 address changes; returns a stop function. */
  monitorAddresses(onEvent: () => void): () => void;
  /** Run an executable (`[tunnel] mtu_hook`); rejects with its first error line. */
  runHook?(file: string, args: string[]): Promise<void>;
  /** Run a shell command ([tunnel] dnsmasq_reload); throws NativeError with its first error line. */
  runShell?(command: string): void;
  /** `nft -f -` without blocking the data plane (the FTP ALG's per-transfer mappings); else `nft`. */
  nftAsync?(input: string): Promise<void>;
  /** SO_ORIGINAL_DST of a redirected connection; without it the FTP ALG does not run. */
  originalDst?(sock: net.Socket): { address: string; port: number };
}

export interface SmapStatus {
  state: 'waiting_for_wan' | 'registering' | 'running';
  binding: { source: 'static' | 'registration'; shared_ipv4: string; ports: string; port_count: number; prr_ipv6: string } | null;
  /** With [registration]: the PRR, the last error, the lease and when it expires. */
  registration?: { prr: string; state: 'registering' | 'registered' | 'failing'; last_error: string | null; subscriber: string | null; lease_seconds: number | null; expires_at: string | null };
  wan: { interface: string; ipv6: string | null; configured: boolean };
  /** mtu: in force; base: what the config, WAN and lease allow; learnt_mtu: from Packet Too Big, until learnt_until. */
  tunnel: { tun: string; mtu: number | null; base_mtu: number | null; learnt_mtu: number | null; learnt_until: string | null };
  lan: { interface: string; prefix: string };
  counters: CounterSnapshot;
  ports_in_use: PortUsage;
  /** New flows conntrack refused since boot (insert_failed): the set ran out toward a destination. */
  nat_failed: number | null;
  /** The FTP ALG ([nat] ftp), or null when it is off. */
  ftp_alg: FtpAlgSnapshot | null;
  /** TUN offloads ([tunnel] offload) once the TUN is open: on or not, and what they carried. */
  offload: { on: boolean; super_packets_read: number; super_packets_written: number; refused: number } | null;
}

export interface Smap {
  readonly core: SmapCore;
  readonly counters: SmapCounters;
  readonly ftpAlg: FtpAlg | undefined;
  /**
   * Resolves when the WAN address is known and the data plane runs (or when stopped while
   * waiting); rejects when bringing it up failed, with everything set up so far undone.
   */
  readonly ready: Promise<void>;
  wanAddress(): string | undefined;
  status(): Promise<SmapStatus>;
  /** Apply a new binding: table rewritten, LAN conntrack flushed, tunnel pointed at the new PRR. */
  setBinding(b: SmapBinding): void;
  /** Re-read the config file's [static] binding; true when it changed. */
  reload(): boolean;
  stop(): Promise<void>;
}

/** The static binding of a loaded config; a ConfigError when there is none. */
export function staticBinding(cfg: SmapConfig, file: string): SmapBinding {
  const st = cfg.static;
  if (st.shared_ipv4 === undefined || st.ports === undefined || st.prr_ipv6 === undefined) {
    throw new ConfigError('`smap run` takes its binding from [static] (shared_ipv4, ports, prr_ipv6); [registration] is not supported yet', {
      file,
      section: 'static',
    });
  }
  return { shared: st.shared_ipv4, ports: st.ports, prr: ipv6Bytes(st.prr_ipv6) };
}

function sameBinding(a: SmapBinding, b: SmapBinding): boolean {
  return a.shared === b.shared && a.ports.equals(b.ports) && a.prr.equals(b.prr);
}

const WAIT_POLL_MS = 1000;
const WAIT_LOG_EVERY = 30;

/** Textual IPv6 address `text` is the 16 bytes `b`. */
function sameIpv6(text: string, b: Buffer): boolean {
  try {
    return ipv6Bytes(text).equals(b);
  } catch {
    return false;
  }
}

export async function startSmap(cfg: SmapConfig, file: string, log: Logger, io: SmapIo): Promise<Smap> {
  if (cfg.tunnel.pmtu_timeout < PMTU_TIMEOUT_RFC_MIN) {
    log.warn(`${file} [tunnel] pmtu_timeout = ${cfg.tunnel.pmtu_timeout} s is under the 5 minutes of RFC 8201 §4: for labs only`);
  }
  const registering = cfg.static.shared_ipv4 === undefined && cfg.registration.prr_host !== undefined;
  // With [registration] the binding is undefined until the first lease.
  let binding: SmapBinding | undefined = registering ? undefined : staticBinding(cfg, file);
  const { wan_interface: wanIf, tun: tunName, lan_prefix: lanPrefix } = cfg.smap;
  const endpoint = (() => {
    if (!registering) return undefined;
    try {
      return endpointFromConfig(cfg, file, log);
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      throw new ConfigError(`cannot use the registration key: ${(err as Error).message}`, { file, section: 'registration', key: 'key_file' });
    }
  })();
  let client: RegistrationClient | undefined;
  let regState: 'registering' | 'registered' | 'failing' = 'registering';
  let regError: string | null = null;
  let lease: { reply: LeaseReply; at: number } | undefined;
  let linkBasedMtu: number | undefined;
  const core = new SmapCore(binding);
  const counters = new SmapCounters();
  const configuredWan = cfg.smap.wan_ipv6;
  let wan: string | undefined = configuredWan;
  let mtu: number | undefined;
  let pmtu: PathMtu | undefined;
  let pmtuTimer: NodeJS.Timeout | undefined;
  let tun: TunDevice | undefined;
  let dataplane: SmapDataplane | undefined;
  let tableWritten = false;
  let snippetWritten = false;
  let stopMonitor: (() => void) | undefined;
  let stopping = false;
  let wake: (() => void) | undefined;

  const readWan = (): string | undefined => {
    try {
      return pickWanAddress(io.ipJson(['-6', 'addr', 'show', 'dev', wanIf]));
    } catch (err) {
      log.debug(`WAN ${wanIf}: ${(err as Error).message}`);
      return undefined;
    }
  };
  let ftpAlg: FtpAlg | undefined;
  let ftpProxyPort: number | undefined;
  const plan = (): Parameters<typeof renderTable>[0] => ({ tun: tunName, lanPrefix, shared: binding!.shared, ports: binding!.ports, mtu: mtu!, ftpProxyPort });
  const flush = (shared: number): void => {
    for (const args of flushCommands(lanPrefix, shared)) io.conntrack(args);
  };
  const follow = (): void => {
    const now = readWan();
    if (now === undefined || now === wan) {
      wake?.();
      return;
    }
    const was = wan;
    wan = now;
    if (dataplane !== undefined) {
      dataplane.setEndpoints(binding!.prr, ipv6Bytes(now));
      log.info(`WAN address ${was ?? '(none)'} -> ${now}: the tunnel follows (${client !== undefined ? 'registering again' : 'the PRR must know the new address'})`);
    }
    if (client !== undefined && was !== undefined) void client.setIpv6(now);
    wake?.();
  };

  const cleanup = (): void => {
    clearTimeout(pmtuTimer);
    client?.stop();
    stopMonitor?.();
    if (dataplane !== undefined) dataplane.stop();
    else {
      tun?.close();
      tunnel.close();
    }
    if (tableWritten) {
      try {
        io.nft(removeTableText());
      } catch (err) {
        log.warn(`could not remove table ip smap: ${(err as Error).message}`);
      }
    }
    if (snippetWritten && cfg.tunnel.dnsmasq_snippet !== undefined) io.removeFile(cfg.tunnel.dnsmasq_snippet);
  };

  const natFailed = async (): Promise<number | undefined> => {
    try {
      return io.conntrackStats === undefined ? undefined : natFailures(await io.conntrackStats());
    } catch (err) {
      log.debug(`conntrack statistics: ${(err as Error).message}`);
      return undefined;
    }
  };

  const status = async (): Promise<SmapStatus> => {
    let text = '';
    try {
      text = await io.conntrackTable();
    } catch (err) {
      log.debug(`conntrack table: ${(err as Error).message}`);
    }
    return {
      state: dataplane !== undefined ? 'running' : wan !== undefined && registering ? 'registering' : 'waiting_for_wan',
      binding:
        binding === undefined
          ? null
          : {
              source: registering ? 'registration' : 'static',
              shared_ipv4: formatIpv4(binding.shared),
              ports: String(binding.ports),
              port_count: binding.ports.size,
              prr_ipv6: registering ? formatIpv6(binding.prr) : (cfg.static.prr_ipv6 ?? ''),
            },
      ...(endpoint !== undefined
        ? {
            registration: {
              prr: formatHostPort({ host: endpoint.host, port: endpoint.port }),
              state: regState,
              last_error: regError,
              subscriber: lease?.reply.subscriber ?? null,
              lease_seconds: lease?.reply.lease_seconds ?? null,
              expires_at: lease === undefined ? null : new Date(lease.at + lease.reply.lease_seconds * 1000).toISOString(),
            },
          }
        : {}),
      wan: { interface: wanIf, ipv6: wan ?? null, configured: configuredWan !== undefined },
      tunnel: {
        tun: tunName,
        mtu: mtu ?? null,
        base_mtu: pmtu?.base ?? null,
        learnt_mtu: pmtu?.learntMtu ?? null,
        learnt_until: pmtu?.dueAt === undefined ? null : new Date(pmtu.dueAt).toISOString(),
      },
      lan: { interface: cfg.smap.lan_interface, prefix: String(lanPrefix) },
      counters: counters.snapshot(),
      ports_in_use: binding === undefined ? portUsage('', 0) : portUsage(text, binding.shared),
      nat_failed: (await natFailed()) ?? null,
      ftp_alg: ftpAlg?.snapshot() ?? null,
      offload: tunOffload(tun),
    };
  };

  let control: net.Server;
  try {
    control = await serveControl(cfg.smap.control_socket, async (req) => {
      if (req['cmd'] === 'status') return { ok: true, ...(await status()) };
      if (req['cmd'] === 'register') {
        // `smap register`: ask the PRR now; the reply is the status once the answer is applied.
        if (!registering) throw new Error(`this agent takes its binding from [static] in ${file}`);
        if (client === undefined) throw new Error(`not registering yet: ${wanIf} has no global IPv6 address`);
        await client.refresh();
        return { ok: true, ...(await status()) };
      }
      throw new Error(`unknown command ${JSON.stringify(req['cmd'])}: expected status or register`);
    });
  } catch (err) {
    throw new ConfigError(`cannot listen: ${(err as Error).message}`, { file, section: 'smap', key: 'control_socket' });
  }
  const tunnel = (() => {
    try {
      return io.openTunnel('::');
    } catch (err) {
      control.close();
      throw err;
    }
  })();

  // The FTP ALG listens before the table that redirects to it is written.
  if (cfg.nat.ftp && io.originalDst !== undefined) {
    const originalDst = io.originalDst;
    const nft = io.nftAsync ?? (async (input: string) => io.nft(input));
    const alg = new FtpAlg({
      log: log.child('ftp'),
      lanPrefix,
      binding: () => binding,
      io: {
        originalDst,
        addMapping: (m) => nft(ftpMappingText('add', m)),
        removeMapping: (m) => nft(ftpMappingText('delete', m)),
        portsInUse: async (shared) => new Set([...natedFlows(await io.conntrackTable(), shared)].filter((f) => f.proto === 'tcp').map((f) => f.port)),
      },
    });
    try {
      ftpProxyPort = await alg.listen();
      ftpAlg = alg;
    } catch (err) {
      log.warn(`FTP ALG cannot listen (${(err as Error).message}): active FTP will not work`);
    }
  }

  const writeSnippet = (): void => {
    const snippet = cfg.tunnel.dnsmasq_snippet;
    if (snippet !== undefined) {
      io.writeFile(snippet, `# Written by smap: the LAN's MTU is the tunnel MTU (DHCP option 26).\ndhcp-option=option:mtu,${mtu}\n`);
      snippetWritten = true;
      const reload = cfg.tunnel.dnsmasq_reload;
      if (reload !== undefined && io.runShell !== undefined) {
        try {
          io.runShell(reload);
        } catch (err) {
          log.warn(`${file} [tunnel] dnsmasq_reload: ${(err as Error).message}; the LAN gets MTU ${mtu} at dnsmasq's next start`);
        }
      }
    }
    // OpenWrt: the hook sets dnsmasq's option 26 through UCI (provisioning/openwrt/files/dhcp-mtu).
    const hook = cfg.tunnel.mtu_hook;
    if (hook !== undefined && io.runHook !== undefined) {
      const m = String(mtu);
      io.runHook(hook, [m]).then(() => log.info(`${hook} ${m}: the LAN's DHCP MTU is ${m}`), (err: Error) => log.warn(`${file} [tunnel] mtu_hook: ${err.message}`));
    }
  };

  /** The tunnel MTU changed (Packet Too Big, or its expiry): smap0, the core, the MSS clamp, the LAN's DHCP MTU. */
  const applyMtu = (next: number, why: string): void => {
    const was = mtu;
    mtu = next;
    core.setMtu(next);
    try {
      io.ip(['link', 'set', 'dev', tunName, 'mtu', String(next)]);
      io.nft(renderTable(plan()));
      writeSnippet();
      log.info(`tunnel MTU ${was} -> ${next}: ${why}`);
    } catch (err) {
      log.error(`tunnel MTU ${was} -> ${next} (${why}): ${(err as Error).message}`);
    }
  };

  const packetTooBig = (info: number, from: string | null): void => {
    if (pmtu === undefined || !pmtu.tooBig(info)) {
      armPmtuTimer(); // a repeated report restarts the timer
      return;
    }
    counters.global[G.pmtu_lowered]++;
    applyMtu(pmtu.mtu, `Packet Too Big (MTU ${info}) from ${from ?? 'the path'} toward the PRR; held ${cfg.tunnel.pmtu_timeout} s`);
    armPmtuTimer();
  };

  /** One timer for the learnt MTU's expiry (RFC 8201 §4); the kernel's own path MTU is asked then. */
  const armPmtuTimer = (): void => {
    clearTimeout(pmtuTimer);
    const due = pmtu?.dueAt;
    if (due === undefined || stopping) return;
    pmtuTimer = setTimeout(() => {
      if (pmtu === undefined || binding === undefined || stopping) return;
      let kernel: number | undefined;
      try {
        kernel = tunnel.pathMtu(formatIpv6(binding.prr));
      } catch (err) {
        log.debug(`path MTU to the PRR: ${(err as Error).message}`);
      }
      const before = pmtu.mtu;
      if (pmtu.expire(kernel)) {
        counters.global[G.pmtu_raised]++;
        applyMtu(pmtu.mtu, `no Packet Too Big for ${cfg.tunnel.pmtu_timeout} s: trying the larger MTU again (RFC 8201)`);
      } else if (pmtu.learntMtu !== undefined && pmtu.mtu === before) {
        log.debug(`path MTU: the kernel still holds ${kernel ?? '?'} toward the PRR; tunnel MTU stays ${before}`);
      }
      armPmtuTimer();
    }, Math.max(0, due - Date.now()));
    pmtuTimer.unref();
  };

  const bringUp = (): void => {
    if (binding === undefined) return; // [registration]: on the first lease
    const wanMtu = cfg.tunnel.mtu === 'auto' ? linkMtu(io.ipJson(['link', 'show', 'dev', wanIf])) : undefined;
    if (cfg.tunnel.mtu === 'auto' && wanMtu === undefined) throw new NativeError(`WAN ${wanIf}: cannot read its MTU for [tunnel] mtu = auto`);
    mtu = cfg.tunnel.mtu === 'auto' ? wanMtu! - TUNNEL_OVERHEAD : cfg.tunnel.mtu;
    linkBasedMtu = mtu;
    if (lease !== undefined && lease.reply.mtu < mtu) mtu = lease.reply.mtu; // the PRR's tunnel MTU, when smaller
    pmtu = new PathMtu(mtu, cfg.tunnel.pmtu_timeout * 1000);
    core.setMtu(mtu);
    tun = io.openTun(tunName, cfg.tunnel.offload === 'auto');
    if (cfg.tunnel.offload === 'auto') {
      log.info(tun.offload === true ? `${tun.name}: TUN offloads on (super-packets cut and coalesced in user space)`
        : `${tun.name}: the kernel refused TUN offloads; one packet per read and write`);
    }
    // The TUN carries IPv4 only: no link-local IPv6, no router solicitations or MLD into it.
    io.sysctl(`net/ipv6/conf/${tun.name}/disable_ipv6`, '1');
    io.ip(['link', 'set', 'dev', tun.name, 'mtu', String(mtu), 'txqueuelen', String(TUN_QUEUE), 'up']);
    io.ip(['route', 'replace', 'default', 'dev', tun.name]);
    if (io.readSysctl('net/netfilter/nf_conntrack_helper') === '1') {
      io.sysctl('net/netfilter/nf_conntrack_helper', '0');
      log.info('turned off automatic conntrack helper assignment (net.netfilter.nf_conntrack_helper = 0): NAT helpers choose ports outside the set');
    }
    io.nft(renderTable(plan()));
    tableWritten = true;
    flush(binding.shared);
    writeSnippet();
    dataplane = new SmapDataplane(core, counters, tun, tunnel);
    dataplane.onTunnelError = (e) => {
      log.debug(`tunnel error report: ${e.origin} type ${e.type} code ${e.code} info ${e.info} toward ${e.dst ?? '?'} from ${e.offender ?? '?'}`);
      if (e.origin === 'icmp6' && e.type === ICMP6_PACKET_TOO_BIG && binding !== undefined && e.dst !== null && sameIpv6(e.dst, binding.prr)) packetTooBig(e.info, e.offender);
    };
    dataplane.setEndpoints(binding.prr, ipv6Bytes(wan!));
    dataplane.start();
    if (io.readSysctl('net/ipv4/ip_forward') !== '1') {
      log.warn('IPv4 forwarding is off on this host (net.ipv4.ip_forward = 0): the LAN cannot reach the tunnel; run `sysctl -w net.ipv4.ip_forward=1`');
    }
    log.info(`forwarding: ${tun.name} mtu ${mtu}, ${formatIpv4(binding.shared)} ports ${binding.ports} via ${formatIpv6(binding.prr)}, from ${wan}`);
  };

  const onLease = (reply: LeaseReply): void => {
    if (stopping) return;
    let next: SmapBinding;
    try {
      next = bindingOfLease(reply);
    } catch (err) {
      regState = 'failing';
      regError = (err as Error).message;
      log.error(`${regError}; binding unchanged`);
      return;
    }
    const renewed = lease !== undefined;
    lease = { reply, at: Date.now() };
    regState = 'registered';
    regError = null;
    if (binding === undefined) {
      binding = next;
      core.setBinding(next);
      try {
        bringUp();
      } catch (err) {
        log.error(`cannot apply the lease: ${(err as Error).message}`);
        binding = undefined;
        core.setBinding(undefined);
        regState = 'failing';
        regError = (err as Error).message;
        return;
      }
      log.info(`registered as ${reply.subscriber}: ${reply.shared_ipv4} ports ${reply.ports} via ${reply.prr_ipv6}, lease ${reply.lease_seconds} s`);
      return;
    }
    pmtu?.setBase(Math.min(linkBasedMtu ?? reply.mtu, reply.mtu));
    const nextMtu = pmtu?.mtu ?? reply.mtu;
    const mtuChanged = dataplane !== undefined && nextMtu !== mtu;
    try {
      if (mtuChanged) {
        log.info(`tunnel MTU ${mtu} -> ${nextMtu} (the lease's)`);
        mtu = nextMtu;
        core.setMtu(mtu);
        io.ip(['link', 'set', 'dev', tunName, 'mtu', String(mtu)]);
        writeSnippet();
      }
      if (!sameBinding(next, binding)) smap.setBinding(next);
      else if (mtuChanged) io.nft(renderTable(plan()));
      else if (renewed) log.debug(`lease renewed: ${reply.lease_seconds} s`);
    } catch (err) {
      regState = 'failing';
      regError = `cannot apply the lease: ${(err as Error).message}`;
      log.error(regError);
    }
  };

  const ready = (async () => {
    if (configuredWan === undefined) {
      stopMonitor = io.monitorAddresses(follow);
      wan = readWan();
      for (let i = 1; wan === undefined && !stopping; i++) {
        if (i === 1) log.info(`waiting for a global IPv6 address on ${wanIf} (SLAAC)`);
        else if (i % WAIT_LOG_EVERY === 0) log.info(`still waiting for a global IPv6 address on ${wanIf}`);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, WAIT_POLL_MS);
          wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
        wake = undefined;
        wan ??= readWan();
      }
      if (stopping) return;
    }
    if (endpoint !== undefined) {
      log.info(`registering with ${formatHostPort({ host: endpoint.host, port: endpoint.port })} as ${wan}`);
      client = new RegistrationClient({
        endpoint,
        ipv6: wan!,
        log: {
          debug: (m: string) => log.debug(m),
          info: (m: string) => log.info(m),
          child: (c: string) => log.child(c),
          warn: (m: string) => {
            regState = 'failing';
            regError = m;
            log.warn(m);
          },
          error: (m: string) => {
            regState = 'failing';
            regError = m;
            log.error(m);
          },
        },
        onLease,
        usage: async () => (binding === undefined ? undefined : usageReport(portUsage(await io.conntrackTable(), binding.shared))),
      });
      void client.start();
      return;
    }
    try {
      bringUp();
    } catch (err) {
      stopping = true;
      cleanup();
      throw err;
    }
  })();

  // Metrics are not worth a CPE that does not forward: a listener that fails is a warning.
  let metrics: MetricsServer | undefined;
  if (cfg.metrics.enabled) {
    const registry = smapRegistry({ counters, binding: () => binding ?? { shared: 0, ports: { size: 0 } as SmapBinding['ports'] }, tunnelMtu: () => mtu, conntrackTable: () => io.conntrackTable(), natFailed, ftpAlg: () => ftpAlg?.snapshot(), offload: () => tunOffload(tun) });
    if (registering) {
      smapRegistrationMetrics(registry, {
        state: () => regState,
        leaseEndsAt: () => (lease === undefined ? undefined : lease.at + lease.reply.lease_seconds * 1000),
        counts: () => client?.counts ?? { ok: 0, failed: 0, host_key_mismatch: 0 },
      });
    }
    try {
      metrics = await serveMetrics(registry, cfg.metrics.listen);
      log.info(`metrics on http://${formatHostPort(metrics.address)}/metrics`);
    } catch (err) {
      log.warn(`${file} [metrics] listen: ${(err as Error).message}; forwarding without metrics`);
    }
  }

  const smap: Smap = {
    core,
    counters,
    ftpAlg,
    ready,
    wanAddress: () => wan,
    status,
    setBinding(next) {
      const old = binding;
      binding = next;
      core.setBinding(next);
      if (dataplane === undefined || old === undefined) return;
      io.nft(renderTable(plan()));
      flush(old.shared);
      if (next.shared !== old.shared) flush(next.shared);
      dataplane.setEndpoints(next.prr, ipv6Bytes(wan!));
      log.info(`binding changed: ${formatIpv4(next.shared)} ports ${next.ports}; LAN conntrack entries flushed`);
      if (!next.prr.equals(old.prr) && pmtu?.learntMtu !== undefined) {
        pmtu.forget(); // learnt on the path to the old PRR
        clearTimeout(pmtuTimer);
        applyMtu(pmtu.mtu, 'a new PRR, a new path: the learnt path MTU is forgotten');
      }
    },
    reload() {
      if (registering) {
        // SIGHUP with [registration] (OpenWrt's hotplug on WAN up, `smap register`): the binding is
        // the PRR's, so ask it now rather than at the next renewal.
        if (client === undefined) return false;
        const was = wan;
        if (configuredWan === undefined) follow(); // a new address registers by itself
        if (wan === was) void client.refresh();
        log.info(`reload: registering again as ${wan}`);
        return false;
      }
      const next = staticBinding(loadSmapConfig(file), file);
      if (binding !== undefined && sameBinding(next, binding)) {
        log.info(`reloaded ${file}: binding unchanged`);
        return false;
      }
      smap.setBinding(next);
      return true;
    },
    async stop() {
      const failed = stopping; // bringUp failed and cleaned up already
      stopping = true;
      client?.stop();
      wake?.();
      await ready.catch(() => undefined);
      if (!failed) cleanup();
      await ftpAlg?.close();
      await metrics?.close();
      await new Promise<void>((resolve) => control.close(() => resolve()));
      log.info('stopped');
    },
  };
  ready.catch(() => undefined); // the caller awaits `ready`; never an unhandled rejection
  return smap;
}

// ---- the real system ----------------------------------------------------------------------------

function run(cmd: string, args: string[], input?: string): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    const msg = (e.stderr ?? '').trim().split('\n').find((l) => l.trim() !== '') ?? e.message;
    throw new NativeError(`${cmd} ${args.join(' ')}: ${msg.trim()}`);
  }
}

const PROC_CONNTRACK = '/proc/net/nf_conntrack';
/** World-readable, per network namespace. */
const PROC_CONNTRACK_STAT = '/proc/net/stat/nf_conntrack';

/** The SmapIo of a real host: the ip, nft and conntrack tools, /proc/sys. */
function tunOffload(tun: TunDevice | undefined): SmapStatus['offload'] {
  if (tun === undefined) return null;
  const st = tun.stats();
  return { on: tun.offload === true, super_packets_read: st.gsoRx, super_packets_written: st.gsoTx, refused: st.gsoBad };
}

export function systemIo(openTun: SmapIo['openTun'], openTunnel: SmapIo['openTunnel'], originalDst: (fd: number) => { address: string; port: number }): SmapIo {
  return {
    openTun,
    openTunnel,
    ip: (args) => void run('ip', args),
    ipJson: (args) => JSON.parse(run('ip', ['-j', ...args]) || '[]') as unknown,
    nft: (input) => void run('nft', ['-f', '-'], input),
    nftAsync: (input) =>
      new Promise<void>((resolve, reject) => {
        const child = execFile('nft', ['-f', '-'], { encoding: 'utf8' }, (err, _out, stderr) => {
          if (err === null) return resolve();
          const msg = stderr.trim().split('\n').find((l) => l.trim() !== '') ?? err.message;
          reject(new NativeError(`nft -f -: ${msg.trim()}`));
        });
        child.stdin?.end(input);
      }),
    conntrack(args) {
      try {
        execFileSync('conntrack', args, { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
      } catch (err) {
        const e = err as { stderr?: string; message: string };
        // `conntrack -D` exits 1 when nothing matched: that is a successful flush.
        if (/0 flow entries/.test(e.stderr ?? '')) return;
        throw new NativeError(`conntrack ${args.join(' ')}: ${(e.stderr ?? e.message).trim().split('\n')[0]}`);
      }
    },
    async conntrackTable() {
      // The /proc file is 0440 root: an agent running as its own user (systemd unit) reads the
      // table over netlink with `conntrack -L`, which CAP_NET_ADMIN allows.
      if (existsSync(PROC_CONNTRACK)) {
        try {
          return await readFile(PROC_CONNTRACK, 'utf8');
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EACCES') throw err;
        }
      }
      return run('conntrack', ['-L', '-f', 'ipv4']);
    },
    conntrackStats: () => readFile(PROC_CONNTRACK_STAT, 'utf8'),
    readSysctl(key) {
      try {
        return readFileSync(`/proc/sys/${key}`, 'utf8').trim();
      } catch {
        return undefined;
      }
    },
    sysctl(key, value) {
      try {
        writeFileSync(`/proc/sys/${key}`, value);
      } catch {
        /* best effort: an absent key changes nothing we rely on */
      }
    },
    writeFile(file, text) {
      mkdirSync(path.dirname(file), { recursive: true });
      writeFileSync(file, text);
    },
    removeFile: (file) => rmSync(file, { force: true }),
    monitorAddresses: (onEvent) => monitorAddresses(onEvent),
    runHook: (file, args) =>
      new Promise((resolve, reject) => {
        execFile(file, args, { timeout: 30_000 }, (err, _out, stderr) => {
          if (err === null) return resolve();
          const line = String(stderr).trim().split('\n').find((l) => l.trim() !== '') ?? err.message;
          reject(new NativeError(`${file} ${args.join(' ')}: ${line.trim()}`));
        });
      }),
    originalDst: (sock) => originalDst((sock as unknown as { _handle?: { fd?: number } })._handle?.fd ?? -1),
    runShell: (command) => void run('/bin/sh', ['-c', command]),
  };
}
