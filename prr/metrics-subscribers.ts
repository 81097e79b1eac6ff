/**
 * What the PRR's per-subscriber and per-address metrics read, one table walk per scrape: the
 * top:N ranking (a decayed traffic score per binding and a size-N heap) and the rows of the
 * subscribers kept; ports allocated per shared address. Used by prr/metrics.ts.
 */
import type { PerSubscriber } from '../common/config/prr.js';
import { formatIpv4, type Ipv4Prefix } from '../common/config/values.js';
import type { BindingTable } from './bindings.js';
import { B, PER_BINDING, type PrrCounters } from './counters.js';
import type { PortActivity } from './port-activity.js';
import type { UsageEntry, UsageReports } from './usage-reports.js';

export interface PrrMetricsSource {
  table: BindingTable;
  counters: PrrCounters;
  /** The shared pools: every address of them gets pool series. */
  pools: readonly Ipv4Prefix[];
  /** Whether ports 0-1023 can be handed out (the size of an address's port space). */
  allowSystemPorts: boolean;
  /** Ports active, when tracked ([metrics] ports_active). */
  activity?: PortActivity | undefined;
  /** What CPEs reported with their registrations, when registration runs. */
  usage?: UsageReports | undefined;
}

export interface PrrMetricsOptions {
  perSubscriber: PerSubscriber;
  /** Clock in milliseconds (tests). */
  now?: () => number;
}

/** Half-life of the top:N traffic score. */
export const TOP_HALF_LIFE_S = 300;

/** Pools with more addresses than this in all get pool series only for addresses with bindings. */
export const POOL_SERIES_LIMIT = 65536;

/** Per-subscriber totals of one scrape. */
export interface SubscriberRow {
  name: string;
  ports: number;
  fromPackets: number;
  fromBytes: number;
  toPackets: number;
  toBytes: number;
  drops: number;
  /** Distinct ports seen from the CPE in the window (0 when not tracked). */
  active: number;
  /** The CPE's last `--usage` report. */
  reported: UsageEntry | undefined;
}

/**
 * The top:N ranking state: per binding id, the byte total seen at the last scrape and a decayed
 * score. A total lower than the last one means the id was reused by a new binding (its counters
 * start at zero): the score starts over.
 */
export class TrafficScores {
  private last: Float64Array = new Float64Array(0);
  private score: Float64Array = new Float64Array(0);
  private at: number | undefined;

  update(table: BindingTable, counters: PrrCounters, nowMs: number): Float64Array {
    const limit = table.idLimit;
    if (this.last.length < limit) {
      const grow = (a: Float64Array): Float64Array => {
        const b = new Float64Array(Math.max(16, limit * 2));
        b.set(a);
        return b;
      };
      this.last = grow(this.last);
      this.score = grow(this.score);
    }
    const dt = this.at === undefined ? 0 : Math.max(0, nowMs - this.at) / 1000;
    this.at = nowMs;
    const decay = Math.pow(0.5, dt / TOP_HALF_LIFE_S);
    const pb = counters.perBinding;
    for (let id = 0; id < limit; id++) {
      const o = id * PER_BINDING;
      const total = (pb[o + B.from_cpe_bytes] ?? 0) + (pb[o + B.to_cpe_bytes] ?? 0);
      const prev = this.last[id]!;
      const delta = total >= prev ? total - prev : total;
      this.score[id] = (total >= prev ? this.score[id]! * decay : 0) + delta;
      this.last[id] = total;
    }
    return this.score;
  }
}

/**
 * The ids of the `n` live bindings with the highest score (a min-heap of size n: one pass over
 * the table, no sort of a million entries). Equal scores: the lower id wins.
 */
