/**
 * IPv4 fragment reassembly for the PRR (RFC 791 §3.2, RFC 815; RFC 6333 §6.3: reassemble before
 * the port lookup, so the lookup sees the transport header). The core calls push() for every
 * IPv4 fragment (MF set or offset != 0) from the Internet and from the tunnel.
 *
 * Policy (every refusal is a drop with a stable reason, REASSEMBLY_DROP_NAMES; nothing throws):
 * - Key: (ctx, src, dst, protocol, id). `ctx` is the caller's: 0 on the Internet side, a number
 *   naming the tunnel source (e.g. binding id + 1) on the tunnel side, because CPEs share their
 *   IPv4 address and may pick the same id (RFC 6269 §5.1).
 * - Fragments arrive in any order. They are kept sorted by offset; since overlaps are refused,
 *   the datagram is complete when its last fragment is in and the bytes held equal its length.
 * - A fragment that is refused alone: frag_bad_length (empty, or a non-last fragment whose data is
 *   not a multiple of 8), frag_tiny (RFC 1858 §3 / RFC 3128: a TCP first fragment with less than
 *   16 bytes of TCP header, i.e. not up to the flags, or a TCP fragment at offset 8; for other
 *   protocols the 8-byte rule above already gives the first fragment >= 8 bytes: UDP and ICMP
 *   ports/ids), frag_duplicate (same range, same bytes: only the copy is dropped).
 * - A fragment that drops its whole datagram: frag_overlap (RFC 5722 spirit: any partial overlap,
 *   or the same range with different bytes), frag_inconsistent (fragments disagree on where the
 *   datagram ends, or a copy of a range disagrees on MF), frag_too_many (one more than
 *   maxFragmentsPerPacket), frag_too_big (the datagram would exceed maxPacketBytes: ping of
 *   death). Later fragments of a dropped datagram start a new one, which times out.
 * - Full table: the OLDEST datagram is evicted (frag_table_full, per evicted datagram), the same
 *   when the fragment memory is full. Refusing new ones instead would let maxPackets / timeoutMs
 *   junk fragments a second lock every real datagram out; evicting the oldest makes an attacker
 *   outrun real datagrams, which complete in milliseconds.
 * - Timeout: a datagram is dropped timeoutMs after its first fragment (frag_timeout, per
 *   datagram), by expire(): push() calls it (it looks only at the oldest), and so may a timer.
 * - Counts are events: one per refused fragment or dropped datagram, never per held fragment.
 * Memory: fragment bytes live in one preallocated pool of 256-byte blocks (maxBytes, default
 * 4 MiB like Linux's ipfrag_high_thresh, at least enough for one maximum datagram); slots, fragment
 * records and the hash are typed arrays sized at construction. push() allocates nothing.
 */
import {
  IPV4_FLAG_DF, IPV4_FLAG_MF, IPV4_FRAG_OFFSET_MASK, IPV4_MAX_HLEN, IPV4_MIN_HLEN, IPV4_VERSION, PROTO_TCP,
  IPV4_OFF_DST, IPV4_OFF_FRAG, IPV4_OFF_ID, IPV4_OFF_PROTO, IPV4_OFF_SRC, IPV4_OFF_TOTAL_LEN,
} from '../common/codec/constants.js';
import { ipv4UpdateChecksum } from '../common/codec/ipv4.js';
import { ConfigError } from '../common/errors.js';

export interface ReassemblyLimits {
  /** Datagrams in progress at once. */
  maxPackets: number;
  /** Fragments held per datagram (1..8192). */
  maxFragmentsPerPacket: number;
  /** A datagram is dropped this long after its first fragment arrived (> 0). */
  timeoutMs: number;
  /** Largest reassembled datagram, header included (default and at most 65535). */
  maxPacketBytes?: number;
  /** Fragment memory, all datagrams together (default 4 MiB; raised to fit one maximum datagram). */
  maxBytes?: number;
}

