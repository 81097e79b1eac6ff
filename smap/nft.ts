/**
 * The CPE's NAT, written by the kernel's rules: one nftables table, `table ip smap`, replaced as a
 * whole with one `nft -f` (a transaction: the old table and the new one never mix, and a failure
 * leaves the old one in place). Example, for the range 10000-11000 and a 1460-byte tunnel:
 *
 *   table ip smap                  <- create if absent, so that the delete below cannot fail
 *   delete table ip smap
 *   table ip smap {
 *     chain postrouting {          <- SNAT: everything that leaves through the TUN, forwarded
 *       type nat hook postrouting priority srcnat; policy accept;       or the router's own
 *       oifname "smap0" meta l4proto { tcp, udp } snat ip to 192.0.2.1:10000-11000
 *       oifname "smap0" icmp type echo-request snat ip to 192.0.2.1:10000-11000   (echo id)
 *       oifname "smap0" snat ip to 192.0.2.1                     <- other protocols: address only
 *     }                                                             (the core drops them: no port)
 *     chain forward {
 *       type filter hook forward priority mangle; policy accept;
 *       oifname "smap0" ip saddr != 192.168.1.0/24 counter drop  <- only the LAN prefix is ours
 *       iifname "smap0" oifname "smap0" counter drop             <- unsolicited inbound: no loop
 *       oifname "smap0" tcp flags syn tcp option maxseg size > 1420 tcp option maxseg size set 1420
 *       iifname "smap0" tcp flags syn tcp option maxseg size > 1420 tcp option maxseg size set 1420
 *     }
 *   }
 *
 * PSID sets with several chunks (RFC 7597: a=6, k=6 gives 63 runs of 16 ports). One NAT range
 * must be contiguous, so the rule picks a run per new flow, round robin, and the kernel picks a
 * free port inside it:
 *
 *   snat ip to numgen inc mod 63 map { 0 : 192.0.2.1 . 1104-1119, 1 : 192.0.2.1 . 2128-2143, ... }
 *
 * The nat chain sees only the first packet of a flow, so a flow keeps its run. Round robin fills
 * the runs evenly; if the run picked has no free port toward that destination, conntrack refuses
 * the flow (its first packet is dropped, `insert_failed`), and the retransmission is a new flow
 * that gets the next run. A port outside the set is never used: the set is used to the last port
 * and never overrun. The lab test sends 500 connections through a 63-run set and checks every
 * source port the server sees.
 *
 * No NAT helper: nothing here attaches one (no `ct helper` object), and since Linux 6.0 the kernel
 * never assigns helpers by port on its own (older kernels: net.netfilter.nf_conntrack_helper, which
 * the daemon turns off). Helpers such as nf_nat_ftp open expectations on ports the NAT chooses
 * outside any port set: the reason FTP failed in the 2010 experiment.
 *
 * With the FTP ALG (smap/ftp-alg.ts, `[nat] ftp = on`), the table also holds its two hooks:
 *
 *   map ftp_data {                 <- server . port of our set : LAN client . its port (timeouts)
 *     type ipv4_addr . inet_service : ipv4_addr . inet_service; flags timeout;
 *   }
 *   chain prerouting {
 *     type nat hook prerouting priority dstnat; policy accept;
 *     iifname "smap0" ip daddr 192.0.2.1 meta l4proto tcp dnat ip to ip saddr . tcp dport map @ftp_data
 *     iifname != "smap0" ip saddr 192.168.1.0/24 ip daddr != 192.168.1.0/24 fib daddr type != local
 *       tcp dport 21 redirect to :PROXY     <- the LAN's FTP control connections, to the ALG
 *   }
 *
 * The MSS clamp holds both directions: our SYN tells the server what to send us, its SYN-ACK
 * tells the LAN host what to send; either must fit the tunnel MTU less 40 (IPv4 + TCP headers).
 */
import { formatIpv4, type Ipv4Prefix } from '../common/config/values.js';
import type { PortSet } from '../common/portset.js';

export const TABLE = 'smap';

