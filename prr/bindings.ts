/**
 * The PRR's binding table: one *binding* (a softwire, RFC 7596) per customer port set.
 *
 *   binding id ──► subscriber name, CPE IPv6 address, tunnel endpoint (BR) index,
 *                  shared IPv4 address, port set, tunnel MTU, counters
 *
 * Lookups on the packet path, both O(1) and allocation-free:
 *   (shared IPv4, port) ──► binding id     IPv4 -> IPv6, and source validation IPv6 -> IPv4
 *   CPE IPv6 (16 bytes in a buffer) ──► first binding id of that CPE (a chain links the rest)
 *
 * Port lookup, per shared address, is one of two shapes (see common/portset.ts for the rule):
 *   - PSID mode, when every binding of the address is an RFC 7597 set with the same offset a
 *     and PSID length k: the PSID is read out of the port arithmetically and indexes a table
 *     of 2^k binding ids. Ports with A = 0 (the reserved low ports when a > 0) map to no PSID,
 *     so the normal lookup simply misses (as Snabb's lwAFTR does).
 *   - block mode, for contiguous ranges (and mixed sets): a coarse table of 1024 entries, one
 *     per 64-port block, holding a binding id when the whole block belongs to one binding, a
 *     reference to a split (two owners, one boundary: where two ranges meet), or a reference to a
 *     fine 64-entry table for blocks that more owners share. Ranges allocated in multiples of 64
 *     ports never need either.
 *
 * Ids are stable: a change of IPv6 address, MTU or port set keeps the id, so counters survive it.
 *
 * Memory (1,000,000 bindings must fit well under 512 MB with everything else): per binding one
 * 64-byte record (below), three control-plane words and its name's UTF-8 bytes
 * (prr/name-index.ts: no string per binding); port sets are stored as numbers and rebuilt as
 * PortSet objects only when the control plane asks (portsOf). Per shared address 4 KiB (block
 * mode) or 4·2^k bytes (PSID mode); the IPv6 index and the name index are open-addressing hashes
 * of Int32 (a Map of a million names cost ~40 MB and a quarter of a restart's load time).
 *
 * The record holds everything a packet touches once the id is known, its counters included, in
 * one cache line: with a million bindings every packet's record is a cache miss (hundreds of ns
 * on this kind of host, bench/prr-core.ts), and counters in an array of their own were a second
 * one. Records are 64 bytes in one ArrayBuffer, on 64-byte lines where the buffer comes from
 * glibc's mmap (the big tables, the ones that miss: see RECORDS_AT):
 *
 *   bytes 0-15   CPE IPv6 address
 *   word 4       the "ports active" mark this binding made last (see lastActive), NO_MARK when none
 *   word 5       BR index << 16 | tunnel MTU
 *   bytes 24-63  the binding's counters, five Float64 (prr/counters.ts B, PER_BINDING; `slots`)
 *
 * and, cold, three Int32 per binding in `aux`:
 *   next binding of the same CPE IPv6 address (NO_BINDING ends the chain)
 *   port set: range first << 16 | last, or PSID a << 24 | k << 16 | id
 *   shared IPv4 address (a packet has it in its header: the packet path does not read it here)
 *   (live[id]: 0 free, 1 range, 2 PSID set)
 */
import { PortRange, PsidSet, type PortSet } from '../common/portset.js';
import { PortSetError } from '../common/errors.js';
import { AddrIndex } from './addr-index.js';
import { NameIndex } from './name-index.js';
import { slotOrder } from './slot-order.js';

export const NO_BINDING = -1; // shared address, but no binding holds this port
export const NOT_SHARED = -2; // not one of the shared addresses

const BLOCK_SHIFT = 6; // 64-port blocks
const BLOCK = 1 << BLOCK_SHIFT;
const BLOCKS = 65536 >>> BLOCK_SHIFT;

const REC = 16; // words per binding record (64 bytes, one cache line)
const REC_BYTES = REC * 4;
const W_MARK = 4;
/** No "ports active" mark yet (no key of the data plane's is this: see lastActive). */
const NO_MARK = 0xffffffff;
const W_BR_MTU = 5;
/** Float64 slots per record, and the slot where its counters begin (byte 24). */
export const RECORD_F64 = REC_BYTES / 8;
export const COUNTERS_AT = 3;
const COUNTERS = 5;
/**
 * Byte offset of record 0 in its buffer: a big ArrayBuffer comes from glibc's mmap, 16 bytes past
 * a page start, so 48 more put every record on a 64-byte line (elsewhere it is harmless).
 */
const RECORDS_AT = 48;
/** Entries of a chunk of port tables (16 MiB: a few huge pages; what is not touched costs nothing). */
const CHUNK_SHIFT = 22;
const CHUNK_MASK = (1 << CHUNK_SHIFT) - 1;
const AUX = 3; // control-plane words per binding
const A_NEXT6 = 0;
const A_SET = 1;
const A_IPV4 = 2;
const FREE = 0;
const RANGE = 1;
const PSID = 2;

