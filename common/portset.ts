/**
 * Port sets: the one place where the A+P port rule is written.
 *
 * A customer owns a shared IPv4 address only for a *set* of ports. Two shapes exist:
 *
 *  - a contiguous range `first-last`, as the 2010 experiment used (10000-11000, 11001-12000);
 *  - an RFC 7597 §5.1 PSID set, where the 16-bit port field is cut in three:
 *
 *                         0                   1
 *                         0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5
 *                        +-----------+-----------+-------+
 *          Ports in      |     A     |    PSID   |   j   |
 *       the CE port set  |    > 0    |           |       |
 *                        +-----------+-----------+-------+
 *                        |  a bits   |  k bits   |m bits |
 *
 *                Figure 2 of RFC 7597: Structure of a Port-Restricted Port Field
 *
 *    a = offset bits (default 6). For a > 0, A must be > 0, which removes ports
 *        0 .. 2^(16-a)-1 (0-1023 when a = 6) from every set.
 *    k = PSID length: 2^k sets share one address.
 *    m = 16 - a - k: each set holds runs of 2^m contiguous ports (j), one run per value of A.
 *
 *    port = A * 2^(16-a) + PSID * 2^m + j,   A in [1 if a > 0 else 0, 2^a - 1], j in [0, 2^m - 1]
 *
 * Text form (parsed by `parsePortSet`, printed by `toString`, used by the config files):
 *    `10000-11000`            a range (a single port `10000` is accepted and prints as `10000-10000`)
 *    `psid:a=6/k=8/id=52`     a PSID set (`a=` may be left out and defaults to 6; `id` may be hex, `0x34`)
 * The PSID form has no comma so that it can sit in a comma-separated config list.
 *
 * System ports (0-1023) are refused unless `allowSystemPorts` is passed.
 */
import { PortSetError } from './errors.js';

export const MAX_PORT = 65535;
/** The first port that is not a system port (RFC 6335). */
export const FIRST_USER_PORT = 1024;
/** RFC 7597's default PSID offset: A > 0 then excludes 0-1023. */
export const DEFAULT_PSID_OFFSET = 6;

export interface PortSetOptions {
  /** Allow sets that contain ports 0-1023. Default false. */
  allowSystemPorts?: boolean;
}

/** RFC 7597 parameters of a PSID set: offset a, PSID length k, PSID value. */
export interface PsidParams {
  readonly offset: number;
  readonly length: number;
  readonly id: number;
}

/** A contiguous run of ports, both ends included. */
export type Chunk = [first: number, last: number];

export interface PortSet {
  readonly kind: 'range' | 'psid';
  /** Number of ports in the set. */
  readonly size: number;
  /** Lowest and highest port of the set. */
  readonly min: number;
  readonly max: number;
  /** The PSID parameters of a PSID set; undefined for a range. */
  readonly psid: PsidParams | undefined;
  /** Pure arithmetic; no arrays. `port` is expected to be an integer 0..65535. */
  has(port: number): boolean;
  /** True when at least one port of first..last is in the set. */
  intersectsRange(first: number, last: number): boolean;
  /** The set as ascending, non-adjacent contiguous runs. */
  chunks(): Chunk[];
  overlaps(other: PortSet): boolean;
  /** Same ports (a PSID set with k=0, a=0 equals the range 0-65535). */
  equals(other: PortSet): boolean;
  toString(): string;
}

/** A contiguous range first..last. */
export class PortRange implements PortSet {
  readonly kind = 'range' as const;
  readonly first: number;
  readonly last: number;
  readonly psid = undefined;
  constructor(first: number, last: number, opts: PortSetOptions = {}) {
    if (!isPort(first) || !isPort(last)) throw new PortSetError(`bad port range ${first}-${last}: ports are integers 0..${MAX_PORT}`);
    if (first > last) throw new PortSetError(`bad port range ${first}-${last}: first port is above last port`);
    if (first < FIRST_USER_PORT && opts.allowSystemPorts !== true) throw systemPortsError(`${first}-${last}`);
    this.first = first;
    this.last = last;
  }
  get size(): number { return this.last - this.first + 1; }
  get min(): number { return this.first; }
  get max(): number { return this.last; }
  has(port: number): boolean { return port >= this.first && port <= this.last; }
  intersectsRange(first: number, last: number): boolean { return first <= this.last && last >= this.first; }
  chunks(): Chunk[] { return [[this.first, this.last]]; }
  overlaps(other: PortSet): boolean { return other.intersectsRange(this.first, this.last); }
  equals(other: PortSet): boolean { return sameChunks(this, other); }
  toString(): string { return `${this.first}-${this.last}`; }
}

