/**
 * Parsers for the scalar values found in config files: IPv4/IPv6 addresses and prefixes,
 * durations, host:port, interface names. Each `parseX` returns the value, or `undefined` when the
 * text does not have the expected form (the loader then says "expected ..., got ..."), or throws a
 * ConfigError whose reason says what is wrong with a well-formed but unacceptable value.
 */
import { ConfigError } from '../errors.js';

// ---- IPv4 ---------------------------------------------------------------------------------------

/** Dotted quad to uint32. No leading zeros (is `010` octal or decimal? neither: refused). */
export function parseIpv4(text: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text.trim());
  if (m === null) return undefined;
  let n = 0;
  for (const part of m.slice(1)) {
    if ((part.length > 1 && part.startsWith('0')) || Number(part) > 255) return undefined;
    n = n * 256 + Number(part);
  }
  return n;
}

export function formatIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** An IPv4 prefix such as 192.0.2.0/24 (a bare address is a /32 where allowed). */
export class Ipv4Prefix {
  readonly addr: number;
  readonly len: number;
  constructor(addr: number, len: number) {
    this.addr = addr;
    this.len = len;
  }
  /** Number of addresses. */
  get size(): number { return 2 ** (32 - this.len); }
  get first(): number { return this.addr; }
  get last(): number { return this.addr + this.size - 1; }
  contains(ipv4: number): boolean { return ipv4 >= this.first && ipv4 <= this.last; }
  overlaps(other: Ipv4Prefix): boolean { return other.first <= this.last && other.last >= this.first; }
  /** Every address of the prefix, as uint32 (network and broadcast included: shared pools use them all). */
  addresses(): number[] { return Array.from({ length: this.size }, (_, i) => this.addr + i); }
  toString(): string { return `${formatIpv4(this.addr)}/${this.len}`; }
}

export function parseIpv4Prefix(text: string, opts: { allowBare?: boolean } = {}): Ipv4Prefix | undefined {
  const [a, l, extra] = text.trim().split('/');
  if (a === undefined || extra !== undefined) return undefined;
  const addr = parseIpv4(a);
  if (addr === undefined) return undefined;
  if (l === undefined) return opts.allowBare === true ? new Ipv4Prefix(addr, 32) : undefined;
  if (!/^\d{1,2}$/.test(l) || Number(l) > 32) return undefined;
  const len = Number(l);
  const host = len === 32 ? 0 : (addr % 2 ** (32 - len));
  if (host !== 0) {
    const net = new Ipv4Prefix(addr - host, len);
    throw new ConfigError(`host bits are set in ${text.trim()} (did you mean ${net}?)`);
  }
  return new Ipv4Prefix(addr, len);
}

// ---- IPv6 ---------------------------------------------------------------------------------------

