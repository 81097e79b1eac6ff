/**
 * A small declarative schema for INI config files.
 *
 *   const schema = defineSchema({
 *     sections: { tunnel: { mtu: autoInt({ min: 1240, max: 65495, default: 'auto' }) } },
 *     patterns: { subscriber: { ipv6: ipv6({ required: true }) } },   // [subscriber.NAME]
 *     check(cfg, at) { ... cross-field rules, throw at.error(section, key, reason) ... },
 *   });
 *   type Cfg = ConfigOf<typeof schema>;   // { tunnel: { mtu: number | 'auto' }, subscriber: Map<...> }
 *
 * A key with a default or `required: true` is always present in the result; any other key is
 * `T | undefined`. An empty value (`key =`) counts as absent. Unknown sections and keys are errors.
 */
import path from 'node:path';
import { ConfigError } from '../errors.js';
import { parsePortSet, type PortSet } from '../portset.js';
import * as v from './values.js';

export interface ParseContext {
  /** The config file, to resolve relative paths against its directory. */
  readonly file: string;
}

export interface Field<T, P extends boolean = boolean> {
  /** What a good value looks like, for messages: `an integer 1240..65495 or "auto"`. */
  readonly expect: string;
  readonly required: boolean;
  readonly default: T | undefined;
  /** The value, or undefined when `raw` is not of the expected form; throws ConfigError for other reasons. */
  parse(raw: string, ctx: ParseContext): T | undefined;
  /** Type-level only: true when the loaded value is always present. */
  readonly present?: P;
}

export type Keys = Record<string, Field<unknown, boolean>>;
export type ValueOf<F> = F extends Field<infer T, infer P> ? (P extends true ? T : T | undefined) : never;
export type SectionOf<K extends Keys> = { [N in keyof K]: ValueOf<K[N]> };
export type Loaded<S extends Record<string, Keys>, P extends Record<string, Keys>> = {
  [N in keyof S]: SectionOf<S[N]>;
} & { [N in keyof P]: Map<string, SectionOf<P[N]>> };

/** Where things are in the file, for cross-field checks. */
export interface Locator {
  readonly file: string;
  /** Line of `key` in `section`, else of the section header, else undefined. */
  line(section: string, key?: string): number | undefined;
  /** A ConfigError naming file, line, section and key. */
  error(section: string, key: string | undefined, reason: string): ConfigError;
}

export interface Schema<S extends Record<string, Keys>, P extends Record<string, Keys>> {
  readonly sections: S;
  /** `[NAME.x]` sections, gathered into a Map keyed by x. */
  readonly patterns: P;
  readonly check?: ((cfg: Loaded<S, P>, at: Locator) => void) | undefined;
}

export type ConfigOf<X> = X extends Schema<infer S, infer P> ? Loaded<S, P> : never;

export function defineSchema<S extends Record<string, Keys>, P extends Record<string, Keys> = {}>(spec: {
  sections: S;
  patterns?: P;
  check?: (cfg: Loaded<S, P>, at: Locator) => void;
}): Schema<S, P> {
  return { sections: spec.sections, patterns: spec.patterns ?? ({} as P), check: spec.check };
}

/** Values of every `log_level` key (the levels of common/log.ts). */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;

/**
 * Bounds of every `[tunnel] mtu` key. The tunnel MTU is the IPv4 MTU inside the tunnel (the TUN
 * device's MTU; `auto` = link MTU - 40): 1240 is what a 1280-byte IPv6 path leaves, 65495 the most
 * an IPv6 packet without jumbograms can carry.
 */
export const MTU_MIN = 1240;
export const MTU_MAX = 65495;
/**
 * `[tunnel] pmtu_timeout` bounds, in seconds. RFC 8201 §4 asks for at least 5 minutes and
 * recommends 10 (the kernel's net.ipv6.route.mtu_expires is 600 s too); values under 300 are
 * accepted, with a warning, for labs that want to watch the MTU come back.
 */
