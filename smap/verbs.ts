/**
 * The SMAP's long-running and operator verbs: `smap run`, `smap status` and `smap register`.
 * (`smap check-config` is in cli.ts.) Each is one function adding one subcommand.
 */
import type { Command } from 'commander';
import type { CliIo } from '../common/cli.js';
import { loadSmapConfig } from '../common/config/smap.js';
import { controlRequest, ControlError } from '../common/control.js';
import { createLogger } from '../common/log.js';
import { openTun, openTunnel6, originalDst } from '../common/native/index.js';
import { startSmap, systemIo, type SmapStatus } from './daemon.js';
import { endpointFromConfig, register } from './registration.js';
import { pickWanAddress } from './wan.js';
import { execFileSync } from 'node:child_process';
import { TUNNEL_RING } from './dataplane.js';

export const DEFAULT_CONFIG = '/etc/smap/smap.ini';

/** How control-socket errors name the agent. */
export const AGENT = { who: 'the agent', verb: 'smap run' };

/** `smap run --config FILE`: forward until SIGTERM/SIGINT; SIGHUP re-reads the [static] binding. */
export function runVerb(program: Command, io: CliIo): void {
  program
    .command('run')
    .description('run the agent: NAT table, TUN, tunnel to the PRR, control socket; SIGHUP reloads [static]')
    .option('-c, --config <file>', 'config file', DEFAULT_CONFIG)
    .action(async (opts: { config: string }) => {
      const cfg = loadSmapConfig(opts.config);
      const log = createLogger('smap', cfg.smap.log_level);
      const smap = await startSmap(cfg, opts.config, log, systemIo((name, offload) => openTun({ name, offload }), (bind) => openTunnel6({ bind, ...TUNNEL_RING }), originalDst));
      let stopped = false;
      const stopped$ = new Promise<void>((resolve) => {
        const stop = (): void => {
          stopped = true;
          process.off('SIGHUP', hup);
          resolve();
        };
        const hup = (): void => {
          try {
            smap.reload();
          } catch (err) {
            log.error(`reload failed, binding unchanged: ${(err as Error).message}`);
          }
        };
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
        process.on('SIGHUP', hup);
      });
      try {
        await Promise.race([smap.ready, stopped$]);
      } catch (err) {
        await smap.stop();
        throw err;
      }
      if (!stopped) {
        io.out(`smap: running (${opts.config}, wan ${smap.wanAddress() ?? '?'})\n`);
        await stopped$;
      }
      await smap.stop();
    });
}

function pairs(o: Record<string, number>): string {
  const e = Object.entries(o);
  return e.length === 0 ? 'none' : e.map(([k, v]) => `${k} ${v}`).join(', ');
}

/** The human form of `smap status`. */
export function formatStatus(s: SmapStatus): string {
  const u = s.ports_in_use;
  return [
    `state: ${s.state}`,
    s.binding === null
      ? 'binding: none yet'
      : `binding: ${s.binding.source} ${s.binding.shared_ipv4} ports ${s.binding.ports} (${s.binding.port_count} ports) via ${s.binding.prr_ipv6}`,
    ...(s.registration === undefined
      ? []
      : [`registration: ${s.registration.prr} ${s.registration.state}${s.registration.subscriber !== null ? ` as ${s.registration.subscriber}` : ''}${s.registration.expires_at !== null ? `, lease expires ${s.registration.expires_at}` : ''}${s.registration.last_error !== null ? ` (last error: ${s.registration.last_error})` : ''}`]),
    `wan: ${s.wan.interface} ${s.wan.ipv6 ?? '(no address yet)'}${s.wan.configured ? ' (configured)' : ''}`,
    `tunnel: ${s.tunnel.tun} mtu ${s.tunnel.mtu ?? '(not up)'}${s.tunnel.learnt_mtu != null ? ` (path MTU ${s.tunnel.learnt_mtu} from Packet Too Big, until ${s.tunnel.learnt_until}; full ${s.tunnel.base_mtu})` : ''}`,
    ...(s.offload == null
      ? []
      : [s.offload.on
        ? `offload: on (${s.offload.super_packets_read} super-packets read and cut, ${s.offload.super_packets_written} written coalesced, ${s.offload.refused} refused)`
        : 'offload: off']),
    `lan: ${s.lan.interface} ${s.lan.prefix}`,
    `ports in use: ${pairs(u.byProtocol)} (${u.flows} flows: ${pairs(u.byService)})`,
    `counters: ${pairs(s.counters.global)}`,
    `drops to prr: ${pairs(s.counters.drops_out)}`,
    `drops from tunnel: ${pairs(s.counters.drops_in)}`,
    ...(s.ftp_alg == null
      ? []
      : [`ftp alg: ${s.ftp_alg.active_sessions} sessions, ${s.ftp_alg.active_mappings} data mappings; ${pairs(Object.fromEntries(Object.entries(s.ftp_alg.events).filter(([, v]) => v !== 0)))}`]),
    '',
  ].join('\n');
}

