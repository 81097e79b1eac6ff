/**
 * The data plane's I/O edge: a TUN device and a raw IPv6 (next header 4) socket, both as a
 * batched packet port in the spirit of wireguard-go's tun.Device (Read(bufs, sizes, offset) /
 * Write(bufs, offset)). `smap/` and `prr/` take these interfaces in their constructors; the real
 * ones come from `./index.js`, in-memory ones from `./fake.js`.
 *
 * Receive: the port owns one preallocated ring. On each batch, packet i (0 <= i < count) is
 * `ring.slab[slotOffset(ring, i) .. + ring.lens[i]]`; the `headroom` bytes before it are free for
 * the caller to prepend a header in place. The ring is reused for the next batch as soon as
 * `onBatch` returns: copy out (or transmit) anything that must outlive the call.
 *
 * Send: a TxBatch names `count` packets anywhere in any slab (often the rx ring itself, so a
 * forwarded packet is never copied). Nothing is retained after `send` returns.
 */

/** Receive ring: one slot of `slotSize` bytes per packet; filled by the port, read by onBatch. */
export interface RxRing {
  readonly slab: Buffer; // batch * slotSize bytes
  readonly slotSize: number;
  readonly headroom: number; // packet i starts at i * slotSize + headroom
  readonly batch: number; // most packets per onBatch call
  readonly lens: Int32Array; // lens[i]: length of packet i
  readonly srcs: Buffer; // Tunnel6Socket: 16 bytes per packet, outer IPv6 source; TUN: empty
  readonly dsts: Buffer; // Tunnel6Socket: 16 bytes per packet, local IPv6 destination; TUN: empty
}

/** Packets to send: packet i is slab[offsets[i] .. offsets[i] + lens[i]]. */
export interface TxBatch {
  slab: Buffer;
  offsets: Int32Array;
  lens: Int32Array;
  /** Tunnel6Socket only (required there): 16 bytes per packet, the IPv6 destination. */
  dsts?: Buffer;
  /** Tunnel6Socket only: 16 bytes per packet, the IPv6 source to use; all-zero = kernel's choice. */
  srcs?: Buffer;
  count: number;
}

/** Snapshot of a port's counters (see stats.ts for the live Float64Array layout). */
export interface IoStats {
  rxPackets: number;
  rxBytes: number;
  rxBatches: number;
  rxErrors: number;
  rxTruncated: number;
  txPackets: number;
  txBytes: number;
  txErrors: number;
  txEagain: number;
  txEmsgsize: number;
  errqueueMessages: number;
  rxWakeups: number;
  txBatches: number;
  txDeferred: number;
  pollRestarts: number;
  rxSyscalls: number;
  txSyscalls: number;
  txFallback: number;
  gsoRx: number;
  gsoTx: number;
  gsoBad: number;
}

export interface PacketPort {
  readonly ring: RxRing;
  /** Live counters, indexed by STAT in stats.ts; read at scrape time, never reset by the port. */
  readonly counters: Float64Array;
  /** Begin receiving; onBatch(count) runs once per batch of 1..ring.batch packets. Once only. */
  start(onBatch: (count: number) => void): void;
  /** Sends a batch; returns how many packets the kernel took. Failures are counted, not thrown. */
  send(tx: TxBatch): number;
  stats(): IoStats;
  /** Stops receiving and closes the fd. Idempotent; safe inside onBatch. */
  close(): void;
}

export interface TunDevice extends PacketPort {
  readonly name: string; // the kernel's name (a `%d` in the requested name is filled in)
  /**
   * TUN offloads are on (TunOptions.offload and the kernel took them). The port's users see no
   * difference: received super-packets arrive cut into packets of the device MTU with complete
   * checksums, and sent TCP segments of one flow may leave as one super-packet. Absent = off.
   */
  readonly offload?: boolean;
}

export type PmtuMode = 'dont' | 'want' | 'do' | 'probe';

/** Where an error-queue message came from: sock_extended_err.ee_origin, or 'poll' for a poll failure. */
export type ErrorOrigin = 'icmp6' | 'icmp' | 'local' | 'none' | 'other' | 'poll';

/**
 * One message from the socket's error queue (IPV6_RECVERR). For an ICMPv6 error, type/code are
 * the ICMPv6 ones (1 Destination Unreachable, 2 Packet Too Big, 3 Time Exceeded, 4 Parameter
 * Problem) and `info` is the MTU for Packet Too Big. A local error (origin 'local', e.g. EMSGSIZE
 * over a known path MTU with pmtudisc 'do') has type 0 and `info` = the path MTU.
 */