/** Why a fragment (or its datagram) was dropped. Names are stable: they are metric labels. */
export const REASSEMBLY_DROP_NAMES = [
  'frag_overlap', // partial overlap, or same range with other bytes: the whole datagram
  'frag_duplicate', // same range and bytes as a held fragment: this copy only
  'frag_too_many', // one fragment more than maxFragmentsPerPacket: the whole datagram
  'frag_table_full', // a datagram evicted (the oldest) to make room for a new one or its bytes
  'frag_timeout', // a datagram still incomplete timeoutMs after its first fragment
  'frag_too_big', // header + data past maxPacketBytes: the whole datagram
  'frag_tiny', // TCP first fragment < 16 bytes of TCP, or TCP at offset 8 (RFC 1858): this fragment
  'frag_bad_length', // empty fragment, or a non-last one not a multiple of 8 bytes: this fragment
  'frag_inconsistent', // two different ends, or data past the last fragment: the whole datagram
  'frag_malformed', // not an IPv4 header (the caller validates, so only on misuse): this fragment
] as const;
export type ReassemblyDropName = (typeof REASSEMBLY_DROP_NAMES)[number];
/** Index of each name in REASSEMBLY_DROP_NAMES; push() returns -(1 + index). */
export const RD = Object.fromEntries(REASSEMBLY_DROP_NAMES.map((n, i) => [n, i])) as { readonly [K in ReassemblyDropName]: number };

/** Bytes per block of the fragment pool (bytesHeld() counts whole blocks). */
export const REASSEMBLY_BLOCK_BYTES = 256;
const B = REASSEMBLY_BLOCK_BYTES;
const TCP_MIN_FIRST = 16; // RFC 1858 §3: the first fragment holds the TCP header through the flags
const MAX_FRAGS = 8192; // 65536 / 8: more could never fit in a datagram
const MAX_RECORDS = 1 << 22; // fragment records are preallocated, 12 bytes each

export class Ipv4Reassembler {
  readonly out: Buffer;
  readonly counters = { fragments: 0, reassembled: 0, drops: new Float64Array(REASSEMBLY_DROP_NAMES.length) };
  private slotsUsed = 0;
  private fragsUsed = 0;

  private readonly maxFrags: number;
  private readonly timeoutMs: number;
  private readonly maxPacketBytes: number;
  private readonly seed = (Math.random() * 0x100000000) >>> 0; // hash seed against chosen collisions
  // Slots: key, state, FIFO (oldest first, for expiry and eviction), hash chain / free list.
  private readonly kCtx: Uint32Array;
  private readonly kSrc: Uint32Array;
  private readonly kDst: Uint32Array;
  private readonly kPi: Uint32Array; // protocol << 16 | id
  private readonly born: Float64Array;
  private readonly lastEnd: Int32Array; // data end given by the last fragment, -1 until it comes
  private readonly maxEnd: Int32Array;
  private readonly got: Int32Array; // data bytes held
  private readonly nFrag: Int32Array;
  private readonly hdrLen: Int32Array; // first fragment's header length, 0 until it comes
  private readonly hdr: Buffer; // first fragment's header, IPV4_MAX_HLEN bytes per slot
  private readonly older: Int32Array;
  private readonly newer: Int32Array;
  private readonly chain: Int32Array;
  private readonly buckets: Int32Array;
  private oldest = -1;
  private newest = -1;
  private freeSlot = 0;
  // Fragments of slot s at s * maxFrags + i, sorted by start: [start, end) of data, first block.
  private readonly fStart: Int32Array;
  private readonly fEnd: Int32Array;
  private readonly fBlock: Int32Array;
  // Block pool: a free list through blockNext; a fragment's blocks are a chain ending in -1.
  private readonly pool: Buffer;
  private readonly blockNext: Int32Array;
  private freeBlock = 0;
  private freeBlocks: number;