/** The eight 16-bit groups of an IPv6 address, or undefined. Zone ids (`%eth0`) are refused. */
export function parseIpv6Groups(text: string): number[] | undefined {
  let s = text.trim();
  if (s.length < 2 || s.length > 45 || /[^0-9a-fA-F:.]/.test(s)) return undefined;
  let v4: number[] = [];
  const lastColon = s.lastIndexOf(':');
  if (s.includes('.', lastColon)) {
    const n = parseIpv4(s.slice(lastColon + 1));
    if (n === undefined) return undefined;
    v4 = [n >>> 16, n & 0xffff];
    s = s.slice(0, lastColon + 1);
    if (!s.endsWith('::')) s = s.slice(0, -1);
  }
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const groups = (h: string | undefined): number[] | undefined => {
    if (h === undefined || h === '') return [];
    const out: number[] = [];
    for (const g of h.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const head = groups(halves[0]);
  const tail = groups(halves[1]);
  if (head === undefined || tail === undefined) return undefined;
  const known = head.length + tail.length + v4.length;
  if (halves.length === 1) return known === 8 ? [...head, ...v4] : undefined;
  if (known > 7) return undefined; // "::" stands for at least one zero group
  return [...head, ...new Array<number>(8 - known).fill(0), ...tail, ...v4];
}

/** RFC 5952 text: lower case, no leading zeros, the longest run (>= 2) of zero groups as "::". */
export function formatIpv6(groups: readonly number[]): string {
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j === i ? i + 1 : j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/** An IPv6 address in its canonical RFC 5952 text, so equal addresses compare equal as strings. */
export function parseIpv6(text: string): string | undefined {
  const g = parseIpv6Groups(text);
  return g === undefined ? undefined : formatIpv6(g);
}

/** The 16 bytes of an IPv6 address (as the binding table and the raw socket want them). */
export function ipv6Bytes(text: string): Buffer {
  const g = parseIpv6Groups(text);
  if (g === undefined) throw new ConfigError(`not an IPv6 address: "${text}"`);
  const buf = Buffer.alloc(16);
  g.forEach((v, i) => buf.writeUInt16BE(v, i * 2));
  return buf;
}

export class Ipv6Prefix {
  readonly addr: string;
  readonly len: number;
  constructor(addr: string, len: number) {
    this.addr = addr;
    this.len = len;
  }
  toString(): string { return `${this.addr}/${this.len}`; }
}

export function parseIpv6Prefix(text: string): Ipv6Prefix | undefined {
  const [a, l, extra] = text.trim().split('/');
  if (a === undefined || l === undefined || extra !== undefined || !/^\d{1,3}$/.test(l) || Number(l) > 128) return undefined;
  const g = parseIpv6Groups(a);
  if (g === undefined) return undefined;
  const len = Number(l);
  const net = g.map((v, i) => {
    const keep = Math.max(0, Math.min(16, len - i * 16));
    return keep === 0 ? 0 : v & ((0xffff << (16 - keep)) & 0xffff);
  });
  if (net.some((v, i) => v !== g[i])) {
    throw new ConfigError(`host bits are set in ${text.trim()} (did you mean ${formatIpv6(net)}/${len}?)`);
  }
  return new Ipv6Prefix(formatIpv6(g), len);
}

// ---- others -------------------------------------------------------------------------------------

export function parseBool(text: string): boolean | undefined {
  const s = text.trim().toLowerCase();
  if (['true', 'yes', 'on', '1'].includes(s)) return true;
  if (['false', 'no', 'off', '0'].includes(s)) return false;
  return undefined;
}

/** Decimal integer, or undefined. */
export function parseInteger(text: string): number | undefined {
  const s = text.trim();
  return /^[-+]?\d{1,15}$/.test(s) ? Number(s) : undefined;
}

/** `90`, `30s`, `5m`, `1h`, `2d`, `1h30m` to seconds. */
export function parseDuration(text: string): number | undefined {
  const s = text.trim().toLowerCase();
  if (/^\d{1,12}$/.test(s)) return Number(s);
  const m = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(s);
  if (m === null || s === '') return undefined;
  const [d, h, min, sec] = m.slice(1).map((x) => Number(x ?? 0));
  return (d ?? 0) * 86400 + (h ?? 0) * 3600 + (min ?? 0) * 60 + (sec ?? 0);
}

const HOSTNAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?$/i;

/** An IPv4 address, an IPv6 address (canonical text) or a DNS name. */
export function parseHost(text: string): string | undefined {
  const s = text.trim();
  if (parseIpv4(s) !== undefined) return s;
  if (s.includes(':')) return parseIpv6(s);
  return HOSTNAME.test(s) && !/^[\d.]+$/.test(s) ? s : undefined;
}

export interface HostPort {
  host: string;
  port: number;
}

/** `127.0.0.1:9150`, `[::1]:9150`, `localhost:9150`. */
export function parseHostPort(text: string): HostPort | undefined {
  const s = text.trim();
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(s) ?? /^([^:[\]]+):(\d{1,5})$/.exec(s);
  if (m === null || m[1] === undefined) return undefined;
  const host = m[0].startsWith('[') ? parseIpv6(m[1]) : parseHost(m[1]);
  const port = Number(m[2]);
  if (host === undefined || port < 1 || port > 65535) return undefined;
  return { host, port };
}

export function formatHostPort(hp: HostPort): string {
  return hp.host.includes(':') ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}

/** A Linux network interface name: 1-15 characters, no slash, no blank, not "." or "..". */
export function parseIfName(text: string): string | undefined {
  const s = text.trim();
  return /^[A-Za-z0-9_.:@-]{1,15}$/.test(s) && s !== '.' && s !== '..' ? s : undefined;
}
