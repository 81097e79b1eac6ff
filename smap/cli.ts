#!/usr/bin/env node
/**
 * `smap`: the CPE agent's command line. One function per verb; errors and exit codes are handled
 * once, in common/cli.ts (a bad flag or config: one line on stderr, exit 2).
 */
import type { Command } from 'commander';
import { buildProgram, main, type CliIo, type Verb } from '../common/cli.js';
import { loadSmapConfig, summarizeSmap } from '../common/config/smap.js';
import { uciToIniVerb } from './uci.js';
import { registerVerb, runVerb, statusVerb } from './verbs.js';
import { initVerb } from './init.js';

export const DEFAULT_CONFIG = '/etc/smap/smap.ini';

/** `smap check-config [--config FILE]`: load and validate, print a one-line summary. */
function checkConfig(program: Command, io: CliIo): void {
  program
    .command('check-config')
    .description('load and validate the config file, print a one-line summary')
    .option('-c, --config <file>', 'config file', DEFAULT_CONFIG)
    .action((opts: { config: string }) => {
      const cfg = loadSmapConfig(opts.config);
      io.out(`ok: ${opts.config}: ${summarizeSmap(cfg)}\n`);
    });
}

const verbs: readonly Verb[] = [checkConfig, runVerb, statusVerb, registerVerb, initVerb, uciToIniVerb];

await main(buildProgram('smap', 'A+P CPE agent: NAT into a port set, IPv4-in-IPv6 tunnel to the PRR', verbs));