/** An RFC 7597 port set: offset a, PSID length k, PSID value psid. */
export class PsidSet implements PortSet {
  readonly kind = 'psid' as const;
  readonly a: number;
  readonly k: number;
  /** The PSID value. */
  readonly id: number;
  readonly psid: PsidParams;
  /** m = 16 - a - k: log2 of the run length. */
  readonly m: number;
  private readonly aShift: number; // 16 - a: port >>> aShift is A
  private readonly kMask: number;
  constructor(a: number, k: number, id: number, opts: PortSetOptions = {}) {
    const text = `psid:a=${a}/k=${k}/id=${id}`;
    if (!isInt(a, 0, 16) || !isInt(k, 0, 16) || a + k > 16) {
      throw new PortSetError(`bad port set ${text}: need 0 <= a, 0 <= k and a + k <= 16`);
    }
    if (!isInt(id, 0, 2 ** k - 1)) throw new PortSetError(`bad port set ${text}: PSID must be 0..${2 ** k - 1} for k=${k}`);
    this.a = a;
    this.k = k;
    this.id = id;
    this.psid = { offset: a, length: k, id };
    this.m = 16 - a - k;
    this.aShift = 16 - a;
    this.kMask = 2 ** k - 1;
    if (this.min < FIRST_USER_PORT && opts.allowSystemPorts !== true) throw systemPortsError(text);
  }
  private get aFirst(): number { return this.a > 0 ? 1 : 0; }
  private get aLast(): number { return 2 ** this.a - 1; }
  get size(): number { return (this.aLast - this.aFirst + 1) * 2 ** this.m; }
  get min(): number { return this.runStart(this.aFirst); }
  get max(): number { return this.runStart(this.aLast) + 2 ** this.m - 1; }
  has(port: number): boolean {
    return ((port >>> this.m) & this.kMask) === this.id && (this.a === 0 || port >>> this.aShift !== 0) && port >= 0 && port <= MAX_PORT;
  }
  intersectsRange(first: number, last: number): boolean {
    if (last < first) return false;
    const from = Math.max(this.aFirst, this.a === 0 ? 0 : first >>> this.aShift);
    const to = Math.min(this.aLast, this.a === 0 ? 0 : last >>> this.aShift);
    const run = 2 ** this.m;
    for (let A = from; A <= to; A++) {
      const start = this.runStart(A);
      if (start <= last && start + run - 1 >= first) return true;
    }
    return false;
  }
  chunks(): Chunk[] {
    const out: Chunk[] = [];
    const run = 2 ** this.m;
    for (let A = this.aFirst; A <= this.aLast; A++) {
      const start = this.runStart(A);
      const prev = out[out.length - 1];
      if (prev !== undefined && prev[1] + 1 === start) prev[1] = start + run - 1; // k = 0: runs touch
      else out.push([start, start + run - 1]);
    }
    return out;
  }
  overlaps(other: PortSet): boolean {
    if (!(other instanceof PsidSet)) return other.overlaps(this);
    // Both are bit patterns on the port: "bits under mask equal value", plus "top a bits not all zero".
    // They share a port iff the patterns agree where both masks are set and the port with every free
    // bit set (the largest candidate) passes the stricter A > 0 test (the smaller non-zero a).
    const m1 = this.kMask * 2 ** this.m, v1 = this.id * 2 ** this.m;
    const m2 = other.kMask * 2 ** other.m, v2 = other.id * 2 ** other.m;
    if (((v1 ^ v2) & m1 & m2) !== 0) return false;
    const widest = (v1 | v2 | (~(m1 | m2) & 0xffff)) >>> 0;
    // The smaller non-zero offset (no allocation: this runs for every pair a config check compares).
    const a = this.a === 0 ? other.a : other.a === 0 ? this.a : Math.min(this.a, other.a);
    if (a === 0) return true;
    return widest >>> (16 - a) !== 0;
  }
  equals(other: PortSet): boolean {
    if (other instanceof PsidSet && other.a === this.a && other.k === this.k) return other.id === this.id;
    return sameChunks(this, other);
  }
  toString(): string { return `psid:a=${this.a}/k=${this.k}/id=${this.id}`; }
  private runStart(A: number): number { return A * 2 ** this.aShift + this.id * 2 ** this.m; }
}

