/**
 * Allocation of port sets in a pool of shared IPv4 addresses (the rule of a set itself is in
 * portset.ts).
 */
import { PoolExhaustedError, PortSetError } from './errors.js';
import { DEFAULT_PSID_OFFSET, FIRST_USER_PORT, MAX_PORT, PortRange, PsidSet, isInt, isPort, type PortSet } from './portset.js';
// ------------------------------------------------------------------------------------------------
// Allocation of port sets in a pool of shared IPv4 addresses.
//
// Every address is cut into fixed *slots* of the policy's shape: `size`-port ranges from `minPort`
// up, or the 2^k PSIDs of an (a, k) PSID rule. Dynamic allocations take whole slots, so any free
// slot fits any request and dynamic allocation cannot fragment an address. The policy is first
// fit: the lowest address that has a free slot, and its lowest free slot. One address fills before
// the next one opens, so unused addresses stay whole (they can be withdrawn, or take a large static
// set). Compared with first fit on a sorted free list of intervals, fixed slots need one bit each
// instead of one list node per hole, and finding a slot is a word scan, not a list walk.
//
// State, all typed arrays: one bit per slot (in pages of 1024 addresses, made on first use), one
// bit per address meaning "has a free slot", and two counters per address. 16,384 addresses x 64
// slots of 1000 ports (1,048,576 sets) take about 200 KB; nothing is kept per allocation.
//
// Static reservations (`reserve`) may have any shape. One that is exactly a slot takes that slot;
// any other is kept in a small per-address list and marks every slot it touches as used.

export type AllocationPolicy =
  /** `size` contiguous ports per set, slots from `minPort` (default 1024) upward. */
  | { kind: 'range'; size: number; minPort?: number }
  /** One PSID per set: offset `a` (default 6), PSID length `k`. `minPort` (default 1024) is checked. */
  | { kind: 'psid'; k: number; a?: number; minPort?: number };

export interface Allocation {
  addr: number;
  set: PortSet;
}

export interface AddressUsage {
  /** Slots of the policy's shape on this address. */
  total: number;
  /** Port sets held on this address (allocated and reserved). */
  allocated: number;
  /** Slots still free for `allocate()`. */
  free: number;
}

const PAGE_SHIFT = 10; // 1024 addresses per bitmap page

export class PortAllocator {
  readonly slotsPerAddress: number;
  private readonly policy: { kind: 'range' | 'psid'; minPort: number; size: number; a: number; k: number };
  private readonly addrs: Uint32Array; // sorted, unique
  private readonly words: number; // 32-bit words per address in the slot bitmap
  private readonly tailMask: number; // unusable bits of an address's last word
  private readonly pages: (Uint32Array | undefined)[] = [];
  private readonly freeSlots: Uint32Array;
  private readonly held: Uint32Array;
  private readonly hasFree: Uint32Array;
  private lowWord = 0; // no word of hasFree below this one has a bit set
  private readonly odd = new Map<number, PortSet[]>(); // reservations that are not one slot
  private count = 0;
  private lastIdx = 0; // the address index found last

  constructor(addresses: Iterable<number>, policy: AllocationPolicy) {
    const list = [...addresses];
    for (const x of list) if (!isInt(x, 0, 0xffffffff)) throw new PortSetError(`bad pool address ${x}: not a uint32 IPv4 address`);
    this.addrs = Uint32Array.from(list).sort();
    for (let i = 1; i < this.addrs.length; i++) {
      if (this.addrs[i] === this.addrs[i - 1]) throw new PortSetError(`pool address ${fmt4(this.addrs[i] ?? 0)} is listed twice`);
    }
    const minPort = policy.minPort ?? FIRST_USER_PORT;
    if (!isPort(minPort)) throw new PortSetError(`bad allocation policy: minPort ${minPort} is not a port`);
    if (policy.kind === 'range') {
      if (!isInt(policy.size, 1, MAX_PORT + 1 - minPort)) {
        throw new PortSetError(`bad allocation policy: ${policy.size} ports per set do not fit above port ${minPort}`);
      }
      this.policy = { kind: 'range', minPort, size: policy.size, a: 0, k: 0 };
      this.slotsPerAddress = Math.floor((MAX_PORT + 1 - minPort) / policy.size);
    } else {
      const a = policy.a ?? DEFAULT_PSID_OFFSET;
      const probe = new PsidSet(a, policy.k, 0, { allowSystemPorts: true }); // validates a and k
      if (probe.min < minPort) throw new PortSetError(`bad allocation policy: psid a=${a} reaches down to port ${probe.min}, below ${minPort}`);
      this.policy = { kind: 'psid', minPort, size: probe.size, a, k: policy.k };
      this.slotsPerAddress = 2 ** policy.k;
    }
    this.words = Math.ceil(this.slotsPerAddress / 32);
    const r = this.slotsPerAddress % 32;
    this.tailMask = r === 0 ? 0 : ~((1 << r) - 1) >>> 0;
    const n = this.addrs.length;
    this.freeSlots = new Uint32Array(n).fill(this.slotsPerAddress);
    this.held = new Uint32Array(n);
    this.hasFree = new Uint32Array(Math.ceil(n / 32)).fill(0xffffffff);
    if (n % 32 !== 0) this.hasFree[this.hasFree.length - 1] = (1 << n % 32) - 1;
  }