export interface Icmp6ErrorReport {
  origin: ErrorOrigin;
  errno: number;
  type: number;
  code: number;
  info: number;
  /** The IPv6 destination of the packet that failed. */
  dst: string | null;
  /** The node that sent the ICMPv6 error (SO_EE_OFFENDER), null for local errors. */
  offender: string | null;
  /** A copy of the quoted original payload: the start of the inner IPv4 packet we sent. */
  payload: Buffer;
}

export interface Tunnel6Socket extends PacketPort {
  /** The bound address ('::' when unbound). */
  readonly bind: string;
  /** Replaces the error listener. Reports arrive only while started; others are just counted. */
  onError(cb: (e: Icmp6ErrorReport) => void): void;
  /** IPV6_MTU_DISCOVER. 'do': never fragment locally, EMSGSIZE over the path MTU. */
  setPmtuDiscover(mode: PmtuMode): void;
  /** IPV6_DONTFRAG. */
  setDontFragment(on: boolean): void;
  /** The kernel's current path MTU toward dst (route MTU, lowered by Packet Too Big). */
  pathMtu(dst: string): number;
}

export interface RingOptions {
  batch?: number; // default 128, 1..1024
  slotSize?: number; // default 2048; slotSize - headroom must hold 1500 bytes, at most 65535
  headroom?: number; // default 40 (one IPv6 header), 0..1024
}

export interface TunOptions extends RingOptions {
  name: string; // e.g. 'smap0', 'prr%d'
  multiQueue?: boolean;
  /**
   * Send IPv4 packets through a raw IPPROTO_RAW socket, a batch per sendmmsg(), instead of one
   * write() each to the TUN: the kernel routes them as locally generated packets (output hooks,
   * no TTL decrement, no fragmentation); any packet it refuses (over the route MTU, unreachable)
   * is written to the TUN instead (tx_fallback). Receiving is unchanged. See src/raw4.c.
   */
  rawOutput?: boolean;
  /** Send buffer of the raw IPv4 socket, bytes (default 4 MiB). */
  sndbuf?: number;
  /**
   * TUN offloads, as wireguard-go and tailscale use them (src/gso.c): IFF_VNET_HDR, a 10-byte
   * virtio_net_hdr, TUNSETOFFLOAD(CSUM | TSO4 | TSO6 [| USO4 | USO6]). The kernel then hands us
   * TCP (and UDP) super-packets of up to 64 KiB, which the reader cuts into segments of the
   * device MTU in C; a send coalesces consecutive TCP segments of one flow in the batch into one
   * super-packet per write(), so the kernel's NAT, conntrack and forwarding run once for them.
   * If the kernel refuses, the TUN is opened without (`offload` false on the device). With
   * rawOutput, coalesced super-packets go to the TUN (the kernel forwards them, once each; their
   * TTL is raised by one first, as forwarding lowers it again) and every other packet to the raw
   * socket, in order.
   */
  offload?: boolean;
}

export interface Tunnel6Options extends RingOptions {
  bind: string; // local IPv6 address, or '::' for every address of the host
  rcvbuf?: number; // bytes, default 4 MiB (SO_RCVBUFFORCE)
  sndbuf?: number; // bytes, default 4 MiB (SO_SNDBUFFORCE)
}

/**
 * A send-only raw ICMPv6 socket (`socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6)`) for the ICMPv6
 * errors the PRR originates (Destination Unreachable code 5 to a CPE whose packet failed source
 * validation, RFC 7596 §5.2). Each packet is an ICMPv6 message (no IPv6 header: the kernel
 * writes it, with the socket's hop limit); `tx.dsts` is required, `tx.srcs` picks the source per
 * packet (IPV6_PKTINFO; all-zero = kernel's choice). The kernel always computes the ICMPv6
 * checksum of a raw ICMPv6 socket (RFC 3542 §3.1); a correct one in the message is kept.
 */
export interface Icmp6Socket {
  /** The bound address ('::' when unbound). */
  readonly bind: string;
  /** Live counters, indexed by STAT in stats.ts (tx only). */
  readonly counters: Float64Array;
  send(tx: TxBatch): number;
  stats(): IoStats;
  /** Closes the fd. Idempotent. */
  close(): void;
}

export interface Icmp6Options {
  bind: string; // local IPv6 address, or '::'
  sndbuf?: number; // bytes, default 4 MiB (SO_SNDBUFFORCE)
}
