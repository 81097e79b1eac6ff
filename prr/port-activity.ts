/**
 * "Ports active": the distinct ports of each shared IPv4 address that CPEs sent from in the last
 * window (60 s), observed by the PRR from its own traffic. A port counts when a packet from a CPE
 * passed source validation with that source port (or ICMP echo id); packets from the Internet do
 * not mark ports, so a port scan of the shared address does not look like use.
 *
 * Per shared address, two generations of a 65536-bit bitmap (8 KiB each), allocated on the
 * address's first packet:
 *
 *   bits[0 .. 2047]      generation A  ┐ one of them is "current" (marked now), the other
 *   bits[2048 .. 4095]   generation B  ┘ "previous" (the half-window before)
 *
 * Every window/2 the global epoch advances (rotate()). An address catches up lazily, at its next
 * mark: one epoch behind, current becomes previous and the old previous is cleared to become
 * current; two or more behind, both are cleared. So rotate() is O(1) and the clearing is spread
 * over the packets. active = popcount(current | previous) over the ports asked about, read at
 * scrape time: the ports seen in the last 30 to 60 seconds.
 *
 * Cost: per packet from a CPE, a lookup in a typed hash (prr/addr-index.ts; skipped when the
 * address is the previous packet's) and one OR into a word. Memory: 16 KiB per shared address
 * with traffic (1,000,000 subscribers of 1000 ports on about 15,300 addresses: 250 MB), in chunks
 * of 1024 addresses that can be given huge pages; `[metrics] ports_active = off` turns it off.
 */
import type { PortSet } from '../common/portset.js';
import { AddrIndex } from './addr-index.js';

/** The window of "active": ports seen within it count. */
export const ACTIVE_WINDOW_MS = 60_000;

const WORDS = 65536 / 32; // one generation

/** Addresses per chunk of bitmaps (16 MiB, allocated as addresses first send: what is not touched costs nothing). */
const CHUNK_SHIFT = 10;
const CHUNK_ADDRS = 1 << CHUNK_SHIFT;
const PER_ADDR = 2 * WORDS;

export class PortActivity {
  // Address -> slot; per slot its two generations in chunks[slot >> CHUNK_SHIFT] (big chunks, so
  // that with memory advice they lie in huge pages, as the binding table's port tables do), the
  // word offset of its current generation (0 or WORDS) and the epoch that belongs to. Typed
  // arrays only: marking a port touches no JS object.
  private readonly idx = new AddrIndex();
  private readonly chunks: Uint32Array[] = [];
  private cur = new Int32Array(16);
  private epochs = new Int32Array(16);
  private epoch = 0;
  private lastIp = -1;
  private lastSlot = -1;
  private timer: NodeJS.Timeout | undefined;

  /** adviseMemory: given each chunk before it is touched (`prr run`: transparent huge pages). */
  constructor(private readonly opts: { adviseMemory?: (buf: ArrayBuffer) => void } = {}) {}

