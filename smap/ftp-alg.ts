/**
 * The SMAP's own FTP ALG: active FTP through a port set.
 *
 * Why not the kernel's helper: nf_nat_ftp rewrites PORT/EPRT with a port chosen by
 * nf_nat_exp_find_port (the client's own port, then random ones above it), which knows nothing of
 * the SNAT range; the PRR routes the server's data connection by destination port, so a port outside
 * the set reaches another customer or nobody. That is why FTP failed in the 2010 experiment.
 *
 * What this does instead, for the LAN's connections to TCP port 21 of anything beyond the LAN:
 *
 *   lan host ──tcp/21──> nft `redirect` (prerouting, table ip smap) ──> this proxy (SO_ORIGINAL_DST)
 *                                                                        │ connects out to the server
 *                                                                        │ (SNATed into the set as usual)
 *   PORT 192,168,1,2,156,64  ──rewritten──>  PORT <shared>,<P>   with P a free port of OUR set
 *   + map element  `server . P : 192.168.1.2 . 40000`  (timeout) in @ftp_data: the server's data
 *     connection to shared:P, routed to us by the PRR because P is ours, is DNATed by the kernel to
 *     the client's announced address and port; its packets back are un-NATed to shared:P.
 *
 * PASV/EPSV and every other line pass through unchanged (passive mode needs nothing: the client
 * connects out through the ordinary SNAT). Refusals answer the client with an FTP reply and are
 * counted; nothing a client sends can throw: an over-long line closes that session only.
 */
import net from 'node:net';
import { formatIpv4, parseIpv4, type Ipv4Prefix } from '../common/config/values.js';
import type { Logger } from '../common/log.js';
import type { PortSet } from '../common/portset.js';
import { classify, formatDataCommand, LineSplitter, lineText, type DataCommand } from './ftp-command.js';

export const FTP_EVENT_NAMES = [
  'sessions', // control connections accepted and relayed to their server
  'refused', // connections dropped at once: no original destination, not from the LAN, too many
  'upstream_failed', // the server could not be reached (the client got 421)
  'port_rewritten', // PORT commands rewritten to the shared address and a port of the set
  'eprt_rewritten', // EPRT |1| commands rewritten likewise
  'malformed', // PORT/EPRT that do not parse (the client got 501)
  'foreign_address', // PORT/EPRT naming another host than the client (501; no third-party transfers)
  'unsupported_family', // EPRT |2| (IPv6): the tunnel carries IPv4 only (522)
  'no_free_port', // no port of the set was free for the data connection (425)
  'mapping_failed', // nftables refused the data mapping (425)
  'line_too_long', // a control line over MAX_LINE bytes: the session was closed
] as const;
export type FtpEventName = (typeof FTP_EVENT_NAMES)[number];
const E = Object.fromEntries(FTP_EVENT_NAMES.map((n, i) => [n, i])) as { readonly [K in FtpEventName]: number };

export interface FtpAlgSnapshot {
  active_sessions: number;
  active_mappings: number;
  events: Record<FtpEventName, number>;
}

/** One data-connection mapping: the server's connection to shared:port goes to client:clientPort. */
export interface DataMapping {
  server: number;
  port: number;
  client: number;
  clientPort: number;
  timeoutSec: number;
}

export interface FtpAlgIo {
  /** The original destination of a redirected connection (throws when there is none). */
  originalDst(sock: net.Socket): { address: string; port: number };
  addMapping(m: DataMapping): Promise<void>;
  removeMapping(m: DataMapping): Promise<void>;
  /** Ports of `shared` held by conntrack entries now (to leave them to their flows). */
  portsInUse(shared: number): Promise<Set<number>>;
}

export interface FtpAlgOptions {
  io: FtpAlgIo;
  log: Logger;
  lanPrefix: Ipv4Prefix;
  /** The current binding, or undefined while there is none (sessions are then refused). */
  binding(): { shared: number; ports: PortSet } | undefined;
  /** How long a mapping waits for the server's data connection. */
  mappingTimeoutSec?: number;
  maxSessions?: number;
  random?: () => number;
  /** The server port the redirect catches (21; tests use another). */
  serverPort?: number;
}

export const FTP_PORT = 21;
const DEFAULT_MAPPING_TIMEOUT_SEC = 60;
const DEFAULT_MAX_SESSIONS = 256;

