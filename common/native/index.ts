/**
 * The real TUN device and raw IPv6 tunnel socket, over the project's N-API addon
 * (src/*.c, built by `npm ci` through node-gyp into build/Release/aplus_native.node).
 * This is the only module that loads the addon; it loads it on first use, so code that never
 * opens a port (check-config, unit tests with fakes) runs without it.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { NativeError } from '../errors.js';
import { formatIpv6, parseIpv6 } from './addr6.js';
import { makeRing } from './ring.js';
import { newCounters, readStats, STATS_COUNT } from './stats.js';
import type {
  Icmp6ErrorReport,
  Icmp6Options,
  Icmp6Socket,
  IoStats,
  PacketPort,
  PmtuMode,
  RxRing,
  TunDevice,
  TunOptions,
  Tunnel6Options,
  Tunnel6Socket,
  TxBatch,
} from './types.js';

export type * from './types.js';
export { STAT, STATS_COUNT, readStats } from './stats.js';
export { slotOffset, DEFAULT_BATCH, DEFAULT_HEADROOM, DEFAULT_SLOT_SIZE } from './ring.js';
export { parseIpv6, formatIpv6, writeIpv6 } from './addr6.js';

type PollHandle = { readonly __poll: unique symbol };

/** The addon's exports, as src/addon.c registers them. */
interface Addon {
  tunOpen(name: string, multiQueue: boolean, offload: boolean): { fd: number; name: string; offload: boolean };
  tunWrite(fd: number, slab: Buffer, offs: Int32Array, lens: Int32Array, count: number, st: Float64Array, vnet: boolean): number;
  raw6Open(bind: Buffer | null, rcvbuf: number, sndbuf: number, proto: number): number;
  raw6SetPmtuDisc(fd: number, mode: number): void;
  raw6SetDontFrag(fd: number, on: boolean): void;
  pathMtu(addr: Buffer): number;
  raw6Send(
    fd: number, slab: Buffer, offs: Int32Array, lens: Int32Array, dsts: Buffer, count: number,
    st: Float64Array, srcs: Buffer | null,
  ): number;
  raw4Open(sndbuf: number): number;
  raw4Send(rawFd: number, tunFd: number, slab: Buffer, offs: Int32Array, lens: Int32Array, count: number, st: Float64Array, vnet: boolean): number;
  pollStart(
    fd: number, kind: 0 | 1 | 2, slab: Buffer, slotSize: number, headroom: number, batch: number, lens: Int32Array,
    srcs: Buffer | null, dsts: Buffer | null, st: Float64Array, onBatch: (count: number) => void,
    onError: ((e: Icmp6ErrorReport) => void) | null,
  ): PollHandle;
  pollStop(h: PollHandle): boolean;
  closeFd(fd: number): void;
  originalDst(fd: number): { address: string; port: number };
  gsoSplit(vnetPacket: Buffer, cap: number, max: number): Buffer[] | null;
  groCoalesce(slab: Buffer, offs: Int32Array, lens: Int32Array, count: number): Buffer[];
  adviseHugePages(buf: ArrayBuffer, collapse: boolean): number;
  statsCount: number;
}

const BUILT = fileURLToPath(new URL('./build/Release/aplus_native.node', import.meta.url));
// From the compiled dist/common/native/index.js, the addon stays in the source tree.
const BUILT_FROM_DIST = fileURLToPath(new URL('../../../common/native/build/Release/aplus_native.node', import.meta.url));
// A bundled agent (provisioning/bundle.ts, the OpenWrt package) carries the addon beside itself.
const BESIDE_BUNDLE = fileURLToPath(new URL('./aplus_native.node', import.meta.url));

let addon: Addon | undefined;

/** Loads the addon once; APLUS_NATIVE_ADDON may name the .node file (packaged installs). */
function native(): Addon {
  if (addon !== undefined) return addon;
  const override = process.env['APLUS_NATIVE_ADDON'];
  const file = override ?? [BESIDE_BUNDLE, BUILT, BUILT_FROM_DIST].find((f) => existsSync(f));
  if (file === undefined || !existsSync(file)) {
    throw new NativeError(
      `native addon missing: ${override ?? BUILT} does not exist; ` +
        'build it with `npm ci` (node-gyp rebuild --directory=common/native, nodedir=/usr)',
    );
  }
  let mod: Addon;
  try {
    mod = createRequire(import.meta.url)(file) as Addon;
  } catch (err) {
    throw new NativeError(`native addon ${file} failed to load: ${(err as Error).message}; rebuild with \`npm ci\``);
  }
  if (mod.statsCount !== STATS_COUNT) {
    throw new NativeError(`native addon ${file} is stale (stats layout differs); rebuild with \`npm ci\``);
  }
  addon = mod;
  return mod;
}

/** Runs a native call, turning its Error (with errno) into a NativeError naming the operation. */
function call<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof NativeError) throw err;
    const e = err as Error & { errno?: number };
    throw new NativeError(`${what}: ${e.message}`, e.errno);
  }
}

