/**
 * The PRR's durable store of registered bindings: one SQLite file (better-sqlite3) in WAL mode
 * with synchronous = FULL, so a COMMIT that returned is on disk. The registration server writes a
 * row and commits *before* it answers the CPE: an acknowledged registration survives kill -9 and
 * power loss. At start every row is read back (loadAll) and put into the binding table.
 *
 *   bindings(fingerprint PRIMARY KEY, subscriber UNIQUE, ipv6, ipv4, ports, expires, updated, ipv6_hex)
 *
 * `ipv6_hex` is the address's 16 bytes in hex beside its text, so that a start with a million rows
 * does not parse a million addresses (hex text reads faster than a BLOB, which costs a Buffer per
 * row; the column is added to stores made before it, and rows without it are parsed).
 *
 * Keyed by the CPE's key fingerprint (`SHA256:...`): the same key always finds its row, so its
 * shared address and port set are sticky across re-registrations, address changes and restarts.
 * All calls are synchronous: on the single-threaded event loop a read-allocate-write sequence
 * cannot interleave with another registration.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { ConfigError } from '../common/errors.js';
import { parseIpv6OrThrow } from '../common/codec/ipv6.js';

export interface StoredBinding {
  fingerprint: string;
  subscriber: string;
  /** The CPE's IPv6 address, text form. */
  ipv6: string;
  /** Shared IPv4 address, as a uint32. */
  ipv4: number;
  /** Port set, text form (parsePortSet reads it back). */
  ports: string;
  /** Lease end, Unix seconds. */
  expires: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS bindings (
  fingerprint TEXT PRIMARY KEY,
  subscriber  TEXT NOT NULL UNIQUE,
  ipv6        TEXT NOT NULL,
  ipv4        INTEGER NOT NULL,
  ports       TEXT NOT NULL,
  expires     INTEGER NOT NULL,
  updated     INTEGER NOT NULL
) STRICT;
`;

export class RegistrationStore {
  readonly file: string;
  private readonly db: Database.Database;
  private readonly stmtPut: Database.Statement;
  private readonly stmtDel: Database.Statement;
  private readonly stmtGet: Database.Statement;
  private readonly stmtByName: Database.Statement;

  /** Open (creating) the store. Throws ConfigError naming the file when it cannot. */
  constructor(file: string) {
    this.file = file;
    try {
      if (file !== ':memory:') mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
      this.db = new Database(file);
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = FULL');
      this.db.exec(SCHEMA);
    } catch (err) {
      throw new ConfigError(`cannot open the registration store: ${(err as Error).message}`, { file });
    }
    const columns = this.db.prepare('SELECT name FROM pragma_table_info(?)').pluck().all('bindings') as string[];
    if (!columns.includes('ipv6_hex')) this.db.exec('ALTER TABLE bindings ADD COLUMN ipv6_hex TEXT');
    this.stmtPut = this.db.prepare(
      `INSERT INTO bindings (fingerprint, subscriber, ipv6, ipv4, ports, expires, updated, ipv6_hex)
       VALUES (@fingerprint, @subscriber, @ipv6, @ipv4, @ports, @expires, unixepoch(), @hex)
       ON CONFLICT (fingerprint) DO UPDATE SET subscriber = excluded.subscriber, ipv6 = excluded.ipv6,
         ipv4 = excluded.ipv4, ports = excluded.ports, expires = excluded.expires, updated = excluded.updated,
         ipv6_hex = excluded.ipv6_hex`,
    );
    this.stmtDel = this.db.prepare('DELETE FROM bindings WHERE fingerprint = ?');
    this.stmtGet = this.db.prepare('SELECT fingerprint, subscriber, ipv6, ipv4, ports, expires FROM bindings WHERE fingerprint = ?');
    this.stmtByName = this.db.prepare('SELECT fingerprint, subscriber, ipv6, ipv4, ports, expires FROM bindings WHERE subscriber = ?');
  }

  /** The journal mode and synchronous level in force (for tests and the start log). */
  get mode(): { journal: string; synchronous: number } {
    return {
      journal: String(this.db.pragma('journal_mode', { simple: true })),
      synchronous: Number(this.db.pragma('synchronous', { simple: true })),
    };
  }

  /** Every row, for the start of the PRR. */
  loadAll(): StoredBinding[] {
    return [...this.rows()];
  }

  /** Every row, one at a time: a million rows are not held in memory at once. */
  rows(): IterableIterator<StoredBinding> {
    return this.db.prepare('SELECT fingerprint, subscriber, ipv6, ipv4, ports, expires FROM bindings ORDER BY rowid').iterate() as IterableIterator<StoredBinding>;
  }

  /**
   * Every row as [subscriber, ipv6 (32 hex digits, or the text in a row stored before ipv6_hex),
   * ipv4, ports] arrays, in rowid order: the start of a PRR with a million rows reads them this way (no
   * object per row, no fingerprint, no address to parse; see bench/store.ts). Touch nothing else
   * of the store while iterating.
   */
  loadRows(): IterableIterator<[string, string, number, string]> {
    // Streamed, not all(): a million-row array costs more in garbage collection than the reading.
    return this.db.prepare('SELECT subscriber, coalesce(ipv6_hex, ipv6), ipv4, ports FROM bindings ORDER BY rowid').raw().iterate() as IterableIterator<[string, string, number, string]>;
  }

  /** How many rows (a start sizes the binding table from it before loading them). */
  count(): number {
    return this.db.prepare('SELECT count(*) FROM bindings').pluck().get() as number;
  }

  get(fingerprint: string): StoredBinding | undefined {
    return this.stmtGet.get(fingerprint) as StoredBinding | undefined;
  }

  getBySubscriber(name: string): StoredBinding | undefined {
    return this.stmtByName.get(name) as StoredBinding | undefined;
  }

  /** Rows whose lease ended before `now` (Unix seconds). */
  expired(now: number): StoredBinding[] {
    return this.db.prepare('SELECT fingerprint, subscriber, ipv6, ipv4, ports, expires FROM bindings WHERE expires < ? ORDER BY expires').all(now) as StoredBinding[];
  }

  /** Insert or replace the row of `b.fingerprint`; returns after COMMIT (synchronous = FULL). */
  put(b: StoredBinding): void {
    const hex = parseIpv6OrThrow(b.ipv6).toString('hex');
    this.db.transaction(() => this.stmtPut.run({ ...b, hex })).immediate();
  }

  /** Delete the row; returns whether there was one, after COMMIT. */
  delete(fingerprint: string): boolean {
    return this.db.transaction(() => this.stmtDel.run(fingerprint).changes > 0).immediate();
  }

  close(): void {
    this.db.close();
  }
}