/** `smap status`: binding, WAN address, tunnel MTU, counters, ports in use, from the running agent. */
export function statusVerb(program: Command, io: CliIo): void {
  program
    .command('status')
    .description('show the running agent: binding, WAN address, tunnel MTU, counters, ports in use')
    .option('-c, --config <file>', 'config file, to find the control socket', DEFAULT_CONFIG)
    .option('-s, --socket <path>', 'control socket path (overrides the config)')
    .option('--json', 'print JSON')
    .action(async (opts: { config: string; socket?: string; json?: boolean }) => {
      const socket = opts.socket ?? loadSmapConfig(opts.config).smap.control_socket;
      const r = await controlRequest(socket, { cmd: 'status' }, AGENT);
      if (r['ok'] !== true) throw new ControlError(String(r['error'] ?? 'the agent refused the request'));
      if (opts.json) return io.out(JSON.stringify(r, null, 2) + '\n');
      io.out(formatStatus(r as unknown as SmapStatus));
    });
}

/**
 * `smap register`: register with the PRR now. With the agent running, it asks the PRR at once and
 * applies the answer (a changed binding included); without one, it registers once from the
 * config and prints the lease, applying nothing.
 */
export function registerVerb(program: Command, io: CliIo): void {
  program
    .command('register')
    .description('register with the PRR now (through the running agent, or once from the config)')
    .option('-c, --config <file>', 'config file', DEFAULT_CONFIG)
    .option('--ipv6 <addr>', 'without a running agent: the WAN address to register (default: [smap] wan_ipv6, else the WAN interface)')
    .option('--json', 'print JSON')
    .action(async (opts: { config: string; ipv6?: string; json?: boolean }) => {
      const cfg = loadSmapConfig(opts.config);
      let r: Record<string, unknown> | undefined;
      try {
        r = await controlRequest(cfg.smap.control_socket, { cmd: 'register' }, { ...AGENT, timeoutMs: 60_000 });
      } catch (err) {
        if (!(err instanceof ControlError) || !/not running|connect|ENOENT|ECONNREFUSED/i.test(err.message)) throw err;
      }
      if (r !== undefined) {
        if (r['ok'] !== true) throw new ControlError(String(r['error'] ?? 'the agent refused the request'));
        const s = r as unknown as SmapStatus;
        if (opts.json) return io.out(JSON.stringify(s, null, 2) + '\n');
        if (s.registration?.state === 'failing') throw new ControlError(`registration failed: ${s.registration.last_error ?? 'unknown error'}`);
        return io.out(formatStatus(s));
      }
      const log = createLogger('smap', cfg.smap.log_level);
      const ep = endpointFromConfig(cfg, opts.config, log);
      const ipv6 = opts.ipv6 ?? cfg.smap.wan_ipv6 ?? wanAddressOf(cfg.smap.wan_interface);
      const lease = await register(ep, ipv6);
      io.out(opts.json ? JSON.stringify(lease, null, 2) + '\n' : `registered as ${lease.subscriber}: ${lease.shared_ipv4} ports ${lease.ports} via ${lease.prr_ipv6}, lease ${lease.lease_seconds} s, mtu ${lease.mtu} (no agent running: nothing applied)\n`);
    });
}

function wanAddressOf(dev: string): string {
  let json: unknown;
  try {
    json = JSON.parse(execFileSync('ip', ['-j', '-6', 'addr', 'show', 'dev', dev], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }));
  } catch (err) {
    throw new ControlError(`cannot read the address of ${dev}: ${(err as Error).message.split('\n')[0]}`);
  }
  const a = pickWanAddress(json);
  if (a === undefined) throw new ControlError(`${dev} has no global IPv6 address; give --ipv6`);
  return a;
}