export const PMTU_TIMEOUT_MIN = 5;
export const PMTU_TIMEOUT_MAX = 86400;
export const PMTU_TIMEOUT_DEFAULT = 600;
/** Below this, `[tunnel] pmtu_timeout` is shorter than RFC 8201 §4 allows: warned about. */
export const PMTU_TIMEOUT_RFC_MIN = 300;

// ---- field builders -----------------------------------------------------------------------------

export interface Common<T> {
  default?: T;
  required?: boolean;
}
export type Presence<O> = [O] extends [{ default: unknown }] ? true : [O] extends [{ required: true }] ? true : false;
type Parse<T> = (raw: string, ctx: ParseContext) => T | undefined;

function field<T, O extends Common<T>>(expect: string, parse: Parse<T>, o: O | undefined): Field<T, Presence<O>> {
  return { expect, parse, required: o?.required === true, default: o?.default };
}

export function str<const O extends Common<string> & { pattern?: RegExp; expect?: string } = {}>(o?: O) {
  return field<string, O>(o?.expect ?? 'a string', (raw) => (o?.pattern === undefined || o.pattern.test(raw) ? raw : undefined), o);
}

export function int<const O extends Common<number> & { min?: number; max?: number } = {}>(o?: O) {
  const min = o?.min ?? Number.MIN_SAFE_INTEGER, max = o?.max ?? Number.MAX_SAFE_INTEGER;
  return field<number, O>(`an integer ${rangeText(o?.min, o?.max)}`.trim(), (raw) => inRange(v.parseInteger(raw), min, max), o);
}

export function bool<const O extends Common<boolean> = {}>(o?: O) {
  return field<boolean, O>('true or false', (raw) => v.parseBool(raw), o);
}

export function oneOf<const V extends readonly string[], const O extends Common<V[number]> = {}>(values: V, o?: O) {
  const expect = `one of ${values.join(', ')}`;
  return field<V[number], O>(expect, (raw) => values.find((x) => x === raw.toLowerCase()), o);
}

export function ipv4<const O extends Common<number> = {}>(o?: O) {
  return field<number, O>('an IPv4 address', (raw) => v.parseIpv4(raw), o);
}

export function ipv6<const O extends Common<string> = {}>(o?: O) {
  return field<string, O>('an IPv6 address', (raw) => v.parseIpv6(raw), o);
}

export function ipv4Prefix<const O extends Common<v.Ipv4Prefix> & { allowBare?: boolean } = {}>(o?: O) {
  const expect = o?.allowBare === true ? 'an IPv4 prefix or address (192.0.2.0/24, 192.0.2.1)' : 'an IPv4 prefix (192.0.2.0/24)';
  return field<v.Ipv4Prefix, O>(expect, (raw) => v.parseIpv4Prefix(raw, { allowBare: o?.allowBare === true }), o);
}

export function ipv6Prefix<const O extends Common<v.Ipv6Prefix> = {}>(o?: O) {
  return field<v.Ipv6Prefix, O>('an IPv6 prefix (2001:db8::/32)', (raw) => v.parseIpv6Prefix(raw), o);
}

/** A port set in the text form of common/portset.ts. */
export function portSet<const O extends Common<PortSet> & { allowSystemPorts?: boolean } = {}>(o?: O) {
  const expect = 'a port set ("10000-11000" or "psid:a=6/k=8/id=52")';
  return field<PortSet, O>(expect, (raw) => (/^(\d|psid:)/i.test(raw) ? parsePortSet(raw, { allowSystemPorts: o?.allowSystemPorts === true }) : undefined), o);
}

/** Seconds, from `30s`, `5m`, `1h`, `1d`, `1h30m` or plain seconds. */
export function duration<const O extends Common<number> & { min?: number; max?: number } = {}>(o?: O) {
  const min = o?.min ?? 0, max = o?.max ?? Number.MAX_SAFE_INTEGER;
  return field<number, O>('a duration (30s, 5m, 1h or seconds)', (raw) => inRange(v.parseDuration(raw), min, max), o);
}

