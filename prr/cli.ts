#!/usr/bin/env node
/**
 * `prr`: the Port Range Router's command line. One function per verb; errors and exit codes are
 * handled once, in common/cli.ts (a bad flag or config: one line on stderr, exit 2).
 */
import type { Command } from 'commander';
import { buildProgram, main, type CliIo, type Verb } from '../common/cli.js';
import { loadPrrModel, summarizeModel } from './model.js';
import { DEFAULT_CONFIG, runVerb, subscribersVerb } from './verbs.js';
import { initVerb } from './init.js';

/**
 * `prr check-config [--config FILE]`: load and validate, print a one-line summary. FILE is a
 * prr.ini or the 2010 experiment's flat file (told apart by content, see prr/model.ts):
 *   ok: /etc/prr/prr.ini (ini): 2 subscribers, pool 192.0.2.0/30, tunnel MTU 1460
 */
function checkConfig(program: Command, io: CliIo): void {
  program
    .command('check-config')
    .description('load and validate the config file (prr.ini or the 2010 flat file), print a one-line summary')
    .option('-c, --config <file>', 'config file', DEFAULT_CONFIG)
    .action((opts: { config: string }) => {
      const model = loadPrrModel(opts.config);
      io.out(`ok: ${opts.config} (${model.source}): ${summarizeModel(model)}\n`);
    });
}

const verbs: readonly Verb[] = [checkConfig, runVerb, subscribersVerb, initVerb];

await main(buildProgram('prr', 'A+P Port Range Router: IPv4-in-IPv6 for shared IPv4 addresses', verbs));
