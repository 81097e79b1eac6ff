/**
 * The 2010 experiment's flat config file, read unchanged:
 *
 *   PrrAddrV4 192.0.2.1          the PRR's own IPv4 address
 *   PrrAddrV6 2001:db8::1        the PRR's tunnel endpoint
 *   IPv4Shared 192.0.2.100       the one shared IPv4 address
 *   Cpe1AddrV6 2001:db8:1::2     CPE 1's IPv6 address ...
 *   Cpe1PortRange 10000-11000    ... and its ports, both ends included (1001 ports)
 *   Cpe2AddrV6 2001:db8:2::2
 *   Cpe2PortRange 11001-12000
 *
 * One `KEY VALUE`, `KEY=VALUE` or `KEY = VALUE` per line; the value may be quoted as in a shell
 * ("..." or '...'); `#` starts a comment (a whole line, or after the value). Keys are matched
 * without regard to case. CPEs are numbered 1, 2, ... (gaps allowed, any order); each needs both
 * its keys. Ports 0-1023 are refused, as in prr.ini without allow_system_ports (the flat file has
 * no such switch). Every error is a ConfigError naming file:line and key.
 *
 * The file means the same as a prr.ini with [prr] ipv4 = PrrAddrV4, tunnel_ipv6 = PrrAddrV6,
 * shared_ipv4 = IPv4Shared, defaults for everything else, and one [subscriber.cpeN] per CPE
 * (prr/model.ts builds that model).
 */
import { ConfigError, PortSetError } from '../common/errors.js';
import { isUnicastIpv4 } from '../common/config/prr.js';
import { closest } from '../common/config/schema.js';
import { formatIpv4, parseIpv4, parseIpv6 } from '../common/config/values.js';
import { FIRST_USER_PORT, PortRange } from '../common/portset.js';

export interface LegacyCpe {
  /** N of CpeN. */
  n: number;
  /** `cpeN`: the subscriber name. */
  name: string;
  /** Canonical (RFC 5952) text. */
  ipv6: string;
  ports: PortRange;
}

export interface LegacyConfig {
  prrIpv4: number;
  prrIpv6: string;
  shared: number;
  /** Ordered by N. */
  cpes: LegacyCpe[];
}

/** The key names, as the original wrote them (`CpeN...` stands for Cpe1, Cpe2, ...). */
export const LEGACY_KEYS = ['PrrAddrV4', 'PrrAddrV6', 'IPv4Shared', 'CpeNAddrV6', 'CpeNPortRange'] as const;

const FIXED = ['PrrAddrV4', 'PrrAddrV6', 'IPv4Shared'] as const;
const CPE_KEY = /^cpe(\d+)(addrv6|portrange)$/i;
const LINE = /^([A-Za-z][A-Za-z0-9_]*)(?:\s*=\s*|\s+|$)(.*)$/;

/** The key of a flat-file line (`KEY VALUE`, `KEY=VALUE`), or undefined when the line has another shape. */
export function legacyLineKey(line: string): string | undefined {
  return LINE.exec(line.trim())?.[1];
}

/** True when `key` is one of the flat file's keys, or a near miss of one (for format detection). */
export function looksLikeLegacyKey(key: string): boolean {
  return canonicalKey(key) !== undefined || closest(key, [...FIXED, 'Cpe1AddrV6', 'Cpe1PortRange']) !== undefined;
}

interface Seen<T> {
  value: T;
  line: number;
}

