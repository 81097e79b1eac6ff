/**
 * Shared set-up of the registration tests: client keys (OpenSSH and dropbear format), a PRR-side
 * registrar over a binding table and a store in a temporary directory, the SSH server, and real
 * clients (OpenSSH `ssh`, dropbear `dbclient`) run as child processes.
 */
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { memoryLogger } from '../../common/log.js';
import { generateEd25519 } from '../../provisioning/keys.js';
import { parseIpv6OrThrow } from '../../common/codec/ipv6.js';
import { BindingTable } from '../../prr/bindings.js';
import { parseAuthorizedKeys, type KeyEntry } from '../../prr/registration-keys.js';
import { Registrar, type RegistrationPolicy } from '../../prr/registration-service.js';
import { startRegistrationServer, type Rate, type RegistrationServer } from '../../prr/registration.js';
import { RegistrationStore } from '../../prr/store.js';

export function tempDir(tag: string): string {
  return mkdtempSync(path.join(tmpdir(), `aplus-reg-${tag}-`));
}

export interface ClientKey {
  /** OpenSSH private key file (mode 0600). */
  file: string;
  /** The same key in dropbear's format, for dbclient. */
  dropbear: string;
  /** The `ssh-ed25519 AAAA...` line. */
  pub: string;
}

export function makeKey(dir: string, name: string): ClientKey {
  const pair = generateEd25519(name);
  const file = path.join(dir, name);
  writeFileSync(file, pair.private, { mode: 0o600 });
  chmodSync(file, 0o600);
  const dropbear = `${file}.dropbear`;
  execFileSync('dropbearconvert', ['openssh', 'dropbear', file, dropbear], { stdio: 'ignore' });
  return { file, dropbear, pub: pair.public };
}

export const POLICY: RegistrationPolicy = {
  minPorts: 200,
  maxPorts: 4000,
  defaultPorts: 1000,
  leaseSeconds: 3600,
  tunnelMtu: 1460,
  prrIpv6: parseIpv6OrThrow('2001:db8:ffff::1'),
  allowSystemPorts: false,
};

export interface Rig {
  dir: string;
  table: BindingTable;
  store: RegistrationStore;
  registrar: Registrar;
  keys: Map<string, KeyEntry>;
  log: ReturnType<typeof memoryLogger>;
}

/** A registrar over a fresh table and the store in `dir` (reopened if it exists). */
export function makeRig(dir: string, authorized: string, o: { pool?: number[]; policy?: Partial<RegistrationPolicy>; now?: () => number } = {}): Rig {
  const table = new BindingTable();
  const store = new RegistrationStore(path.join(dir, 'registrations.db'));
  const keys = parseAuthorizedKeys(authorized, 'authorized_keys');
  const log = memoryLogger('reg');
  const registrar = new Registrar({
    table, store, keys: () => keys, log,
    poolAddresses: o.pool ?? [0xc0000201, 0xc0000202], // 192.0.2.1, 192.0.2.2
    policy: { ...POLICY, ...o.policy },
    ...(o.now !== undefined ? { now: o.now } : {}),
  });
  registrar.start();
  return { dir, table, store, registrar, keys, log };
}

export const WIDE: Rate = { packets: 100_000, seconds: 1 };

export async function serve(rig: Rig, host = '::', rates: { perKey?: Rate; total?: Rate } = {}): Promise<RegistrationServer> {
  return startRegistrationServer({
    listen: { host, port: 0 },
    hostKeyFile: path.join(rig.dir, 'host_key'),
    keys: () => rig.keys,
    service: rig.registrar,
    ratePerKey: rates.perKey ?? WIDE,
    rateTotal: rates.total ?? WIDE,
    log: rig.log,
  });
}

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** OpenSSH `ssh` with only this key, no host key checking (the SMAP pins; these tests do not). */
export function ssh(key: ClientKey, host: string, port: number, command: string, extra: string[] = [], env?: NodeJS.ProcessEnv): Promise<Run> {
  return run('ssh', [
    '-F', '/dev/null', '-i', key.file, '-p', String(port),
    '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
    '-o', 'IdentitiesOnly=yes', '-o', 'LogLevel=ERROR', '-o', 'ConnectTimeout=10',
    ...extra, `cpe@${host}`, command,
  ], env);
}

/** dropbear's `dbclient`, as on OpenWrt. */
export function dbclient(key: ClientKey, host: string, port: number, command: string, home: string): Promise<Run> {
  return run('dbclient', ['-y', '-y', '-i', key.dropbear, '-p', String(port), `cpe@${host}`, command], { ...process.env, HOME: home });
}