  constructor(limits: ReassemblyLimits, private readonly now: () => number) {
    const int = (v: number, lo: number, hi: number, key: string): number => {
      if (!Number.isInteger(v) || v < lo || v > hi) throw new ConfigError(`must be an integer in ${lo}..${hi}, not ${v}`, { key });
      return v;
    };
    const n = int(limits.maxPackets, 1, 1 << 20, 'maxPackets');
    this.maxFrags = int(limits.maxFragmentsPerPacket, 1, MAX_FRAGS, 'maxFragmentsPerPacket');
    this.timeoutMs = int(limits.timeoutMs, 1, 3_600_000, 'timeoutMs');
    this.maxPacketBytes = int(limits.maxPacketBytes ?? 65535, IPV4_MAX_HLEN + 8, 65535, 'maxPacketBytes');
    if (n * this.maxFrags > MAX_RECORDS) {
      throw new ConfigError(`maxPackets * maxFragmentsPerPacket must be at most ${MAX_RECORDS}`, { key: 'maxFragmentsPerPacket' });
    }
    const bytes = int(limits.maxBytes ?? 4 << 20, 0, 1 << 30, 'maxBytes');
    // One datagram always fits: data <= maxPacketBytes, plus one partial block per fragment.
    const blocks = Math.max(Math.ceil(bytes / B), Math.ceil(this.maxPacketBytes / B) + this.maxFrags);
    this.out = Buffer.alloc(this.maxPacketBytes);
    [this.kCtx, this.kSrc, this.kDst, this.kPi] = [new Uint32Array(n), new Uint32Array(n), new Uint32Array(n), new Uint32Array(n)];
    this.born = new Float64Array(n);
    [this.lastEnd, this.maxEnd, this.got, this.nFrag, this.hdrLen] = [0, 0, 0, 0, 0].map(() => new Int32Array(n));
    this.hdr = Buffer.alloc(n * IPV4_MAX_HLEN);
    [this.older, this.newer, this.chain] = [new Int32Array(n), new Int32Array(n), new Int32Array(n)];
    for (let s = 0; s < n; s++) this.chain[s] = s + 1 < n ? s + 1 : -1;
    let nb = 2;
    while (nb < 2 * n) nb *= 2;
    this.buckets = new Int32Array(nb).fill(-1);
    [this.fStart, this.fEnd, this.fBlock] = [0, 0, 0].map(() => new Int32Array(n * this.maxFrags));
    this.pool = Buffer.alloc(blocks * B);
    this.blockNext = new Int32Array(blocks);
    for (let b = 0; b < blocks; b++) this.blockNext[b] = b + 1 < blocks ? b + 1 : -1;
    this.freeBlocks = blocks;
  }

  /** Datagrams in progress; fragments held; bytes of the fragment pool in use (whole blocks). */
  get inProgress(): number { return this.slotsUsed; }
  get fragmentsHeld(): number { return this.fragsUsed; }
  bytesHeld(): number { return (this.blockNext.length - this.freeBlocks) * B; }