  /** Port sets held (allocated and reserved). */
  get allocated(): number { return this.count; }
  /** Slots in the whole pool. */
  get capacity(): number { return this.addrs.length * this.slotsPerAddress; }
  /** Bytes held in typed arrays: the allocator's memory, short of the few odd reservations. */
  get footprintBytes(): number {
    let bytes = this.addrs.byteLength + this.freeSlots.byteLength + this.held.byteLength + this.hasFree.byteLength;
    for (const p of this.pages) bytes += p?.byteLength ?? 0;
    return bytes;
  }

  /** The lowest free slot of the lowest address that has one. Throws PoolExhaustedError. */
  allocate(): Allocation {
    const hf = this.hasFree;
    let w = this.lowWord;
    while (w < hf.length && hf[w] === 0) w++;
    this.lowWord = w;
    if (w === hf.length) {
      throw new PoolExhaustedError(`no free port set (${this.describe()}) left in ${this.addrs.length} shared IPv4 addresses: ${this.count} sets held`);
    }
    const idx = w * 32 + lowestBit(hf[w] ?? 0);
    const page = this.page(idx);
    const base = (idx & ((1 << PAGE_SHIFT) - 1)) * this.words;
    let slot = -1;
    for (let i = 0; i < this.words; i++) {
      const word = page[base + i] ?? 0xffffffff;
      if (word !== 0xffffffff) {
        slot = i * 32 + lowestBit(~word);
        break;
      }
    }
    this.take(idx, slot);
    this.held[idx] = (this.held[idx] ?? 0) + 1;
    this.count++;
    return { addr: this.addrs[idx] ?? 0, set: this.slotSet(slot) };
  }

  /** Hold `set` on `addr` (a static binding). Throws PortSetError naming both sets on overlap. */
  reserve(addr: number, set: PortSet): void {
    const idx = this.indexOf(addr);
    const slot = this.slotOf(set);
    if (slot >= 0 && !this.odd.has(idx)) {
      // Exactly one slot, on an address without odd reservations: the usual case (a restart
      // reserves a million of them), without the general case's arrays.
      if (this.isSet(idx, slot)) throw clash(addr, set, this.slotSet(slot), 'allocated');
      this.take(idx, slot);
      this.held[idx] = (this.held[idx] ?? 0) + 1;
      this.count++;
      return;
    }
    const odd = this.odd.get(idx) ?? [];
    for (const r of odd) if (r.overlaps(set)) throw clash(addr, set, r, 'reserved');
    const touched = slot >= 0 ? [slot] : this.touchedSlots(set);
    for (const s of touched) {
      if (this.isSet(idx, s) && !odd.some((r) => r.overlaps(this.slotSet(s)))) throw clash(addr, set, this.slotSet(s), 'allocated');
    }
    if (slot >= 0) this.take(idx, slot);
    else {
      for (const s of touched) if (!this.isSet(idx, s)) this.take(idx, s);
      odd.push(set);
      this.odd.set(idx, odd);
    }
    this.held[idx] = (this.held[idx] ?? 0) + 1;
    this.count++;
  }

  /** Give back a set from `allocate` or `reserve`. Throws PortSetError if it is not held. */
  release(addr: number, set: PortSet): void {
    const idx = this.indexOf(addr);
    const odd = this.odd.get(idx) ?? [];
    const i = odd.findIndex((r) => r.equals(set));
    if (i >= 0) {
      odd.splice(i, 1);
      if (odd.length === 0) this.odd.delete(idx);
      for (const s of this.touchedSlots(set)) if (!odd.some((r) => r.overlaps(this.slotSet(s)))) this.give(idx, s);
    } else {
      const slot = this.slotOf(set);
      if (slot < 0 || !this.isSet(idx, slot) || odd.some((r) => r.overlaps(set))) {
        throw new PortSetError(`${fmt4(addr)} ${set} is not allocated`);
      }
      this.give(idx, slot);
    }
    this.held[idx] = (this.held[idx] ?? 1) - 1;
    this.count--;
  }

  usage(addr: number): AddressUsage {
    const idx = this.indexOf(addr);
    return { total: this.slotsPerAddress, allocated: this.held[idx] ?? 0, free: this.freeSlots[idx] ?? 0 };
  }

  contains(addr: number): boolean {
    return this.search(addr) >= 0;
  }