export function parseLegacy(text: string, file: string): LegacyConfig {
  let prrIpv4: Seen<number> | undefined, prrIpv6: Seen<string> | undefined, shared: Seen<number> | undefined;
  const cpes = new Map<number, { ipv6?: Seen<string>; ports?: Seen<PortRange> }>();
  const firstLine = new Map<string, number>(); // canonical key -> line
  const err = (line: number | undefined, key: string, reason: string): ConfigError =>
    new ConfigError(reason, line === undefined ? { file, key } : { file, line, key });

  text.replace(/^\uFEFF/, '').split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    const s = raw.trim();
    if (s === '' || s.startsWith('#')) return;
    const m = LINE.exec(s);
    if (m === null || m[1] === undefined) throw new ConfigError(`expected "KEY VALUE" or "KEY=VALUE", got ${JSON.stringify(s)}`, { file, line });
    const written = m[1];
    const key = canonicalKey(written);
    if (key === undefined) throw err(line, written, unknownKeyReason(written));
    const first = firstLine.get(key);
    if (first !== undefined) throw err(line, key, `key repeated (first at line ${first})`);
    firstLine.set(key, line);
    const value = unquote(m[2] ?? '', (reason) => err(line, key, reason));
    const v4 = (): Seen<number> => ({ value: parseIpv4(value) ?? fail('IPv4'), line });
    const v6 = (): Seen<string> => ({ value: parseIpv6(value) ?? fail('IPv6'), line });
    const fail = (family: string): never => {
      throw err(line, key, `expected an ${family} address, got ${JSON.stringify(value)}`);
    };

    if (key === 'PrrAddrV4') prrIpv4 = v4();
    else if (key === 'PrrAddrV6') prrIpv6 = v6();
    else if (key === 'IPv4Shared') shared = v4();
    else {
      const [, n, what] = CPE_KEY.exec(key) ?? [];
      const entry = cpes.get(Number(n)) ?? {};
      cpes.set(Number(n), entry);
      if (what === 'AddrV6') entry.ipv6 = v6();
      else entry.ports = { value: parseRange(value, (reason) => err(line, key, reason)), line };
    }
  });

  if (prrIpv4 === undefined) throw err(undefined, 'PrrAddrV4', 'missing required key');
  if (prrIpv6 === undefined) throw err(undefined, 'PrrAddrV6', 'missing required key');
  if (shared === undefined) throw err(undefined, 'IPv4Shared', 'missing required key');
  if (!isUnicastIpv4(prrIpv4.value)) {
    throw err(prrIpv4.line, 'PrrAddrV4', `${formatIpv4(prrIpv4.value)} is not a unicast address the PRR can send from`);
  }
  if (prrIpv4.value === shared.value) {
    throw err(shared.line, 'IPv4Shared', `${formatIpv4(shared.value)} is also PrrAddrV4; the shared address belongs to the CPEs, the PRR needs its own`);
  }

  const out: LegacyCpe[] = [];
  const byIpv6 = new Map<string, number>();
  for (const n of [...cpes.keys()].sort((a, b) => a - b)) {
    const { ipv6, ports } = cpes.get(n) ?? {};
    if (ipv6 === undefined) throw err(ports?.line, `Cpe${n}PortRange`, `Cpe${n} has a port range but no Cpe${n}AddrV6`);
    if (ports === undefined) throw err(ipv6.line, `Cpe${n}AddrV6`, `Cpe${n} has an address but no Cpe${n}PortRange`);
    if (ipv6.value === prrIpv6.value) throw err(ipv6.line, `Cpe${n}AddrV6`, `${ipv6.value} is PrrAddrV6, the PRR's own address`);
    const twin = byIpv6.get(ipv6.value);
    if (twin !== undefined) {
      throw err(ipv6.line, `Cpe${n}AddrV6`, `${ipv6.value} is also Cpe${twin}AddrV6 (line ${cpes.get(twin)?.ipv6?.line})`);
    }
    byIpv6.set(ipv6.value, n);
    out.push({ n, name: `cpe${n}`, ipv6: ipv6.value, ports: ports.value });
  }

  // Overlaps, in one pass over the ranges sorted by first port; reported at the higher CPE number.
  const byFirst = [...out].sort((a, b) => a.ports.first - b.ports.first);
  let reach: LegacyCpe | undefined; // the range reaching furthest so far
  for (const c of byFirst) {
    if (reach !== undefined && c.ports.first <= reach.ports.last) {
      const [lo, hi] = reach.n < c.n ? [reach, c] : [c, reach];
      const line = (x: LegacyCpe): number | undefined => cpes.get(x.n)?.ports?.line;
      throw err(line(hi), `Cpe${hi.n}PortRange`, `${hi.ports} overlaps Cpe${lo.n}PortRange (line ${line(lo)}) ${lo.ports}`);
    }
    if (reach === undefined || c.ports.last > reach.ports.last) reach = c;
  }
  return { prrIpv4: prrIpv4.value, prrIpv6: prrIpv6.value, shared: shared.value, cpes: out };
}

