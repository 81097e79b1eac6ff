/**
 * Loading an INI file against a schema (common/config/schema.ts), checked once, here.
 *
 * The file is scanned line by line so that every error can name its line, and so that what the
 * `ini` package would silently accept is refused: a line without `=`, a key outside any section,
 * `key[]` arrays, a repeated key or section. Values are unquoted by `ini` (`"..."`, `'...'`, and
 * inline `;`/`#` comments, `\;` to keep one). Every error is a one-line ConfigError such as
 *
 *   /etc/prr/prr.ini:12 [tunnel] mtu: expected an integer 1240..65495 or "auto", got "12x"
 */
import { readFileSync } from 'node:fs';
import ini from 'ini';
import { AplusError, ConfigError } from '../errors.js';
import { closest, type Keys, type Loaded, type Locator, type ParseContext, type Schema } from './schema.js';

export interface IniEntry {
  key: string;
  /** The value as `ini` reads it: trimmed, unquoted, inline comment removed. */
  value: string;
  line: number;
}

export interface IniSection {
  name: string;
  line: number;
  entries: IniEntry[];
}

const SECTION_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.:@-]*$/;
const KEY_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Split INI text into sections and entries, with line numbers. Throws ConfigError on bad syntax. */
export function scanIni(text: string, file: string): IniSection[] {
  return [...iniSections(text, file)];
}

/**
 * The sections of INI text one at a time, each complete with its entries, as the scan reaches
 * the next header: a config of a million [subscriber.X] sections is validated section by section
 * instead of being held whole as lines, entries and sections first (that took gigabytes).
 */
function* iniSections(text: string, file: string): Generator<IniSection> {
  let current: IniSection | undefined;
  let line = 0;
  const start = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  for (let at = start; at <= text.length; ) {
    let nl = text.indexOf('\n', at);
    if (nl < 0) nl = text.length;
    const s = text.slice(at, nl).trim(); // also drops the \r of a CRLF line
    at = nl + 1;
    line++;
    if (s === '' || s.startsWith(';') || s.startsWith('#')) continue;
    if (s.startsWith('[')) {
      const m = /^\[([^\]]*)\]\s*(?:[;#].*)?$/.exec(s);
      if (m === null) throw new ConfigError(`bad section header ${JSON.stringify(s)}: expected [name]`, { file, line });
      const name = (m[1] ?? '').trim();
      if (!SECTION_NAME.test(name)) throw new ConfigError(`bad section name ${JSON.stringify(name)}`, { file, line });
      if (current !== undefined) yield current;
      current = { name, line, entries: [] };
      continue;
    }
    const eq = s.indexOf('=');
    if (eq < 0) throw new ConfigError(`expected "key = value" or "[section]", got ${JSON.stringify(s)}`, { file, line });
    const key = s.slice(0, eq).trim();
    if (current === undefined) throw new ConfigError(`key "${key}" is outside any [section]`, { file, line });
    if (key.endsWith('[]')) {
      throw new ConfigError('array keys (key[]) are not used here; write one key with a comma-separated list', { file, line, section: current.name, key });
    }
    if (!KEY_NAME.test(key)) throw new ConfigError(`bad key name ${JSON.stringify(key)}`, { file, line, section: current.name });
    current.entries.push({ key, value: ini.unsafe(s.slice(eq + 1)), line });
  }
  if (current !== undefined) yield current;
}

/** Parse and validate INI text; `fileName` is only used in messages and for relative paths. */
export function parseIniText<S extends Record<string, Keys>, P extends Record<string, Keys>>(
  text: string,
  fileName: string,
  schema: Schema<S, P>,
): Loaded<S, P> {
  // Line numbers are only needed for an error message: found by scanning again, then.
  let lines: Map<string, number> | undefined; // "section" and "section\0key" -> line
  const lineOf = (key: string): number | undefined => {
    if (lines === undefined) {
      lines = new Map();
      try {
        for (const sec of iniSections(text, fileName)) {
          lines.set(sec.name, sec.line);
          for (const e of sec.entries) lines.set(`${sec.name}\0${e.key}`, e.line);
        }
      } catch {
        /* a syntax error further on: the sections before it are the ones an error can be about */
      }
    }
    return lines.get(key);
  };
  const at: Locator = {
    file: fileName,
    line: (section, key) => (key === undefined ? undefined : lineOf(`${section}\0${key}`)) ?? lineOf(section),
    error: (section, key, reason) => new ConfigError(reason, { file: fileName, line: at.line(section, key), section, key }),
  };
  const ctx: ParseContext = { file: fileName };
  const out: Record<string, unknown> = {};
  const seen = new Map<string, number>();
  const patternNames = Object.keys(schema.patterns);
  for (const name of patternNames) out[name] = new Map<string, unknown>();

  for (const sec of iniSections(text, fileName)) {
    const first = seen.get(sec.name.toLowerCase());
    if (first !== undefined) throw new ConfigError(`section repeated (first at line ${first})`, { file: fileName, line: sec.line, section: sec.name });
    seen.set(sec.name.toLowerCase(), sec.line);
    if (Object.hasOwn(schema.sections, sec.name)) {
      out[sec.name] = readSection(sec.name, sec, schema.sections[sec.name] as Keys, ctx, at);
      continue;
    }
    const dot = sec.name.indexOf('.');
    const prefix = dot < 0 ? sec.name : sec.name.slice(0, dot);
    if (Object.hasOwn(schema.patterns, prefix)) {
      const name = dot < 0 ? '' : sec.name.slice(dot + 1);
      if (name === '') throw at.error(sec.name, undefined, `section needs a name: [${prefix}.NAME]`);
      (out[prefix] as Map<string, unknown>).set(name, readSection(sec.name, sec, schema.patterns[prefix] as Keys, ctx, at));
      continue;
    }
    const rest = dot < 0 ? 'NAME' : sec.name.slice(dot + 1);
    const hint = closest(sec.name, [...Object.keys(schema.sections), ...patternNames.map((p) => `${p}.${rest}`)]);
    const known = [...Object.keys(schema.sections), ...patternNames.map((p) => `${p}.NAME`)].map((n) => `[${n}]`).join(' ');
    throw at.error(sec.name, undefined, hint !== undefined ? `unknown section (did you mean [${hint}]?)` : `unknown section (known: ${known})`);
  }
  for (const name of Object.keys(schema.sections)) {
    if (!Object.hasOwn(out, name)) out[name] = readSection(name, undefined, schema.sections[name] as Keys, ctx, at);
  }
  const cfg = out as Loaded<S, P>;
  schema.check?.(cfg, at);
  return cfg;
}

/** Read, parse and validate a config file. Every failure is a one-line ConfigError. */
export function loadIni<S extends Record<string, Keys>, P extends Record<string, Keys>>(file: string, schema: Schema<S, P>): Loaded<S, P> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'ENOENT' ? 'no such file' : e.code === 'EACCES' ? 'permission denied' : e.code === 'EISDIR' ? 'is a directory' : e.message;
    throw new ConfigError(`cannot read config file: ${why}`, { file });
  }
  return parseIniText(text, file, schema);
}

