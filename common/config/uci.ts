/**
 * OpenWrt's UCI file format (/etc/config/NAME), read as libuci reads it, and turned into the
 * project's INI so that one schema checks both.
 *
 *   # comment
 *   package smap                      (optional)
 *   config TYPE ['NAME']              a section
 *   	option KEY 'value'              a single value
 *   	list KEY 'value'                one item of a list
 *
 * A value is one word made of unquoted runs (a backslash keeps the next character),
 * '...' (nothing escaped) and "..." (backslash escapes), written next to each other.
 *
 * `uciToIni` writes each section as `[TYPE]` and each option as `key = "value"` on the same
 * line number as in the UCI file, so that the INI loader's errors name the UCI file's line:
 *
 *   /etc/config/smap:7 [tunnel] mtu: expected an integer 1240..65495 or "auto", got "99"
 */
import { ConfigError } from '../errors.js';

export interface UciOption {
  name: string;
  /** One value for `option`, the items for `list`. */
  values: string[];
  list: boolean;
  line: number;
}

export interface UciSection {
  type: string;
  /** Absent for an anonymous section (`config TYPE`). */
  name: string | undefined;
  line: number;
  options: UciOption[];
}

const NAME = /^[A-Za-z0-9_]+$/;

/** Splits one line into words; `#` at a word boundary starts a comment. Throws on an open quote. */
function words(text: string, file: string, line: number): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < text.length) {
    while (i < text.length && /\s/.test(text[i]!)) i++;
    if (i >= text.length || text[i] === '#') break;
    let w = '';
    while (i < text.length && !/\s/.test(text[i]!)) {
      const c = text[i]!;
      if (c === "'" || c === '"') {
        const end = c === "'" ? text.indexOf("'", i + 1) : closingDouble(text, i + 1);
        if (end < 0) throw new ConfigError(`unterminated ${c === "'" ? 'single' : 'double'} quote`, { file, line });
        const inner = text.slice(i + 1, end);
        w += c === "'" ? inner : inner.replace(/\\(.)/g, '$1');
        i = end + 1;
      } else if (c === '\\') {
        if (i + 1 >= text.length) throw new ConfigError('a backslash ends the line', { file, line });
        w += text[i + 1];
        i += 2;
      } else {
        w += c;
        i++;
      }
    }
    out.push(w);
  }
  return out;
}

function closingDouble(text: string, from: number): number {
  for (let i = from; i < text.length; i++) {
    if (text[i] === '\\') i++;
    else if (text[i] === '"') return i;
  }
  return -1;
}

/** Parses UCI text; every error is one ConfigError naming the file and line. */
export function parseUci(text: string, file: string): UciSection[] {
  const sections: UciSection[] = [];
  text.replace(/^\uFEFF/, '').split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    const w = words(raw, file, line);
    if (w.length === 0) return;
    const [kw, a, b, ...extra] = w;
    const at = { file, line };
    const current = sections[sections.length - 1];
    switch (kw) {
      case 'package':
        if (a === undefined || b !== undefined) throw new ConfigError('expected "package NAME"', at);
        return;
      case 'config':
        if (a === undefined || b === '' || extra.length > 0) throw new ConfigError("expected \"config TYPE ['NAME']\"", at);
        if (!NAME.test(a)) throw new ConfigError(`bad section type ${JSON.stringify(a)}: letters, digits and _ only`, at);
        if (b !== undefined && !NAME.test(b)) throw new ConfigError(`bad section name ${JSON.stringify(b)}: letters, digits and _ only`, at);
        sections.push({ type: a, name: b, line, options: [] });
        return;
      case 'option':
      case 'list': {
        if (a === undefined || b === undefined || extra.length > 0) throw new ConfigError(`expected "${kw} NAME 'value'"`, at);
        if (current === undefined) throw new ConfigError(`${kw} ${a} is outside any config section`, at);
        if (!NAME.test(a)) throw new ConfigError(`bad ${kw} name ${JSON.stringify(a)}: letters, digits and _ only`, at);
        const list = kw === 'list';
        const prev = current.options.find((o) => o.name === a);
        if (prev !== undefined && list && prev.list) {
          prev.values.push(b);
          return;
        }
        if (prev !== undefined) throw new ConfigError(`${kw} ${a} repeated (first at line ${prev.line})`, { ...at, section: current.name ?? current.type, key: a });
        current.options.push({ name: a, values: [b], list, line });
        return;
      }
      default:
        throw new ConfigError(`expected config, option, list or package, got ${JSON.stringify(kw)}`, at);
    }
  });
  return sections;
}

export interface UciToIniOptions {
  /** Section types that may appear (each at most once). */
  sections: readonly string[];
  /** Options that stay in UCI (e.g. `enabled`, read by the caller), by section type. */
  skip?: Readonly<Record<string, readonly string[]>>;
  /** Options that name files: they must be absolute (the INI lives elsewhere). */
  paths?: RegExp;
}

/**
 * The INI text of a UCI file, line for line (see the top of this file): pass it to the INI
 * loader with the UCI file's name. Lists, unknown or repeated section types are errors here.
 */
export function uciToIni(sections: UciSection[], file: string, o: UciToIniOptions): { ini: string; skipped: Map<string, string> } {
  const lines: string[] = [];
  const skipped = new Map<string, string>();
  const seen = new Map<string, number>();
  const put = (line: number, text: string): void => {
    while (lines.length < line - 1) lines.push('');
    lines.push(text);
  };
  for (const s of sections) {
    const at = { file, line: s.line, section: s.type };
    if (!o.sections.includes(s.type)) throw new ConfigError(`unknown section type (known: ${o.sections.join(', ')})`, at);
    const first = seen.get(s.type);
    if (first !== undefined) throw new ConfigError(`section type repeated (first at line ${first})`, at);
    seen.set(s.type, s.line);
    put(s.line, `[${s.type}]`);
    for (const opt of s.options) {
      const where = { file, line: opt.line, section: s.type, key: opt.name };
      if (opt.list) throw new ConfigError('a list is not used here: give one value with option', where);
      const value = opt.values[0]!;
      if (o.skip?.[s.type]?.includes(opt.name)) {
        skipped.set(`${s.type}.${opt.name}`, value);
        continue;
      }
      if (o.paths?.test(opt.name) && value !== '' && !value.startsWith('/')) throw new ConfigError(`must be an absolute path, got ${JSON.stringify(value)}`, where);
      put(opt.line, `${opt.name} = ${JSON.stringify(value)}`);
    }
  }
  return { ini: lines.join('\n') + '\n', skipped };
}

/** UCI's booleans (config_get_bool): 1/yes/on/true/enabled and 0/no/off/false/disabled. */
export function uciBool(value: string | undefined, dflt: boolean): boolean | undefined {
  if (value === undefined || value === '') return dflt;
  const v = value.toLowerCase();
  if (['1', 'yes', 'on', 'true', 'enabled'].includes(v)) return true;
  if (['0', 'no', 'off', 'false', 'disabled'].includes(v)) return false;
  return undefined;
}
