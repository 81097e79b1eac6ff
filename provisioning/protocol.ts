/**
 * The SSH registration protocol, as both sides speak it (ARCHITECTURE.md "Registration over SSH").
 *
 * A CPE opens one SSH exec channel per request; the exec command line is the request and the
 * channel's output is the reply:
 *   - success: exit status 0, one JSON document (one line) on stdout;
 *   - failure: exit status non-zero (EXIT_*), one error line on stderr, nothing changed.
 *
 * The command line is words separated by spaces: a command name, then `--flag value` pairs. No
 * quoting, no shell: the PRR never runs a shell. Every flag is read, then all are validated once;
 * a repeated, unknown or valueless flag is an error. Lines over MAX_COMMAND_BYTES or with control
 * characters are refused before they are split.
 *
 * The commands (one handler each, below): register, renew, release, status. The PRR implements
 * them (RegistrationService); this module holds only the shapes, the parser and the dispatcher,
 * so neither side owns the protocol.
 */
import { isIPv6 } from 'node:net';

/** Longest exec command line accepted, in bytes. */
export const MAX_COMMAND_BYTES = 512;

/** Exit statuses of a failed request (0 is success). */
export const EXIT_USAGE = 2; // the command line is malformed
export const EXIT_REFUSED = 3; // well formed, but refused (no binding, too many ports, rate limit)
export const EXIT_EXHAUSTED = 4; // no free port set left in the pools
export const EXIT_INTERNAL = 5; // the PRR failed (store, table); nothing was acknowledged

/** A request failure: its exit status and its one-line message. */
export class ProtocolError extends Error {
  readonly exitCode: number;
  constructor(exitCode: number, message: string) {
    super(message);
    this.exitCode = exitCode;
    this.name = 'ProtocolError';
  }
}

/** The reply to register, renew and status: the CPE's binding. */
export interface LeaseReply {
  /** The subscriber name the PRR knows this CPE by. */
  subscriber: string;
  /** The CPE's IPv6 address the PRR tunnels to. */
  ipv6: string;
  shared_ipv4: string;
  /** The port set in text form: `first-last` or `psid:a=A/k=K/id=ID`. */
  ports: string;
  /** Present when the set is an RFC 7597 PSID set. */
  psid?: { offset: number; length: number; value: number };
  /** The set as contiguous [first, last] runs (range form of any set; one run for a range). */
  ranges?: Array<[number, number]>;
  /** The PRR's tunnel endpoint (BR) address. */
  prr_ipv6: string;
  /** Seconds until the lease ends unless renewed. */
  lease_seconds: number;
  /** The IPv4 MTU inside the tunnel. */
  mtu: number;
}

/** The reply to release. */
export interface ReleaseReply {
  subscriber: string;
  released: boolean;
}

/** Who is asking: the authenticated key, as the SSH server saw it. */
export interface Peer {
  /** OpenSSH SHA256 fingerprint of the CPE's public key (`SHA256:...`). */
  fingerprint: string;
  /** The peer's address, for logs. */
  address: string;
}

export interface RegisterRequest {
  ipv6: string;
  /** Ports asked for; undefined = the PRR's default for this key. */
  ports: number | undefined;
  /** The CPE's own count of the ports of its set in use (optional; older CPEs send none). */
  usage?: UsageReport;
}

/**
 * `--usage tcp=N,udp=N,icmp=N,other=N`: distinct ports of the CPE's set that its conntrack table
 * holds, per protocol (`other`: every other protocol), when it sent the request. Any subset of the
 * keys, each at most once; a key left out is 0. The PRR exports it beside its own observation.
 */
export const USAGE_PROTOCOLS = ['tcp', 'udp', 'icmp', 'other'] as const;
export type UsageReport = Record<(typeof USAGE_PROTOCOLS)[number], number>;

/** The `--usage` value of a report. */
export function formatUsage(u: UsageReport): string {
  return USAGE_PROTOCOLS.map((k) => `${k}=${u[k]}`).join(',');
}

