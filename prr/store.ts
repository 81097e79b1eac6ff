/**
 * The PRR's durable store of registered bindings: one SQLite file (better-sqlite3) in WAL mode
 * with synchronous = FULL, so a COMMIT that returned is on disk. The registration server writes a
 * row and commits *before* it answers the CPE: an acknowledged registration survives kill -9 and
 * power loss. At start every row is read back (loadBlocks) and put into the binding table.
 *
 *   bindings(fingerprint PRIMARY KEY, subscriber UNIQUE, ipv6, ipv4, ports, expires, updated, rec)
 *   indexes on expires (the lease sweep) and on the rows without rec (few or none)
 *
 * The text columns are the truth (an operator reads them with sqlite3). `rec` is the binding as a
 * start needs it, 25 bytes written with them (LOAD_REC): the IPv6 address, the IPv4 address, the
 * port set as one number and its kind. A start with a million rows reads them in blocks of
 * thousands of rows, one BLOB of records and one of names per block, concatenated by SQLite
 * (group_concat): crossing from SQLite to JS once per row cost 2.3 s of 5 at a million rows, with
 * a string and an array per row for the garbage collector; a block costs two Buffers.
 *
 * Stores made before `rec` (with or without the older `ipv6_hex`) are migrated when opened: the
 * column is added and filled from the text, in one transaction. A row whose text is changed by
 * hand loses its `rec` (a trigger), and one inserted by hand has none: the next open fills them
 * in from the text. A row whose text does not parse keeps none, and the start reports it.
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
import { parsePortSet, PortRange, PsidSet, type PortSet } from '../common/portset.js';

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

/**
 * Bytes of one row's record: IPv6 address (0-15), IPv4 address (16-19, big-endian), port set
 * (20-23, big-endian: a range first << 16 | last, a PSID set a << 24 | k << 16 | PSID) and the
 * set's kind (24: SET_RANGE or SET_PSID).
 */
export const LOAD_REC = 25;
export const SET_RANGE = 1;
export const SET_PSID = 2;

/** Rows for a start, in rowid order: records and names. */
export interface LoadBlock {
  /** Rows in the block. */
  n: number;
  /** n records of LOAD_REC bytes. */
  recs: Buffer;
  /** The rows' subscriber names in UTF-8: row i's is names[nameAt[i] .. nameAt[i + 1] - 1). */
  names: Buffer;
  nameAt: Uint32Array;
  /** Rows of this block that cannot be loaded (their text does not parse), with the reason. */
  bad: Array<{ subscriber: string; error: string }>;
  /** Read row by row (rows without a record, or a block whose fast read did not add up). */
  rowByRow: boolean;
}

/** Rows per block of a start: big enough that the per-block cost vanishes, small enough to stream. */
const BLOCK_ROWS = 16384;
const NL = 10;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS bindings (
  fingerprint TEXT PRIMARY KEY,
  subscriber  TEXT NOT NULL UNIQUE,
  ipv6        TEXT NOT NULL,
  ipv4        INTEGER NOT NULL,
  ports       TEXT NOT NULL,
  expires     INTEGER NOT NULL,
  updated     INTEGER NOT NULL,
  rec         BLOB CHECK (rec IS NULL OR length(rec) = ${LOAD_REC})
) STRICT;
`;

/** Made after the records are in place (migrate). */
const SCHEMA_REC = `
CREATE INDEX IF NOT EXISTS bindings_without_rec ON bindings (fingerprint) WHERE rec IS NULL;
CREATE INDEX IF NOT EXISTS bindings_expires ON bindings (expires);
CREATE TRIGGER IF NOT EXISTS bindings_text_changed AFTER UPDATE OF ipv6, ipv4, ports ON bindings
  WHEN new.rec IS old.rec AND (new.ipv6 IS NOT old.ipv6 OR new.ipv4 IS NOT old.ipv4 OR new.ports IS NOT old.ports)
  BEGIN UPDATE bindings SET rec = NULL WHERE rowid = new.rowid; END;
