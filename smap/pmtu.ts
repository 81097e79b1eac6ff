/**
 * The SMAP's tunnel MTU, as path-MTU discovery moves it (RFC 8201 over the IPv6 path to the PRR).
 * Pure state: the daemon feeds it Packet Too Big reports and timer ticks, and applies the MTU it
 * answers (smap0's MTU, the MSS clamp, the LAN's DHCP MTU).
 *
 *   base      what the tunnel may carry at most: [tunnel] mtu, or the WAN MTU - 40 (`auto`),
 *             or the PRR's lease MTU when smaller
 *   learnt    the IPv4 MTU a Packet Too Big left: its MTU - 40 (the outer IPv6 header), never
 *             below 1280 - 40 = 1240 (RFC 8201 §4: a PTB under the IPv6 minimum MTU lowers no
 *             further); held for `timeoutMs` after the latest PTB, then forgotten
 *   mtu       min(base, learnt): the tunnel MTU in force
 *
 * When the learnt MTU expires the full MTU is tried again (RFC 8201 §4, "reset to the first-hop
 * MTU"): the next large packet is the probe, and draws a new PTB if the path is still narrow. The
 * kernel keeps a path MTU of its own per destination (net.ipv6.route.mtu_expires, 600 s like our
 * default); while that is still lower the raise waits, because the kernel would fragment the
 * IPv6 packet rather than send it whole, and no PTB would ever correct a too-large tunnel MTU.
 */
import { IPV6_MIN_MTU, TUNNEL_OVERHEAD } from '../common/codec/constants.js';

/** How long to wait before asking the kernel again when its own path MTU is still the lower one. */
export const KERNEL_RECHECK_MS = 30_000;

export class PathMtu {
  private base_: number;
  private learnt: number | undefined;
  private until = 0;

  constructor(
    base: number,
    private readonly timeoutMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.base_ = base;
  }

  /** The tunnel MTU in force. */
  get mtu(): number {
    return this.learnt === undefined ? this.base_ : Math.min(this.base_, this.learnt);
  }

  get base(): number {
    return this.base_;
  }

  /** The MTU learnt from Packet Too Big, while it holds. */
  get learntMtu(): number | undefined {
    return this.learnt;
  }

  /** When the learnt MTU is due to be tried upward (ms, the `now` clock), or undefined. */
  get dueAt(): number | undefined {
    return this.learnt === undefined ? undefined : this.until;
  }

  /** A new base (config, WAN MTU, lease); the learnt MTU still holds below it. */
  setBase(base: number): void {
    this.base_ = base;
  }

  /**
   * An ICMPv6 Packet Too Big for a packet to the PRR, `info` = the IPv6 MTU it reports. True when
   * the tunnel MTU went down; a report at the current MTU restarts the timer (RFC 8201 §4).
   */
  tooBig(info: number): boolean {
    const next = tunnelMtuOfPtb(info);
    const cur = this.mtu;
    if (next > cur) return false;
    this.until = this.now() + this.timeoutMs;
    if (next === cur) {
      if (this.learnt === undefined) this.until = 0; // the base already is that small: nothing learnt
      return false;
    }
    this.learnt = next;
    return true;
  }

  /** Forget the learnt MTU at once (the path changed: a new PRR). */
  forget(): void {
    this.learnt = undefined;
    this.until = 0;
  }

  /**
   * The timer fired: forget the learnt MTU when it has expired, unless `kernelPathMtu` (the
   * kernel's IPv6 path MTU to the PRR, undefined when unknown) is still below the base. True
   * when the tunnel MTU went up. When the kernel holds it down, the learnt MTU follows the
   * kernel's and the check comes back after KERNEL_RECHECK_MS.
   */
  expire(kernelPathMtu: number | undefined): boolean {
    if (this.learnt === undefined || this.now() < this.until) return false;
    const before = this.mtu;
    if (kernelPathMtu !== undefined && kernelPathMtu - TUNNEL_OVERHEAD < this.base_) {
      this.learnt = Math.max(this.learnt, tunnelMtuOfPtb(kernelPathMtu));
      this.until = this.now() + Math.min(this.timeoutMs, KERNEL_RECHECK_MS);
      return this.mtu > before;
    }
    this.learnt = undefined;
    return this.mtu > before;
  }
}

/** The IPv4 MTU inside the tunnel for an IPv6 path MTU, never below 1280 - 40 (RFC 8201 §4). */
export function tunnelMtuOfPtb(info: number): number {
  return Math.max(IPV6_MIN_MTU, info) - TUNNEL_OVERHEAD;
}
