/**
 * OpenWrt: /etc/config/smap (UCI) turned into smap.ini, which `smap run` reads. The OpenWrt
 * init script (provisioning/openwrt/files/smap.init) runs `smap uci-to-ini` at every start.
 *
 * The UCI file has the INI file's sections as section types and its keys as options, plus
 * `option enabled` in `config smap` (default 1), which stays in UCI:
 *
 *   config smap 'smap'
 *   	option enabled '1'
 *   	option wan_interface 'wan'
 *   config registration 'registration'
 *   	option prr_host '2001:db8:ffff::1'
 *   	option host_key_fingerprint 'SHA256:...'
 *
 * The whole result is checked by the INI schema before anything is written, and an error names
 * the UCI file, line, section and option. Paths must be absolute: the INI is written elsewhere.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import type { CliIo } from '../common/cli.js';
import { parseSmapConfig, smapSchema } from '../common/config/smap.js';
import { parseUci, uciBool, uciToIni } from '../common/config/uci.js';
import { ConfigError } from '../common/errors.js';

export const DEFAULT_UCI = '/etc/config/smap';
/** Where `smap run` and `smap status` look by default; rewritten only when it changes (flash). */
export const DEFAULT_UCI_INI = '/etc/smap/smap.ini';

export interface SmapUci {
  /** smap.ini text, compact, with a header saying where it came from. */
  ini: string;
  enabled: boolean;
}

/** Converts and checks; throws a one-line ConfigError naming the UCI file's line and option. */
export function smapIniFromUci(text: string, file: string): SmapUci {
  const sections = parseUci(text, file);
  const { ini } = uciToIni(sections, file, { sections: Object.keys(smapSchema.sections), skip: { smap: ['enabled'] }, paths: /_(file|socket|snippet|hook)$/ });
  const en = sections.find((s) => s.type === 'smap')?.options.find((o) => o.name === 'enabled');
  const enabled = uciBool(en?.values[0], true);
  if (enabled === undefined) {
    throw new ConfigError(`expected 1 or 0 (yes/no, on/off, true/false), got ${JSON.stringify(en?.values[0])}`, { file, line: en?.line, section: 'smap', key: 'enabled' });
  }
  parseSmapConfig(ini, file); // the line numbers of `ini` are the UCI file's
  const body = ini.split('\n').filter((l) => l !== '').map((l) => (l.startsWith('[') ? `\n${l}` : l));
  return { ini: `; Written by \`smap uci-to-ini\` from ${file} at start: edit that file (uci), not this one.\n${body.join('\n')}\n`, enabled };
}

/** Atomic (temporary file, rename), and nothing at all when the text is the same: /etc is flash. */
function writeIfChanged(file: string, text: string): void {
  try {
    if (readFileSync(file, 'utf8') === text) return;
  } catch {
    /* first start: no file yet */
  }
  try {
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(`${file}.tmp`, text, { mode: 0o644 });
    renameSync(`${file}.tmp`, file);
  } catch (err) {
    throw new ConfigError(`cannot write: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { file });
  }
}

/** `smap uci-to-ini [--uci FILE] [--out FILE]`: write the INI, print "enabled" or "disabled". */
export function uciToIniVerb(program: Command, io: CliIo): void {
  program
    .command('uci-to-ini')
    .description('OpenWrt: turn the UCI config into smap.ini (checked), print "enabled" or "disabled"')
    .option('--uci <file>', 'UCI config file', DEFAULT_UCI)
    .option('--out <file>', 'smap.ini to write', DEFAULT_UCI_INI)
    .action((opts: { uci: string; out: string }) => {
      let text: string;
      try {
        text = readFileSync(opts.uci, 'utf8');
      } catch (err) {
        throw new ConfigError(`cannot read UCI config: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { file: opts.uci });
      }
      const r = smapIniFromUci(text, opts.uci);
      writeIfChanged(opts.out, r.ini);
      io.out(r.enabled ? 'enabled\n' : 'disabled\n');
    });
}
