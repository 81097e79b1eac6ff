/** Receive-ring allocation and option checks, shared by the real ports and the fakes. */
import { NativeError } from '../errors.js';
import type { RingOptions, RxRing } from './types.js';

export const DEFAULT_BATCH = 128; // what wireguard-go and Snabb chose
export const MAX_BATCH = 1024; // UIO_MAXIOV: the most one recvmmsg/sendmmsg takes
export const DEFAULT_SLOT_SIZE = 2048;
export const DEFAULT_HEADROOM = 40; // one IPv6 header
export const MIN_PACKET_ROOM = 1500; // slotSize - headroom must hold a 1500-byte inner packet
export const MAX_PACKET_ROOM = 65535;
/** txqueuelen the daemons give their TUN: the kernel's queue toward the process (default 500). */
export const TUN_QUEUE = 4096;

export function makeRing(opts: RingOptions, withAddrs: boolean, what: string): RxRing {
  const batch = opts.batch ?? DEFAULT_BATCH;
  const slotSize = opts.slotSize ?? DEFAULT_SLOT_SIZE;
  const headroom = opts.headroom ?? DEFAULT_HEADROOM;
  const bad = (msg: string): never => {
    throw new NativeError(`${what}: ${msg}`);
  };
  if (!Number.isInteger(batch) || batch < 1 || batch > MAX_BATCH) bad(`batch ${batch} is not in 1..${MAX_BATCH}`);
  if (!Number.isInteger(headroom) || headroom < 0 || headroom > 1024) bad(`headroom ${headroom} is not in 0..1024`);
  const room = slotSize - headroom;
  if (!Number.isInteger(slotSize) || room < MIN_PACKET_ROOM || room > MAX_PACKET_ROOM) {
    bad(`slotSize ${slotSize} must leave ${MIN_PACKET_ROOM}..${MAX_PACKET_ROOM} bytes after headroom ${headroom}`);
  }
  return {
    slab: Buffer.alloc(batch * slotSize),
    slotSize,
    headroom,
    batch,
    lens: new Int32Array(batch),
    srcs: Buffer.alloc(withAddrs ? 16 * batch : 0),
    dsts: Buffer.alloc(withAddrs ? 16 * batch : 0),
  };
}

/** Where packet i of the current batch starts in ring.slab. */
export function slotOffset(ring: RxRing, i: number): number {
  return i * ring.slotSize + ring.headroom;
}
