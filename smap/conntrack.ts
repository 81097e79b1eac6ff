/**
 * What the SMAP asks of conntrack: forget the LAN's flows when the binding changes, and count the
 * ports of the port set in use.
 *
 * Flush (RFC 7596 §5.1: after a binding change the lwB4 must not keep using the old address or
 * ports): delete every IPv4 entry whose original source is in the LAN prefix, and every entry whose
 * reply goes to the old shared address (the router's own flows, NATed from its own addresses).
 *
 * Ports in use: one entry per NATed flow; its reply tuple's destination is the shared address and
 * its destination port (or ICMP id) the port of our set it holds. Entries are read from
 * /proc/net/nf_conntrack or from `conntrack -L` output: both print, per line, the protocol name,
 * then the original tuple's `src= dst= sport= dport=` (or `type= code= id=`), then the reply's.
 */
import { formatIpv4, type Ipv4Prefix } from '../common/config/values.js';
import type { UsageReport } from '../provisioning/protocol.js';

/** `conntrack` argument lists that flush the LAN's entries and those NATed to `shared`. */
export function flushCommands(lanPrefix: Ipv4Prefix, shared: number | undefined): string[][] {
  const cmds = [['-D', '-f', 'ipv4', '-s', String(lanPrefix)]];
  if (shared !== undefined) cmds.push(['-D', '-f', 'ipv4', '-q', formatIpv4(shared)]);
  return cmds;
}

/** The service categories of the 2010 port-usage study, by the original destination port. */
export const SERVICES = ['dns', 'http', 'https', 'other'] as const;
export type Service = (typeof SERVICES)[number];

function serviceOf(port: number): Service {
  if (port === 53) return 'dns';
  if (port === 80) return 'http';
  if (port === 443) return 'https';
  return 'other';
}

export interface PortUsage {
  /** Distinct ports of the set held, per protocol (tcp, udp, icmp; others by name). */
  byProtocol: Record<string, number>;
  /** NATed flows per service (dns, http, https, other). */
  byService: Record<Service, number>;
  /** NATed flows in all. */
  flows: number;
}

/** One flow NATed to the shared address: its protocol, the port of our set it holds (the ICMP echo
 * id for icmp), and its original destination port. */
export interface NatedFlow {
  proto: string;
  port: number;
  origDport: number;
}

/** The flows NATed to `shared` in conntrack listing text. Unparsable lines are skipped. */
export function* natedFlows(text: string, shared: number): Generator<NatedFlow> {
  const sharedText = formatIpv4(shared);
  for (const line of text.split('\n')) {
    const tokens = line.trim().split(/\s+/);
    const proto = tokens.find((w) => /^[a-z][a-z0-9-]*$/.test(w) && w !== 'ipv4' && w !== 'ipv6');
    if (proto === undefined || tokens.includes('ipv6')) continue;
    const dst: string[] = [];
    const dport: string[] = [];
    const id: string[] = [];
    for (const w of tokens) {
      const eq = w.indexOf('=');
      if (eq < 0) continue;
      const k = w.slice(0, eq);
      const val = w.slice(eq + 1);
      if (k === 'dst') dst.push(val);
      else if (k === 'dport') dport.push(val);
      else if (k === 'id') id.push(val);
    }
    // Second occurrence = the reply tuple.
    if (dst[1] !== sharedText) continue;
    const port = Number(proto === 'icmp' ? id[1] : dport[1]);
    if (!Number.isInteger(port)) continue;
    yield { proto, port, origDport: Number(dport[0]) };
  }
}

/** Count the flows NATed to `shared` in conntrack listing text. Unparsable lines are skipped. */
export function portUsage(text: string, shared: number): PortUsage {
  const ports = new Map<string, Set<number>>();
  const byService = Object.fromEntries(SERVICES.map((s) => [s, 0])) as Record<Service, number>;
  let flows = 0;
  for (const { proto, port, origDport } of natedFlows(text, shared)) {
    flows++;
    let set = ports.get(proto);
    if (set === undefined) ports.set(proto, (set = new Set()));
    set.add(port);
    byService[proto === 'icmp' ? 'other' : serviceOf(origDport)]++;
  }
  const byProtocol: Record<string, number> = { tcp: 0, udp: 0, icmp: 0 };
  for (const [proto, set] of ports) byProtocol[proto] = set.size;
  return { byProtocol, byService, flows };
}

/** The `--usage` report of a count (provisioning/protocol.ts): tcp, udp, icmp, and the rest summed as other. */
export function usageReport(u: PortUsage): UsageReport {
  const r: UsageReport = { tcp: u.byProtocol['tcp'] ?? 0, udp: u.byProtocol['udp'] ?? 0, icmp: u.byProtocol['icmp'] ?? 0, other: 0 };
  for (const [proto, n] of Object.entries(u.byProtocol)) if (proto !== 'tcp' && proto !== 'udp' && proto !== 'icmp') r.other += n;
  return r;
}

/**
 * New flows conntrack refused since boot: the sum over CPUs of `insert_failed` in
 * /proc/net/stat/nf_conntrack (per network namespace; hexadecimal columns, one row per CPU).
 * On a CPE that is the NAT running out of ports: when every port of the set toward a destination
 * is taken, the SNAT keeps a clashing tuple and the new flow's first packet is dropped at confirm.
 * Undefined when the text has no such column (not that file).
 */
export function natFailures(statText: string): number | undefined {
  const [header, ...rows] = statText.split('\n').filter((l) => l.trim() !== '');
  const col = header?.trim().split(/\s+/).indexOf('insert_failed') ?? -1;
  if (col < 0) return undefined;
  let sum = 0;
  for (const row of rows) {
    const v = Number.parseInt(row.trim().split(/\s+/)[col] ?? '', 16);
    if (Number.isNaN(v)) return undefined;
    sum += v;
  }
  return sum;
}
