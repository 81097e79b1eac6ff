/**
 * What `prr init` and `smap init` share: write a set of new files all or nothing, refusing to
 * replace any of them unless forced, and a key pair with its private half at mode 0600.
 *
 * Every target is checked before the first write, so a refusal leaves the disk as it was.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError, UsageError } from '../common/errors.js';
import type { OpenSshKeyPair } from './keys.js';

export interface NewFile {
  file: string;
  text: string;
  mode: number;
  /** Keep an existing file as it is (operator data such as authorized_keys), even when forced. */
  keep?: boolean;
  /** The mode of its directory when it must be made.  Default: 0755 (0700 for a key pair). */
  dirMode?: number;
}

/** The files of a key pair: FILE (0600) and FILE.pub (0644). */
export function keyPairFiles(file: string, pair: OpenSshKeyPair): NewFile[] {
  return [
    { file, text: pair.private, mode: 0o600, dirMode: 0o700 },
    { file: `${file}.pub`, text: `${pair.public}\n`, mode: 0o644, dirMode: 0o700 },
  ];
}

/**
 * Write `files` (with their directories when missing). Without `force`, any existing file that is
 * not `keep` is refused: one UsageError naming it, nothing written. Returns the files written.
 */
export function writeNewFiles(files: readonly NewFile[], force: boolean): string[] {
  if (!force) {
    const there = files.find((f) => f.keep !== true && existsSync(f.file));
    if (there !== undefined) throw new UsageError(`${there.file} exists; --force replaces it`);
  }
  const written: string[] = [];
  for (const f of files) {
    if (existsSync(f.file)) {
      if (f.keep === true) continue;
      rmSync(f.file); // a new inode: the mode below applies, and no reader sees half a key
    }
    mkdirSync(path.dirname(f.file), { recursive: true, mode: f.dirMode ?? 0o755 });
    writeFileSync(f.file, f.text, { mode: f.mode, flag: 'wx' });
    written.push(f.file);
  }
  return written;
}

/**
 * Check a starter config with the daemon's own loader (`parse` throws ConfigError). An error in a
 * key that a flag set is the flag's fault: it names the flag (`flagOf`: key -> flag).
 */
export function checkStarter(parse: () => unknown, flagOf: Record<string, string>): void {
  try {
    parse();
  } catch (err) {
    const flag = err instanceof ConfigError && err.key !== undefined ? flagOf[err.key] : undefined;
    throw flag !== undefined ? new UsageError(`${flag}: ${(err as ConfigError).reason}`) : err;
  }
}
