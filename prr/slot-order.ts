/**
 * The order in which to insert many keys into an open-addressing hash of 2^k slots so that the
 * inserts walk the table from one end to the other instead of at random: a counting sort of the
 * keys by the top bits of their home slot (h & mask), stable, so keys of one slot keep their order.
 *
 * A restart puts a million bindings into two hashes of 16 MB each (prr/bindings.ts, the IPv6
 * index; prr/name-index.ts, the names): in random order each insert was a cache miss, and together
 * a quarter of the start. In this order each bucket of slots is in the cache while its keys go in.
 */

/** Buckets of slots (a few KiB of each hash per bucket). */
const BUCKET_SHIFT = 12;

/**
 * Indexes 0..hashes.length-1 in the order of their home slot's bucket in a table of mask + 1
 * slots (`order`), and their hashes in that order (`sorted`): the inserts then read both in
 * sequence, not hashes[i] at random.
 */
export function slotOrder(hashes: Int32Array, mask: number): { order: Int32Array; sorted: Int32Array } {
  const n = hashes.length;
  const buckets = (mask >>> BUCKET_SHIFT) + 1;
  const start = new Int32Array(buckets + 1);
  for (let i = 0; i < n; i++) start[((hashes[i]! & mask) >>> BUCKET_SHIFT) + 1]!++;
  for (let b = 0; b < buckets; b++) start[b + 1]! += start[b]!;
  const order = new Int32Array(n);
  const sorted = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const h = hashes[i]!;
    const k = start[(h & mask) >>> BUCKET_SHIFT]!++;
    order[k] = i;
    sorted[k] = h;
  }
  return { order, sorted };
}
