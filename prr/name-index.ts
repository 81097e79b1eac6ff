/**
 * The subscriber names of the binding table (prr/bindings.ts), by binding id, and the index from a
 * name to its bindings.
 *
 * A million bindings as a million JS strings cost ~40 MB (string headers and the array) and a
 * good part of a restart's time in allocation and garbage collection. Here the names are UTF-8
 * bytes in one heap (a Buffer): per binding its offset and length, and the next binding of the
 * same name; a start from the registration store copies each name's bytes straight from SQLite's
 * result (setBytes), and no string is made until the control plane asks for one (nameOf).
 *
 * The index is an open-addressing hash with linear probing; a slot is two words, the first binding
 * of the name + 1 (0 empty, -1 deleted) and the name's hash: a probe compares hashes, and reads a
 * name's bytes only when they match (at a million names each read is a cache miss).
 *
 * Removed names leave their bytes in the heap as garbage until the heap is full; then the live
 * names are copied into a new one (makeRoom), so renames and removals cost O(1) and the heap
 * stays within about twice the live names.
 */

import { slotOrder } from './slot-order.js';

const NONE = -1;

export class NameIndex {
  private heap: Buffer;
  private top = 0; // heap bytes in use, live names and garbage
  private garbage = 0; // bytes of removed names below top
  private off: Int32Array; // per id: heap offset of its name, NONE when it has none
  private len: Uint32Array; // per id: the name's length in bytes
  private nextId: Int32Array; // per id: next binding of the same name, in the order added
  private slots: Int32Array; // [first id + 1, hash] per slot
  private slotsUsed = 0; // slots not empty (names and deleted marks)
  private names = 0; // slots holding a name
  private scratch = Buffer.alloc(256); // a looked-up name, encoded

  constructor(capacity: number) {
    this.off = new Int32Array(capacity).fill(NONE);
    this.len = new Uint32Array(capacity);
    this.nextId = new Int32Array(capacity);
    this.heap = Buffer.alloc(Math.max(1024, capacity * 8));
    this.slots = new Int32Array(2 * pow2AtLeast(capacity * 2));
  }

  /** Room for ids below `capacity`. */
  grow(capacity: number): void {
    if (capacity <= this.off.length) return;
    const off = new Int32Array(capacity).fill(NONE);
    off.set(this.off);
    this.off = off;
    const len = new Uint32Array(capacity);
    len.set(this.len);
    this.len = len;
    const next = new Int32Array(capacity);
    next.set(this.nextId);
    this.nextId = next;
    if (this.slots.length < capacity * 4) this.rehash(pow2AtLeast(capacity * 2));
  }

  /** Name binding `id` (which has no name) `name`, after the other bindings of that name. */
  set(id: number, name: string): void {
    const n = this.encode(name);
    this.setBytes(id, this.scratch, 0, n);
  }

  /**
   * set() with the name as UTF-8 bytes src[start..end) (copied): no string is made. With `link`
   * false the name is not in the index until linkAll() (a bulk load).
   */
  setBytes(id: number, src: Uint8Array, start: number, end: number, link = true): void {
    const n = end - start;
    if (this.top + n > this.heap.length) this.makeRoom(n);
    const at = this.top;
    const heap = this.heap;
    // A loop, not set(subarray()): a view per name would be a million objects at a start.
    for (let i = 0; i < n; i++) heap[at + i] = src[start + i]!;
    this.top += n;
    this.off[id] = at;
    this.len[id] = n;
    if (link) this.link(id, hashBytes(heap, at, at + n));
    else this.nextId[id] = NONE;
  }