  /**
   * buf[off, off+len) is one IPv4 fragment. Returns > 0: the datagram is complete in out[0, result);
   * 0: held; < 0: -(1 + RD.reason), this fragment (and where the rule says so its datagram) dropped.
   * A packet that is not a fragment (no MF, offset 0) is copied to out unchanged.
   */
  push(buf: Buffer, off: number, len: number, ctx = 0): number {
    this.counters.fragments++;
    this.expire();
    const inBuf = Number.isInteger(off) && Number.isInteger(len) && off >= 0 && off + len <= buf.length;
    if (!inBuf || len < IPV4_MIN_HLEN) return this.refuse(RD.frag_malformed);
    const hlen = (buf[off] & 0x0f) << 2;
    const total = buf.readUInt16BE(off + IPV4_OFF_TOTAL_LEN);
    if (buf[off] >>> 4 !== IPV4_VERSION || hlen < IPV4_MIN_HLEN || total < hlen || total > len) return this.refuse(RD.frag_malformed);
    const frag = buf.readUInt16BE(off + IPV4_OFF_FRAG);
    const mf = (frag & IPV4_FLAG_MF) !== 0;
    const start = (frag & IPV4_FRAG_OFFSET_MASK) << 3;
    const data = total - hlen;
    const end = start + data;
    if (!mf && start === 0) {
      if (total > this.out.length) return this.refuse(RD.frag_too_big);
      buf.copy(this.out, 0, off, off + total);
      return total;
    }
    const proto = buf[off + IPV4_OFF_PROTO];
    const src = buf.readUInt32BE(off + IPV4_OFF_SRC);
    const dst = buf.readUInt32BE(off + IPV4_OFF_DST);
    const pi = ((proto << 16) | buf.readUInt16BE(off + IPV4_OFF_ID)) >>> 0;
    ctx >>>= 0;
    if (data === 0 || (mf && (data & 7) !== 0)) return this.refuse(RD.frag_bad_length);
    if (proto === PROTO_TCP && ((start === 0 && data < TCP_MIN_FIRST) || start === 8)) return this.refuse(RD.frag_tiny);
    let s = this.find(ctx, src, dst, pi);
    const hl = start === 0 ? hlen : s >= 0 && this.hdrLen[s] > 0 ? this.hdrLen[s] : IPV4_MIN_HLEN;
    if (hl + Math.max(end, s >= 0 ? this.maxEnd[s] : 0) > this.maxPacketBytes) return this.dropDatagram(s, RD.frag_too_big);
    if (s < 0) s = this.create(ctx, src, dst, pi);
    const last = this.lastEnd[s];
    if (last >= 0 ? end > last || (!mf && end !== last) : !mf && this.maxEnd[s] > end) return this.dropDatagram(s, RD.frag_inconsistent);

    // Where it goes among the held fragments (sorted by start), and what it touches.
    const base = s * this.maxFrags;
    const n = this.nFrag[s];
    let i = n;
    while (i > 0 && this.fStart[base + i - 1] >= start) i--;
    if (i < n && this.fStart[base + i] === start && this.fEnd[base + i] === end) {
      // Only the last fragment ends at lastEnd; the copy must agree on being the last one.
      if ((this.lastEnd[s] === end) === mf) return this.dropDatagram(s, RD.frag_inconsistent);
      if (!this.sameBytes(this.fBlock[base + i], buf, off + hlen, data)) return this.dropDatagram(s, RD.frag_overlap);
      return this.refuse(RD.frag_duplicate);
    }
    if ((i > 0 && this.fEnd[base + i - 1] > start) || (i < n && this.fStart[base + i] < end)) return this.dropDatagram(s, RD.frag_overlap);
    if (n >= this.maxFrags) return this.dropDatagram(s, RD.frag_too_many);

    const need = Math.ceil(data / B);
    while (this.freeBlocks < need) {
      const victim = this.oldest === s ? this.newer[s] : this.oldest;
      if (victim < 0) return this.dropDatagram(s, RD.frag_too_big); // cannot happen: one datagram always fits
      this.dropDatagram(victim, RD.frag_table_full);
    }
    this.fStart.copyWithin(base + i + 1, base + i, base + n);
    this.fEnd.copyWithin(base + i + 1, base + i, base + n);
    this.fBlock.copyWithin(base + i + 1, base + i, base + n);
    this.fStart[base + i] = start;
    this.fEnd[base + i] = end;
    this.fBlock[base + i] = this.store(buf, off + hlen, data, need);
    this.nFrag[s] = n + 1;
    this.fragsUsed++;
    this.got[s] += data;
    if (end > this.maxEnd[s]) this.maxEnd[s] = end;
    if (!mf) this.lastEnd[s] = end;
    if (start === 0) {
      buf.copy(this.hdr, s * IPV4_MAX_HLEN, off, off + hlen);
      this.hdrLen[s] = hlen;
    }
    return this.lastEnd[s] >= 0 && this.got[s] === this.lastEnd[s] ? this.assemble(s) : 0;
  }

  /** Drop datagrams whose first fragment came timeoutMs ago or more; returns how many. */
  expire(): number {
    const t = this.now();
    let dropped = 0;
    while (this.oldest >= 0 && t - this.born[this.oldest] >= this.timeoutMs) {
      this.dropDatagram(this.oldest, RD.frag_timeout);
      dropped++;
    }
    return dropped;
  }

  // ---- internals ------------------------------------------------------------------------------

  private refuse(reason: number): number {
    this.counters.drops[reason]++;
    return -(1 + reason);
  }

  /** Count `reason` once and free slot s (if any) with everything it holds. */
  private dropDatagram(s: number, reason: number): number {
    if (s >= 0) this.release(s);
    return this.refuse(reason);
  }