/** Parse a `--usage` value; throws ProtocolError(EXIT_USAGE) naming what is wrong. */
export function parseUsage(text: string): UsageReport {
  const out: UsageReport = { tcp: 0, udp: 0, icmp: 0, other: 0 };
  const seen = new Set<string>();
  for (const part of text.split(',')) {
    const m = /^([a-z]+)=(\d{1,5})$/.exec(part);
    const key = m?.[1] as (typeof USAGE_PROTOCOLS)[number] | undefined;
    if (m === null || key === undefined || !USAGE_PROTOCOLS.includes(key)) {
      throw new ProtocolError(EXIT_USAGE, `--usage ${printable(text)}: expected ${USAGE_PROTOCOLS.map((k) => `${k}=N`).join(',')} (any of them, comma separated)`);
    }
    const n = Number(m[2]);
    if (n > MAX_PORTS) throw new ProtocolError(EXIT_USAGE, `--usage ${key}=${n}: more than ${MAX_PORTS} ports`);
    if (seen.has(key)) throw new ProtocolError(EXIT_USAGE, `--usage: ${key} given twice`);
    seen.add(key);
    out[key] = n;
  }
  return out;
}

export interface RenewRequest {
  ipv6: string | undefined;
  /** As in RegisterRequest. */
  usage?: UsageReport;
}

/** What the PRR does for each command. Methods throw ProtocolError for a refusal. */
export interface RegistrationService {
  register(peer: Peer, req: RegisterRequest): LeaseReply;
  renew(peer: Peer, req: RenewRequest): LeaseReply;
  release(peer: Peer): ReleaseReply;
  status(peer: Peer): LeaseReply;
}

/** Flags as read from the line, before validation. */
type Flags = Map<string, string>;

interface Command {
  /** Flags the command takes. */
  flags: readonly string[];
  usage: string;
  run(svc: RegistrationService, peer: Peer, flags: Flags): LeaseReply | ReleaseReply;
}

/** Upper bound of `--ports` the protocol accepts at all (the PRR's policy is narrower). */
const MAX_PORTS = 65536;

function ipv6Flag(flags: Flags, required: true): string;
function ipv6Flag(flags: Flags, required: false): string | undefined;
function ipv6Flag(flags: Flags, required: boolean): string | undefined {
  const v = flags.get('ipv6');
  if (v === undefined) {
    if (required) throw new ProtocolError(EXIT_USAGE, '--ipv6 is required');
    return undefined;
  }
  if (!isIPv6(v) || v.includes('%')) throw new ProtocolError(EXIT_USAGE, `--ipv6 ${v}: not an IPv6 address`);
  return v;
}

/** The optional `--usage` report, parsed (see parseUsage). */
function usageFlag(flags: Flags): { usage?: UsageReport } {
  const v = flags.get('usage');
  return v === undefined ? {} : { usage: parseUsage(v) };
}

function portsFlag(flags: Flags): number | undefined {
  const v = flags.get('ports');
  if (v === undefined) return undefined;
  const n = /^\d{1,5}$/.test(v) ? Number(v) : NaN;
  if (!(n >= 1 && n <= MAX_PORTS)) throw new ProtocolError(EXIT_USAGE, `--ports ${v}: expected a number of ports, 1-${MAX_PORTS}`);
  return n;
}

export const COMMANDS: Readonly<Record<string, Command>> = {
  /**
   * register --ipv6 ADDR [--ports N] [--usage tcp=N,udp=N,icmp=N,other=N]
   *   Bind this key: the same key always gets the same set back (sticky); a new ADDR moves the
   *   binding. -> LeaseReply. Refused: pool exhausted (EXIT_EXHAUSTED), N outside the policy.
   *   --usage: the CPE's conntrack count of its ports in use (see parseUsage).
   */
  register: {
    flags: ['ipv6', 'ports', 'usage'],
    usage: 'register --ipv6 ADDR [--ports N] [--usage tcp=N,udp=N,icmp=N,other=N]',
    run: (svc, peer, f) => {
      const ipv6 = ipv6Flag(f, true);
      const ports = portsFlag(f);
      return svc.register(peer, { ipv6, ports, ...usageFlag(f) });
    },
  },
  /**
   * renew [--ipv6 ADDR] [--usage tcp=N,udp=N,icmp=N,other=N]
   *   Extend the lease of this key's binding (and move it to ADDR if given). -> LeaseReply.
   *   Refused when the key holds no binding (EXIT_REFUSED): the CPE then registers.
   */
  renew: {
    flags: ['ipv6', 'usage'],
    usage: 'renew [--ipv6 ADDR] [--usage tcp=N,udp=N,icmp=N,other=N]',
    run: (svc, peer, f) => {
      const ipv6 = ipv6Flag(f, false);
      return svc.renew(peer, { ipv6, ...usageFlag(f) });
    },
  },
  /**
   * release
   *   Free this key's binding and port set. -> ReleaseReply {subscriber, released}; released is
   *   false when there was nothing to free (not an error: release is idempotent).
   */
  release: {
    flags: [],
    usage: 'release',
    run: (svc, peer) => svc.release(peer),
  },
  /**
   * status
   *   This key's binding, unchanged. -> LeaseReply; EXIT_REFUSED when there is none.
   */
  status: {
    flags: [],
    usage: 'status',
    run: (svc, peer) => svc.status(peer),
  },
};

