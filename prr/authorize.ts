/**
 * `prr subscribers authorize`: add a CPE's public key, with the PRR's per-key options, to the
 * registration server's authorized-keys file (prr/registration-keys.ts has the format), or change
 * the options of a key already there. The file is rewritten whole (a temporary file renamed over
 * it, so the server never reads half a file); the running PRR then re-reads it through the
 * control socket, so the key works, or its new options apply at its next request, without a
 * restart.
 *
 * A bad key or option is one error line and leaves the file as it was.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../common/errors.js';
import { parseAuthorizedKeys } from './registration-keys.js';

export interface AuthorizeOptions {
  name?: string;
  ports?: string;
  set?: string;
}

export interface Authorized {
  /** The file's new text. */
  text: string;
  fingerprint: string;
  /** The key was in the file already: its line was replaced. */
  replaced: boolean;
  /** The key's line as written. */
  line: string;
}

/**
 * The authorized-keys text `text` (of `file`) with `key` (`type base64 [comment]`) authorized with
 * `o`. Throws UsageError (bad key or option) or ConfigError (the file, or a clash, by line).
 */
export function authorizeText(text: string, file: string, key: string, o: AuthorizeOptions): Authorized {
  const k = key.trim().split('\n')[0]!.trim();
  if (!/^(ssh-|ecdsa-|sk-)\S+\s+\S+/.test(k)) throw new UsageError(`not a public key: expected "ssh-ed25519 AAAA... [comment]", got "${k.slice(0, 40)}"`);
  // A value with a blank or comma is quoted, as OpenSSH does, so the parser sees it whole and names it.
  const q = (v: string): string => (/[\s,"]/.test(v) ? `"${v.replace(/"/g, '')}"` : v);
  const opts = [
    ...(o.name !== undefined ? [`name=${q(o.name)}`] : []),
    ...(o.ports !== undefined ? [`ports=${q(o.ports)}`] : []),
    ...(o.set !== undefined ? [`set=${q(o.set)}`] : []),
  ];
  const line = (opts.length > 0 ? `${opts.join(',')} ` : '') + k;
  let entry;
  try {
    entry = [...parseAuthorizedKeys(line, 'the new key').values()][0]!;
  } catch (err) {
    throw new UsageError((err as Error).message.replace(/^the new key:1: /, ''));
  }
  const current = parseAuthorizedKeys(text, file);
  const old = current.get(entry.fingerprint);
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  if (old !== undefined) lines[old.line - 1] = line;
  else lines.push(line);
  const next = lines.join('\n') + '\n';
  parseAuthorizedKeys(next, file); // a name already used by another key: the error names its line
  return { text: next, fingerprint: entry.fingerprint, replaced: old !== undefined, line };
}

/** Authorize `key` in `file` (created when absent, mode 0600), replacing the file atomically. */
export function authorizeFile(file: string, key: string, o: AuthorizeOptions): Authorized {
  const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const r = authorizeText(text, file, key, o);
  mkdirSync(path.dirname(file), { recursive: true });
  const mode = existsSync(file) ? statSync(file).mode & 0o777 : 0o600;
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, r.text, { mode });
  renameSync(tmp, file);
  return r;
}
