/**
 * The registration server's authorized-keys file: OpenSSH format, one key a line,
 *
 *   [options] key-type base64-key [comment]
 *
 * with the PRR's own per-key options (comma separated, as in OpenSSH):
 *   name=cpe7            subscriber name (default `cpe-` and 12 characters of the fingerprint)
 *   ports=500            this key's set size (overrides [registration] default_ports; a request
 *                        for more is refused)
 *   set=10000-10999      this key's fixed set (a range or psid:a=6/k=K/id=N), on the first pool
 *                        address where it is free
 * OpenSSH's own restriction options (restrict, no-pty, no-port-forwarding, ...) are accepted and
 * change nothing: the server refuses all of that for every key anyway. Anything else is an error
 * naming the file and line. Keys are matched by their OpenSSH SHA256 fingerprint.
 */
import { readFileSync } from 'node:fs';
import ssh2 from 'ssh2';
import { ConfigError } from '../common/errors.js';
import { parsePortSet, type PortSet } from '../common/portset.js';
import { sshFingerprint } from '../provisioning/keys.js';

export interface KeyEntry {
  fingerprint: string;
  /** The parsed public key (verifies signatures). */
  key: ssh2.ParsedKey;
  name: string | undefined;
  ports: number | undefined;
  set: PortSet | undefined;
  /** The file's line, for messages. */
  line: number;
}

const OPENSSH_FLAGS = new Set(['restrict', 'no-pty', 'no-port-forwarding', 'no-agent-forwarding', 'no-x11-forwarding', 'no-user-rc']);
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** OpenSSH's fingerprint of a public key blob: `SHA256:` and unpadded base64. */
export const fingerprintOf = sshFingerprint;

/** Split `a=1,b="x,y",c` at the commas outside quotes. */
function splitOptions(text: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (const ch of text) {
    if (ch === '"') quoted = !quoted;
    else if (ch === ',' && !quoted) {
      out.push(cur);
      cur = '';
      continue;
    }
    cur += ch;
  }
  out.push(cur);
  return out;
}

/** Parse the text of an authorized-keys file. Throws ConfigError naming file:line. */
export function parseAuthorizedKeys(text: string, file = '<text>'): Map<string, KeyEntry> {
  const keys = new Map<string, KeyEntry>();
  const names = new Map<string, number>();
  text.split('\n').forEach((raw, i) => {
    const line = i + 1;
    const t = raw.trim();
    if (t === '' || t.startsWith('#')) return;
    const err = (reason: string): ConfigError => new ConfigError(reason, { file, line });
    // Options come first unless the line starts with the key type (ssh-..., ecdsa-..., sk-...).
    let rest = t;
    let optText = '';
    if (!/^(ssh-|ecdsa-|sk-)/.test(t)) {
      let quoted = false;
      let j = 0;
      for (; j < t.length; j++) {
        if (t[j] === '"') quoted = !quoted;
        else if (/\s/.test(t[j]!) && !quoted) break;
      }
      optText = t.slice(0, j);
      rest = t.slice(j).trim();
    }
    const [type, b64] = rest.split(/\s+/);
    if (type === undefined || b64 === undefined) throw err('expected [options] key-type base64-key [comment]');
    const parsed = ssh2.utils.parseKey(`${type} ${b64}`);
    if (parsed instanceof Error || Array.isArray(parsed)) throw err(`not a public key: ${parsed instanceof Error ? parsed.message : 'several keys'}`);
    const entry: KeyEntry = { fingerprint: fingerprintOf(parsed.getPublicSSH()), key: parsed, name: undefined, ports: undefined, set: undefined, line };
    if (optText !== '') {
      for (const opt of splitOptions(optText)) {
        const eq = opt.indexOf('=');
        const k = (eq < 0 ? opt : opt.slice(0, eq)).toLowerCase();
        const v = eq < 0 ? undefined : opt.slice(eq + 1).replace(/^"(.*)"$/, '$1');
        if (v === undefined && OPENSSH_FLAGS.has(k)) continue;
        if (k === 'name' && v !== undefined) {
          if (!NAME.test(v)) throw err(`name=${v}: letters, digits, ".", "_" and "-", at most 63`);
          entry.name = v;
        } else if (k === 'ports' && v !== undefined) {
          const n = /^\d{1,5}$/.test(v) ? Number(v) : NaN;
          if (!(n >= 1 && n <= 65536)) throw err(`ports=${v}: expected a number of ports`);
          entry.ports = n;
        } else if (k === 'set' && v !== undefined) {
          try {
            entry.set = parsePortSet(v);
          } catch (e) {
            throw err(`set=${v}: ${(e as Error).message}`);
          }
        } else {
          throw err(`unknown option "${opt}"; expected name=, ports=, set= or an OpenSSH restriction`);
        }
      }
    }
    if (entry.set !== undefined && entry.ports !== undefined && entry.set.size !== entry.ports) {
      throw err(`ports=${entry.ports} and set=${entry.set} disagree; give one`);
    }
    const twin = keys.get(entry.fingerprint);
    if (twin !== undefined) throw err(`the same key as line ${twin.line}`);
    if (entry.name !== undefined) {
      const other = names.get(entry.name);
      if (other !== undefined) throw err(`name=${entry.name} is also used on line ${other}`);
      names.set(entry.name, line);
    }
    keys.set(entry.fingerprint, entry);
  });
  return keys;
}

export function loadAuthorizedKeys(file: string): Map<string, KeyEntry> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read the authorized keys: ${(e as Error).message}`, { file });
  }
  return parseAuthorizedKeys(text, file);
}
