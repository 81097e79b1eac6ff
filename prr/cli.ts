#!/usr/bin/env node
/**
 * `prr`: the Port Range Router's command line. One function per verb; errors and exit codes are
 * handled once, in common/cli.ts (a bad flag or config: one line on stderr, exit 2).
 */
import type { Command } from 'commander';
import { buildProgram, main, type CliIo, type Verb } from '../common/cli.js';
import { loadPrrConfig, summarizePrr } from '../common/config/prr.js';

export const DEFAULT_CONFIG = '/etc/prr/prr.ini';

/** `prr check-config [--config FILE]`: load and validate, print a one-line summary. */
function checkConfig(program: Command, io: CliIo): void {
  program
    .command('check-config')
    .description('load and validate the config file, print a one-line summary')
    .option('-c, --config <file>', 'config file', DEFAULT_CONFIG)
    .action((opts: { config: string }) => {
      const cfg = loadPrrConfig(opts.config);
      io.out(`ok: ${opts.config}: ${summarizePrr(cfg)}\n`);
    });
}

const verbs: readonly Verb[] = [checkConfig];

await main(buildProgram('prr', 'A+P Port Range Router: IPv4-in-IPv6 for shared IPv4 addresses', verbs));