/** Per shared IPv4 address: how its ports map to binding ids. */
interface AddrPorts {
  /** Number of bindings on this address. */
  count: number;
  /** PSID mode: offset a and PSID length k, ids by PSID (null in block mode). */
  a: number;
  k: number;
  psidIds: Int32Array | null;
  /** Block mode: per 64-port block, a binding id, NO_BINDING, or -(3 + 2·fine table index), or -(3 + 2·split index + 1). */
  coarse: Int32Array | null;
  /** Where psidIds or coarse lies in the port-table chunks (see portTable). */
  base: number;
}

export interface BindingInput {
  subscriber: string;
  ipv6: Buffer; // 16 bytes
  ipv4: number;
  ports: PortSet;
  /** Index of the tunnel endpoint (BR) address the CPE talks to; 0 when there is one. */
  br?: number;
  /** Tunnel MTU toward this CPE (the IPv4 size that fits), 0 = the PRR default. */
  mtu?: number;
}

export interface BindingTableOptions {
  /**
   * Called with each big buffer the table allocates (records, port tables, IPv6 index), before
   * anything is written to it: `prr run` asks the kernel for transparent huge pages there
   * (common/native adviseHugePages), so that a lookup in a big table costs a cache miss but not
   * a TLB miss too. Absent: plain pages (unit tests, the conformance harness).
   */
  adviseMemory?: (buf: ArrayBuffer) => void;
}

export class BindingTable {
  // One record per binding (layout at the top), grown by doubling; record i is binding id i.
  private cap: number;
  private live: Uint8Array; // FREE, RANGE or PSID: the shape of the record's port set
  private rec8: Uint8Array; // the records, bytewise (IPv6 addresses)
  private rec32: Uint32Array; // the same records, by 32-bit word
  /** The same records as Float64: binding id's counters are slots[id * RECORD_F64 + COUNTERS_AT + i]. */
  slots: Float64Array;
  private aux: Int32Array; // AUX words per binding: the IPv6 chain, the port set, the shared address
  private readonly advise: ((buf: ArrayBuffer) => void) | undefined;
  /** Subscriber names by id and the index name -> ids (UTF-8 bytes in one heap: prr/name-index.ts). */
  private readonly names: NameIndex;
  private freeIds: number[] = [];
  private used = 0;
  private nLive = 0;

  private readonly addrs = new Map<number, AddrPorts>();
  // Fine tables, BLOCK entries each, in one array (a typed array each cost ~3x its 256 bytes).
  private fine = new Int32Array(BLOCK * 64);
  private nFine = 0;
  private freeFine: number[] = [];
  // Splits: a block of two owners, [id below, first port of the second (1..63), id from there],
  // 12 bytes where a fine table takes 256: the boundary of two ranges that are not multiples of
  // 64 ports (1000-port sets, a million of them at 224 MB of fine tables before).
  private splits = new Int32Array(3 * 64);
  private nSplit = 0;
  private freeSplit: number[] = [];
  private readonly scratch = new Int32Array(BLOCK); // one block being rewritten
  // The packet path's view of `addrs`: address -> slot, and per slot the shape (a << 8 | k for a
  // PSID table, -1 for block mode) and where its table lies in the chunks.
  private readonly addrIdx = new AddrIndex();
  private aShape = new Int32Array(16);
  private aBase = new Int32Array(16);
  // Port tables (PSID tables, coarse tables) are parts of big chunks: see portTable.
  private readonly chunks: Int32Array[] = [];
  private chunkUsed = 1 << CHUNK_SHIFT; // of the last chunk
  private readonly freeTables = new Map<number, number[]>();

  // IPv6 index: open addressing, linear probing; a slot is two words, the first id of the
  // address + 1 (0 empty, -1 deleted) and the address's hash: a probe compares hashes and reads a
  // record only when they match, and a rehash reads no record (at a million bindings each record
  // read is a cache miss).
  private h6: Int32Array;
  private h6Used = 0;
  /** During a bulk load (beginBulk), the first id added: from it on, the IPv6 and name indexes wait for endBulk(). */
  private bulkFrom = -1;

  /** Called with the id of every binding that was added, changed or removed (for counters, metrics). */
  onChange: ((id: number, what: 'add' | 'change' | 'remove') => void) | undefined;

  constructor(capacity = 1024, opts: BindingTableOptions = {}) {
    this.advise = opts.adviseMemory;
    this.cap = Math.max(16, capacity);
    this.live = new Uint8Array(this.cap);
    const buf = this.bigBuffer(RECORDS_AT + this.cap * REC_BYTES);
    this.rec8 = new Uint8Array(buf, RECORDS_AT, this.cap * REC_BYTES);
    this.rec32 = new Uint32Array(buf, RECORDS_AT, this.cap * REC);
    this.slots = new Float64Array(buf, RECORDS_AT, this.cap * RECORD_F64);
    this.aux = new Int32Array(this.cap * AUX);
    this.names = new NameIndex(this.cap);
    this.h6 = new Int32Array(this.bigBuffer(8 * pow2AtLeast(this.cap * 2)));
  }