  private hash(ctx: number, src: number, dst: number, pi: number): number {
    let h = Math.imul(this.seed ^ src, 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13) ^ dst, 0xc2b2ae35);
    h = Math.imul(h ^ (h >>> 16) ^ pi, 0x27d4eb2f);
    h = Math.imul(h ^ (h >>> 15) ^ ctx, 0x165667b1);
    return (h ^ (h >>> 16)) & (this.buckets.length - 1);
  }

  private find(ctx: number, src: number, dst: number, pi: number): number {
    let s = this.buckets[this.hash(ctx, src, dst, pi)];
    while (s >= 0 && (this.kSrc[s] !== src || this.kDst[s] !== dst || this.kPi[s] !== pi || this.kCtx[s] !== ctx)) s = this.chain[s];
    return s;
  }

  /** A new slot, newest in the FIFO; evicts the oldest datagram when the table is full. */
  private create(ctx: number, src: number, dst: number, pi: number): number {
    if (this.freeSlot < 0) this.dropDatagram(this.oldest, RD.frag_table_full);
    const s = this.freeSlot;
    this.freeSlot = this.chain[s];
    this.kCtx[s] = ctx;
    this.kSrc[s] = src;
    this.kDst[s] = dst;
    this.kPi[s] = pi;
    this.born[s] = this.now();
    this.lastEnd[s] = -1;
    this.maxEnd[s] = this.got[s] = this.nFrag[s] = this.hdrLen[s] = 0;
    const h = this.hash(ctx, src, dst, pi);
    this.chain[s] = this.buckets[h];
    this.buckets[h] = s;
    this.older[s] = this.newest;
    this.newer[s] = -1;
    if (this.newest >= 0) this.newer[this.newest] = s;
    else this.oldest = s;
    this.newest = s;
    this.slotsUsed++;
    return s;
  }

  /** Unlink slot s from its hash chain and the FIFO, free its blocks, put it on the free list. */
  private release(s: number): void {
    const h = this.hash(this.kCtx[s], this.kSrc[s], this.kDst[s], this.kPi[s]);
    if (this.buckets[h] === s) this.buckets[h] = this.chain[s];
    else {
      let p = this.buckets[h];
      while (this.chain[p] !== s) p = this.chain[p];
      this.chain[p] = this.chain[s];
    }
    const o = this.older[s];
    const w = this.newer[s];
    if (o >= 0) this.newer[o] = w;
    else this.oldest = w;
    if (w >= 0) this.older[w] = o;
    else this.newest = o;
    const base = s * this.maxFrags;
    for (let i = 0; i < this.nFrag[s]; i++) {
      for (let b = this.fBlock[base + i]; b >= 0; ) {
        const next = this.blockNext[b];
        this.blockNext[b] = this.freeBlock;
        this.freeBlock = b;
        this.freeBlocks++;
        b = next;
      }
    }
    this.fragsUsed -= this.nFrag[s];
    this.nFrag[s] = 0;
    this.chain[s] = this.freeSlot;
    this.freeSlot = s;
    this.slotsUsed--;
  }

  /** Copy buf[pos, pos+len) into `need` free blocks; returns the first. */
  private store(buf: Buffer, pos: number, len: number, need: number): number {
    const first = this.freeBlock;
    let b = first;
    for (let k = 0; k < need; k++) {
      const n = Math.min(B, len - k * B);
      buf.copy(this.pool, b * B, pos + k * B, pos + k * B + n);
      if (k === need - 1) {
        this.freeBlock = this.blockNext[b];
        this.blockNext[b] = -1;
      } else b = this.blockNext[b];
    }
    this.freeBlocks -= need;
    return first;
  }

  private sameBytes(b: number, buf: Buffer, pos: number, len: number): boolean {
    for (let k = 0; k < len; k += B, b = this.blockNext[b]) {
      const n = Math.min(B, len - k);
      if (this.pool.compare(buf, pos + k, pos + k + n, b * B, b * B + n) !== 0) return false;
    }
    return true;
  }

  /** Write the whole datagram to out, free the slot; returns its length. */
  private assemble(s: number): number {
    const hl = this.hdrLen[s];
    const total = hl + this.lastEnd[s];
    const out = this.out;
    this.hdr.copy(out, 0, s * IPV4_MAX_HLEN, s * IPV4_MAX_HLEN + hl);
    out.writeUInt16BE(total, IPV4_OFF_TOTAL_LEN);
    out.writeUInt16BE(out.readUInt16BE(IPV4_OFF_FRAG) & IPV4_FLAG_DF, IPV4_OFF_FRAG);
    ipv4UpdateChecksum(out, 0);
    const base = s * this.maxFrags;
    for (let i = 0; i < this.nFrag[s]; i++) {
      let at = hl + this.fStart[base + i];
      const end = hl + this.fEnd[base + i];
      for (let b = this.fBlock[base + i]; b >= 0; b = this.blockNext[b]) {
        const n = Math.min(B, end - at);
        this.pool.copy(out, at, b * B, b * B + n);
        at += n;
      }
    }
    this.release(s);
    this.counters.reassembled++;
    return total;
  }
}
