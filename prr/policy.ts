/**
 * The PRR's runtime model: policies and static bindings, as the forwarding core and the daemon
 * use them. Built from prr.ini or from the 2010 experiment's flat file (prr/model.ts), and by the
 * conformance harness from a peer's config, so all three go through the same shape.
 *
 * Sides, as in RFC 7596 and Snabb's lwAFTR: *internal* is the IPv6 side toward the CPEs (the
 * tunnel), *external* the IPv4 side toward the Internet.
 */
import type { PortSet } from '../common/portset.js';

export interface SidePolicy {
  /**
   * Link MTU of this side. Internal: the IPv6 MTU toward the CPEs (the tunnel then carries at
   * most mtu - 40 bytes of IPv4: PrrModel.tunnelMtu, prr.ini `[tunnel] mtu`). External: the IPv4
   * MTU toward the Internet.
   */
  mtu: number;
  /** Send ICMP errors out of this side (ICMPv6 to CPEs / ICMPv4 to Internet hosts). */
  generateIcmpErrors: boolean;
  /** Accept ICMP arriving on this side (beyond what the tunnel needs), else drop and count. */
  allowIncomingIcmp: boolean;
  /** At most `packets` ICMP errors generated per `seconds` on this side (token bucket). */
  errorRateLimit: { packets: number; seconds: number };
  /** Reassembly bounds: packets in reassembly at once, fragments per packet, timeout. */
  reassembly: { maxPackets: number; maxFragmentsPerPacket: number; timeoutMs: number };
}

export interface StaticBinding {
  subscriber: string;
  /** The CPE's IPv6 address, 16 bytes. */
  ipv6: Buffer;
  ipv4: number;
  ports: PortSet;
  /** Index into PrrPolicy.brAddresses: the tunnel endpoint this CPE uses. */
  br: number;
}

export interface PrrPolicy {
  /** The PRR's own IPv4 address: source of the ICMPv4 errors it originates. */
  ipv4: number;
  /** Tunnel endpoint (BR) IPv6 addresses, 16 bytes each; bindings refer to them by index. */
  brAddresses: Buffer[];
  /** Switch subscriber-to-subscriber traffic on shared addresses inside the PRR (RFC 7596 §6.2). */
  hairpinning: boolean;
  internal: SidePolicy;
  external: SidePolicy;
}

export const DEFAULT_SIDE: SidePolicy = {
  mtu: 1500,
  generateIcmpErrors: true,
  allowIncomingIcmp: true,
  errorRateLimit: { packets: 1000, seconds: 1 },
  reassembly: { maxPackets: 1024, maxFragmentsPerPacket: 40, timeoutMs: 2000 },
};

export function defaultPolicy(ipv4: number, brAddresses: Buffer[]): PrrPolicy {
  return {
    ipv4,
    brAddresses,
    hairpinning: true,
    internal: { ...DEFAULT_SIDE, errorRateLimit: { ...DEFAULT_SIDE.errorRateLimit }, reassembly: { ...DEFAULT_SIDE.reassembly } },
    external: { ...DEFAULT_SIDE, errorRateLimit: { ...DEFAULT_SIDE.errorRateLimit }, reassembly: { ...DEFAULT_SIDE.reassembly } },
  };
}