  /** A zeroed buffer of `bytes`, given to the memory advice first (see BindingTableOptions). */
  private bigBuffer(bytes: number): ArrayBuffer {
    const buf = new ArrayBuffer(bytes);
    this.advise?.(buf);
    return buf;
  }

  /** Make room for `n` bindings in all, at once (a restart knows its row count: no regrowth, no rehash). */
  ensureCapacity(n: number): void {
    let cap = this.cap;
    while (cap < n) cap *= 2;
    if (cap > this.cap) this.grow(cap);
  }

  get size(): number {
    return this.nLive;
  }

  /** Highest id ever handed out, plus one: counters sized to this cover every id. */
  get idLimit(): number {
    return this.used;
  }

  // ---- packet path -------------------------------------------------------------------------

  /** The binding holding (ipv4, port), NO_BINDING, or NOT_SHARED. */
  lookupPort(ipv4: number, port: number): number {
    const s = this.addrIdx.get(ipv4);
    if (s < 0) return NOT_SHARED;
    const g = this.entryOf(s, port);
    if (g < 0) return NO_BINDING;
    const c = this.chunks[g >>> CHUNK_SHIFT]![g & CHUNK_MASK]!;
    return c >= NO_BINDING ? c : this.inBlock(c, port);
  }

  /**
   * Where the port-table entry of `port` on the address in slot s lies in the chunks, or -1 for
   * a port no PSID maps to (A = 0). Typed arrays only: the packet path touches no JS object.
   */
  private entryOf(s: number, port: number): number {
    const shape = this.aShape[s]!;
    if (shape < 0) return this.aBase[s]! + (port >>> BLOCK_SHIFT);
    const a = shape >>> 8;
    const k = shape & 0xff;
    if (a > 0 && port >>> (16 - a) === 0) return -1;
    return this.aBase[s]! + ((port >>> (16 - a - k)) & ((1 << k) - 1));
  }

  /** The binding of `port` in a block that a split or a fine table describes (coarse entry c). */
  private inBlock(c: number, port: number): number {
    const x = -3 - c;
    const q = port & (BLOCK - 1);
    if ((x & 1) === 0) return this.fine[(x >>> 1) * BLOCK + q]!;
    const s = (x >>> 1) * 3;
    return q < this.splits[s + 1]! ? this.splits[s]! : this.splits[s + 2]!;
  }

  /**
   * lookupPort of n (ipv4, port) pairs into out[0..n): the same answers, in two passes, so that
   * the loads of the port-table entries (each a cache miss in a big table) are in flight together
   * rather than one after the other. The data plane warms each batch with it (prr/dataplane.ts).
   */
  lookupPorts(ips: Uint32Array, ports: Uint16Array, n: number, out: Int32Array): void {
    if (this.bIdx.length < n) this.bIdx = new Int32Array(n);
    const at = this.bIdx;
    let lastIp = -1;
    let s = -1;
    for (let i = 0; i < n; i++) {
      const ip = ips[i]!;
      if (ip !== lastIp) {
        s = this.addrIdx.get(ip);
        lastIp = ip;
      }
      at[i] = s < 0 ? -1 : this.entryOf(s, ports[i]!);
      out[i] = s < 0 ? NOT_SHARED : NO_BINDING; // the answer where at[i] is -1
    }
    const chunks = this.chunks;
    for (let i = 0; i < n; i++) {
      const g = at[i]!;
      if (g < 0) continue;
      const c = chunks[g >>> CHUNK_SHIFT]![g & CHUNK_MASK]!;
      out[i] = c >= NO_BINDING ? c : this.inBlock(c, ports[i]!); // PSID tables hold only ids and NO_BINDING
    }
  }
  // lookupPorts' scratch: per pair, where its port-table entry lies, or -1 (the answer is known).
  private bIdx = new Int32Array(0);

  /** Is this one of the addresses that bindings use? */
  isShared(ipv4: number): boolean {
    return this.addrIdx.get(ipv4) >= 0;
  }

  /** First binding of the CPE whose IPv6 address is buf[off..off+16], or NO_BINDING. */
  lookupIpv6(buf: Uint8Array, off: number): number {
    const h6 = this.h6;
    const h = hash16(buf, off);
    const mask = (h6.length >>> 1) - 1;
    for (let s = h & mask; ; s = (s + 1) & mask) {
      const v = h6[2 * s]!;
      if (v === 0) return NO_BINDING;
      if (v > 0 && h6[2 * s + 1] === h && this.ipv6Is(v - 1, buf, off)) return v - 1;
    }
  }

  /** Next binding of the same CPE IPv6 address, or NO_BINDING. */
  nextOfIpv6(id: number): number {
    return this.aux[id * AUX + A_NEXT6]!;
  }

  /** Does binding `id` belong to the CPE address buf[off..off+16]? */
  ipv6Is(id: number, buf: Uint8Array, off: number): boolean {
    const b = id * REC_BYTES;
    const a6 = this.rec8;
    for (let i = 0; i < 16; i++) if (a6[b + i] !== buf[off + i]) return false;
    return true;
  }

