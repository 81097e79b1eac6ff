/**
 * IPv4 address -> small dense slot number (0, 1, 2, ... reused after delete), for the per-address
 * state of the packet path (prr/bindings.ts port tables, prr/port-activity.ts bitmaps): an
 * open-addressing hash over typed arrays. A Map<number, ...> did the same, but an IPv4 address
 * above 2^30 is not a small integer to V8: every lookup hashed and compared heap numbers, and
 * with traffic spread over 500 addresses that was a third of the packet's time in the data plane.
 *
 *   keys[h]  the address (Uint32)         slot[h]  its slot + 1; 0 empty, -1 deleted
 */
export class AddrIndex {
  private keys = new Uint32Array(16);
  private slot = new Int32Array(16);
  private used = 0; // occupied or deleted entries (what probing walks over)
  private n = 0;
  private nextSlot = 0;
  private readonly freeSlots: number[] = [];

  /** Addresses held. */
  get size(): number {
    return this.n;
  }

  /** Slot numbers handed out so far are below this. */
  get slotLimit(): number {
    return this.nextSlot;
  }

  /** The slot of `ipv4`, or -1. */
  get(ipv4: number): number {
    const keys = this.keys;
    const slot = this.slot;
    const mask = keys.length - 1;
    const ip = ipv4 >>> 0;
    for (let h = hash(ip) & mask; ; h = (h + 1) & mask) {
      const s = slot[h]!;
      if (s === 0) return -1;
      if (s > 0 && keys[h] === ip) return s - 1;
    }
  }

  /** The slot of `ipv4`, given one if it had none. */
  add(ipv4: number): number {
    const have = this.get(ipv4);
    if (have >= 0) return have;
    if ((this.used + 1) * 2 > this.keys.length) this.rehash(this.n + 1 > this.keys.length / 4 ? this.keys.length * 2 : this.keys.length);
    const s = this.freeSlots.length > 0 ? this.freeSlots.pop()! : this.nextSlot++;
    this.put(ipv4 >>> 0, s + 1);
    this.n++;
    return s;
  }

  /** Forget `ipv4`; its slot number is handed out again later. Returns the slot, or -1. */
  delete(ipv4: number): number {
    const mask = this.keys.length - 1;
    const ip = ipv4 >>> 0;
    for (let h = hash(ip) & mask; ; h = (h + 1) & mask) {
      const s = this.slot[h]!;
      if (s === 0) return -1;
      if (s > 0 && this.keys[h] === ip) {
        this.slot[h] = -1;
        this.n--;
        this.freeSlots.push(s - 1);
        return s - 1;
      }
    }
  }

  /** Every (address, slot) held. */
  *entries(): IterableIterator<[number, number]> {
    for (let h = 0; h < this.keys.length; h++) if (this.slot[h]! > 0) yield [this.keys[h]!, this.slot[h]! - 1];
  }

  private put(ip: number, v: number): void {
    const mask = this.keys.length - 1;
    let h = hash(ip) & mask;
    while (this.slot[h] !== 0) h = (h + 1) & mask;
    this.keys[h] = ip;
    this.slot[h] = v;
    this.used++;
  }

  private rehash(size: number): void {
    const keys = this.keys;
    const slot = this.slot;
    this.keys = new Uint32Array(size);
    this.slot = new Int32Array(size);
    this.used = 0;
    for (let h = 0; h < keys.length; h++) if (slot[h]! > 0) this.put(keys[h]!, slot[h]!);
  }
}

/** Addresses of a pool are consecutive: a multiplicative hash spreads them over the table. */
function hash(ip: number): number {
  const h = Math.imul(ip, 0x9e3779b1);
  return (h ^ (h >>> 15)) >>> 0;
}