  /** The port set of slot number `slot` (0-based) on any address. */
  slotSet(slot: number): PortSet {
    const p = this.policy;
    if (p.kind === 'range') return new PortRange(p.minPort + slot * p.size, p.minPort + (slot + 1) * p.size - 1, { allowSystemPorts: true });
    return new PsidSet(p.a, p.k, slot, { allowSystemPorts: true });
  }

  private describe(): string {
    const p = this.policy;
    return p.kind === 'range' ? `${p.size} ports from ${p.minPort}` : `psid a=${p.a} k=${p.k}`;
  }
  /** The slot that `set` is exactly, or -1. */
  private slotOf(set: PortSet): number {
    const p = this.policy;
    if (p.kind === 'psid') return set instanceof PsidSet && set.a === p.a && set.k === p.k ? set.id : -1;
    if (!(set instanceof PortRange) || set.size !== p.size || set.first < p.minPort || (set.first - p.minPort) % p.size !== 0) return -1;
    const slot = (set.first - p.minPort) / p.size;
    return slot < this.slotsPerAddress ? slot : -1;
  }
  /** Ascending slots that share at least one port with `set`. */
  private touchedSlots(set: PortSet): number[] {
    const p = this.policy;
    const hit = new Uint8Array(this.slotsPerAddress);
    for (const [first, last] of set.chunks()) {
      if (p.kind === 'range') {
        const top = p.minPort + this.slotsPerAddress * p.size - 1;
        if (last < p.minPort || first > top) continue;
        const s0 = Math.floor((Math.max(first, p.minPort) - p.minPort) / p.size);
        const s1 = Math.floor((Math.min(last, top) - p.minPort) / p.size);
        for (let s = s0; s <= s1; s++) hit[s] = 1;
      } else {
        const m = 16 - p.a - p.k;
        for (let b = first >>> m; b <= last >>> m; b++) if (p.a === 0 || b >>> p.k !== 0) hit[b & (this.slotsPerAddress - 1)] = 1;
      }
    }
    const out: number[] = [];
    hit.forEach((h, s) => { if (h === 1) out.push(s); });
    return out;
  }
  private search(addr: number): number {
    let lo = 0, hi = this.addrs.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const v = this.addrs[mid] ?? 0;
      if (v === addr) return mid;
      if (v < addr) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }
  private indexOf(addr: number): number {
    // Calls come in runs on one address (a restart reserves an address's sets one after another).
    if (this.addrs[this.lastIdx] === addr) return this.lastIdx;
    const idx = this.search(addr);
    if (idx < 0) throw new PortSetError(`${fmt4(addr)} is not in the shared IPv4 pool`);
    this.lastIdx = idx;
    return idx;
  }
  private page(idx: number): Uint32Array {
    let page = this.pages[idx >>> PAGE_SHIFT];
    if (page === undefined) {
      page = new Uint32Array(this.words << PAGE_SHIFT);
      if (this.tailMask !== 0) for (let i = this.words - 1; i < page.length; i += this.words) page[i] = this.tailMask;
      this.pages[idx >>> PAGE_SHIFT] = page;
    }
    return page;
  }
  private isSet(idx: number, slot: number): boolean {
    const page = this.pages[idx >>> PAGE_SHIFT];
    if (page === undefined) return false;
    return (((page[(idx & ((1 << PAGE_SHIFT) - 1)) * this.words + (slot >>> 5)] ?? 0) >>> (slot & 31)) & 1) === 1;
  }
  private take(idx: number, slot: number): void {
    const page = this.page(idx);
    const i = (idx & ((1 << PAGE_SHIFT) - 1)) * this.words + (slot >>> 5);
    page[i] = (page[i] ?? 0) | (1 << (slot & 31));
    const left = (this.freeSlots[idx] ?? 1) - 1;
    this.freeSlots[idx] = left;
    if (left === 0) this.hasFree[idx >>> 5] = (this.hasFree[idx >>> 5] ?? 0) & ~(1 << (idx & 31));
  }
  private give(idx: number, slot: number): void {
    const page = this.page(idx);
    const i = (idx & ((1 << PAGE_SHIFT) - 1)) * this.words + (slot >>> 5);
    page[i] = (page[i] ?? 0) & ~(1 << (slot & 31));
    this.freeSlots[idx] = (this.freeSlots[idx] ?? 0) + 1;
    this.hasFree[idx >>> 5] = (this.hasFree[idx >>> 5] ?? 0) | (1 << (idx & 31));
    if (idx >>> 5 < this.lowWord) this.lowWord = idx >>> 5;
  }
}

/** Index (0-31) of the lowest set bit of a non-zero 32-bit word. */
function lowestBit(word: number): number {
  return 31 - Math.clz32(word & -word);
}
function fmt4(addr: number): string {
  return [addr >>> 24, (addr >>> 16) & 255, (addr >>> 8) & 255, addr & 255].join('.');
}
function clash(addr: number, set: PortSet, held: PortSet, how: string): PortSetError {
  return new PortSetError(`${fmt4(addr)} ${set} overlaps ${fmt4(addr)} ${held} (${how})`);
}