  /** Copy binding `id`'s CPE IPv6 address into out[off..off+16]. */
  copyIpv6(id: number, out: Uint8Array, off: number): void {
    const a6 = this.rec8;
    const b = id * REC_BYTES;
    for (let i = 0; i < 16; i++) out[off + i] = a6[b + i]!;
  }

  ipv4Of(id: number): number {
    return this.aux[id * AUX + A_IPV4]! >>> 0;
  }

  /**
   * The "ports active" mark binding `id` made last (prr/dataplane.ts: generation << 16 | port),
   * in its record, so that a packet from the same port in the same half-window needs no look at
   * the bitmaps (a cache miss each with a big table); NO_MARK after an add or change.
   */
  lastActive(id: number): number {
    return this.rec32[id * REC + W_MARK]!;
  }

  setLastActive(id: number, mark: number): void {
    this.rec32[id * REC + W_MARK] = mark;
  }

  brOf(id: number): number {
    return this.rec32[id * REC + W_BR_MTU]! >>> 16;
  }

  mtuOf(id: number): number {
    return this.rec32[id * REC + W_BR_MTU]! & 0xffff;
  }

  setMtu(id: number, mtu: number): void {
    const w = id * REC + W_BR_MTU;
    this.rec32[w] = ((this.rec32[w]! & 0xffff0000) | (mtu & 0xffff)) >>> 0;
  }

  // ---- control plane -----------------------------------------------------------------------

  isLive(id: number): boolean {
    return id >= 0 && id < this.used && this.live[id] !== FREE;
  }

  subscriberOf(id: number): string | undefined {
    return this.isLive(id) ? this.names.nameOf(id) : undefined;
  }

  portsOf(id: number): PortSet | undefined {
    return this.isLive(id) ? this.setOf(id) : undefined;
  }

  /** The port set of a live binding, rebuilt from its record (control plane only: it allocates). */
  private setOf(id: number): PortSet {
    const w = this.aux[id * AUX + A_SET]! >>> 0;
    if (this.live[id] === PSID) return new PsidSet(w >>> 24, (w >>> 16) & 0xff, w & 0xffff, { allowSystemPorts: true });
    return new PortRange(w >>> 16, w & 0xffff, { allowSystemPorts: true });
  }

  ipv6Of(id: number): Buffer {
    return Buffer.from(this.rec8.subarray(id * REC_BYTES, id * REC_BYTES + 16));
  }

  /** Ids of all live bindings, in id order. */
  *ids(): IterableIterator<number> {
    for (let i = 0; i < this.used; i++) if (this.live[i] !== FREE) yield i;
  }

  /** Ids of the bindings of one subscriber name, in the order they were added. */
  findSubscriber(name: string): number[] {
    this.endBulk();
    const ids: number[] = [];
    for (let id = this.names.first(name); id >= 0; id = this.names.next(id)) ids.push(id);
    return ids;
  }

  /** The live binding whose ports overlap `set` on `ipv4`, or NO_BINDING. */
  overlapping(ipv4: number, set: PortSet, except = NO_BINDING): number {
    if (!this.addrs.has(ipv4)) return NO_BINDING;
    for (const [first, last] of set.chunks()) {
      for (let p = first; p <= last; p++) {
        const id = this.lookupPort(ipv4, p);
        if (id >= 0 && id !== except) return id;
        // Skip ahead within a block that is wholly free or wholly one binding.
        if (id === NO_BINDING || id === except) {
          const e = this.addrs.get(ipv4)!;
          if (e.coarse !== null && e.coarse[p >>> BLOCK_SHIFT]! >= NO_BINDING) p = Math.min(last, (p | (BLOCK - 1)));
        }
      }
    }
    return NO_BINDING;
  }

  /**
   * Add a binding; refuses a port set that overlaps another binding on the same address.
   * `noOverlapCheck`: the caller has already proved there is none (the registration store's load
   * at start, whose allocator holds every set of the table: a fifth of the load time saved).
   */
  add(b: BindingInput, noOverlapCheck = false): number {
    if (b.ipv6.length !== 16) throw new PortSetError(`binding ${b.subscriber}: IPv6 address must be 16 bytes`);
    const clash = noOverlapCheck ? NO_BINDING : this.overlapping(b.ipv4, b.ports);
    if (clash >= 0) {
      throw new PortSetError(`binding ${b.subscriber}: ports ${b.ports.toString()} overlap subscriber ${this.names.nameOf(clash)} (${this.setOf(clash).toString()})`);
    }
    const id = this.newId();
    this.names.set(id, b.subscriber);
    return this.place(id, b);
  }

  /**
   * add(b, true) for a start from the registration store: the subscriber name is given as UTF-8
   * bytes, name[start..end) (b.subscriber is not read), so that a million bindings make no string.
   */
  addNamed(b: BindingInput, name: Uint8Array, start: number, end: number): number {
    const id = this.newId();
    this.names.setBytes(id, name, start, end, this.bulkFrom < 0);
    return this.place(id, b);
  }

