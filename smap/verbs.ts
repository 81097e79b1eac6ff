/**
 * The SMAP's long-running and operator verbs: `smap run` and `smap status`.
 * (`smap check-config` is in cli.ts.) Each is one function adding one subcommand.
 */
import type { Command } from 'commander';
import type { CliIo } from '../common/cli.js';
import { loadSmapConfig } from '../common/config/smap.js';
import { controlRequest, ControlError } from '../common/control.js';
import { createLogger } from '../common/log.js';
import { openTun, openTunnel6 } from '../common/native/index.js';
import { startSmap, systemIo, type SmapStatus } from './daemon.js';
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
      const smap = await startSmap(cfg, opts.config, log, systemIo((name) => openTun({ name }), (bind) => openTunnel6({ bind, ...TUNNEL_RING })));
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
    `tunnel: ${s.tunnel.tun} mtu ${s.tunnel.mtu ?? '(not up)'}`,
    `lan: ${s.lan.interface} ${s.lan.prefix}`,
    `ports in use: ${pairs(u.byProtocol)} (${u.flows} flows: ${pairs(u.byService)})`,
    `counters: ${pairs(s.counters.global)}`,
    `drops to prr: ${pairs(s.counters.drops_out)}`,
    `drops from tunnel: ${pairs(s.counters.drops_in)}`,
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
