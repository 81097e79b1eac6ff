/**
 * The PRR's embedded SSH registration server (ARCHITECTURE.md "Registration over SSH").
 *
 *   CPE ──ssh exec "register --ipv6 ..."──► auth (authorized_keys, public key only)
 *        ──► rate limit (per key, overall) ──► provisioning/protocol.ts runCommand
 *        ──► RegistrationService (prr/registration-service.ts) ──► one JSON line, exit status
 *
 * Only exec requests reach the protocol. Shell, pty, subsystem (sftp), X11, agent forwarding,
 * environment, direct-tcpip and tcpip-forward are refused and counted. Keys not in the file and
 * bad signatures are refused and counted. Everything that happens is in `counters`.
 *
 * The host key (ed25519, OpenSSH format) is generated on first start with mode 0600; a key file
 * that group or others can read is refused, as sshd does.
 */
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import ssh2 from 'ssh2';
import { ConfigError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { generateEd25519 } from '../provisioning/keys.js';
import { COMMANDS, EXIT_EXHAUSTED, EXIT_INTERNAL, EXIT_REFUSED, EXIT_USAGE, runCommand, type RegistrationService } from '../provisioning/protocol.js';
import { fingerprintOf, type KeyEntry } from './registration-keys.js';

/** What the server counts (read at scrape time by the metrics code). */
export interface RegistrationCounters {
  connections: number;
  auth_ok: number;
  auth_unknown_key: number;
  auth_bad_signature: number;
  auth_other_method: number;
  requests_ok: number;
  requests_failed: number;
  rate_limited: number;
  /** shell, pty, subsystem, x11, agent, env, port forwarding: refused. */
  refused_requests: number;
  /** The same, by what was asked (`pty`, `shell`, `direct-tcpip`, ...). */
  refused_by_request: Map<string, number>;
  /** Exec requests by command (`register`, ..., `unknown`) and result (RESULT_NAMES, `rate_limited`). */
  results: Map<string, Map<string, number>>;
}

/** The result label of each exit status of provisioning/protocol.ts. */
export const RESULT_NAMES: Readonly<Record<number, string>> = { 0: 'ok', [EXIT_USAGE]: 'usage', [EXIT_REFUSED]: 'refused', [EXIT_EXHAUSTED]: 'exhausted', [EXIT_INTERNAL]: 'internal' };

function bump<K>(m: Map<K, number>, k: K): void {
  m.set(k, (m.get(k) ?? 0) + 1);
}

/** Count one exec request: its command (the first word, when it is one) and its result. */
function countResult(c: RegistrationCounters, line: string, result: string): void {
  const word = line.trim().split(/[ \t]+/)[0] ?? '';
  const command = Object.hasOwn(COMMANDS, word) ? word : 'unknown';
  let byResult = c.results.get(command);
  if (byResult === undefined) c.results.set(command, (byResult = new Map()));
  bump(byResult, result);
}

export interface Rate {
  packets: number;
  seconds: number;
}

export interface RegistrationServerOptions {
  listen: { host: string; port: number };
  hostKeyFile: string;
  keys: () => Map<string, KeyEntry>;
  service: RegistrationService;
  /** Requests per key, and over all keys. */
  ratePerKey: Rate;
  rateTotal: Rate;
  log: Logger;
  /** A connection is closed after this long, whatever it does (default 30 s). */
  connectionTimeoutMs?: number;
}

export interface RegistrationServer {
  readonly counters: RegistrationCounters;
  /** The bound port (useful with port 0 in tests). */
  readonly port: number;
  /** OpenSSH SHA256 fingerprint of the host key: what SMAPs pin. */
  readonly hostKeyFingerprint: string;
  close(): Promise<void>;
}

/** Read the host key, or generate an ed25519 one (mode 0600) when the file does not exist. */
export function ensureHostKey(file: string, log: Logger): ssh2.ParsedKey & { text: string } {
  if (!existsSync(file)) {
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    const pair = generateEd25519('aplus-prr');
    writeFileSync(file, pair.private, { mode: 0o600, flag: 'wx' });
    writeFileSync(`${file}.pub`, `${pair.public}\n`, { mode: 0o644 });
    log.info(`generated the registration host key ${file}`);
  }
  const st = statSync(file);
  if ((st.mode & 0o077) !== 0) throw new ConfigError(`host key is readable by group or others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`, { file });
  const text = readFileSync(file, 'utf8');
  const key = ssh2.utils.parseKey(text);
  if (key instanceof Error || Array.isArray(key) || !key.isPrivateKey()) {
    throw new ConfigError(`not an OpenSSH private key${key instanceof Error ? `: ${key.message}` : ''}`, { file });
  }
  return Object.assign(key, { text });
}

/** Token bucket: `rate.packets` per `rate.seconds`, full at start. */
export class TokenBucket {
  private tokens: number;
  private last: number;
  constructor(private readonly rate: Rate, now = Date.now()) {
    this.tokens = rate.packets;
    this.last = now;
  }
  take(now = Date.now()): boolean {
    this.tokens = Math.min(this.rate.packets, this.tokens + ((now - this.last) * this.rate.packets) / (this.rate.seconds * 1000));
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
  /** True when the bucket is full again (it can be forgotten). */
  full(now = Date.now()): boolean {
    return this.tokens + ((now - this.last) * this.rate.packets) / (this.rate.seconds * 1000) >= this.rate.packets;
  }
}

export function startRegistrationServer(o: RegistrationServerOptions): Promise<RegistrationServer> {
  const hostKey = ensureHostKey(o.hostKeyFile, o.log);
  const hostKeyFingerprint = fingerprintOf(hostKey.getPublicSSH());
  const counters: RegistrationCounters = {
    connections: 0, auth_ok: 0, auth_unknown_key: 0, auth_bad_signature: 0, auth_other_method: 0,
    requests_ok: 0, requests_failed: 0, rate_limited: 0, refused_requests: 0,
    refused_by_request: new Map(), results: new Map(),
  };
  const total = new TokenBucket(o.rateTotal);
  const perKey = new Map<string, TokenBucket>();
  const clients = new Set<ssh2.Connection>();
  const timeoutMs = o.connectionTimeoutMs ?? 30_000;

  const refuse = (what: string, who: string) => (_accept: unknown, reject?: () => void): void => {
    counters.refused_requests++;
    // Names come from the client: a bounded set of labels, whatever it sends.
    bump(counters.refused_by_request, counters.refused_by_request.has(what) || counters.refused_by_request.size < 16 ? what : 'other');
    o.log.debug(`refused ${what} from ${who}`);
    reject?.();
  };

  const server = new ssh2.Server({ hostKeys: [hostKey.text], ident: 'aplus-prr' }, (client, info) => {
    counters.connections++;
    clients.add(client);
    const who = `[${info.ip}]:${info.port}`;
    const timer = setTimeout(() => client.end(), timeoutMs);
    client.on('close', () => {
      clearTimeout(timer);
      clients.delete(client);
    });
    client.on('error', (err) => o.log.debug(`${who}: ${err.message}`));
    let fingerprint: string | undefined;

    client.on('authentication', (ctx) => {
      if (ctx.method !== 'publickey') {
        counters.auth_other_method++;
        return ctx.reject(['publickey']);
      }
      const fp = fingerprintOf(ctx.key.data);
      const entry = o.keys().get(fp);
      if (entry === undefined || !entry.key.getPublicSSH().equals(ctx.key.data)) {
        counters.auth_unknown_key++;
        o.log.info(`${who}: unknown key ${fp} refused`);
        return ctx.reject(['publickey']);
      }
      if (ctx.signature === undefined) return ctx.accept(); // "would this key do?": yes
      if (ctx.blob === undefined || entry.key.verify(ctx.blob, ctx.signature, ctx.hashAlgo) !== true) {
        counters.auth_bad_signature++;
        o.log.warn(`${who}: bad signature for key ${fp}`);
        return ctx.reject(['publickey']);
      }
      fingerprint = fp;
      counters.auth_ok++;
      ctx.accept();
    });

    client.on('ready', () => {
      const fp = fingerprint!;
      client.on('session', (accept) => {
        const session = accept();
        session.on('pty', refuse('pty', who));
        session.on('shell', refuse('shell', who));
        session.on('subsystem', refuse('subsystem', who));
        session.on('sftp', refuse('sftp', who));
        session.on('x11', refuse('x11', who));
        session.on('auth-agent', refuse('agent forwarding', who));
        session.on('env', refuse('env', who));
        session.on('exec', (acceptExec, _reject, req) => {
          const ch = acceptExec();
          const now = Date.now();
          let bucket = perKey.get(fp);
          if (bucket === undefined) {
            bucket = new TokenBucket(o.ratePerKey, now);
            perKey.set(fp, bucket);
          }
          let out;
          if (!bucket.take(now) || !total.take(now)) {
            counters.rate_limited++;
            countResult(counters, req.command, 'rate_limited');
            out = { exitCode: EXIT_REFUSED, stdout: '', stderr: 'error: rate limit: too many requests, try again later\n' };
          } else {
            out = runCommand(o.service, { fingerprint: fp, address: who }, req.command);
            countResult(counters, req.command, RESULT_NAMES[out.exitCode] ?? 'internal');
          }
          if (out.exitCode === 0) counters.requests_ok++;
          else counters.requests_failed++;
          if (out.stdout !== '') ch.write(out.stdout);
          if (out.stderr !== '') ch.stderr.write(out.stderr);
          ch.exit(out.exitCode);
          ch.end();
          if (perKey.size > 10_000) for (const [k, b] of perKey) if (b.full(now)) perKey.delete(k);
        });
      });
      client.on('tcpip', refuse('direct-tcpip', who));
      client.on('openssh.streamlocal', refuse('streamlocal', who));
      client.on('request', (_accept, reject, name) => refuse(name, who)(undefined, reject));
    });
  });

  return new Promise((resolve, reject) => {
    server.once('error', (err: Error) =>
      reject(new ConfigError(`cannot listen on ${o.listen.host}:${o.listen.port}: ${err.message}`, { section: 'registration', key: 'listen' })));
    server.listen(o.listen.port, o.listen.host, () => {
      const port = (server.address() as AddressInfo).port;
      o.log.info(`registration server on [${o.listen.host}]:${port}, host key ${hostKeyFingerprint}`);
      resolve({
        counters,
        port,
        hostKeyFingerprint,
        close: () => new Promise<void>((res) => {
          for (const c of clients) c.end();
          server.close(() => res());
        }),
      });
    });
  });
}
