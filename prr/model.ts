/**
 * The PRR's model: everything `prr run` and `prr check-config` need from a config file, in the
 * runtime shapes of prr/policy.ts, whichever of the two accepted formats the file is in:
 *
 *   prr.ini        INI, its first meaningful line a `[section]` (common/config/prr.ts)
 *   the flat file  the 2010 experiment's `PrrAddrV4 ...` lines (prr/legacy.ts)
 *
 * The format is told by content, not by name: the first line that is not blank or a comment
 * decides. The flat file is read as the prr.ini it stands for ([prr] ipv4, tunnel_ipv6 and
 * shared_ipv4 from its three keys, one [subscriber.cpeN] per CPE), so every default (TUN prr0,
 * hairpinning, control socket, metrics, [internal]/[external] policies, tunnel MTU 1460) comes
 * from the one schema.
 */
import { readFileSync } from 'node:fs';
import { brIndexOf, parsePrrConfig, tunnelMtuOf, type PerSubscriber, type PrrConfig } from '../common/config/prr.js';
import type { LOG_LEVELS } from '../common/config/schema.js';
import { formatIpv4, ipv6Bytes, type HostPort, type Ipv4Prefix } from '../common/config/values.js';
import { parseIpv6Into } from '../common/codec/ipv6.js';
import { ConfigError } from '../common/errors.js';
import { LEGACY_KEYS, legacyLineKey, looksLikeLegacyKey, parseLegacy, type LegacyConfig } from './legacy.js';
import type { PrrPolicy, SidePolicy, StaticBinding } from './policy.js';

export type ConfigSource = 'ini' | 'legacy';

export interface MetricsSettings {
  enabled: boolean;
  listen: HostPort;
  perSubscriber: PerSubscriber;
  /** Track the ports CPEs send from ("ports active"). */
  portsActive: boolean;
}

export interface PrrModel {
  /** Which format the file was in, and its name as given. */
  source: ConfigSource;
  file: string;
  policy: PrrPolicy;
  /** Static bindings in file order (prr.ini) or by CPE number (flat file: cpe1, cpe2, ...). */
  bindings: StaticBinding[];
  /** TUN device name. */
  tun: string;
  /** How decapsulated IPv4 is sent: a raw socket in batches, or the TUN ([prr] ipv4_output). */
  ipv4Output: 'raw' | 'tun';
  /** Ask for TUN offloads ([tunnel] offload = auto). */
  offload: boolean;
  /** The shared IPv4 pools (the flat file's one IPv4Shared address is a /32). */
  pools: Ipv4Prefix[];
  /** The IPv4 MTU inside the tunnel, resolved: `[tunnel] mtu`, or `[internal] mtu` - 40. */
  tunnelMtu: number;
  /** Seconds a per-CPE path MTU learnt from Packet Too Big holds ([tunnel] pmtu_timeout). */
  pmtuTimeout: number;
  /** Whether port sets may include 0-1023 (registration hands out none either way unless true). */
  allowSystemPorts: boolean;
  controlSocket: string;
  metrics: MetricsSettings;
  logLevel: (typeof LOG_LEVELS)[number];
  /**
   * prr.ini's [registration] (for a flat file, the defaults: off): kept here so that starting
   * registration does not parse the file again (with a million static bindings, that doubled
   * load time and memory).
   */
  registration: PrrConfig['registration'];
}

const FORMATS = `prr.ini (INI, starting with a [section] such as [prr]) or the 2010 flat file (${LEGACY_KEYS.join(', ')} lines)`;

/** Read a PRR config file in either format. Every failure is a one-line ConfigError naming the file. */
export function loadPrrModel(file: string): PrrModel {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'ENOENT' ? 'no such file' : e.code === 'EACCES' ? 'permission denied' : e.code === 'EISDIR' ? 'is a directory' : e.message;
    throw new ConfigError(`cannot read config file: ${why}`, { file });
  }
  return parsePrrModel(text, file);
}

/** The model of config text; `file` names it in messages and anchors relative paths. */
export function parsePrrModel(text: string, file: string): PrrModel {
  return detectFormat(text, file) === 'ini' ? modelFromConfig(parsePrrConfig(text, file), 'ini', file) : modelFromLegacy(parseLegacy(text, file), file);
}