/** The i-th port of a set (0 <= i < ports.size), walking its runs in order. */
export function nthPort(ports: PortSet, i: number): number {
  for (const [first, last] of ports.chunks()) {
    const n = last - first + 1;
    if (i < n) return first + i;
    i -= n;
  }
  throw new RangeError(`port index ${i} beyond the set ${ports}`);
}

/** A port of `ports` that `busy` does not hold, starting at a random place; undefined when none. */
export function pickDataPort(ports: PortSet, busy: (p: number) => boolean, random: () => number = Math.random): number | undefined {
  const n = ports.size;
  const start = Math.floor(random() * n);
  for (let k = 0; k < n; k++) {
    const p = nthPort(ports, (start + k) % n);
    if (!busy(p)) return p;
  }
  return undefined;
}

export class FtpAlg {
  readonly events = new Float64Array(FTP_EVENT_NAMES.length);
  private server: net.Server | undefined;
  private readonly sessions = new Set<net.Socket>();
  /** port -> mapping, while its timeout runs (no two sessions get the same port). */
  private readonly mappings = new Map<number, { m: DataMapping; timer: NodeJS.Timeout }>();
  private readonly timeoutSec: number;
  private readonly maxSessions: number;

  constructor(private readonly o: FtpAlgOptions) {
    this.timeoutSec = o.mappingTimeoutSec ?? DEFAULT_MAPPING_TIMEOUT_SEC;
    this.maxSessions = o.maxSessions ?? DEFAULT_MAX_SESSIONS;
  }