/** Parse the text form described at the top of this file. Throws PortSetError. */
export function parsePortSet(text: string, opts: PortSetOptions = {}): PortSet {
  const s = text.trim();
  let m = /^(\d{1,5})(?:\s*-\s*(\d{1,5}))?$/.exec(s);
  if (m !== null) return new PortRange(Number(m[1]), Number(m[2] ?? m[1]), opts);
  m = /^psid:(.*)$/i.exec(s);
  if (m !== null) {
    const fields = new Map<string, number>();
    for (const part of (m[1] ?? '').split('/')) {
      const kv = /^\s*(a|k|id)\s*=\s*(0x[0-9a-f]+|\d+)\s*$/i.exec(part);
      const name = kv?.[1]?.toLowerCase();
      if (kv === null || name === undefined || fields.has(name)) throw badText(text);
      fields.set(name, Number(kv[2]));
    }
    const k = fields.get('k'), id = fields.get('id');
    if (k === undefined || id === undefined) throw badText(text);
    return new PsidSet(fields.get('a') ?? DEFAULT_PSID_OFFSET, k, id, opts);
  }
  throw badText(text);
}

/** The boolean twin of parsePortSet. */
export function isValidPortSet(text: string, opts: PortSetOptions = {}): boolean {
  try {
    parsePortSet(text, opts);
    return true;
  } catch {
    return false;
  }
}

/** A binding key: one number for (shared IPv4, port); < 2^48, exact in a double. */
export function bindingKey(ipv4: number, port: number): number {
  return ipv4 * 65536 + port;
}

export function isInt(n: number, lo: number, hi: number): boolean {
  return Number.isInteger(n) && n >= lo && n <= hi;
}
export function isPort(n: number): boolean {
  return isInt(n, 0, MAX_PORT);
}
function badText(text: string): PortSetError {
  return new PortSetError(`bad port set "${text}": expected "first-last" or "psid:a=6/k=K/id=PSID"`);
}
function systemPortsError(text: string): PortSetError {
  return new PortSetError(`port set ${text} includes system ports (0-1023), which are not allowed here`);
}
function sameChunks(x: PortSet, y: PortSet): boolean {
  if (x.size !== y.size || x.min !== y.min || x.max !== y.max) return false;
  const a = x.chunks(), b = y.chunks();
  return a.length === b.length && a.every((c, i) => c[0] === b[i]?.[0] && c[1] === b[i]?.[1]);
}

/**
 * The ports already taken on one address, as a 65536-bit map: `claim` checks a whole set against
 * it and takes it only when no port is taken, in time proportional to the set's chunks (word at a
 * time), not to the number of sets already there. Used to check a million static bindings.
 */
export class PortClaims {
  private readonly bits = new Uint32Array(65536 / 32);

  /** Take every port of `set`, or nothing and return false when one of them is already taken. */
  claim(set: PortSet): boolean {
    const chunks = set.chunks();
    for (const [first, last] of chunks) if (this.any(first, last)) return false;
    for (const [first, last] of chunks) this.fill(first, last);
    return true;
  }

  private any(first: number, last: number): boolean {
    for (let p = first; p <= last; ) {
      const w = p >>> 5;
      const lo = p & 31;
      const hi = Math.min(31, lo + (last - p));
      const mask = (hi === 31 ? 0xffffffff << lo : ((1 << (hi + 1)) - 1) & (0xffffffff << lo)) >>> 0;
      if ((this.bits[w]! & mask) !== 0) return true;
      p += hi - lo + 1;
    }
    return false;
  }

  private fill(first: number, last: number): void {
    for (let p = first; p <= last; ) {
      const w = p >>> 5;
      const lo = p & 31;
      const hi = Math.min(31, lo + (last - p));
      const mask = (hi === 31 ? 0xffffffff << lo : ((1 << (hi + 1)) - 1) & (0xffffffff << lo)) >>> 0;
      this.bits[w] = (this.bits[w]! | mask) >>> 0;
      p += hi - lo + 1;
    }
  }
}