/** A file path; a relative one is taken from the config file's directory. */
export function filePath<const O extends Common<string> = {}>(o?: O) {
  return field<string, O>('a path', (raw, ctx) => (raw.includes('\0') ? undefined : path.resolve(path.dirname(ctx.file), raw)), o);
}

/** `auto`, or an integer in min..max (the tunnel MTU). */
export function autoInt<const O extends Common<number | 'auto'> & { min?: number; max?: number } = {}>(o?: O) {
  const min = o?.min ?? 0, max = o?.max ?? Number.MAX_SAFE_INTEGER;
  const parse = (raw: string): number | 'auto' | undefined => (raw.toLowerCase() === 'auto' ? 'auto' : inRange(v.parseInteger(raw), min, max));
  return field<number | 'auto', O>(`an integer ${rangeText(o?.min, o?.max)} or "auto"`.replace('  ', ' '), parse, o);
}

export function ifName<const O extends Common<string> = {}>(o?: O) {
  return field<string, O>('an interface name (1-15 characters)', (raw) => v.parseIfName(raw), o);
}

/** An IPv4 address, an IPv6 address or a DNS name. */
export function host<const O extends Common<string> = {}>(o?: O) {
  return field<string, O>('a host name or address', (raw) => v.parseHost(raw), o);
}

/** `127.0.0.1:9150`, `[::1]:9150`, `localhost:9150`. */
export function hostPort<const O extends Common<v.HostPort> = {}>(o?: O) {
  return field<v.HostPort, O>('host:port (127.0.0.1:9150, [::1]:9150)', (raw) => v.parseHostPort(raw), o);
}

/** Any other shape: `parse` returns the value or undefined. */
export function custom<T, const O extends Common<T> = {}>(expect: string, parse: Parse<T>, o?: O) {
  return field<T, O>(expect, parse, o);
}

/** A comma-separated list of `item`; `min` items at least (an empty value is "absent"). */
export function list<T, const O extends Common<T[]> & { min?: number } = {}>(item: Field<T, boolean>, o?: O) {
  const parse = (raw: string, ctx: ParseContext): T[] => {
    const parts = raw.split(',').map((s) => s.trim());
    const out: T[] = [];
    for (const part of parts) {
      const x = part === '' ? undefined : item.parse(part, ctx);
      if (x === undefined) throw new ConfigError(`expected a comma-separated list of ${item.expect}; item "${part}" is not one`);
      out.push(x);
    }
    if (out.length < (o?.min ?? 0)) throw new ConfigError(`expected at least ${o?.min} of ${item.expect}, got ${out.length}`);
    return out;
  };
  return field<T[], O>(`a comma-separated list of ${item.expect}`, parse, o);
}

function rangeText(min: number | undefined, max: number | undefined): string {
  if (min !== undefined && max !== undefined) return `${min}..${max}`;
  if (min !== undefined) return `>= ${min}`;
  if (max !== undefined) return `<= ${max}`;
  return '';
}
function inRange(n: number | undefined, min: number, max: number): number | undefined {
  return n !== undefined && n >= min && n <= max ? n : undefined;
}

// ---- typo hints ---------------------------------------------------------------------------------

/** The closest candidate within a small edit distance, for "did you mean ...?". */
export function closest(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestD = (word.length < 3 ? 0 : Math.max(1, Math.min(3, Math.floor(word.length / 3)))) + 1;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      best = c;
      bestD = d;
    }
  }
  return best;
}

/** Optimal string alignment distance: insertions, deletions, substitutions, adjacent swaps. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  const at = (i: number, j: number): number => d[i]?.[j] ?? 0;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, at(i - 2, j - 2) + 1);
      (d[i] as number[])[j] = best;
    }
  }
  return at(a.length, b.length);
}