  /** Listen on host:0 (any free port; the nft redirect is written with it). Returns the port. */
  async listen(host = '0.0.0.0'): Promise<number> {
    const server = net.createServer({ pauseOnConnect: true }, (c) => this.accept(c));
    server.on('error', (err) => this.o.log.warn(`FTP ALG listener: ${err.message}`));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, host, () => resolve());
    });
    this.server = server;
    return (server.address() as net.AddressInfo).port;
  }

  snapshot(): FtpAlgSnapshot {
    const events = {} as Record<FtpEventName, number>;
    FTP_EVENT_NAMES.forEach((n, i) => (events[n] = this.events[i]!));
    return { active_sessions: this.sessions.size, active_mappings: this.mappings.size, events };
  }

  async close(): Promise<void> {
    for (const s of this.sessions) s.destroy();
    const left = [...this.mappings.values()];
    for (const { timer } of left) clearTimeout(timer);
    this.mappings.clear();
    await Promise.all(left.map(({ m }) => this.o.io.removeMapping(m).catch(() => undefined)));
    await new Promise<void>((resolve) => (this.server === undefined ? resolve() : this.server.close(() => resolve())));
  }

  private accept(c: net.Socket): void {
    c.on('error', () => undefined);
    const refuse = (why: string): void => {
      this.events[E.refused]!++;
      this.o.log.debug(`FTP ALG: refused ${c.remoteAddress}:${c.remotePort}: ${why}`);
      c.destroy();
    };
    const client = parseIpv4(c.remoteAddress ?? '');
    if (client === undefined || !this.o.lanPrefix.contains(client)) return refuse('not from the LAN');
    if (this.sessions.size >= this.maxSessions) return refuse(`already ${this.sessions.size} sessions`);
    if (this.o.binding() === undefined) return refuse('no binding yet');
    let dst: { address: string; port: number };
    try {
      dst = this.o.io.originalDst(c);
    } catch (err) {
      return refuse((err as Error).message);
    }
    const serverAddr = parseIpv4(dst.address);
    if (serverAddr === undefined || dst.port !== (this.o.serverPort ?? FTP_PORT)) return refuse(`original destination ${dst.address}:${dst.port} is not an FTP server`);
    this.events[E.sessions]!++;
    this.relay(c, client, serverAddr, dst.port);
  }

  private relay(c: net.Socket, client: number, server: number, port: number): void {
    this.sessions.add(c);
    const u = net.connect({ host: formatIpv4(server), port });
    u.on('error', () => undefined);
    const mine = new Set<number>();
    let connected = false;
    // The session ends when the client's socket closes. Whatever ends it first, the client's side
    // is ended (not destroyed) so that the last replies still reach it, then closed once flushed.
    const finish = (last?: string): void => {
      u.unpipe(c);
      u.destroy();
      if (c.writableFinished) return void c.destroy();
      c.once('finish', () => c.destroy());
      if (last === undefined) c.end();
      else c.end(last);
    };
    c.on('close', () => {
      u.destroy();
      if (!this.sessions.delete(c)) return;
      for (const p of mine) this.release(p);
    });
    u.on('close', () => {
      if (connected) return finish();
      this.events[E.upstream_failed]!++;
      finish('421 Service not available: the FTP server cannot be reached (smap FTP ALG)\r\n');
    });
    u.once('connect', () => {
      connected = true;
      u.pipe(c);
      c.resume();
    });
    const lines = new LineSplitter();
    // Lines are handled one at a time, in order: a PORT waits for its mapping before what follows.
    let queue = Promise.resolve();
    c.on('data', (chunk: Buffer) => {
      const got = lines.push(chunk);
      if (got === 'too_long') {
        this.events[E.line_too_long]!++;
        c.removeAllListeners('data');
        finish('500 Command line too long (smap FTP ALG)\r\n');
        return;
      }
      for (const line of got) queue = queue.then(() => this.line(line, c, u, client, server, mine));
      c.pause();
      void queue.then(() => {
        if (!c.destroyed) c.resume();
      });
    });
  }

  private async line(line: Buffer, c: net.Socket, u: net.Socket, client: number, server: number, mine: Set<number>): Promise<void> {
    if (c.destroyed || u.destroyed) return;
    const what = classify(lineText(line));
    if (what.kind === 'other') {
      // A server that stops reading holds the client back instead of filling our memory.
      if (!u.write(line)) await new Promise<void>((resolve) => { u.once('drain', resolve); u.once('close', resolve); });
      return;
    }
    if (what.kind === 'bad') {
      if (what.reason === 'unsupported_family') {
        this.events[E.unsupported_family]!++;
        c.write('522 Network protocol not supported, use (1) (smap FTP ALG: IPv4 only)\r\n');
      } else {
        this.events[E.malformed]!++;
        c.write(`501 Syntax error in ${what.verb} arguments (smap FTP ALG)\r\n`);
      }
      return;
    }
    const reply = await this.announce(what.cmd, client, server, mine);
    if (reply.startsWith('PORT') || reply.startsWith('EPRT')) u.write(reply);
    else c.write(reply);
  }

  /** The rewritten command for the server, or an FTP error reply for the client. */
  private async announce(cmd: DataCommand, client: number, server: number, mine: Set<number>): Promise<string> {
    if (cmd.address !== client) {
      this.events[E.foreign_address]!++;
      return `501 ${cmd.verb} must name the client's own address (smap FTP ALG)\r\n`;
    }
    const b = this.o.binding();
    if (b === undefined) {
      this.events[E.no_free_port]!++;
      return '425 No binding: cannot open a data connection (smap FTP ALG)\r\n';
    }
    let inUse: Set<number>;
    try {
      inUse = await this.o.io.portsInUse(b.shared);
    } catch {
      inUse = new Set(); // conntrack unreadable: our own reservations still keep sessions apart
    }
    const port = pickDataPort(b.ports, (p) => this.mappings.has(p) || inUse.has(p), this.o.random);
    if (port === undefined) {
      this.events[E.no_free_port]!++;
      return `425 No free port in ${b.ports} for the data connection (smap FTP ALG)\r\n`;
    }
    const m: DataMapping = { server, port, client, clientPort: cmd.port, timeoutSec: this.timeoutSec };
    const timer = setTimeout(() => this.mappings.delete(port), this.timeoutSec * 1000);
    timer.unref();
    this.mappings.set(port, { m, timer });
    try {
      await this.o.io.addMapping(m);
    } catch (err) {
      clearTimeout(timer);
      this.mappings.delete(port);
      this.events[E.mapping_failed]!++;
      this.o.log.warn(`FTP ALG: data mapping ${formatIpv4(server)} . ${port} refused: ${(err as Error).message}`);
      return '425 Cannot prepare the data connection (smap FTP ALG)\r\n';
    }
    mine.add(port);
    this.events[cmd.verb === 'PORT' ? E.port_rewritten : E.eprt_rewritten]!++;
    this.o.log.debug(`FTP ALG: ${cmd.verb} ${formatIpv4(client)}:${cmd.port} -> ${formatIpv4(b.shared)}:${port} for ${formatIpv4(server)}`);
    return formatDataCommand(cmd.verb, b.shared, port);
  }

  /** A session ended: its mappings go (established data connections keep their conntrack entry). */
  private release(port: number): void {
    const e = this.mappings.get(port);
    if (e === undefined) return;
    clearTimeout(e.timer);
    this.mappings.delete(port);
    this.o.io.removeMapping(e.m).catch(() => undefined);
  }
}
