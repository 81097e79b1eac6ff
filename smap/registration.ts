/**
 * The SMAP's registration client: gets its binding from the PRR over SSH
 * (ARCHITECTURE.md "Registration over SSH"; the protocol is provisioning/protocol.ts).
 *
 *   - its own ed25519 key, generated (mode 0600, with a .pub to give the PRR's operator) on first
 *     start;
 *   - the PRR's host key pinned by its OpenSSH SHA256 fingerprint: any other key is refused with
 *     an error naming both fingerprints, before any command is sent;
 *   - one exec channel per request: `register --ipv6 ADDR [--ports N]`, later `renew`;
 *   - renewal at about half the lease (0.4-0.6 of it, so a million CPEs that registered together
 *     drift apart), and on failure exponential backoff with full jitter (5 s doubling, at most
 *     10 min) until the PRR answers again.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import ssh2 from 'ssh2';
import type { SmapConfig } from '../common/config/smap.js';
import { parseIpv4OrThrow } from '../common/codec/ipv4.js';
import { parseIpv6OrThrow } from '../common/codec/ipv6.js';
import { ConfigError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { parsePortSet } from '../common/portset.js';
import { generateEd25519, sshFingerprint } from '../provisioning/keys.js';
import { decodeLease, EXIT_USAGE, formatUsage, type LeaseReply, type UsageReport } from '../provisioning/protocol.js';
import type { SmapBinding } from './core.js';

/** A registration failure: stable code, one-line message naming the PRR. */
export class RegistrationError extends Error {
  readonly code: 'ERR_REGISTRATION' | 'ERR_HOST_KEY';
  /** The PRR's exit status when it answered with an error. */
  readonly exitCode: number | undefined;
  constructor(code: 'ERR_REGISTRATION' | 'ERR_HOST_KEY', message: string, exitCode?: number) {
    super(message);
    this.code = code;
    this.exitCode = exitCode;
    this.name = 'RegistrationError';
  }
}

export interface ClientKey {
  /** OpenSSH private key text. */
  private: string;
  /** `ssh-ed25519 AAAA... comment`: the line for the PRR's authorized_keys. */
  public: string;
  fingerprint: string;
}

const fingerprintOf = sshFingerprint;

/** Read the SMAP's key, or generate an ed25519 one (mode 0600, and FILE.pub) when absent. */
export function ensureClientKey(file: string, log: Logger, comment = 'smap'): ClientKey {
  if (!existsSync(file)) {
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    const pair = generateEd25519(comment);
    writeFileSync(file, pair.private, { mode: 0o600, flag: 'wx' });
    writeFileSync(`${file}.pub`, `${pair.public}\n`, { mode: 0o644 });
    log.info(`generated the registration key ${file}; add ${file}.pub to the PRR's authorized_keys`);
  }
  const text = readFileSync(file, 'utf8');
  const key = ssh2.utils.parseKey(text);
  if (key instanceof Error || Array.isArray(key) || !key.isPrivateKey()) {
    throw new RegistrationError('ERR_REGISTRATION', `${file}: not an OpenSSH private key`);
  }
  const blob = key.getPublicSSH();
  return { private: text, public: `${key.type} ${blob.toString('base64')} ${comment}`, fingerprint: fingerprintOf(blob) };
}

export interface PrrEndpoint {
  host: string;
  port: number;
  /** The PRR's host key fingerprint, `SHA256:...`. */
  hostKeyFingerprint: string;
  key: ClientKey;
  timeoutMs?: number;
}

/** The PRR endpoint of smap.ini's [registration] (the key is made on first start). */
export function endpointFromConfig(cfg: SmapConfig, file: string, log: Logger): PrrEndpoint {
  const r = cfg.registration;
  if (r.prr_host === undefined || r.host_key_fingerprint === undefined) {
    throw new ConfigError('registration needs prr_host and host_key_fingerprint', { file, section: 'registration' });
  }
  return { host: r.prr_host, port: r.prr_port, hostKeyFingerprint: r.host_key_fingerprint, key: ensureClientKey(r.key_file, log) };
}

/** The data plane's binding of a lease. Throws RegistrationError when a field does not parse. */
export function bindingOfLease(lease: LeaseReply): SmapBinding {
  try {
    return { shared: parseIpv4OrThrow(lease.shared_ipv4), ports: parsePortSet(lease.ports, { allowSystemPorts: true }), prr: parseIpv6OrThrow(lease.prr_ipv6) };
  } catch (err) {
    throw new RegistrationError('ERR_REGISTRATION', `lease from the PRR: ${(err as Error).message}`);
  }
}

