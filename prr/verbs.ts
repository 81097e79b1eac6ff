/**
 * The PRR's long-running and operator verbs: `prr run` and `prr subscribers list|show|bind|release|authorize`.
 * (`prr check-config` is in cli.ts.) Each is one function adding one subcommand.
 */
import type { Command } from 'commander';
import type { CliIo } from '../common/cli.js';
import { createLogger, type Logger } from '../common/log.js';
import { adviseHugePages, openIcmp6, openTun, openTunnel6 } from '../common/native/index.js';
import { controlRequest, ControlError, type SubscriberView } from './control.js';
import { ipCommand, startPrr, writeSysctl, type Prr } from './daemon.js';
import { loadPrrModel } from './model.js';
import { authorizeFile } from './authorize.js';
import { loadPrrConfig } from '../common/config/prr.js';
import { existsSync, readFileSync } from 'node:fs';
import { collectGarbage } from '../common/gc.js';

export const DEFAULT_CONFIG = '/etc/prr/prr.ini';
/** Bindings from which a load is worth a full garbage collection right after (common/gc.ts). */
const BIG_LOAD = 10_000;

/** Load and start; the loaded model (with every static binding) dies with this frame. */
async function start(file: string): Promise<{ prr: Prr; log: Logger }> {
  const loaded = loadPrrModel(file);
  const log = createLogger('prr', loaded.logLevel);
  const prr = await startPrr(loaded, log, {
    openTun: (name, opts) => openTun({ name, rawOutput: opts?.rawOutput ?? false, offload: opts?.offload ?? false }),
    openTunnel: (bind) => openTunnel6({ bind }),
    openIcmp6: (bind) => openIcmp6({ bind }),
    adviseMemory: (buf) => adviseHugePages(buf),
    ip: ipCommand,
    sysctl: writeSysctl,
  });
  return { prr, log };
}

/** `prr run --config FILE`: forward until SIGTERM/SIGINT; SIGHUP re-reads static bindings. */
export function runVerb(program: Command, io: CliIo): void {
  program
    .command('run')
    .description('run the PRR: TUN, tunnel socket, bindings, control socket; SIGHUP reloads static bindings')
    .option('-c, --config <file>', 'config file (prr.ini or the 2010 flat file)', DEFAULT_CONFIG)
    .action(async (opts: { config: string }) => {
      const { prr, log } = await start(opts.config);
      // The loaded model died with start()'s frame: collect it and the rest of the load's garbage
      // (config text, store rows) now, or RSS stays at the load's peak for as long as the PRR runs.
      if (prr.table.size >= BIG_LOAD) collectGarbage();
      const model = prr.model; // without the static bindings: the table holds them
      io.out(`prr: running (${model.file}, ${prr.table.size} bindings)\n`);
      await new Promise<void>((resolve) => {
        const stop = (): void => {
          process.off('SIGHUP', hup);
          resolve();
        };
        const hup = (): void => {
          try {
            prr.reload();
          } catch (err) {
            log.error(`reload failed, bindings unchanged: ${(err as Error).message}`);
          }
        };
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
        process.on('SIGHUP', hup);
      });
      await prr.stop();
    });
}

function socketOf(opts: { socket?: string; config: string }): string {
  return opts.socket ?? loadPrrModel(opts.config).controlSocket;
}

async function ask(opts: { socket?: string; config: string }, req: Record<string, unknown>): Promise<Record<string, unknown>> {
  const reply = await controlRequest(socketOf(opts), req);
  if (reply['ok'] !== true) throw new ControlError(String(reply['error'] ?? 'the PRR refused the request'));
  return reply;
}

function line(s: SubscriberView): string {
  return [s.name, s.ipv6, s.ipv4, s.ports, String(s.from_cpe_packets), String(s.to_cpe_packets), String(s.drops)].join('\t');
}