`;

/** A row's record (LOAD_REC bytes) from its text. Throws (a PortSetError, or the address's error) when the text does not parse. */
export function recordOf(ipv6: string, ipv4: number, ports: string): Buffer {
  const rec = Buffer.alloc(LOAD_REC);
  parseIpv6OrThrow(ipv6).copy(rec, 0);
  rec.writeUInt32BE(ipv4 >>> 0, 16);
  const set = parsePortSet(ports, { allowSystemPorts: true });
  const ps = set.psid;
  rec.writeUInt32BE(ps !== undefined ? ((ps.offset << 24) | (ps.length << 16) | ps.id) >>> 0 : ((set.min << 16) | set.max) >>> 0, 20);
  rec[24] = ps !== undefined ? SET_PSID : SET_RANGE;
  return rec;
}

/** The port set a record's set number and kind stand for. */
export function setOfRecord(word: number, kind: number): PortSet {
  if (kind === SET_PSID) return new PsidSet(word >>> 24, (word >>> 16) & 0xff, word & 0xffff, { allowSystemPorts: true });
  return new PortRange(word >>> 16, word & 0xffff, { allowSystemPorts: true });
}

export class RegistrationStore {
  readonly file: string;
  /** Rows given their record when the store was opened (a store from before `rec`, rows edited by hand). */
  readonly migrated: number;
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
      this.migrated = this.migrate();
    } catch (err) {
      throw new ConfigError(`cannot open the registration store: ${(err as Error).message}`, { file });
    }
    this.stmtPut = this.db.prepare(
      `INSERT INTO bindings (fingerprint, subscriber, ipv6, ipv4, ports, expires, updated, rec)
       VALUES (@fingerprint, @subscriber, @ipv6, @ipv4, @ports, @expires, unixepoch(), @rec)
       ON CONFLICT (fingerprint) DO UPDATE SET subscriber = excluded.subscriber, ipv6 = excluded.ipv6,
         ipv4 = excluded.ipv4, ports = excluded.ports, expires = excluded.expires, updated = excluded.updated,
         rec = excluded.rec`,
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

  /** Every row (tests, small stores: a start reads loadBlocks). */
  loadAll(): StoredBinding[] {
    return this.db.prepare('SELECT fingerprint, subscriber, ipv6, ipv4, ports, expires FROM bindings ORDER BY rowid').all() as StoredBinding[];
  }

  /**
   * Every row as a start needs it, in blocks (see the file comment), in rowid order, and then the
   * rows that have no record. Touch nothing else of the store while iterating.
   */
  *loadBlocks(): Generator<LoadBlock> {
    // Each block starts at the next rowid there is (a seek): rowid gaps cost nothing.
    const next = this.db.prepare('SELECT min(rowid) FROM bindings WHERE rowid >= ?').pluck();
    // group_concat of BLOBs keeps their bytes (text and BLOB are the same bytes in a UTF-8 store),
    // every record is LOAD_REC bytes (a CHECK), and both aggregates see the same rows in the same
    // order. A block whose counts do not agree (a name with a newline) is read again row by row.
    const fast = this.db.prepare(`SELECT CAST(group_concat(rec, '') AS BLOB), CAST(group_concat(subscriber, char(10)) AS BLOB)
      FROM bindings WHERE rowid >= ? AND rowid < ? AND rec IS NOT NULL`).raw();
    const slow = this.db.prepare('SELECT subscriber, rec, ipv6, ipv4, ports FROM bindings WHERE rowid >= ? AND rowid < ? AND rec IS NOT NULL ORDER BY rowid').raw();
    const utf8 = this.encoding === 'UTF-8';
    for (let from = next.get(-(2 ** 53)) as number | null; from !== null; from = next.get(from + BLOCK_ROWS) as number | null) {
      const to = from + BLOCK_ROWS;
      if (utf8) {
        const [recs, names] = fast.get(from, to) as [Buffer | null, Buffer | null];
        if (recs === null || names === null) continue;
        const block = splitNames(recs, names);
        if (block !== undefined) {
          yield block;
          continue;
        }
      }
      const block = blockOf(slow.all(from, to) as Array<[string, Buffer, string, number, string]>);
      if (block.n > 0 || block.bad.length > 0) yield block;
    }
    // Through the partial index of these rows (an ORDER BY rowid would scan the table instead).
    const rest = this.db.prepare('SELECT subscriber, NULL, ipv6, ipv4, ports FROM bindings WHERE rec IS NULL').raw().all() as Array<[string, null, string, number, string]>;
    if (rest.length > 0) yield blockOf(rest);
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

  /** Rows whose lease ended before `now` (Unix seconds): through bindings_expires, not a scan (150 ms a minute at a million rows). */
  expired(now: number): StoredBinding[] {
    return this.db.prepare('SELECT fingerprint, subscriber, ipv6, ipv4, ports, expires FROM bindings WHERE expires < ? ORDER BY expires').all(now) as StoredBinding[];
  }

  /** Insert or replace the row of `b.fingerprint`; returns after COMMIT (synchronous = FULL). Throws when its text does not parse. */
  put(b: StoredBinding): void {
    const rec = recordOf(b.ipv6, b.ipv4, b.ports);
    this.db.transaction(() => this.stmtPut.run({ ...b, rec })).immediate();
  }

  /** put() of many rows in one transaction (one COMMIT): imports, benches, tests. */
  putAll(rows: Iterable<StoredBinding>): void {
    this.db.transaction(() => {
      for (const b of rows) this.stmtPut.run({ ...b, rec: recordOf(b.ipv6, b.ipv4, b.ports) });
    }).immediate();
  }

  /** Delete the row; returns whether there was one, after COMMIT. */
  delete(fingerprint: string): boolean {
    return this.db.transaction(() => this.stmtDel.run(fingerprint).changes > 0).immediate();
  }

  close(): void {
    this.db.close();
  }

  private get encoding(): string {
    return String(this.db.pragma('encoding', { simple: true }));
  }

  /**
   * Bring a store made by an older version to this schema, and give every row without a record one
   * from its text (all in one transaction). Returns how many rows got one.
   */
  private migrate(): number {
    const db = this.db;
    return db.transaction(() => {
      const columns = db.prepare('SELECT name FROM pragma_table_info(?)').pluck().all('bindings') as string[];
      if (!columns.includes('rec')) db.exec(`ALTER TABLE bindings ADD COLUMN rec BLOB CHECK (rec IS NULL OR length(rec) = ${LOAD_REC})`);
      const missing = (): number => db.prepare('SELECT count(*) FROM bindings WHERE rec IS NULL').pluck().get() as number;
      const before = missing();
      // ipv6_hex (the address in hex, the previous version's) was what rec is now, for the address alone.
      if (before > 0 && columns.includes('ipv6_hex')) this.recordsFromHex();
      if (missing() > 0) {
        // The rest (the original schema; rows edited by hand) from their text, by a JS function
        // per row; a row whose text does not parse keeps none (loadBlocks reports it).
        db.function('aplus_record', { deterministic: true }, (ipv6: unknown, ipv4: unknown, ports: unknown) => {
          try {
            return recordOf(String(ipv6), Number(ipv4), String(ports));
          } catch {
            return null;
          }
        });
        db.exec('UPDATE bindings SET rec = aplus_record(ipv6, ipv4, ports) WHERE rec IS NULL');
      }
      if (columns.includes('ipv6_hex')) db.exec('ALTER TABLE bindings DROP COLUMN ipv6_hex');
      // The indexes after the records: a store that had none would first put a million rows into
      // the index of rows without one, then take them out again.
      db.exec(SCHEMA_REC);
      return before - missing();
    }).immediate();
  }

  /**
   * Records for the rows of a store that has ipv6_hex, in one SQL statement: the address from its
   * hex, the set's part from a table of the distinct port texts (a few thousand, parsed here).
   * A million rows take seconds this way, four times fewer than through a JS function per row.
   */
  private recordsFromHex(): void {
    const db = this.db;
    db.exec('CREATE TEMP TABLE set_rec (ports TEXT PRIMARY KEY, hex TEXT NOT NULL)');
    const put = db.prepare('INSERT INTO temp.set_rec VALUES (?, ?)');
    for (const ports of db.prepare('SELECT DISTINCT ports FROM bindings WHERE rec IS NULL').pluck().all() as string[]) {
      let rec: Buffer;
      try {
        rec = recordOf('::', 0, ports);
      } catch {
        continue; // left to the row's own parse, which reports it
      }
      put.run(ports, rec.subarray(20).toString('hex'));
    }
    db.exec(`UPDATE bindings SET rec = unhex(bindings.ipv6_hex || printf('%08x', bindings.ipv4) || s.hex) FROM temp.set_rec AS s
      WHERE bindings.rec IS NULL AND s.ports = bindings.ports AND length(bindings.ipv6_hex) = 32 AND bindings.ipv4 BETWEEN 0 AND 4294967295`);
    db.exec('DROP TABLE temp.set_rec');
  }
}

/** A block of the fast read: the names split at their newlines; undefined when the counts disagree. */
function splitNames(recs: Buffer, names: Buffer): LoadBlock | undefined {
  if (recs.length % LOAD_REC !== 0) return undefined;
  const n = recs.length / LOAD_REC;
  const nameAt = new Uint32Array(n + 1);
  let i = 1;
  for (let p = 0; p < names.length; p++) {
    if (names[p] !== NL) continue;
    if (i === n) return undefined; // more names than records
    nameAt[i++] = p + 1;
  }
  if (i !== n) return undefined;
  nameAt[n] = names.length + 1;
  return { n, recs, names, nameAt, bad: [], rowByRow: false };
}

/** A block from rows read one by one: [subscriber, rec or null, ipv6, ipv4, ports]; a missing or damaged record is made from the text. */
function blockOf(rows: Array<[string, Buffer | null, string, number, string]>): LoadBlock {
  const recs: Buffer[] = [];
  const names: Buffer[] = [];
  const bad: LoadBlock['bad'] = [];
  for (const [subscriber, rec, ipv6, ipv4, ports] of rows) {
    let r = rec;
    if (r === null || r.length !== LOAD_REC) {
      try {
        r = recordOf(ipv6, ipv4, ports);
      } catch (err) {
        bad.push({ subscriber, error: (err as Error).message });
        continue;
      }
    }
    recs.push(r);
    names.push(Buffer.from(subscriber, 'utf8'));
  }
  const nameAt = new Uint32Array(names.length + 1);
  for (let i = 0; i < names.length; i++) nameAt[i + 1] = nameAt[i]! + names[i]!.length + 1;
  return { n: recs.length, recs: Buffer.concat(recs), names: Buffer.concat(names.flatMap((b) => [b, Buffer.of(NL)])), nameAt, bad, rowByRow: true };
}