export function topIds(table: BindingTable, scores: Float64Array, n: number): number[] {
  const heap: number[] = [];
  // a is "below" b: lower score, or equal score and higher id.
  const below = (a: number, b: number): boolean => scores[a]! < scores[b]! || (scores[a] === scores[b] && a > b);
  const swap = (i: number, j: number): void => {
    const x = heap[i]!;
    heap[i] = heap[j]!;
    heap[j] = x;
  };
  const down = (i: number): void => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && below(heap[l]!, heap[m]!)) m = l;
      if (r < heap.length && below(heap[r]!, heap[m]!)) m = r;
      if (m === i) return;
      swap(i, m);
      i = m;
    }
  };
  for (const id of table.ids()) {
    if (heap.length < n) {
      heap.push(id);
      for (let i = heap.length - 1; i > 0 && below(heap[i]!, heap[(i - 1) >> 1]!); i = (i - 1) >> 1) swap(i, (i - 1) >> 1);
    } else if (below(heap[0]!, id)) {
      heap[0] = id;
      down(0);
    }
  }
  return heap;
}

/**
 * Per-subscriber rows of the subscribers `mode` keeps (none: empty). top:N ranks bindings by
 * their score and keeps the subscribers of the N best (one subscriber has one binding, as a rule;
 * a subscriber with several is ranked by its busiest and reported with all of them summed).
 */
export function subscriberRows(src: PrrMetricsSource, mode: PerSubscriber, scores: Float64Array | undefined): SubscriberRow[] {
  if (mode.mode === 'none') return [];
  const { table, counters, activity } = src;
  let keep: Set<string> | undefined;
  if (mode.mode === 'top' && table.size > mode.n) {
    keep = new Set(topIds(table, scores!, mode.n).map((id) => table.subscriberOf(id)!));
  }
  const rows = new Map<string, SubscriberRow>();
  for (const id of table.ids()) {
    const name = table.subscriberOf(id)!;
    if (keep !== undefined && !keep.has(name)) continue;
    let r = rows.get(name);
    if (r === undefined) {
      r = { name, ports: 0, fromPackets: 0, fromBytes: 0, toPackets: 0, toBytes: 0, drops: 0, active: 0, reported: src.usage?.get(name) };
      rows.set(name, r);
    }
    const set = table.portsOf(id);
    r.ports += set?.size ?? 0;
    if (activity !== undefined && set !== undefined) r.active += activity.count(table.ipv4Of(id), set);
    r.fromPackets += counters.binding(id, B.from_cpe_packets);
    r.fromBytes += counters.binding(id, B.from_cpe_bytes);
    r.toPackets += counters.binding(id, B.to_cpe_packets);
    r.toBytes += counters.binding(id, B.to_cpe_bytes);
    r.drops += counters.binding(id, B.drops);
  }
  return [...rows.values()];
}

/** Per shared address: ports allocated, and active when tracked. */
export interface PoolRow {
  pool: string;
  address: string;
  allocated: number;
  active: number;
}

/** Ports allocated (and active) per shared address (every pool address, unless the pools are huge). */
export function poolRows(src: PrrMetricsSource): PoolRow[] {
  const { table, pools, activity } = src;
  // Addresses and subscribers that left the table leave the trackers too.
  activity?.prune((a) => table.isShared(a));
  src.usage?.prune((name) => table.findSubscriber(name).length > 0);
  const allocated = new Map<number, number>();
  for (const id of table.ids()) {
    const a = table.ipv4Of(id);
    allocated.set(a, (allocated.get(a) ?? 0) + (table.portsOf(id)?.size ?? 0));
  }
  const every = pools.reduce((n, p) => n + p.size, 0) <= POOL_SERIES_LIMIT;
  const out: PoolRow[] = [];
  const row = (pool: string, a: number, n: number): PoolRow => ({ pool, address: formatIpv4(a), allocated: n, active: activity?.countAddress(a) ?? 0 });
  for (const p of pools) {
    const pool = String(p);
    if (every) {
      for (let a = p.first; a <= p.last; a++) out.push(row(pool, a, allocated.get(a) ?? 0));
    } else {
      for (const [a, n] of allocated) if (p.contains(a)) out.push(row(pool, a, n));
    }
  }
  return out;
}
