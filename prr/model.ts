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
  /** The shared IPv4 pools (the flat file's one IPv4Shared address is a /32). */
  pools: Ipv4Prefix[];
  /** The IPv4 MTU inside the tunnel, resolved: `[tunnel] mtu`, or `[internal] mtu` - 40. */
  tunnelMtu: number;
  /** Whether port sets may include 0-1023 (registration hands out none either way unless true). */
  allowSystemPorts: boolean;
  controlSocket: string;
  metrics: MetricsSettings;
  logLevel: (typeof LOG_LEVELS)[number];
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
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const i = lines.findIndex((l) => !/^\s*([#;].*)?$/.test(l));
  if (i < 0) throw new ConfigError(`the file has no settings: expected ${FORMATS}`, { file });
  const first = (lines[i] ?? '').trim();
  if (first.startsWith('[')) return 'ini'; // a malformed header is then reported by the INI loader
  const key = legacyLineKey(first);
  if (key !== undefined && looksLikeLegacyKey(key)) return 'legacy';
  throw new ConfigError(`not a PRR config file: expected ${FORMATS}, got ${JSON.stringify(first)}`, { file, line: i + 1 });
}

/** The model of a loaded prr.ini (or of the prr.ini a flat file stands for). */
export function modelFromConfig(cfg: PrrConfig, source: ConfigSource, file: string): PrrModel {
  const brAddresses = cfg.prr.tunnel_ipv6.map((a) => ipv6Bytes(a));
  const bindings: StaticBinding[] = [...cfg.subscriber].map(([name, sub]) => ({
    subscriber: name,
    ipv6: ipv6Bytes(sub.ipv6),
    ipv4: sub.shared_ipv4,
    ports: sub.ports,
    br: brIndexOf(cfg, sub.br),
  }));
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
    pools: cfg.prr.shared_ipv4,
    tunnelMtu: tunnelMtuOf(cfg),
    allowSystemPorts: cfg.prr.allow_system_ports,
    controlSocket: cfg.prr.control_socket,
    metrics: { enabled: cfg.metrics.enabled, listen: cfg.metrics.listen, perSubscriber: cfg.metrics.per_subscriber, portsActive: cfg.metrics.ports_active },
    logLevel: cfg.prr.log_level,
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