function readSection(name: string, sec: IniSection | undefined, keys: Keys, ctx: ParseContext, at: Locator): Record<string, unknown> {
  const got: Record<string, unknown> = {};
  const lineOf = new Map<string, number>();
  for (const e of sec?.entries ?? []) {
    const f = Object.hasOwn(keys, e.key) ? keys[e.key] : undefined;
    if (f === undefined) {
      const hint = closest(e.key, Object.keys(keys));
      throw at.error(name, e.key, hint !== undefined ? `unknown key (did you mean ${hint}?)` : `unknown key (known: ${Object.keys(keys).join(', ')})`);
    }
    const first = lineOf.get(e.key);
    if (first !== undefined) throw new ConfigError(`key repeated (first at line ${first})`, { file: at.file, line: e.line, section: name, key: e.key });
    lineOf.set(e.key, e.line);
    if (e.value === '') continue; // `key =` is the same as leaving the key out
    let value: unknown;
    try {
      value = f.parse(e.value, ctx);
    } catch (err) {
      if (!(err instanceof AplusError)) throw err;
      throw at.error(name, e.key, err instanceof ConfigError ? err.reason : err.message);
    }
    if (value === undefined) throw at.error(name, e.key, `expected ${f.expect}, got ${JSON.stringify(e.value)}`);
    got[e.key] = value;
  }
  for (const [key, f] of Object.entries(keys)) {
    if (Object.hasOwn(got, key)) continue;
    if (f.default !== undefined) got[key] = Array.isArray(f.default) ? [...(f.default as unknown[])] : f.default;
    else if (f.required) throw at.error(name, key, sec === undefined ? `missing required key (section [${name}] is absent)` : 'missing required key');
    else got[key] = undefined;
  }
  return got;
}
