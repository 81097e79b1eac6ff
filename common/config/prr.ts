/**
 * The schema of /etc/prr/prr.ini (see prr/prr.ini.example for a commented file).
 *
 *   [prr]            own IPv4, tunnel endpoint(s), TUN name, shared IPv4 pools, switches, control socket
 *   [tunnel]         mtu: the IPv4 MTU inside the tunnel
 *   [internal]       the IPv6 side toward the CPEs: link MTU, ICMP, reassembly bounds
 *   [external]       the IPv4 side toward the Internet: the same keys
 *   [metrics]        Prometheus listener and the per-subscriber series cap
 *   [registration]   the embedded SSH registration server: listener, host key, authorized keys,
 *                    store, lease, port-count policy, rate limits (off unless enabled = true)
 *   [subscriber.X]   static bindings: CPE IPv6 address, shared IPv4 address, port set, tunnel endpoint
 *
 * MTUs. `[internal] mtu` is the IPv6 MTU of the path toward the CPEs (default 1500);
 * `[tunnel] mtu` is the IPv4 MTU that fits inside it (the TUN MTU, the MTU the PRR fragments to or
 * reports in ICMPv4 Fragmentation Needed). `auto` (the default) is `[internal] mtu` - 40 (1460 for
 * 1500, 1240 for 1280). An explicit `[tunnel] mtu` may be lower than that (a narrower link further
 * along the path) but never higher: the PRR does not rely on IPv6 fragmentation of its own tunnel
 * packets. `[external] mtu` is the IPv4 MTU toward the Internet, independent of the tunnel.
 *
 * `[prr] ipv4` is required: the PRR's own IPv4 address, the source of the ICMPv4 errors it sends
 * (Fragmentation Needed, unreachables). It cannot be derived from the pools, whose addresses and
 * ports belong to customers, so it must lie outside every pool.
 *
 * Cross-field rules, checked at load: pools do not overlap; the PRR's ipv4 is unicast and outside
 * the pools; tunnel_ipv6 has no duplicates; `[tunnel] mtu` <= `[internal] mtu` - 40; a static
 * subscriber's shared IPv4 is in a pool; its ports avoid 0-1023 unless allow_system_ports; its
 * `br` is one of tunnel_ipv6; its ipv6 is not a tunnel endpoint; no two subscribers share a CPE
 * IPv6 address or overlap on the same shared IPv4 address (the error names both).
 */
import { IPV6_HLEN } from '../codec/constants.js';
import { ConfigError } from '../errors.js';
import { FIRST_USER_PORT, PortClaims, PsidSet, type PortSet } from '../portset.js';
import { loadIni, parseIniText } from './load.js';
import * as s from './schema.js';
import { formatIpv4, parseDuration, parseInteger } from './values.js';

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

/** At most `packets` per `seconds`. */
export interface Rate {
  packets: number;
  seconds: number;
}

export const RATE_MAX_PACKETS = 1_000_000_000;
export const RATE_MAX_SECONDS = 3600;

/**
 * `1000/1s`, `100/10s`, `6000/1m`, `1000/s`, or a plain `1000` (per second). The interval is a
 * duration as everywhere else in the config (whole seconds, 1s..1h). Zero is refused: to send no
 * ICMP errors at all, set generate_icmp_errors = false.
 */
export function parseRate(text: string): Rate | undefined {
  const m = /^(\d{1,10})\s*(?:\/\s*(\S+))?$/.exec(text.trim());
  if (m === null || m[1] === undefined) return undefined;
  const packets = Number(m[1]);
  const unit = m[2]?.toLowerCase();
  const seconds = unit === undefined ? 1 : parseDuration(/^[smhd]$/.test(unit) ? `1${unit}` : unit);
  if (seconds === undefined || seconds < 1 || seconds > RATE_MAX_SECONDS || packets > RATE_MAX_PACKETS) return undefined;
  if (packets === 0) throw new ConfigError('a rate of 0 sends nothing; set generate_icmp_errors = false instead');
  return { packets, seconds };
}

export function rateField<const O extends s.Common<Rate> = {}>(o?: O) {
  return s.custom<Rate, O>('packets per interval (1000/1s, 100/10s) or packets per second (1000)', (raw) => parseRate(raw), o);
}