  /** Index the names of ids from..to-1 (all set with link = false), in slot order (prr/slot-order.ts). */
  linkAll(from: number, to: number): void {
    const n = to - from;
    const hashes = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const at = this.off[from + i]!;
      hashes[i] = hashBytes(this.heap, at, at + this.len[from + i]!);
    }
    if ((this.slotsUsed + n) * 4 > this.slots.length) this.rehash(pow2AtLeast(Math.max(this.off.length * 2, (this.names + n) * 4)));
    const { order, sorted } = slotOrder(hashes, (this.slots.length >>> 1) - 1);
    const slots = this.slots;
    const mask = (slots.length >>> 1) - 1;
    for (let k = 0; k < n; k++) {
      // link(), reading a name's bytes (off, len: at random) only where two hashes match.
      const id = from + order[k]!;
      const h = sorted[k]!;
      let free = -1;
      let s = h & mask;
      for (; ; s = (s + 1) & mask) {
        const v = slots[2 * s]!;
        if (v === 0) break;
        if (v < 0) {
          if (free < 0) free = s;
        } else if (slots[2 * s + 1] === h && this.sameName(v - 1, id)) break;
      }
      const v = slots[2 * s]!;
      if (v > 0) {
        let p = v - 1;
        while (this.nextId[p]! >= 0) p = this.nextId[p]!;
        this.nextId[p] = id;
        continue;
      }
      if (free < 0) {
        free = s;
        this.slotsUsed++;
      }
      slots[2 * free] = id + 1;
      slots[2 * free + 1] = h;
      this.names++;
    }
  }

  /** Take binding `id`'s name away (it keeps no name). */
  remove(id: number): void {
    const at = this.off[id]!;
    if (at === NONE) return;
    const n = this.len[id]!;
    const s = this.slotOf(this.heap, at, at + n, hashBytes(this.heap, at, at + n));
    if (s >= 0) {
      const head = this.slots[2 * s]! - 1;
      const next = this.nextId[id]!;
      if (head === id) {
        if (next >= 0) this.slots[2 * s] = next + 1;
        else {
          this.slots[2 * s] = -1;
          this.names--;
        }
      } else {
        let p = head;
        while (this.nextId[p]! >= 0 && this.nextId[p] !== id) p = this.nextId[p]!;
        if (this.nextId[p] === id) this.nextId[p] = next;
      }
    }
    this.nextId[id] = NONE;
    this.off[id] = NONE;
    this.garbage += n;
  }

  /** Binding `id`'s name, or undefined when it has none. */
  nameOf(id: number): string | undefined {
    const at = id >= 0 && id < this.off.length ? this.off[id]! : NONE;
    return at === NONE ? undefined : this.heap.toString('utf8', at, at + this.len[id]!);
  }

  /** Is binding `id` named `name`? */
  is(id: number, name: string): boolean {
    const at = this.off[id]!;
    if (at === NONE) return false;
    const n = this.encode(name);
    return n === this.len[id] && this.heap.compare(this.scratch, 0, n, at, at + n) === 0;
  }

  /** The first binding of `name` (in the order added), or -1. */
  first(name: string): number {
    const n = this.encode(name);
    const s = this.slotOf(this.scratch, 0, n, hashBytes(this.scratch, 0, n));
    return s < 0 ? NONE : this.slots[2 * s]! - 1;
  }

  /** The binding of the same name after `id`, or -1. */
  next(id: number): number {
    return this.nextId[id]!;
  }

  /** Bytes held. */
  bytes(): number {
    return this.heap.byteLength + this.off.byteLength + this.len.byteLength + this.nextId.byteLength + this.slots.byteLength;
  }

  private sameName(a: number, b: number): boolean {
    const n = this.len[a]!;
    return n === this.len[b] && sameBytes(this.heap, this.off[a]!, this.heap, this.off[b]!, n);
  }

  /** `name` as UTF-8 into scratch; its length in bytes. */
  private encode(name: string): number {
    const n = Buffer.byteLength(name, 'utf8');
    if (n > this.scratch.length) this.scratch = Buffer.alloc(n * 2);
    return this.scratch.write(name, 0, 'utf8');
  }

  /** The slot of the name src[start..end) with hash h, or -1. */
  private slotOf(src: Uint8Array, start: number, end: number, h: number): number {
    const slots = this.slots;
    const mask = (slots.length >>> 1) - 1;
    const n = end - start;
    for (let s = h & mask; ; s = (s + 1) & mask) {
      const v = slots[2 * s]!;
      if (v === 0) return -1;
      if (v > 0 && slots[2 * s + 1] === h) {
        const id = v - 1;
        const at = this.off[id]!;
        if (this.len[id] === n && sameBytes(this.heap, at, src, start, n)) return s;
      }
    }
  }

  /** Index `id` (whose bytes are in the heap) under hash h: after the name's bindings, or in a new slot. */
  private link(id: number, h: number): void {
    this.nextId[id] = NONE;
    const at = this.off[id]!;
    const s = this.slotOf(this.heap, at, at + this.len[id]!, h);
    if (s >= 0) {
      let p = this.slots[2 * s]! - 1;
      while (this.nextId[p]! >= 0) p = this.nextId[p]!;
      this.nextId[p] = id;
      return;
    }
    if ((this.slotsUsed + 1) * 4 > this.slots.length) this.rehash(pow2AtLeast(Math.max(this.off.length * 2, (this.names + 1) * 4)));
    this.put(h, id + 1);
    this.names++;
  }

  /** Put (first id + 1, hash) in the first free or deleted slot of the hash's probe sequence. */
  private put(h: number, v: number): void {
    const slots = this.slots;
    const mask = (slots.length >>> 1) - 1;
    let t = h & mask;
    while (slots[2 * t]! > 0) t = (t + 1) & mask;
    if (slots[2 * t] === 0) this.slotsUsed++;
    slots[2 * t] = v;
    slots[2 * t + 1] = h;
  }

  /** A new slot table of `size` slots, without the deleted marks. */
  private rehash(size: number): void {
    const old = this.slots;
    this.slots = new Int32Array(2 * size);
    this.slotsUsed = 0;
    for (let i = 0; i < old.length; i += 2) if (old[i]! > 0) this.put(old[i + 1]!, old[i]!);
  }

  /**
   * Room for n more bytes at top, in a new heap of twice the live names and n: a plain copy while
   * there is little garbage; else the live names packed (the new heap may then be smaller), so that
   * at least as many bytes as are live are appended before the next copy.
   */
  private makeRoom(n: number): void {
    const live = this.top - this.garbage;
    const to = Buffer.alloc(Math.max(1024, 2 * (live + n)));
    if (this.garbage * 4 <= this.top) {
      this.heap.copy(to, 0, 0, this.top);
      this.heap = to;
      return;
    }
    const heap = this.heap;
    let top = 0;
    for (let id = 0; id < this.off.length; id++) {
      const at = this.off[id]!;
      if (at === NONE) continue;
      const len = this.len[id]!;
      for (let i = 0; i < len; i++) to[top + i] = heap[at + i]!; // names are short: no call per name
      this.off[id] = top;
      top += len;
    }
    this.heap = to;
    this.top = top;
    this.garbage = 0;
  }
}

function pow2AtLeast(n: number): number {
  let p = 16;
  while (p < n) p *= 2;
  return p;
}

function sameBytes(a: Uint8Array, ai: number, b: Uint8Array, bi: number, n: number): boolean {
  for (let i = 0; i < n; i++) if (a[ai + i] !== b[bi + i]) return false;
  return true;
}

/** A 32-bit hash of bytes b[start..end) (FNV-1a, then a final mix), signed like an Int32Array word. */
function hashBytes(b: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h | 0;
}