export interface NatPlan {
  /** The TUN device (the IPv4 default route). */
  tun: string;
  lanPrefix: Ipv4Prefix;
  shared: number;
  ports: PortSet;
  /** The tunnel MTU: TCP MSS is clamped to mtu - 40. */
  mtu: number;
  /** The FTP ALG's local port, when it runs. */
  ftpProxyPort?: number | undefined;
}

/** The map of the FTP ALG's data-connection mappings. */
export const FTP_MAP = 'ftp_data';

const IPV4_TCP_HEADERS = 40;

/** The `snat` target: one contiguous range, or a round-robin map over the set's runs. */
export function snatTarget(shared: number, ports: PortSet): string {
  const addr = formatIpv4(shared);
  const chunks = ports.chunks();
  if (chunks.length === 1) {
    const [first, last] = chunks[0]!;
    return `${addr}:${first}-${last}`;
  }
  const elements = chunks.map(([first, last], i) => `${i} : ${addr} . ${first}-${last}`);
  return `numgen inc mod ${chunks.length} map { ${elements.join(', ')} }`;
}

/** The whole `nft -f` input that replaces `table ip smap` atomically. */
export function renderTable(p: NatPlan): string {
  const tun = JSON.stringify(p.tun);
  const to = snatTarget(p.shared, p.ports);
  const mss = p.mtu - IPV4_TCP_HEADERS;
  const clamp = `tcp flags syn tcp option maxseg size > ${mss} tcp option maxseg size set ${mss}`;
  return [
    `# Written by smap (A+P CPE agent): shared ${formatIpv4(p.shared)}, ports ${p.ports}, tunnel MTU ${p.mtu}.`,
    `table ip ${TABLE}`,
    `delete table ip ${TABLE}`,
    `table ip ${TABLE} {`,
    '\tchain postrouting {',
    '\t\ttype nat hook postrouting priority srcnat; policy accept;',
    `\t\toifname ${tun} meta l4proto { tcp, udp } snat ip to ${to}`,
    `\t\toifname ${tun} icmp type echo-request snat ip to ${to}`,
    `\t\toifname ${tun} snat ip to ${formatIpv4(p.shared)}`,
    '\t}',
    ...ftpLines(p),
    '\tchain forward {',
    '\t\ttype filter hook forward priority mangle; policy accept;',
    `\t\toifname ${tun} ip saddr != ${p.lanPrefix} counter drop`,
    `\t\tiifname ${tun} oifname ${tun} counter drop`,
    `\t\toifname ${tun} ${clamp}`,
    `\t\tiifname ${tun} ${clamp}`,
    '\t}',
    '}',
    '',
  ].join('\n');
}

function ftpLines(p: NatPlan): string[] {
  if (p.ftpProxyPort === undefined) return [];
  const tun = JSON.stringify(p.tun);
  return [
    `\tmap ${FTP_MAP} {`,
    '\t\ttype ipv4_addr . inet_service : ipv4_addr . inet_service',
    '\t\tflags timeout',
    '\t}',
    '\tchain prerouting {',
    '\t\ttype nat hook prerouting priority dstnat; policy accept;',
    `\t\tiifname ${tun} ip daddr ${formatIpv4(p.shared)} meta l4proto tcp dnat ip to ip saddr . tcp dport map @${FTP_MAP}`,
    `\t\tiifname != ${tun} ip saddr ${p.lanPrefix} ip daddr != ${p.lanPrefix} fib daddr type != local tcp dport 21 redirect to :${p.ftpProxyPort}`,
    '\t}',
  ];
}

/** One FTP data mapping in @ftp_data: `add` with its timeout, or `delete`. */
export function ftpMappingText(op: 'add' | 'delete', m: { server: number; port: number; client: number; clientPort: number; timeoutSec: number }): string {
  const key = `${formatIpv4(m.server)} . ${m.port}`;
  const element = op === 'add' ? `${key} timeout ${m.timeoutSec}s : ${formatIpv4(m.client)} . ${m.clientPort}` : key;
  return `${op} element ip ${TABLE} ${FTP_MAP} { ${element} }\n`;
}

/** `nft -f` input that removes the table, whether or not it exists. */
export function removeTableText(): string {
  return `table ip ${TABLE}\ndelete table ip ${TABLE}\n`;
}