  /** Advance every window/2 by a timer (unref'd); tests call rotate() themselves instead. */
  start(windowMs = ACTIVE_WINDOW_MS): void {
    this.stop();
    this.timer = setInterval(() => this.rotate(), windowMs / 2);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The next half-window begins. */
  rotate(): void {
    this.epoch++;
  }

  /** Which half-window this is (rotate() advances it): a port marked in it stays marked until it changes. */
  get generation(): number {
    return this.epoch;
  }

  /** A CPE sent from `port` of shared address `ipv4` (the packet path: no allocation but a chunk's first address). */
  mark(ipv4: number, port: number): void {
    let s = this.lastSlot;
    if (ipv4 !== this.lastIp || s < 0) {
      s = this.idx.get(ipv4);
      if (s < 0) s = this.addAddress(ipv4);
      this.lastIp = ipv4;
      this.lastSlot = s;
    }
    if (this.epochs[s] !== this.epoch) this.catchUp(s);
    this.chunks[s >>> CHUNK_SHIFT]![(s & (CHUNK_ADDRS - 1)) * PER_ADDR + this.cur[s]! + (port >>> 5)]! |= 1 << (port & 31);
  }

  /** The bitmap word that mark(ipv4, port) would change, read only (the data plane warms the cache with it). */
  peek(ipv4: number, port: number): number {
    const s = ipv4 === this.lastIp ? this.lastSlot : this.idx.get(ipv4);
    if (s < 0) return 0;
    return this.chunks[s >>> CHUNK_SHIFT]![(s & (CHUNK_ADDRS - 1)) * PER_ADDR + this.cur[s]! + (port >>> 5)]!;
  }

  /** A slot, and zeroed bitmaps, for an address's first mark. */
  private addAddress(ipv4: number): number {
    const s = this.idx.add(ipv4);
    if (s >= this.cur.length) {
      const grow = (a: Int32Array<ArrayBuffer>): Int32Array<ArrayBuffer> => {
        const b = new Int32Array(a.length * 2);
        b.set(a);
        return b;
      };
      this.cur = grow(this.cur);
      this.epochs = grow(this.epochs);
    }
    const c = s >>> CHUNK_SHIFT;
    if (c === this.chunks.length) {
      const buf = new ArrayBuffer(CHUNK_ADDRS * PER_ADDR * 4);
      this.opts.adviseMemory?.(buf);
      this.chunks.push(new Uint32Array(buf));
    }
    const at = (s & (CHUNK_ADDRS - 1)) * PER_ADDR;
    this.chunks[c]!.fill(0, at, at + PER_ADDR); // a slot pruned before may hold old bits
    this.cur[s] = 0;
    this.epochs[s] = this.epoch;
    return s;
  }

  private catchUp(s: number): void {
    const bits = this.chunks[s >>> CHUNK_SHIFT]!;
    const at = (s & (CHUNK_ADDRS - 1)) * PER_ADDR;
    if (this.epoch - this.epochs[s]! === 1) {
      this.cur[s]! ^= WORDS;
      bits.fill(0, at + this.cur[s]!, at + this.cur[s]! + WORDS);
    } else {
      bits.fill(0, at, at + PER_ADDR);
    }
    this.epochs[s] = this.epoch;
  }

  /**
   * Word offsets (in the chunk) of the generations of slot s that are still inside the window,
   * without changing it (a scrape must not disturb the packet path's state): [cur, prev], [cur
   * only], or none.
   */
  private live(s: number): number[] {
    const at = (s & (CHUNK_ADDRS - 1)) * PER_ADDR;
    const cur = at + this.cur[s]!;
    const lag = this.epoch - this.epochs[s]!;
    if (lag === 0) return [cur, at + (this.cur[s]! ^ WORDS)];
    if (lag === 1) return [cur];
    return [];
  }

  /** Distinct ports of `set` on `ipv4` seen in the window. */
  count(ipv4: number, set: PortSet): number {
    const s = this.idx.get(ipv4);
    if (s < 0) return 0;
    const gens = this.live(s);
    if (gens.length === 0) return 0;
    let n = 0;
    for (const [first, last] of set.chunks()) n += countRange(this.chunks[s >>> CHUNK_SHIFT]!, gens, first, last);
    return n;
  }

  /** Distinct ports of `ipv4` seen in the window. */
  countAddress(ipv4: number): number {
    const s = this.idx.get(ipv4);
    if (s < 0) return 0;
    const gens = this.live(s);
    return gens.length === 0 ? 0 : countRange(this.chunks[s >>> CHUNK_SHIFT]!, gens, 0, 65535);
  }

  /** Forget addresses that are no longer shared (their bindings are gone). */
  prune(isShared: (ipv4: number) => boolean): void {
    const gone: number[] = [];
    for (const [ip] of this.idx.entries()) if (!isShared(ip)) gone.push(ip);
    for (const ip of gone) this.idx.delete(ip);
    if (gone.length > 0) {
      this.lastIp = -1; // the one-entry cache may name a slot given back
      this.lastSlot = -1;
    }
  }

  /** Bytes held by the bitmaps. */
  bytes(): number {
    return this.idx.size * PER_ADDR * 4;
  }
}

/** popcount of (OR of the generations at `gens`) over ports first..last. */
function countRange(bits: Uint32Array, gens: number[], first: number, last: number): number {
  const g0 = gens[0]!;
  const g1 = gens.length > 1 ? gens[1]! : g0;
  const w0 = first >>> 5;
  const w1 = last >>> 5;
  let n = 0;
  for (let w = w0; w <= w1; w++) {
    let x = bits[g0 + w]! | bits[g1 + w]!;
    if (x === 0) continue;
    if (w === w0) x &= -1 << (first & 31);
    if (w === w1 && (last & 31) !== 31) x &= (1 << ((last & 31) + 1)) - 1;
    n += popcount(x);
  }
  return n;
}

function popcount(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}