/** Which format `text` is in, by its first meaningful line; a ConfigError when it is neither. */
export function detectFormat(text: string, file: string): ConfigSource {
  // Line by line up to the first meaningful one (the file may hold a million sections).
  let i = 0;
  let first: string | undefined;
  for (let at = text.charCodeAt(0) === 0xfeff ? 1 : 0; at <= text.length; i++) {
    let nl = text.indexOf('\n', at);
    if (nl < 0) nl = text.length;
    const l = text.slice(at, nl > at && text.charCodeAt(nl - 1) === 13 ? nl - 1 : nl); // as split(/\r?\n/)
    at = nl + 1;
    if (!/^\s*([#;].*)?$/.test(l)) {
      first = l.trim();
      break;
    }
  }
  if (first === undefined) throw new ConfigError(`the file has no settings: expected ${FORMATS}`, { file });
  if (first.startsWith('[')) return 'ini'; // a malformed header is then reported by the INI loader
  const key = legacyLineKey(first);
  if (key !== undefined && looksLikeLegacyKey(key)) return 'legacy';
  throw new ConfigError(`not a PRR config file: expected ${FORMATS}, got ${JSON.stringify(first)}`, { file, line: i + 1 });
}

/** The model of a loaded prr.ini (or of the prr.ini a flat file stands for). */
export function modelFromConfig(cfg: PrrConfig, source: ConfigSource, file: string): PrrModel {
  const brAddresses = cfg.prr.tunnel_ipv6.map((a) => ipv6Bytes(a));
  // One slab for every CPE address: a Buffer of its own each costs ~10x its 16 bytes (and a
  // malloc that, freed, fragments the C heap for good), which a million static bindings feel.
  const slab = Buffer.allocUnsafe(16 * cfg.subscriber.size);
  const bindings: StaticBinding[] = [];
  for (const [name, sub] of cfg.subscriber) {
    const at = 16 * bindings.length;
    if (!parseIpv6Into(sub.ipv6, slab, at)) throw new ConfigError(`not an IPv6 address: "${sub.ipv6}"`, { file, section: `subscriber.${name}`, key: 'ipv6' });
    bindings.push({ subscriber: name, ipv6: slab.subarray(at, at + 16), ipv4: sub.shared_ipv4, ports: sub.ports, br: brIndexOf(cfg, sub.br) });
  }
  return {
    source,
    file,
    policy: {
      ipv4: cfg.prr.ipv4,
      brAddresses,
      hairpinning: cfg.prr.hairpinning,
      internal: sidePolicy(cfg.internal),
      external: sidePolicy(cfg.external),
    },
    bindings,
    tun: cfg.prr.tun,
    ipv4Output: cfg.prr.ipv4_output,
    offload: cfg.tunnel.offload === 'auto',
    pools: cfg.prr.shared_ipv4,
    tunnelMtu: tunnelMtuOf(cfg),
    pmtuTimeout: cfg.tunnel.pmtu_timeout,
    allowSystemPorts: cfg.prr.allow_system_ports,
    controlSocket: cfg.prr.control_socket,
    metrics: { enabled: cfg.metrics.enabled, listen: cfg.metrics.listen, perSubscriber: cfg.metrics.per_subscriber, portsActive: cfg.metrics.ports_active },
    logLevel: cfg.prr.log_level,
    registration: cfg.registration,
  };
}

/** The model of a flat file: the prr.ini it stands for, with its CPEs as bindings. */
export function modelFromLegacy(legacy: LegacyConfig, file: string): PrrModel {
  // parseLegacy has checked everything this [prr] section's rules check, with the flat file's lines.
  const equivalent = `[prr]
ipv4 = ${formatIpv4(legacy.prrIpv4)}
tunnel_ipv6 = ${legacy.prrIpv6}
shared_ipv4 = ${formatIpv4(legacy.shared)}
`;
  const model = modelFromConfig(parsePrrConfig(equivalent, file), 'legacy', file);
  model.bindings = legacy.cpes.map((c) => ({ subscriber: c.name, ipv6: ipv6Bytes(c.ipv6), ipv4: legacy.shared, ports: c.ports, br: 0 }));
  return model;
}

/** One line for `prr check-config`: `2 subscribers, pool 192.0.2.100/32, tunnel MTU 1460`. */
export function summarizeModel(model: PrrModel): string {
  const n = model.bindings.length;
  const pools = model.pools.map(String).join(', ');
  return `${n} subscriber${n === 1 ? '' : 's'}, pool${model.pools.length === 1 ? '' : 's'} ${pools}, tunnel MTU ${model.tunnelMtu}`;
}

function sidePolicy(side: PrrConfig['internal']): SidePolicy {
  return {
    mtu: side.mtu,
    generateIcmpErrors: side.generate_icmp_errors,
    allowIncomingIcmp: side.allow_incoming_icmp,
    errorRateLimit: { packets: side.icmp_rate_limit.packets, seconds: side.icmp_rate_limit.seconds },
    reassembly: {
      maxPackets: side.reassembly_max_packets,
      maxFragmentsPerPacket: side.reassembly_max_fragments,
      timeoutMs: side.reassembly_timeout * 1000,
    },
  };
}