const PMTU: Record<PmtuMode, number> = { dont: 0, want: 1, do: 2, probe: 3 };

abstract class NativePort implements PacketPort {
  readonly counters = newCounters();
  protected poll: PollHandle | undefined;
  protected closed = false;

  constructor(
    protected readonly fd: number,
    readonly ring: RxRing,
    protected readonly label: string,
  ) {}

  protected abstract startPoll(onBatch: (count: number) => void): PollHandle;
  abstract send(tx: TxBatch): number;

  start(onBatch: (count: number) => void): void {
    if (this.closed) throw new NativeError(`${this.label}: start after close`);
    if (this.poll !== undefined) throw new NativeError(`${this.label}: already started`);
    this.poll = call(`${this.label}: pollStart`, () => this.startPoll(onBatch));
  }

  stats(): IoStats {
    return readStats(this.counters);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    const a = native();
    if (this.poll !== undefined) a.pollStop(this.poll); // uv_close: the fd leaves epoll at once
    this.poll = undefined;
    call(`${this.label}: close`, () => a.closeFd(this.fd));
  }

  protected checkOpen(): void {
    if (this.closed) throw new NativeError(`${this.label}: send after close`);
  }
}

class NativeTun extends NativePort implements TunDevice {
  constructor(
    fd: number,
    ring: RxRing,
    readonly name: string,
    /** The raw IPv4 socket packets are sent through (rawOutput), or -1: written to the TUN. */
    private readonly rawFd: number,
    /** Opened with IFF_VNET_HDR and offloads: every read and write carries a vnet header. */
    readonly offload: boolean,
  ) {
    super(fd, ring, `TUN ${name}`);
  }

  get rawOutput(): boolean {
    return this.rawFd >= 0;
  }

  override close(): void {
    const wasOpen = !this.closed;
    super.close();
    if (wasOpen && this.rawFd >= 0) call(`${this.label}: close raw IPv4 socket`, () => native().closeFd(this.rawFd));
  }

  protected startPoll(onBatch: (count: number) => void): PollHandle {
    const r = this.ring;
    return native().pollStart(this.fd, this.offload ? 2 : 0, r.slab, r.slotSize, r.headroom, r.batch, r.lens, null, null,
      this.counters, onBatch, null);
  }

  send(tx: TxBatch): number {
    this.checkOpen();
    if (this.rawFd >= 0) {
      return call(`${this.label}: sendmmsg raw IPv4`, () =>
        native().raw4Send(this.rawFd, this.fd, tx.slab, tx.offsets, tx.lens, tx.count, this.counters, this.offload));
    }
    return call(`${this.label}: write`, () =>
      native().tunWrite(this.fd, tx.slab, tx.offsets, tx.lens, tx.count, this.counters, this.offload));
  }
}

class NativeTunnel6 extends NativePort implements Tunnel6Socket {
  private errorCb: ((e: Icmp6ErrorReport) => void) | undefined;

  constructor(fd: number, ring: RxRing, readonly bind: string) {
    super(fd, ring, `tunnel6 [${bind}]`);
  }

  protected startPoll(onBatch: (count: number) => void): PollHandle {
    const r = this.ring;
    return native().pollStart(this.fd, 1, r.slab, r.slotSize, r.headroom, r.batch, r.lens, r.srcs, r.dsts,
      this.counters, onBatch, (e) => this.errorCb?.(e));
  }

  send(tx: TxBatch): number {
    this.checkOpen();
    if (tx.dsts === undefined) throw new NativeError(`${this.label}: send needs dsts`);
    const dsts = tx.dsts;
    return call(`${this.label}: sendmmsg`, () =>
      native().raw6Send(this.fd, tx.slab, tx.offsets, tx.lens, dsts, tx.count, this.counters, tx.srcs ?? null));
  }

  onError(cb: (e: Icmp6ErrorReport) => void): void {
    this.errorCb = cb;
  }

  setPmtuDiscover(mode: PmtuMode): void {
    this.checkOpen();
    const v = PMTU[mode];
    if (v === undefined) throw new NativeError(`${this.label}: unknown pmtu discovery mode ${String(mode)}`);
    call(`${this.label}: IPV6_MTU_DISCOVER ${mode}`, () => native().raw6SetPmtuDisc(this.fd, v));
  }

  setDontFragment(on: boolean): void {
    this.checkOpen();
    call(`${this.label}: IPV6_DONTFRAG`, () => native().raw6SetDontFrag(this.fd, on));
  }

  pathMtu(dst: string): number {
    const a = parseIpv6(dst);
    return call(`path MTU to ${dst}`, () => native().pathMtu(a));
  }
}

/**
 * Opens (creates) a TUN device, IFF_TUN|IFF_NO_PI, with offloads if asked and the kernel takes
 * them (see TunOptions.offload). The device lives while the fd is open.
 */