/** `prr subscribers list|show|bind|release`: read and change a running PRR's bindings. */
export function subscribersVerb(program: Command, io: CliIo): void {
  const sub = program.command('subscribers').description("inspect and change a running PRR's bindings (control socket)");
  const common = (c: Command): Command =>
    c.option('-c, --config <file>', 'config file, to find the control socket', DEFAULT_CONFIG).option('-s, --socket <path>', 'control socket path (overrides the config)').option('--json', 'print JSON');
  common(sub.command('list').description('one line per binding: name, IPv6, IPv4, ports, packets from/to CPE, drops'))
    .option('-n, --limit <n>', 'at most this many', '1000')
    .action(async (opts: { config: string; socket?: string; json?: boolean; limit: string }) => {
      const r = await ask(opts, { cmd: 'list', limit: Number(opts.limit) });
      if (opts.json) return io.out(JSON.stringify(r, null, 2) + '\n');
      io.out('name\tipv6\tipv4\tports\tfrom_cpe_packets\tto_cpe_packets\tdrops\n');
      for (const s of r['subscribers'] as SubscriberView[]) io.out(line(s) + '\n');
      io.out(`# ${String(r['total'])} bindings\n`);
    });
  common(sub.command('show').argument('<name>').description('one binding with its counters'))
    .action(async (name: string, opts: { config: string; socket?: string; json?: boolean }) => {
      const r = await ask(opts, { cmd: 'show', name });
      if (opts.json) return io.out(JSON.stringify(r['subscriber'], null, 2) + '\n');
      for (const [k, v] of Object.entries(r['subscriber'] as SubscriberView)) io.out(`${k}: ${String(v)}\n`);
    });
  common(sub.command('bind').argument('<name>').description('add a binding, or change it in place (counters kept)'))
    .requiredOption('--ipv6 <addr>', "the CPE's IPv6 address")
    .requiredOption('--ipv4 <addr>', 'the shared IPv4 address')
    .requiredOption('--ports <set>', 'port set: FIRST-LAST or psid:a=6/k=K/id=N')
    .option('--br <addr>', 'tunnel endpoint address the CPE uses')
    .action(async (name: string, opts: { config: string; socket?: string; json?: boolean; ipv6: string; ipv4: string; ports: string; br?: string }) => {
      const r = await ask(opts, { cmd: 'bind', name, ipv6: opts.ipv6, ipv4: opts.ipv4, ports: opts.ports, ...(opts.br ? { br: opts.br } : {}) });
      io.out(`${r['created'] ? 'added' : 'changed'}: ${line(r['subscriber'] as SubscriberView)}\n`);
    });
  common(sub.command('release').argument('<name>').description('remove a binding at once'))
    .action(async (name: string, opts: { config: string; socket?: string }) => {
      const r = await ask(opts, { cmd: 'release', name });
      io.out(`released: ${name} (${String(r['released'])} binding${r['released'] === 1 ? '' : 's'})\n`);
    });
  common(sub.command('authorize').argument('<key>', 'the CPE\'s public key ("ssh-ed25519 AAAA... comment") or a .pub file holding it'))
    .description("authorize a CPE's key for registration, or change its options; the running PRR re-reads the file at once")
    .option('--name <name>', 'subscriber name')
    .option('--ports <n>', "this key's set size")
    .option('--set <set>', "this key's fixed set: FIRST-LAST or psid:a=6/k=K/id=N")
    .option('--authorized-keys <file>', 'the file (default: [registration] authorized_keys of the config)')
    .action(async (key: string, opts: { config: string; socket?: string; name?: string; ports?: string; set?: string; authorizedKeys?: string }) => {
      const file = opts.authorizedKeys ?? loadPrrConfig(opts.config).registration.authorized_keys;
      const text = !key.includes(' ') && existsSync(key) ? readFileSync(key, 'utf8') : key;
      const r = authorizeFile(file, text, opts);
      io.out(`${r.replaced ? 'changed' : 'added'}: ${r.fingerprint} in ${file}: ${r.line.length > 100 ? `${r.line.slice(0, 100)}...` : r.line}\n`);
      try {
        const reply = await ask(opts, { cmd: 'reload_keys' });
        io.out(`the running PRR re-read it: ${String(reply['keys'])} keys\n`);
      } catch (err) {
        io.out(`not applied to a running PRR (${(err as Error).message}); it reads the file when it starts\n`);
      }
    });
  common(sub.command('stats').description('global counters and drops by reason'))
    .action(async (opts: { config: string; socket?: string }) => {
      const r = await ask(opts, { cmd: 'stats' });
      io.out(JSON.stringify(r, null, 2) + '\n');
    });
}