  /**
   * Start a bulk load (a restart's million bindings): the bindings added until endBulk() go into
   * the port tables at once, but into the IPv6 and name indexes only at endBulk(), all together in
   * slot order (prr/slot-order.ts). Until then lookupIpv6 misses them; findSubscriber, change
   * and remove end the bulk load first.
   */
  beginBulk(): void {
    if (this.bulkFrom < 0) this.bulkFrom = this.used;
  }

  /** End a bulk load: index the bindings added since beginBulk(). */
  endBulk(): void {
    const from = this.bulkFrom;
    if (from < 0) return;
    this.bulkFrom = -1;
    const n = this.used - from;
    if (n === 0) return;
    this.names.linkAll(from, this.used);
    if ((this.h6Used + n) * 4 > this.h6.length) this.rehash6(pow2AtLeast(Math.max(this.cap * 2, (this.nLive + 1) * 4)));
    // In id order, through the records once: each address's hash, and its chain ended.
    const hashes = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      hashes[i] = hash16(this.rec8, (from + i) * REC_BYTES);
      this.aux[(from + i) * AUX + A_NEXT6] = NO_BINDING;
    }
    // In slot order: a record is read again only where two hashes match.
    const { order, sorted } = slotOrder(hashes, (this.h6.length >>> 1) - 1);
    for (let k = 0; k < n; k++) this.index6(from + order[k]!, sorted[k]!);
  }

  private newId(): number {
    // A bulk load's ids are consecutive (endBulk indexes from bulkFrom on): no reuse meanwhile.
    const id = this.freeIds.length > 0 && this.bulkFrom < 0 ? this.freeIds.pop()! : this.used++;
    if (id >= this.cap) this.grow(this.cap * 2);
    return id;
  }

  /** The rest of an add, once the id is named. */
  private place(id: number, b: BindingInput): number {
    this.writeFields(id, b);
    this.slots.fill(0, id * RECORD_F64 + COUNTERS_AT, id * RECORD_F64 + COUNTERS_AT + COUNTERS); // a reused id starts at zero
    if (this.bulkFrom < 0) {
      this.aux[id * AUX + A_NEXT6] = NO_BINDING;
      this.index6(id, hash16(this.rec8, id * REC_BYTES));
    }
    this.placePorts(id, b.ipv4, b.ports);
    this.nLive++;
    this.onChange?.(id, 'add');
    return id;
  }

  /**
   * Change a binding in place (new IPv6 address, shared address, port set, BR or MTU): the id,
   * and so its counters, stay. Traffic of other bindings is not touched. Refuses overlap.
   */
  change(id: number, b: BindingInput): void {
    this.endBulk();
    if (!this.isLive(id)) throw new PortSetError(`binding ${id} does not exist`);
    const clash = this.overlapping(b.ipv4, b.ports, id);
    if (clash >= 0) {
      throw new PortSetError(`binding ${b.subscriber}: ports ${b.ports.toString()} overlap subscriber ${this.names.nameOf(clash)} (${this.setOf(clash).toString()})`);
    }
    const oldV4 = this.ipv4Of(id);
    const oldSet = this.setOf(id);
    const samePorts = oldV4 === b.ipv4 && oldSet.equals(b.ports);
    const sameV6 = this.ipv6Is(id, b.ipv6, 0);
    if (!sameV6) this.unindex6(id);
    if (!samePorts) this.clearPorts(id, oldV4, oldSet);
    if (!this.names.is(id, b.subscriber)) {
      this.names.remove(id);
      this.names.set(id, b.subscriber);
    }
    this.writeFields(id, b);
    if (!sameV6) {
      this.aux[id * AUX + A_NEXT6] = NO_BINDING;
      this.index6(id, hash16(this.rec8, id * REC_BYTES));
    }
    if (!samePorts) this.placePorts(id, b.ipv4, b.ports);
    this.onChange?.(id, 'change');
  }

  remove(id: number): void {
    this.endBulk();
    if (!this.isLive(id)) return;
    this.unindex6(id);
    this.clearPorts(id, this.ipv4Of(id), this.setOf(id));
    this.live[id] = FREE;
    this.names.remove(id);
    this.freeIds.push(id);
    this.nLive--;
    this.onChange?.(id, 'remove');
  }

  /** Fill the record (all but the IPv6 chain and the counters) and the set's shape. */
  private writeFields(id: number, b: BindingInput): void {
    const r = id * REC;
    this.rec8.set(b.ipv6, id * REC_BYTES);
    this.rec32[r + W_MARK] = NO_MARK; // the address or ports may be new: mark again
    this.aux[id * AUX + A_IPV4] = b.ipv4 | 0;
    this.rec32[r + W_BR_MTU] = (((b.br ?? 0) & 0xffff) << 16 | ((b.mtu ?? 0) & 0xffff)) >>> 0;
    const ps = b.ports.psid;
    if (ps !== undefined) {
      this.live[id] = PSID;
      this.aux[id * AUX + A_SET] = (ps.offset << 24) | (ps.length << 16) | ps.id;
    } else {
      // Any other set is a contiguous range (PortSet's kinds are 'range' and 'psid').
      this.live[id] = RANGE;
      this.aux[id * AUX + A_SET] = (b.ports.min << 16) | b.ports.max;
    }
  }

  private grow(cap: number): void {
    const live = new Uint8Array(cap);
    live.set(this.live);
    this.live = live;
    const buf = this.bigBuffer(RECORDS_AT + cap * REC_BYTES);
    const rec8 = new Uint8Array(buf, RECORDS_AT, cap * REC_BYTES);
    rec8.set(this.rec8);
    this.rec8 = rec8;
    this.rec32 = new Uint32Array(buf, RECORDS_AT, cap * REC);
    this.slots = new Float64Array(buf, RECORDS_AT, cap * RECORD_F64);
    const aux = new Int32Array(cap * AUX);
    aux.set(this.aux);
    this.aux = aux;
    this.names.grow(cap);
    this.cap = cap;
    if (this.h6.length < cap * 4) this.rehash6(pow2AtLeast(cap * 2));
  }

  // ---- IPv6 index --------------------------------------------------------------------------

  /** Index binding `id`, whose address hashes to h (hash16 of its record) and whose chain is ended (NO_BINDING). */
  private index6(id: number, h: number): void {
    const n6 = this.aux;
    const a6 = this.rec8;
    const at = id * REC_BYTES;
    // One probe: the address's slot (another binding of the same CPE: chain after its head), else
    // the first deleted or the empty slot that ends the probe.
    let h6 = this.h6;
    let mask = (h6.length >>> 1) - 1;
    let free = -1;
    let s = h & mask;
    for (; ; s = (s + 1) & mask) {
      const v = h6[2 * s]!;
      if (v === 0) break;
      if (v < 0) {
        if (free < 0) free = s;
      } else if (h6[2 * s + 1] === h && this.ipv6Is(v - 1, a6, at)) {
        const head = v - 1;
        n6[id * AUX + A_NEXT6] = n6[head * AUX + A_NEXT6]!;
        n6[head * AUX + A_NEXT6] = id;
        return;
      }
    }
    if (free < 0) {
      if ((this.h6Used + 1) * 4 > h6.length) {
        // Twice the live addresses' room at least: deleted marks go, and churn does not grow it.
        this.rehash6(pow2AtLeast(Math.max(this.cap * 2, (this.nLive + 1) * 4)));
        h6 = this.h6;
        mask = (h6.length >>> 1) - 1;
        for (s = h & mask; h6[2 * s] !== 0; s = (s + 1) & mask);
      }
      this.h6Used++;
      free = s;
    }
    h6[2 * free] = id + 1;
    h6[2 * free + 1] = h;
  }

  private unindex6(id: number): void {
    const h6 = this.h6;
    const mask = (h6.length >>> 1) - 1;
    const n6 = this.aux;
    const next = (x: number): number => n6[x * AUX + A_NEXT6]!;
    const at = id * REC_BYTES;
    const h = hash16(this.rec8, at);
    let s = h & mask;
    for (; h6[2 * s] !== 0; s = (s + 1) & mask) {
      const v = h6[2 * s]!;
      if (v > 0 && h6[2 * s + 1] === h && this.ipv6Is(v - 1, this.rec8, at)) break;
    }
    const head = h6[2 * s]! - 1;
    if (head < 0) return;
    if (head === id) {
      const nxt = next(id);
      h6[2 * s] = nxt >= 0 ? nxt + 1 : -1;
    } else {
      let p = head;
      while (next(p) !== id && next(p) >= 0) p = next(p);
      if (next(p) === id) n6[p * AUX + A_NEXT6] = next(id);
    }
    n6[id * AUX + A_NEXT6] = NO_BINDING;
  }

  /** A new IPv6 index of `slots` slots, without the deleted marks (the hashes are in the slots: no record is read). */
  private rehash6(slots: number): void {
    const old = this.h6;
    const h6 = new Int32Array(this.bigBuffer(8 * slots));
    const mask = slots - 1;
    let used = 0;
    for (let i = 0; i < old.length; i += 2) {
      const v = old[i]!;
      if (v <= 0) continue;
      const h = old[i + 1]!;
      let s = h & mask;
      while (h6[2 * s] !== 0) s = (s + 1) & mask;
      h6[2 * s] = v;
      h6[2 * s + 1] = h;
      used++;
    }
    this.h6 = h6;
    this.h6Used = used;
  }

  // ---- port index --------------------------------------------------------------------------

  private placePorts(id: number, ipv4: number, set: PortSet): void {
    let e = this.addrs.get(ipv4);
    const psid = set.psid;
    if (e === undefined) {
      e = { count: 0, a: 0, k: 0, psidIds: null, coarse: null, base: 0 };
      if (psid !== undefined) {
        e.a = psid.offset;
        e.k = psid.length;
        e.psidIds = this.portTable(e, 1 << psid.length);
      } else {
        e.coarse = this.portTable(e, BLOCKS);
      }
      this.addrs.set(ipv4, e);
      this.indexAddr(ipv4, e);
    }
    if (e.psidIds !== null && (psid === undefined || psid.offset !== e.a || psid.length !== e.k)) this.toBlockMode(ipv4, e);
    e.count++;
    if (e.psidIds !== null) {
      e.psidIds[psid!.id] = id;
      return;
    }
    if (set.kind === 'range') this.fillRange(e, set.min, set.max, id); // no chunk arrays per binding
    else for (const [first, last] of set.chunks()) this.fillRange(e, first, last, id);
  }

  private clearPorts(id: number, ipv4: number, set: PortSet): void {
    const e = this.addrs.get(ipv4);
    if (e === undefined) return;
    if (e.psidIds !== null) {
      const psid = set.psid!;
      if (e.psidIds[psid.id] === id) e.psidIds[psid.id] = NO_BINDING;
    } else {
      for (const [first, last] of set.chunks()) this.fillRange(e, first, last, NO_BINDING, id);
    }
    if (--e.count === 0) {
      if (e.coarse !== null) for (const c of e.coarse) this.freeBlock(c);
      this.freePortTable(e.base, (e.coarse ?? e.psidIds!).length);
      this.addrs.delete(ipv4);
      this.addrIdx.delete(ipv4);
    }
  }

  /** Re-index an address in block mode (a binding of another shape arrived). */
  private toBlockMode(ipv4: number, e: AddrPorts): void {
    const ids = e.psidIds!;
    const oldBase = e.base;
    e.psidIds = null;
    e.coarse = this.portTable(e, BLOCKS);
    for (const id of ids) {
      if (id < 0) continue;
      for (const [first, last] of this.setOf(id).chunks()) this.fillRange(e, first, last, id);
    }
    this.indexAddr(ipv4, e); // the packet path sees the new table once it is whole
    this.freePortTable(oldBase, ids.length);
  }

  /**
   * A port table of n entries, all NO_BINDING: a view into one of a few big chunks rather than an
   * array of its own, so that the tables of all addresses lie together in huge pages (a lookup
   * in a big table is then a cache miss, not a TLB miss as well). Freed ones are reused by size.
   */
  private portTable(e: AddrPorts, n: number): Int32Array {
    let base = this.freeTables.get(n)?.pop();
    if (base === undefined) {
      if (this.chunkUsed + n > 1 << CHUNK_SHIFT) {
        this.chunks.push(new Int32Array(this.bigBuffer(4 << CHUNK_SHIFT)));
        this.chunkUsed = 0;
      }
      base = ((this.chunks.length - 1) << CHUNK_SHIFT) + this.chunkUsed;
      this.chunkUsed += n;
    }
    e.base = base;
    return this.chunks[base >>> CHUNK_SHIFT]!.subarray(base & CHUNK_MASK, (base & CHUNK_MASK) + n).fill(NO_BINDING);
  }

  /** Give back the port table of n entries at `base` (see portTable). */
  private freePortTable(base: number, n: number): void {
    let free = this.freeTables.get(n);
    if (free === undefined) this.freeTables.set(n, (free = []));
    free.push(base);
  }

  /** Publish address `ipv4`'s table shape and place to the packet path (see entryOf). */
  private indexAddr(ipv4: number, e: AddrPorts): void {
    const s = this.addrIdx.add(ipv4);
    if (s >= this.aShape.length) {
      const shape = new Int32Array(this.aShape.length * 2);
      shape.set(this.aShape);
      this.aShape = shape;
      const base = new Int32Array(this.aBase.length * 2);
      base.set(this.aBase);
      this.aBase = base;
    }
    this.aShape[s] = e.psidIds !== null ? (e.a << 8) | e.k : -1;
    this.aBase[s] = e.base;
  }

  /** Set ports first..last to `id` (or, when clearing, to NO_BINDING where they hold `only`). */
  private fillRange(e: AddrPorts, first: number, last: number, id: number, only?: number): void {
    const coarse = e.coarse!;
    let p = first;
    while (p <= last) {
      const blk = p >>> BLOCK_SHIFT;
      const blkLast = (blk << BLOCK_SHIFT) + BLOCK - 1;
      const end = Math.min(last, blkLast);
      const c = coarse[blk]!;
      if (c >= NO_BINDING) {
        if (only !== undefined && c !== only) {
          p = end + 1; // a block wholly of another binding: nothing of `only` here
          continue;
        }
        if ((p & (BLOCK - 1)) === 0 && end === blkLast) {
          coarse[blk] = id; // the whole block changes owner
          p = end + 1;
          continue;
        }
      }
      if (only === undefined) {
        const edge = this.placeEdge(c, p & (BLOCK - 1), end & (BLOCK - 1), id);
        if (edge !== undefined) {
          coarse[blk] = edge;
          p = end + 1;
          continue;
        }
      }
      // Part of a block, or a block already shared: rebuild its 64 entries, write, store them
      // again in the smallest shape (one owner, a split, or a fine table).
      const t = this.scratch;
      this.decodeBlock(c, t);
      this.freeBlock(c);
      for (let q = p; q <= end; q++) {
        const j = q & (BLOCK - 1);
        if (only === undefined || t[j] === only) t[j] = id;
      }
      coarse[blk] = this.encodeBlock(t);
      p = end + 1;
    }
  }

  /**
   * fillRange's usual write without rebuilding the block: ports a..b of it (block offsets) to `id`
   * where that leaves at most two owners, as where a range starts or ends beside its neighbour
   * (every binding of a restart). The new coarse entry, or undefined for the general way.
   */
  private placeEdge(c: number, a: number, b: number, id: number): number | undefined {
    let lo: number;
    let k: number;
    let hi: number;
    if (c >= NO_BINDING) {
      if (b === BLOCK - 1) [lo, k, hi] = [c, a, id];
      else if (a === 0) [lo, k, hi] = [id, b + 1, c];
      else return undefined;
    } else {
      const x = -3 - c;
      if ((x & 1) === 0) return undefined;
      const s = (x >>> 1) * 3;
      const at = this.splits[s + 1]!;
      if (b === BLOCK - 1 && a > 0 && a <= at) [lo, k, hi] = [this.splits[s]!, a, id];
      else if (a === 0 && b < BLOCK - 1 && b + 1 >= at) [lo, k, hi] = [id, b + 1, this.splits[s + 2]!];
      else return undefined;
    }
    if (lo === hi) {
      this.freeBlock(c);
      return lo;
    }
    if (c >= NO_BINDING) return this.newSplit(lo, k, hi);
    const s = ((-3 - c) >>> 1) * 3; // rewrite the split in place
    this.splits[s] = lo;
    this.splits[s + 1] = k;
    this.splits[s + 2] = hi;
    return c;
  }

  private newSplit(lo: number, k: number, hi: number): number {
    const idx = this.freeSplit.length > 0 ? this.freeSplit.pop()! : this.nSplit++;
    if ((idx + 1) * 3 > this.splits.length) this.splits = grown(this.splits);
    this.splits[idx * 3] = lo;
    this.splits[idx * 3 + 1] = k;
    this.splits[idx * 3 + 2] = hi;
    return -3 - (idx * 2 + 1);
  }

  /** The 64 entries of a coarse entry's block, into t. */
  private decodeBlock(c: number, t: Int32Array): void {
    if (c >= NO_BINDING) {
      t.fill(c);
      return;
    }
    const x = -3 - c;
    if ((x & 1) === 0) {
      const base = (x >>> 1) * BLOCK;
      for (let i = 0; i < BLOCK; i++) t[i] = this.fine[base + i]!;
    } else {
      const s = (x >>> 1) * 3;
      const k = this.splits[s + 1]!;
      for (let i = 0; i < BLOCK; i++) t[i] = i < k ? this.splits[s]! : this.splits[s + 2]!;
    }
  }

  /** Give back the split or fine table a coarse entry refers to (nothing for a plain id). */
  private freeBlock(c: number): void {
    if (c >= NO_BINDING) return;
    const x = -3 - c;
    if ((x & 1) === 0) this.freeFine.push(x >>> 1);
    else this.freeSplit.push(x >>> 1);
  }

  /** The coarse entry for a block's 64 entries: one id, a split (two owners), or a fine table. */
  private encodeBlock(t: Int32Array): number {
    let k = 0; // the port where the owner changes, 0 while it has not
    for (let i = 1; i < BLOCK; i++) {
      if (t[i] === t[i - 1]) continue;
      if (k !== 0) {
        k = -1; // a second change: only a fine table holds it
        break;
      }
      k = i;
    }
    if (k === 0) return t[0]!;
    if (k > 0) return this.newSplit(t[0]!, k, t[BLOCK - 1]!);
    const idx = this.freeFine.length > 0 ? this.freeFine.pop()! : this.nFine++;
    if ((idx + 1) * BLOCK > this.fine.length) this.fine = grown(this.fine);
    this.fine.set(t, idx * BLOCK);
    return -3 - idx * 2;
  }

  /** Memory held by the table's typed arrays, in bytes (for the scale bench and metrics). */
  bytes(): number {
    let n = this.live.byteLength + this.rec8.byteLength + this.aux.byteLength + this.h6.byteLength + this.names.bytes();
    for (const e of this.addrs.values()) n += (e.coarse?.byteLength ?? 0) + (e.psidIds?.byteLength ?? 0);
    n += this.fine.byteLength + this.splits.byteLength;
    return n;
  }
}

/** A typed array of twice the length holding the same entries first. */
function grown(a: Int32Array<ArrayBuffer>): Int32Array<ArrayBuffer> {
  const b = new Int32Array(a.length * 2);
  b.set(a);
  return b;
}

function pow2AtLeast(n: number): number {
  let p = 16;
  while (p < n) p *= 2;
  return p;
}

/** A 32-bit hash of 16 bytes (FNV-1a over four 32-bit words, then a final mix). */
function hash16(b: Uint8Array, o: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < 16; i += 4) {
    const w = (b[o + i]! << 24) | (b[o + i + 1]! << 16) | (b[o + i + 2]! << 8) | b[o + i + 3]!;
    h = Math.imul(h ^ w, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h | 0; // signed: compared with Int32Array words
}