export function openTun(opts: TunOptions): TunDevice {
  const ring = makeRing(opts, false, `TUN ${opts.name}`);
  const a = native();
  const r = call(`TUN ${opts.name}: open`, () => a.tunOpen(opts.name, opts.multiQueue ?? false, opts.offload ?? false));
  let raw = -1;
  if (opts.rawOutput === true) {
    try {
      raw = call(`TUN ${r.name}: raw IPv4 output socket`, () => a.raw4Open(opts.sndbuf ?? DEFAULT_SOCKET_BUFFER));
    } catch (err) {
      a.closeFd(r.fd);
      throw err;
    }
  }
  return new NativeTun(r.fd, ring, r.name, raw, r.offload);
}

export const DEFAULT_SOCKET_BUFFER = 4 * 1024 * 1024;

/**
 * Opens a raw IPv6 socket for next header 4 bound to `bind` ('::' = all local addresses).
 * Open it before traffic arrives: with no such socket the kernel answers IPv4-in-IPv6 packets
 * with ICMPv6 Parameter Problem.
 */
export function openTunnel6(opts: Tunnel6Options): Tunnel6Socket {
  const label = `tunnel6 [${opts.bind}]`;
  const ring = makeRing(opts, true, label);
  const addr = parseIpv6(opts.bind);
  const any = addr.every((b) => b === 0);
  const a = native();
  const fd = call(`${label}: open`, () =>
    a.raw6Open(any ? null : addr, opts.rcvbuf ?? DEFAULT_SOCKET_BUFFER, opts.sndbuf ?? DEFAULT_SOCKET_BUFFER, 4));
  return new NativeTunnel6(fd, ring, formatIpv6(addr));
}

class NativeIcmp6 implements Icmp6Socket {
  readonly counters = newCounters();
  private closed = false;
  private readonly label: string;

  constructor(
    private readonly fd: number,
    readonly bind: string,
  ) {
    this.label = `icmp6 [${bind}]`;
  }

  send(tx: TxBatch): number {
    if (this.closed) throw new NativeError(`${this.label}: send after close`);
    if (tx.dsts === undefined) throw new NativeError(`${this.label}: send needs dsts`);
    const dsts = tx.dsts;
    return call(`${this.label}: sendmmsg`, () =>
      native().raw6Send(this.fd, tx.slab, tx.offsets, tx.lens, dsts, tx.count, this.counters, tx.srcs ?? null));
  }

  stats(): IoStats {
    return readStats(this.counters);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    call(`${this.label}: close`, () => native().closeFd(this.fd));
  }
}

/**
 * Opens a send-only raw ICMPv6 socket bound to `bind` ('::' = any local address), for the
 * ICMPv6 errors the PRR originates. Its ICMP6_FILTER blocks every type, so it queues nothing.
 */
export function openIcmp6(opts: Icmp6Options): Icmp6Socket {
  const addr = parseIpv6(opts.bind);
  const any = addr.every((b) => b === 0);
  const a = native();
  const fd = call(`icmp6 [${opts.bind}]: open`, () => a.raw6Open(any ? null : addr, 0, opts.sndbuf ?? DEFAULT_SOCKET_BUFFER, 58));
  return new NativeIcmp6(fd, formatIpv6(addr));
}

/**
 * Where a TCP connection that nftables redirected to one of our listeners was going (its original
 * destination, SO_ORIGINAL_DST). `fd` is the accepted socket's descriptor.
 */
export function originalDst(fd: number): { address: string; port: number } {
  return call('SO_ORIGINAL_DST', () => native().originalDst(fd));
}

/**
 * The offload byte work of src/gso.c without a TUN, for tests: `gsoSplit` cuts what a TUN with
 * offloads returns (a 10-byte vnet header, then the packet) into the packets the reader hands on
 * (null: refused and dropped, counted as gso_bad), at most `max` per call as the reader cuts at
 * most a ring's free slots at a time; `groCoalesce` plans a send batch and returns
 * each write() it would make (vnet header + packet).
 */
export const gsoTesting = {
  gsoSplit: (vnetPacket: Buffer, cap: number, max = 1024): Buffer[] | null => native().gsoSplit(vnetPacket, cap, max),
  groCoalesce: (slab: Buffer, offsets: Int32Array, lens: Int32Array, count: number): Buffer[] =>
    native().groCoalesce(slab, offsets, lens, count),
};

/**
 * Ask the kernel to back `buf` with transparent huge pages (madvise MADV_HUGEPAGE on its 2 MiB-
 * aligned part; THP in `madvise` mode uses them nowhere else): a big table read at random then
 * costs a cache miss per lookup but no TLB miss, which on a virtual machine (nested page walks)
 * is as dear. Call it right after allocating, before the pages are touched; `collapse` also
 * rebuilds pages already touched (MADV_COLLAPSE, best effort). Returns the bytes advised (0 for
 * a buffer too small to hold a whole huge page).
 */
export function adviseHugePages(buf: ArrayBuffer, opts: { collapse?: boolean } = {}): number {
  return call('madvise MADV_HUGEPAGE', () => native().adviseHugePages(buf, opts.collapse ?? false));
}