/** Bounds of `[internal] mtu`: an IPv6 link MTU (RFC 8200: at least 1280). */
export const INTERNAL_MTU_MIN = 1280;
export const INTERNAL_MTU_MAX = 65535;
/** Bounds of `[external] mtu`: an IPv4 link MTU (RFC 791: at least 68). */
export const EXTERNAL_MTU_MIN = 68;
export const EXTERNAL_MTU_MAX = 65535;

/** The keys of `[internal]` and `[external]`; only the MTU bounds differ. */
function side<const Min extends number, const Max extends number>(mtuMin: Min, mtuMax: Max) {
  return {
    /** Link MTU of this side (IPv6 inside, IPv4 outside). */
    mtu: s.int({ min: mtuMin, max: mtuMax, default: 1500 }),
    /** Send ICMP errors out of this side. */
    generate_icmp_errors: s.bool({ default: true }),
    /** Accept ICMP arriving on this side (beyond what the tunnel needs). */
    allow_incoming_icmp: s.bool({ default: true }),
    /** Token bucket for the ICMP errors generated toward this side. */
    icmp_rate_limit: rateField({ default: { packets: 1000, seconds: 1 } }),
    /** Packets in reassembly at once. */
    reassembly_max_packets: s.int({ min: 1, max: 1_048_576, default: 1024 }),
    /** Fragments per packet (a 65535-byte packet cut in 8-byte pieces has 8192). */
    reassembly_max_fragments: s.int({ min: 2, max: 8192, default: 40 }),
    /** How long a partly reassembled packet is kept. */
    reassembly_timeout: s.duration({ min: 1, max: 120, default: 2 }),
  };
}