export interface ParsedCommand {
  name: string;
  flags: Flags;
}

/**
 * Split an exec command line into a command name and its flags. Throws ProtocolError(EXIT_USAGE)
 * naming the first fault. Validation of the values is the command's (all flags are read first).
 */
export function parseCommandLine(line: string): ParsedCommand {
  if (Buffer.byteLength(line, 'utf8') > MAX_COMMAND_BYTES) {
    throw new ProtocolError(EXIT_USAGE, `command longer than ${MAX_COMMAND_BYTES} bytes`);
  }
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x08\x0a-\x1f\x7f]/.test(line)) throw new ProtocolError(EXIT_USAGE, 'control characters in the command');
  const words = line.trim().split(/[ \t]+/).filter((w) => w !== '');
  const name = words[0];
  if (name === undefined) throw new ProtocolError(EXIT_USAGE, `empty command; expected one of ${Object.keys(COMMANDS).join(', ')}`);
  const cmd = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (cmd === undefined) throw new ProtocolError(EXIT_USAGE, `unknown command "${printable(name)}"; expected one of ${Object.keys(COMMANDS).join(', ')}`);
  const flags: Flags = new Map();
  for (let i = 1; i < words.length; i += 2) {
    const w = words[i]!;
    const key = w.startsWith('--') ? w.slice(2) : undefined;
    if (key === undefined || !cmd.flags.includes(key)) throw new ProtocolError(EXIT_USAGE, `${name}: unexpected "${printable(w)}"; usage: ${cmd.usage}`);
    if (flags.has(key)) throw new ProtocolError(EXIT_USAGE, `${name}: --${key} given twice`);
    const value = words[i + 1];
    if (value === undefined) throw new ProtocolError(EXIT_USAGE, `${name}: --${key} needs a value; usage: ${cmd.usage}`);
    flags.set(key, value);
  }
  return { name, flags };
}

/** The outcome of one request, as the SSH server writes it to the channel. */
export interface Outcome {
  exitCode: number;
  /** One JSON line (success) or empty. */
  stdout: string;
  /** One error line (failure) or empty. */
  stderr: string;
}

/** Parse and run one exec command line against the service. Never throws. */
export function runCommand(svc: RegistrationService, peer: Peer, line: string): Outcome {
  try {
    const { name, flags } = parseCommandLine(line);
    const reply = COMMANDS[name]!.run(svc, peer, flags);
    return { exitCode: 0, stdout: JSON.stringify(reply) + '\n', stderr: '' };
  } catch (err) {
    const code = err instanceof ProtocolError ? err.exitCode : EXIT_INTERNAL;
    const msg = (err instanceof Error ? err.message : String(err)).replace(/\s*\n\s*/g, ' ');
    return { exitCode: code, stdout: '', stderr: `error: ${msg}\n` };
  }
}

/** Decode a LeaseReply (the SMAP's side). Throws ProtocolError(EXIT_INTERNAL) naming the field. */
export function decodeLease(text: string): LeaseReply {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new ProtocolError(EXIT_INTERNAL, 'reply is not JSON');
  }
  if (typeof doc !== 'object' || doc === null) throw new ProtocolError(EXIT_INTERNAL, 'reply is not a JSON object');
  const o = doc as Record<string, unknown>;
  const str = (k: string): string => {
    if (typeof o[k] !== 'string') throw new ProtocolError(EXIT_INTERNAL, `reply field "${k}": expected a string`);
    return o[k] as string;
  };
  const num = (k: string): number => {
    if (typeof o[k] !== 'number' || !Number.isInteger(o[k])) throw new ProtocolError(EXIT_INTERNAL, `reply field "${k}": expected an integer`);
    return o[k] as number;
  };
  const lease: LeaseReply = {
    subscriber: str('subscriber'),
    ipv6: str('ipv6'),
    shared_ipv4: str('shared_ipv4'),
    ports: str('ports'),
    prr_ipv6: str('prr_ipv6'),
    lease_seconds: num('lease_seconds'),
    mtu: num('mtu'),
  };
  if (o['psid'] !== undefined) lease.psid = o['psid'] as LeaseReply['psid'];
  return lease;
}

function printable(s: string): string {
  return s.length > 40 ? `${s.slice(0, 40)}...` : s;
}
