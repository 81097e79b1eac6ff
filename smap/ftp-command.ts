/**
 * The FTP control-channel grammar the SMAP's FTP ALG needs (smap/ftp-alg.ts): splitting the client's
 * byte stream into lines, recognising the two commands that announce an active-mode data port, and
 * writing them again with the shared address and a port of the CPE's own set.
 *
 *   PORT h1,h2,h3,h4,p1,p2        RFC 959 §4.1.2: address h1.h2.h3.h4, port p1*256+p2
 *   EPRT |1|a.b.c.d|port|         RFC 2428 §2: any delimiter in ASCII 33-126; 1 = IPv4, 2 = IPv6
 *
 * Everything else passes through untouched (PASV and EPSV included: the server names its own
 * address and the client connects out through the ordinary SNAT). Pure functions, no I/O.
 */
import { formatIpv4 } from '../common/config/values.js';

/** vsftpd's own command-line limit (VSFTP_MAX_COMMAND_LINE): longer is not FTP. */
export const MAX_LINE = 4096;

export type DataCommand = { verb: 'PORT' | 'EPRT'; address: number; port: number };

/** Why an announcement was refused; stable names (counter labels). */
export type DataCommandError = 'malformed' | 'unsupported_family';

export type Classified =
  | { kind: 'other' }
  | { kind: 'data'; cmd: DataCommand }
  | { kind: 'bad'; verb: 'PORT' | 'EPRT'; reason: DataCommandError };

const DECIMAL = /^\d{1,5}$/;

function byteOf(text: string, max: number): number | undefined {
  if (!DECIMAL.test(text)) return undefined;
  const n = Number(text);
  return n <= max ? n : undefined;
}

function parseDotted(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let a = 0;
  for (const p of parts) {
    const b = byteOf(p, 255);
    if (b === undefined) return undefined;
    a = a * 256 + b;
  }
  return a;
}

function parsePort(arg: string): DataCommand | DataCommandError {
  const f = arg.split(',').map((s) => s.trim());
  if (f.length !== 6) return 'malformed';
  const b = f.map((s) => byteOf(s, 255));
  if (b.some((x) => x === undefined)) return 'malformed';
  const [h1, h2, h3, h4, p1, p2] = b as number[];
  const port = p1! * 256 + p2!;
  if (port === 0) return 'malformed';
  return { verb: 'PORT', address: ((h1! << 24) >>> 0) + (h2! << 16) + (h3! << 8) + h4!, port };
}

function parseEprt(arg: string): DataCommand | DataCommandError {
  const d = arg.charCodeAt(0);
  if (!(d >= 33 && d <= 126)) return 'malformed';
  const f = arg.split(arg[0]!);
  // "|1|a.b.c.d|port|" splits into ['', '1', 'a.b.c.d', 'port', '']
  if (f.length !== 5 || f[0] !== '' || f[4] !== '') return 'malformed';
  if (f[1] === '2') return 'unsupported_family';
  if (f[1] !== '1') return 'malformed';
  const address = parseDotted(f[2]!);
  const port = byteOf(f[3]!, 65535);
  if (address === undefined || port === undefined || port === 0) return 'malformed';
  return { verb: 'EPRT', address, port };
}

/** What a client's line (without its line end) is, to the ALG. */
export function classify(line: string): Classified {
  const m = /^\s*([A-Za-z]{3,4})(?:\s+(.*?))?\s*$/s.exec(line);
  const verb = m?.[1]?.toUpperCase();
  if (verb !== 'PORT' && verb !== 'EPRT') return { kind: 'other' };
  const r = verb === 'PORT' ? parsePort(m![2] ?? '') : parseEprt(m![2] ?? '');
  return typeof r === 'string' ? { kind: 'bad', verb, reason: r } : { kind: 'data', cmd: r };
}

/** The announcement again, for `address:port` (the shared address, a port of the set), CRLF-ended. */
export function formatDataCommand(verb: 'PORT' | 'EPRT', address: number, port: number): string {
  if (verb === 'EPRT') return `EPRT |1|${formatIpv4(address)}|${port}|\r\n`;
  return `PORT ${formatIpv4(address).replaceAll('.', ',')},${port >> 8},${port & 255}\r\n`;
}

/**
 * Splits a byte stream into lines ending in LF (the CR, if any, stays with the line). A line that
 * grows past `max` bytes without its LF is reported once as too long; the caller then drops the
 * connection (after that the stream has no line boundaries left to trust).
 */
export class LineSplitter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly max = MAX_LINE) {}

  /** Complete lines of `chunk` (with their line end); 'too_long' when a line exceeds the limit. */
  push(chunk: Buffer): Buffer[] | 'too_long' {
    const lines: Buffer[] = [];
    let start = 0;
    for (let nl = chunk.indexOf(10, start); nl !== -1; nl = chunk.indexOf(10, start)) {
      const piece = chunk.subarray(start, nl + 1);
      if (this.pendingBytes + piece.length > this.max + 1) return 'too_long';
      lines.push(this.pendingBytes === 0 ? piece : Buffer.concat([...this.pending, piece]));
      this.pending = [];
      this.pendingBytes = 0;
      start = nl + 1;
    }
    const rest = chunk.subarray(start);
    if (this.pendingBytes + rest.length > this.max) return 'too_long';
    if (rest.length > 0) {
      this.pending.push(rest);
      this.pendingBytes += rest.length;
    }
    return lines;
  }
}

/** A line's text without its CR LF, read as latin1 so that no byte is lost or replaced. */
export function lineText(line: Buffer): string {
  let end = line.length;
  if (end > 0 && line[end - 1] === 10) end--;
  if (end > 0 && line[end - 1] === 13) end--;
  return line.toString('latin1', 0, end);
}
