/**
 * The schema of /etc/prr/prr.ini (see prr/prr.ini.example for a commented file).
 *
 *   [prr]            tunnel endpoint(s), TUN name, shared IPv4 pools, policy switches, control socket
 *   [tunnel]         mtu
 *   [metrics]        Prometheus listener and the per-subscriber series cap
 *   [subscriber.X]   static bindings: CPE IPv6 address, shared IPv4 address, port set
 *
 * Cross-field rules, checked at load: pools do not overlap; a static subscriber's shared IPv4 is in
 * a pool; its ports avoid 0-1023 unless allow_system_ports; no two subscribers share a CPE IPv6
 * address or overlap on the same shared IPv4 address (the error names both).
 */
import { FIRST_USER_PORT, type PortSet } from '../portset.js';
import { loadIni, parseIniText } from './load.js';
import * as s from './schema.js';
import { formatIpv4, parseInteger } from './values.js';

export type PerSubscriber = { mode: 'all' } | { mode: 'none' } | { mode: 'top'; n: number };

/** `all`, `none` or `top:N`: how many subscribers get their own metric series. */
export function perSubscriberField<const O extends s.Common<PerSubscriber> = {}>(o?: O) {
  return s.custom<PerSubscriber, O>('all, none or top:N', (raw) => {
    const r = raw.toLowerCase();
    if (r === 'all' || r === 'none') return { mode: r };
    const m = /^top:(\d+)$/.exec(r);
    const n = m?.[1] === undefined ? undefined : parseInteger(m[1]);
    return n !== undefined && n >= 1 ? { mode: 'top', n } : undefined;
  }, o);
}

const sections = {
  prr: {
    /** The PRR's IPv6 tunnel endpoint address(es): what CPEs send to. */
    tunnel_ipv6: s.list(s.ipv6(), { required: true, min: 1 }),
    tun: s.ifName({ default: 'prr0' }),
    /** Shared IPv4 pools: prefixes or single addresses. */
    shared_ipv4: s.list(s.ipv4Prefix({ allowBare: true }), { required: true, min: 1 }),
    hairpinning: s.bool({ default: true }),
    allow_system_ports: s.bool({ default: false }),
    control_socket: s.filePath({ default: '/run/prr/control.sock' }),
    log_level: s.oneOf(s.LOG_LEVELS, { default: 'info' }),
  },
  tunnel: {
    mtu: s.autoInt({ min: s.MTU_MIN, max: s.MTU_MAX, default: 'auto' }),
  },
  metrics: {
    enabled: s.bool({ default: true }),
    listen: s.hostPort({ default: { host: '127.0.0.1', port: 9150 } }),
    per_subscriber: perSubscriberField({ default: { mode: 'top', n: 100 } }),
  },
};
const patterns = {
  subscriber: {
    ipv6: s.ipv6({ required: true }),
    shared_ipv4: s.ipv4({ required: true }),
    ports: s.portSet({ required: true, allowSystemPorts: true }), // checked against allow_system_ports below
  },
};

export const prrSchema = s.defineSchema({ sections, patterns, check: checkPrr });

export type PrrConfig = s.ConfigOf<typeof prrSchema>;

export function loadPrrConfig(file: string): PrrConfig {
  return loadIni(file, prrSchema);
}

export function parsePrrConfig(text: string, fileName = '<text>'): PrrConfig {
  return parseIniText(text, fileName, prrSchema);
}

/** One line for `prr check-config`: `2 subscribers, pool 192.0.2.0/30`. */
export function summarizePrr(cfg: PrrConfig): string {
  const n = cfg.subscriber.size;
  const pools = cfg.prr.shared_ipv4.map(String).join(', ');
  return `${n} subscriber${n === 1 ? '' : 's'}, pool${cfg.prr.shared_ipv4.length === 1 ? '' : 's'} ${pools}`;
}

function checkPrr(cfg: s.Loaded<typeof sections, typeof patterns>, at: s.Locator): void {
  const pools = cfg.prr.shared_ipv4;
  pools.forEach((p, i) => {
    const clash = pools.slice(0, i).find((q) => q.overlaps(p));
    if (clash !== undefined) throw at.error('prr', 'shared_ipv4', `pools ${clash} and ${p} overlap`);
  });
  const byIpv6 = new Map<string, string>();
  const byIpv4 = new Map<number, Array<{ name: string; ports: PortSet }>>();
  for (const [name, sub] of cfg.subscriber) {
    const section = `subscriber.${name}`;
    const other = (n: string): string => `[subscriber.${n}]${lineNote(at, `subscriber.${n}`)}`;
    if (!pools.some((p) => p.contains(sub.shared_ipv4))) {
      throw at.error(section, 'shared_ipv4', `${formatIpv4(sub.shared_ipv4)} is outside the shared pools (${pools.join(', ')})`);
    }
    if (sub.ports.min < FIRST_USER_PORT && !cfg.prr.allow_system_ports) {
      throw at.error(section, 'ports', `${sub.ports} includes system ports (0-1023); set [prr] allow_system_ports = true to allow them`);
    }
    const twin = byIpv6.get(sub.ipv6);
    if (twin !== undefined) throw at.error(section, 'ipv6', `${sub.ipv6} is also the address of ${other(twin)}`);
    byIpv6.set(sub.ipv6, name);
    const peers = byIpv4.get(sub.shared_ipv4) ?? [];
    const clash = peers.find((p) => p.ports.overlaps(sub.ports));
    if (clash !== undefined) {
      throw at.error(section, 'ports', `${sub.ports} on ${formatIpv4(sub.shared_ipv4)} overlaps ${other(clash.name)} ports ${clash.ports}`);
    }
    peers.push({ name, ports: sub.ports });
    byIpv4.set(sub.shared_ipv4, peers);
  }
}

function lineNote(at: s.Locator, section: string): string {
  const line = at.line(section);
  return line === undefined ? '' : ` (line ${line})`;
}