const sections = {
  prr: {
    /** The PRR's own IPv4 address: source of the ICMPv4 errors it originates. */
    ipv4: s.ipv4({ required: true }),
    /** The PRR's IPv6 tunnel endpoint (BR) address(es): what CPEs send to. */
    tunnel_ipv6: s.list(s.ipv6(), { required: true, min: 1 }),
    tun: s.ifName({ default: 'prr0' }),
    /**
     * How decapsulated IPv4 leaves: `raw` = a raw IPv4 socket, a batch per sendmmsg() (the kernel
     * routes it as locally generated; what it refuses goes through the TUN); `tun` = one write()
     * per packet to the TUN, forwarded by the kernel. See common/native/src/raw4.c.
     */
    ipv4_output: s.oneOf(['raw', 'tun'] as const, { default: 'raw' }),
    /** Shared IPv4 pools: prefixes or single addresses. */
    shared_ipv4: s.list(s.ipv4Prefix({ allowBare: true }), { required: true, min: 1 }),
    hairpinning: s.bool({ default: true }),
    allow_system_ports: s.bool({ default: false }),
    control_socket: s.filePath({ default: '/run/prr/control.sock' }),
    log_level: s.oneOf(s.LOG_LEVELS, { default: 'info' }),
  },
  tunnel: {
    mtu: s.autoInt({ min: s.MTU_MIN, max: s.MTU_MAX, default: 'auto' }),
    /** How long a path MTU learnt from Packet Too Big holds before the tunnel tries the full MTU again (RFC 8201 §4). */
    pmtu_timeout: s.duration({ min: s.PMTU_TIMEOUT_MIN, max: s.PMTU_TIMEOUT_MAX, default: s.PMTU_TIMEOUT_DEFAULT }),
    /**
     * TUN offloads on the TUN (as the SMAP's [tunnel] offload): TCP/UDP super-packets from the
     * Internet are cut into tunnel-MTU packets in C; consecutive TCP segments of one flow toward
     * the Internet leave as one super-packet through the TUN (the rest as [prr] ipv4_output says).
     * `auto` asks the kernel and falls back if it refuses; `off` never asks.
     */
    offload: s.oneOf(['auto', 'off'] as const, { default: 'auto' }),
  },
  internal: side(INTERNAL_MTU_MIN, INTERNAL_MTU_MAX),
  external: side(EXTERNAL_MTU_MIN, EXTERNAL_MTU_MAX),
  metrics: {
    enabled: s.bool({ default: true }),
    listen: s.hostPort({ default: { host: '127.0.0.1', port: 9150 } }),
    per_subscriber: perSubscriberField({ default: { mode: 'top', n: 100 } }),
    /** Track the ports each CPE sends from (prr_subscriber_ports_active, prr/port-activity.ts). */
    ports_active: s.bool({ default: true }),
  },
  registration: {
    enabled: s.bool({ default: false }),
    /** Its own listener, apart from the data plane and the metrics. */
    listen: s.hostPort({ default: { host: '::', port: 2222 } }),
    /** ed25519, OpenSSH format; generated (mode 0600) on first start when absent. */
    host_key: s.filePath({ default: '/var/lib/prr/ssh_host_ed25519_key' }),
    /** OpenSSH authorized_keys format, with the options name=, ports=, set= (prr/registration-keys.ts). */
    authorized_keys: s.filePath({ default: '/etc/prr/authorized_keys' }),
    /** The SQLite store of registered bindings (WAL, synchronous = FULL). */
    database: s.filePath({ default: '/var/lib/prr/registrations.db' }),
    lease: s.duration({ min: 60, max: 30 * 86400, default: 86400 }),
    /** Ports per CPE when neither the request nor the key says: also the allocator's slot size. */
    default_ports: s.int({ min: 1, max: 65536, default: 1000 }),
    /** Bounds of a CPE's `--ports N` request (a key's ports= or set= is the operator's choice). */
    min_ports: s.int({ min: 1, max: 65536, default: 200 }),
    max_ports: s.int({ min: 1, max: 65536, default: 4000 }),
    /** RFC 7597 PSID sets instead of ranges: PSID length k (0 = ranges of default_ports), offset a. */
    psid_length: s.int({ min: 0, max: 15, default: 0 }),
    psid_offset: s.int({ min: 0, max: 15, default: 6 }),
    /** Requests per key, and over all keys. */
    rate_per_key: rateField({ default: { packets: 10, seconds: 60 } }),
    rate_total: rateField({ default: { packets: 1000, seconds: 1 } }),
  },
};
const patterns = {
  subscriber: {
    ipv6: s.ipv6({ required: true }),
    shared_ipv4: s.ipv4({ required: true }),
    ports: s.portSet({ required: true, allowSystemPorts: true }), // checked against allow_system_ports below
    /** The tunnel endpoint this CPE uses: one of [prr] tunnel_ipv6, default the first. */
    br: s.ipv6(),
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

/** The IPv4 MTU inside the tunnel: `[tunnel] mtu`, or `[internal] mtu` - 40 when it is `auto`. */
export function tunnelMtuOf(cfg: Pick<PrrConfig, 'tunnel' | 'internal'>): number {
  return cfg.tunnel.mtu === 'auto' ? cfg.internal.mtu - IPV6_HLEN : cfg.tunnel.mtu;
}

/** Index of a subscriber's tunnel endpoint in `[prr] tunnel_ipv6` (its `br`, else the first). */
export function brIndexOf(cfg: Pick<PrrConfig, 'prr'>, br: string | undefined): number {
  return br === undefined ? 0 : cfg.prr.tunnel_ipv6.indexOf(br);
}

/** True for an address a host may use as its own: not 0/8, 127/8, multicast or reserved (224/3). */
export function isUnicastIpv4(ipv4: number): boolean {
  const top = ipv4 >>> 24;
  return top !== 0 && top !== 127 && top < 224;
}

function checkPrr(cfg: s.Loaded<typeof sections, typeof patterns>, at: s.Locator): void {
  const pools = cfg.prr.shared_ipv4;
  pools.forEach((p, i) => {
    const clash = pools.slice(0, i).find((q) => q.overlaps(p));
    if (clash !== undefined) throw at.error('prr', 'shared_ipv4', `pools ${clash} and ${p} overlap`);
  });
  const own = cfg.prr.ipv4;
  if (!isUnicastIpv4(own)) throw at.error('prr', 'ipv4', `${formatIpv4(own)} is not a unicast address the PRR can send from`);
  const ownPool = pools.find((p) => p.contains(own));
  if (ownPool !== undefined) {
    throw at.error('prr', 'ipv4', `${formatIpv4(own)} is in the shared pool ${ownPool}, whose ports belong to subscribers; use an address of the PRR's own`);
  }
  const brs = cfg.prr.tunnel_ipv6;
  brs.forEach((br, i) => {
    if (brs.indexOf(br) !== i) throw at.error('prr', 'tunnel_ipv6', `${br} is listed twice`);
  });
  const auto = cfg.internal.mtu - IPV6_HLEN;
  if (cfg.tunnel.mtu !== 'auto' && cfg.tunnel.mtu > auto) {
    throw at.error('tunnel', 'mtu', `${cfg.tunnel.mtu} does not fit in [internal] mtu ${cfg.internal.mtu} - 40 = ${auto}; lower it or raise [internal] mtu`);
  }

  const reg = cfg.registration;
  if (reg.min_ports > reg.max_ports) throw at.error('registration', 'min_ports', `${reg.min_ports} is above max_ports ${reg.max_ports}`);
  if (reg.default_ports < reg.min_ports || reg.default_ports > reg.max_ports) {
    throw at.error('registration', 'default_ports', `${reg.default_ports} is outside min_ports..max_ports (${reg.min_ports}-${reg.max_ports})`);
  }
  const low = cfg.prr.allow_system_ports ? 0 : FIRST_USER_PORT;
  if (reg.default_ports > 65536 - low) throw at.error('registration', 'default_ports', `${reg.default_ports} ports do not fit above port ${low}`);
  if (reg.psid_length > 0) {
    if (reg.psid_offset + reg.psid_length > 16) throw at.error('registration', 'psid_length', `psid_offset ${reg.psid_offset} + psid_length ${reg.psid_length} is over 16 bits`);
    const min = new PsidSet(reg.psid_offset, reg.psid_length, 0, { allowSystemPorts: true }).min;
    if (min < low) throw at.error('registration', 'psid_offset', `${reg.psid_offset} puts port ${min} in a set; give at least 6 or set [prr] allow_system_ports = true`);
  }

  const byIpv4 = new Map<number, { claims: PortClaims; subs: Array<{ name: string; ports: PortSet }> }>();
  for (const [name, sub] of cfg.subscriber) {
    const section = `subscriber.${name}`;
    const other = (n: string): string => `[subscriber.${n}]${lineNote(at, `subscriber.${n}`)}`;
    if (!pools.some((p) => p.contains(sub.shared_ipv4))) {
      throw at.error(section, 'shared_ipv4', `${formatIpv4(sub.shared_ipv4)} is outside the shared pools (${pools.join(', ')})`);
    }
    if (sub.ports.min < FIRST_USER_PORT && !cfg.prr.allow_system_ports) {
      throw at.error(section, 'ports', `${sub.ports} includes system ports (0-1023); set [prr] allow_system_ports = true to allow them`);
    }
    if (sub.br !== undefined && !brs.includes(sub.br)) {
      throw at.error(section, 'br', `${sub.br} is not one of [prr] tunnel_ipv6 (${brs.join(', ')})`);
    }
    if (brs.includes(sub.ipv6)) throw at.error(section, 'ipv6', `${sub.ipv6} is a tunnel endpoint of the PRR ([prr] tunnel_ipv6)`);
    // Several sections may name one CPE address: one CPE with several port sets (softwires,
    // RFC 7596 §5.1). Their sets must still not overlap, which the check below enforces.
    const peers = byIpv4.get(sub.shared_ipv4) ?? { claims: new PortClaims(), subs: [] };
    if (!peers.claims.claim(sub.ports)) {
      // Only now look for whom it overlaps: the bitmap keeps the check linear in the bindings.
      const clash = peers.subs.find((p) => p.ports.overlaps(sub.ports))!;
      throw at.error(section, 'ports', `${sub.ports} on ${formatIpv4(sub.shared_ipv4)} overlaps ${other(clash.name)} ports ${clash.ports}`);
    }
    peers.subs.push({ name, ports: sub.ports });
    byIpv4.set(sub.shared_ipv4, peers);
  }
}

function lineNote(at: s.Locator, section: string): string {
  const line = at.line(section);
  return line === undefined ? '' : ` (line ${line})`;
}