/** Run one command on the PRR; resolves with its JSON reply text, rejects with RegistrationError. */
export function request(ep: PrrEndpoint, command: string): Promise<string> {
  const where = `${ep.host.includes(':') ? `[${ep.host}]` : ep.host}:${ep.port}`;
  return new Promise((resolve, reject) => {
    const conn = new ssh2.Client();
    let seen: string | undefined;
    let done = false;
    const finish = (err: Error | undefined, out?: string): void => {
      if (done) return;
      done = true;
      conn.end();
      if (err !== undefined) reject(err);
      else resolve(out!);
    };
    conn.on('ready', () => {
      conn.exec(command, (err, stream) => {
        if (err) return finish(new RegistrationError('ERR_REGISTRATION', `PRR ${where}: exec refused: ${err.message}`));
        let stdout = '';
        let stderr = '';
        let code: number | undefined;
        stream.on('data', (d: Buffer) => (stdout += d.toString()));
        stream.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        stream.on('exit', (c: number | null) => (code = c ?? undefined));
        stream.on('close', () => {
          if (code === 0) finish(undefined, stdout);
          else {
            const line = stderr.trim().split('\n')[0]?.replace(/^error: /, '') || `exit status ${code}`;
            finish(new RegistrationError('ERR_REGISTRATION', `PRR ${where} refused "${command.split(' ')[0]}": ${line}`, code));
          }
        });
      });
    });
    conn.on('error', (err) => {
      if (seen !== undefined && seen !== ep.hostKeyFingerprint) {
        finish(new RegistrationError('ERR_HOST_KEY', `PRR ${where} host key ${seen} does not match the pinned host_key_fingerprint ${ep.hostKeyFingerprint}; refusing to register`));
      } else finish(new RegistrationError('ERR_REGISTRATION', `PRR ${where}: ${err.message}`));
    });
    conn.on('close', () => finish(new RegistrationError('ERR_REGISTRATION', `PRR ${where}: connection closed`)));
    conn.connect({
      host: ep.host,
      port: ep.port,
      username: 'smap',
      privateKey: ep.key.private,
      readyTimeout: ep.timeoutMs ?? 15_000,
      hostVerifier: (key: Buffer) => {
        seen = fingerprintOf(key);
        return seen === ep.hostKeyFingerprint;
      },
    });
  });
}

/** `register --ipv6 ADDR [--ports N] [--usage ...]` -> the lease. */
export async function register(ep: PrrEndpoint, ipv6: string, ports?: number, usage?: UsageReport): Promise<LeaseReply> {
  const opt = `${ports !== undefined ? ` --ports ${ports}` : ''}${usage !== undefined ? ` --usage ${formatUsage(usage)}` : ''}`;
  return decodeLease(await request(ep, `register --ipv6 ${ipv6}${opt}`));
}

/** Delay before renewing a lease: 0.4-0.6 of it (`rand` in [0, 1)). */
export function renewDelayMs(leaseSeconds: number, rand: number): number {
  return Math.round(leaseSeconds * 1000 * (0.4 + 0.2 * rand));
}

export const BACKOFF_BASE_MS = 5_000;
export const BACKOFF_MAX_MS = 600_000;

/** Delay before retry number `attempt` (0-based): full jitter over 5 s * 2^attempt, at most 10 min. */
export function backoffDelayMs(attempt: number, rand: number): number {
  const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.min(attempt, 20));
  return Math.max(1000, Math.round(cap * rand));
}

export interface RegistrationClientOptions {
  endpoint: PrrEndpoint;
  ipv6: string;
  ports?: number;
  log: Logger;
  /** Called with each new or renewed lease. */
  onLease: (lease: LeaseReply) => void;
  /**
   * The CPE's ports in use (conntrack), sent with each request (`--usage`) so the PRR can export
   * them; undefined when there is nothing to count yet. A PRR too old to know `--usage` refuses it
   * as a usage error: the client then registers without it from then on.
   */
  usage?: () => Promise<UsageReport | undefined>;
  random?: () => number;
}

/**
 * Keep a binding: register, renew at about half the lease, back off with jitter on failure. A
 * host-key mismatch is logged as an error each time (it never goes away by itself).
 */
export class RegistrationClient {
  private timer: NodeJS.Timeout | undefined;
  private attempt = 0;
  private stopped = false;
  private lease: LeaseReply | undefined;
  /** Requests answered with a lease, failed, and refused for a host key that is not the pinned one. */
  readonly counts = { ok: 0, failed: 0, host_key_mismatch: 0 };
  private sendUsage = true;
  private readonly o: RegistrationClientOptions;
  private readonly random: () => number;

  constructor(o: RegistrationClientOptions) {
    this.o = o;
    this.random = o.random ?? Math.random;
  }

  get current(): LeaseReply | undefined {
    return this.lease;
  }

  /** Register now; later renewals and retries are scheduled by themselves. */
  start(): Promise<void> {
    this.stopped = false;
    return this.run();
  }

  /** A new WAN address: register again at once (the PRR moves the same set). */
  setIpv6(ipv6: string): Promise<void> {
    this.o.ipv6 = ipv6;
    return this.run();
  }

  /** Ask the PRR again now (SIGHUP, `smap register`): a changed binding is applied at once. */
  refresh(): Promise<void> {
    return this.run();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.run(), ms);
    this.timer.unref();
  }

  private async registerOnce(): Promise<LeaseReply> {
    const usage = this.sendUsage ? await this.o.usage?.().catch(() => undefined) : undefined;
    try {
      return await register(this.o.endpoint, this.o.ipv6, this.o.ports, usage);
    } catch (err) {
      if (usage === undefined || !(err instanceof RegistrationError) || err.exitCode !== EXIT_USAGE || !/--usage/.test(err.message)) throw err;
      this.sendUsage = false;
      this.o.log.info(`the PRR does not take usage reports (${err.message}); registering without them`);
      return register(this.o.endpoint, this.o.ipv6, this.o.ports);
    }
  }

  private async run(): Promise<void> {
    if (this.stopped) return;
    try {
      const lease = await this.registerOnce();
      this.attempt = 0;
      this.counts.ok++;
      this.lease = lease;
      this.o.onLease(lease);
      this.schedule(renewDelayMs(lease.lease_seconds, this.random()));
    } catch (err) {
      const delay = backoffDelayMs(this.attempt++, this.random());
      const e = err as Error;
      const hostKey = e instanceof RegistrationError && e.code === 'ERR_HOST_KEY';
      if (hostKey) this.counts.host_key_mismatch++;
      else this.counts.failed++;
      (hostKey ? this.o.log.error : this.o.log.warn)(`${e.message}; retrying in ${Math.round(delay / 1000)} s`);
      this.schedule(delay);
    }
  }
}
