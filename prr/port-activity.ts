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
 * Cost: per packet from a CPE, a Map lookup (skipped when the address is the previous packet's)
 * and one OR into a word. Memory: 16 KiB per shared address with traffic (1,000,000 subscribers
 * of 1000 ports on about 15,300 addresses: 250 MB); `[metrics] ports_active = off` turns it off.
 */
import type { PortSet } from '../common/portset.js';

/** The window of "active": ports seen within it count. */
export const ACTIVE_WINDOW_MS = 60_000;

const WORDS = 65536 / 32; // one generation

interface AddrBits {
  bits: Uint32Array;
  /** Word offset of the current generation: 0 or WORDS. */
  cur: number;
  /** The epoch `cur` belongs to. */
  epoch: number;
}

export class PortActivity {
  private readonly addrs = new Map<number, AddrBits>();
  private epoch = 0;
  private lastIp = -1;
  private last: AddrBits | undefined;
  private timer: NodeJS.Timeout | undefined;

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

  /** A CPE sent from `port` of shared address `ipv4` (the packet path: no allocation but an address's first). */
  mark(ipv4: number, port: number): void {
    let a = this.last;
    if (ipv4 !== this.lastIp || a === undefined) {
      a = this.addrs.get(ipv4);
      if (a === undefined) {
        a = { bits: new Uint32Array(2 * WORDS), cur: 0, epoch: this.epoch };
        this.addrs.set(ipv4, a);
      }
      this.lastIp = ipv4;
      this.last = a;
    }
    if (a.epoch !== this.epoch) this.catchUp(a);
    a.bits[a.cur + (port >>> 5)]! |= 1 << (port & 31);
  }

  private catchUp(a: AddrBits): void {
    if (this.epoch - a.epoch === 1) {
      a.cur ^= WORDS;
      a.bits.fill(0, a.cur, a.cur + WORDS);
    } else {
      a.bits.fill(0);
    }
    a.epoch = this.epoch;
  }

  /**
   * Word offsets of the generations that are still inside the window for `a`, without changing
   * it (a scrape must not disturb the packet path's state): [cur, prev], [cur only], or none.
   */
  private live(a: AddrBits): number[] {
    const lag = this.epoch - a.epoch;
    if (lag === 0) return [a.cur, a.cur ^ WORDS];
    if (lag === 1) return [a.cur];
    return [];
  }

  /** Distinct ports of `set` on `ipv4` seen in the window. */
  count(ipv4: number, set: PortSet): number {
    const a = this.addrs.get(ipv4);
    if (a === undefined) return 0;
    const gens = this.live(a);
    if (gens.length === 0) return 0;
    let n = 0;
    for (const [first, last] of set.chunks()) n += countRange(a.bits, gens, first, last);
    return n;
  }

  /** Distinct ports of `ipv4` seen in the window. */
  countAddress(ipv4: number): number {
    const a = this.addrs.get(ipv4);
    if (a === undefined) return 0;
    const gens = this.live(a);
    return gens.length === 0 ? 0 : countRange(a.bits, gens, 0, 65535);
  }

  /** Forget addresses that are no longer shared (their bindings are gone). */
  prune(isShared: (ipv4: number) => boolean): void {
    for (const ip of this.addrs.keys()) {
      if (isShared(ip)) continue;
      this.addrs.delete(ip);
      if (ip === this.lastIp) {
        this.lastIp = -1;
        this.last = undefined;
      }
    }
  }

  /** Bytes held by the bitmaps. */
  bytes(): number {
    return this.addrs.size * 2 * WORDS * 4;
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
