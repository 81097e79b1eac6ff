/**
 * Layout of a port's counter Float64Array. The addon (src/aplus.h, enum ST_*) writes these
 * indexes; keep the two in the same order. Float64 holds integers exactly up to 2^53.
 */
import type { IoStats } from './types.js';

export const STAT = {
  rxPackets: 0, // packets handed to onBatch
  rxBytes: 1, // their bytes (inner packets)
  rxBatches: 2, // onBatch calls
  rxErrors: 3, // read/recvmmsg failures other than EAGAIN (e.g. a pending EHOSTUNREACH)
  rxTruncated: 4, // packets longer than slotSize - headroom, dropped
  txPackets: 5, // packets the kernel took
  txBytes: 6, // their bytes
  txErrors: 7, // packets dropped on other send errors (and bad offsets/lens)
  txEagain: 8, // packets dropped: socket buffer or queue full (EAGAIN, ENOBUFS)
  txEmsgsize: 9, // packets dropped: EMSGSIZE (over the path MTU with 'do' / DONTFRAG)
  errqueueMessages: 10, // error-queue messages read (each one reported to onError)
  rxWakeups: 11, // readable events handled
  txBatches: 12, // send() calls
  txDeferred: 13, // a send reported an earlier asynchronous error; the packet was retried and went
  pollRestarts: 14, // libuv stopped the poll on POLLERR and it was restarted
  rxSyscalls: 15, // read/readv/recvmmsg calls
  txSyscalls: 16, // write/sendmmsg calls
  txFallback: 17, // raw IPv4 output refused the packet; it went through the TUN instead
  gsoRx: 18, // super-packets read from a TUN with offloads, cut into segments
  gsoTx: 19, // super-packets of coalesced TCP segments written to a TUN with offloads
  gsoBad: 20, // packets read with a vnet header that could not be cut or checksummed, dropped
} as const satisfies Record<keyof IoStats, number>;

export const STATS_COUNT = 21;

export function newCounters(): Float64Array {
  return new Float64Array(STATS_COUNT);
}

export function readStats(c: Float64Array): IoStats {
  const out = {} as Record<keyof IoStats, number>;
  for (const k of Object.keys(STAT) as Array<keyof IoStats>) out[k] = c[STAT[k]]!;
  return out;
}