/** `PrrAddrV4`, `Cpe12PortRange`, ... as the original spelled them; undefined for anything else. */
function canonicalKey(written: string): string | undefined {
  const fixed = FIXED.find((k) => k.toLowerCase() === written.toLowerCase());
  if (fixed !== undefined) return fixed;
  const m = CPE_KEY.exec(written);
  if (m === null || m[1] === undefined || !/^[1-9]\d{0,8}$/.test(m[1])) return undefined;
  return `Cpe${m[1]}${m[2]?.toLowerCase() === 'addrv6' ? 'AddrV6' : 'PortRange'}`;
}

function unknownKeyReason(written: string): string {
  const cpe = /^cpe(\d+)/i.exec(written);
  if (cpe !== null && CPE_KEY.test(written)) return 'CPE numbers are 1, 2, 3, ... without leading zeros';
  const n = cpe?.[1] !== undefined && /^[1-9]\d{0,8}$/.test(cpe[1]) ? cpe[1] : 'N';
  const hint = closest(written, [...FIXED, `Cpe${n}AddrV6`, `Cpe${n}PortRange`]);
  return hint !== undefined ? `unknown key (did you mean ${hint}?)` : `unknown key (known: ${LEGACY_KEYS.join(', ')})`;
}

/** The value: one word, or one shell-quoted string; an optional `# comment` after it. */
function unquote(rest: string, fail: (reason: string) => ConfigError): string {
  let value: string, tail: string;
  const q = rest[0];
  if (q === '"' || q === "'") {
    let i = 1;
    value = '';
    for (; i < rest.length && rest[i] !== q; i++) {
      if (q === '"' && rest[i] === '\\' && i + 1 < rest.length && '"\\$`'.includes(rest[i + 1] as string)) i++;
      value += rest[i];
    }
    if (i >= rest.length) throw fail(`unterminated ${q === '"' ? 'double' : 'single'} quote`);
    tail = rest.slice(i + 1);
    value = value.trim();
  } else {
    value = rest.startsWith('#') ? '' : (/^\S*/.exec(rest)?.[0] ?? '');
    tail = rest.slice(value.length);
  }
  if (!/^(\s+#.*|\s*|#.*)$/.test(tail) || (value !== '' && tail.startsWith('#'))) {
    throw fail(`expected one value, got ${JSON.stringify(rest.trim())}`);
  }
  if (value === '') throw fail('missing value');
  return value;
}

/** `first-last`, both ends included, as the original wrote them. */
function parseRange(value: string, fail: (reason: string) => ConfigError): PortRange {
  const m = /^(\d{1,5})\s*-\s*(\d{1,5})$/.exec(value);
  if (m === null) throw fail(`expected a port range first-last (10000-11000), got ${JSON.stringify(value)}`);
  let range: PortRange;
  try {
    range = new PortRange(Number(m[1]), Number(m[2]), { allowSystemPorts: true });
  } catch (e) {
    if (e instanceof PortSetError) throw fail(e.message);
    throw e;
  }
  if (range.first < FIRST_USER_PORT) {
    throw fail(`${range} includes system ports (0-1023), which the flat file cannot allow (prr.ini can, with [prr] allow_system_ports = true)`);
  }
  return range;
}
