/**
 * The schema of /etc/smap/smap.ini (see smap/smap.ini.example for a commented file).
 *
 *   [smap]           WAN and LAN interfaces, LAN prefix to NAT, TUN name, log level, control socket
 *   [tunnel]         mtu, and the dnsmasq snippet that gives the LAN that MTU (DHCP option 26), offload
 *   [static]         a binding given by hand: shared IPv4, port set, PRR IPv6 address
 *   [registration]   or a binding obtained from the PRR over SSH
 *   [nat]            application-level gateways: ftp (the SMAP's own, port-set aware FTP ALG)
 *   [metrics]        Prometheus listener
 *
 * Cross-field rules, checked at load: [static] is all three keys or none; [registration] needs the
 * PRR's host key fingerprint; exactly one of [static] and [registration] gives the binding.
 */
import { loadIni, parseIniText } from './load.js';
import * as s from './schema.js';
import { formatHostPort, formatIpv4, Ipv4Prefix } from './values.js';

/** The port the PRR's embedded SSH registration server listens on, unless told otherwise. */
export const DEFAULT_REGISTRATION_PORT = 2222;

/** OpenSSH's fingerprint text: `SHA256:` and 43 characters of unpadded base64. */
const FINGERPRINT = /^SHA256:[A-Za-z0-9+/]{43}=?$/;

const sections = {
  smap: {
    wan_interface: s.ifName({ required: true }),
    /** Learnt from the WAN interface (SLAAC) when absent. */
    wan_ipv6: s.ipv6(),
    lan_interface: s.ifName({ default: 'br-lan' }),
    lan_prefix: s.ipv4Prefix({ default: new Ipv4Prefix(0xc0a80100, 24) }), // 192.168.1.0/24, OpenWrt's LAN
    tun: s.ifName({ default: 'smap0' }),
    log_level: s.oneOf(s.LOG_LEVELS, { default: 'info' }),
    /** The local control socket `smap status` talks to (root only). */
    control_socket: s.filePath({ default: '/run/smap/control.sock' }),
  },
  tunnel: {
    mtu: s.autoInt({ min: s.MTU_MIN, max: s.MTU_MAX, default: 'auto' }),
    /** How long a path MTU learnt from Packet Too Big holds before the tunnel tries the full MTU again (RFC 8201 §4). */
    pmtu_timeout: s.duration({ min: s.PMTU_TIMEOUT_MIN, max: s.PMTU_TIMEOUT_MAX, default: s.PMTU_TIMEOUT_DEFAULT }),
    /** A dnsmasq config snippet the agent writes: DHCP option 26 (interface MTU) = the tunnel MTU. */
    dnsmasq_snippet: s.filePath(),
    /** An executable run with the tunnel MTU whenever it is set (OpenWrt: sets option 26 through UCI). */
    mtu_hook: s.filePath(),
    /** A shell command run after each rewrite of the snippet, so dnsmasq serves the new MTU (e.g. `/etc/init.d/dnsmasq reload`). */
    dnsmasq_reload: s.str({ pattern: /\S/, expect: 'a shell command' }),
    /**
     * TUN offloads (IFF_VNET_HDR, TSO/USO, partial checksums): `auto` asks the kernel and falls
     * back to one packet per read/write if it refuses; `off` never asks.
     */
    offload: s.oneOf(['auto', 'off'] as const, { default: 'auto' }),
  },
  static: {
    shared_ipv4: s.ipv4(),
    /** System ports are allowed: the PRR, which hands them out, decides. */
    ports: s.portSet({ allowSystemPorts: true }),
    prr_ipv6: s.ipv6(),
  },
  registration: {
    prr_host: s.host(),
    prr_port: s.int({ min: 1, max: 65535, default: DEFAULT_REGISTRATION_PORT }),
    host_key_fingerprint: s.str({ pattern: FINGERPRINT, expect: 'an OpenSSH host key fingerprint (SHA256: and 43 base64 characters)' }),
    key_file: s.filePath({ default: '/etc/smap/id_ed25519' }),
  },
  nat: {
    /** Active FTP through the port set (smap/ftp-alg.ts); off leaves port 21 to plain SNAT (passive only). */
    ftp: s.bool({ default: true }),
  },
  metrics: {
    enabled: s.bool({ default: true }),
    listen: s.hostPort({ default: { host: '127.0.0.1', port: 9151 } }),
  },
};

export const smapSchema = s.defineSchema({ sections, check: checkSmap });

export type SmapConfig = s.ConfigOf<typeof smapSchema>;

export function loadSmapConfig(file: string): SmapConfig {
  return loadIni(file, smapSchema);
}

export function parseSmapConfig(text: string, fileName = '<text>'): SmapConfig {
  return parseIniText(text, fileName, smapSchema);
}

/** One line for `smap check-config`. */
export function summarizeSmap(cfg: SmapConfig): string {
  const st = cfg.static;
  const binding =
    st.shared_ipv4 !== undefined
      ? `static ${formatIpv4(st.shared_ipv4)} ports ${st.ports} via ${st.prr_ipv6}`
      : `registration with ${formatHostPort({ host: cfg.registration.prr_host ?? '', port: cfg.registration.prr_port })}`;
  return `${binding}, wan ${cfg.smap.wan_interface}, lan ${cfg.smap.lan_interface} ${cfg.smap.lan_prefix}`;
}

function checkSmap(cfg: s.Loaded<typeof sections, Record<never, s.Keys>>, at: s.Locator): void {
  const st = cfg.static;
  const given = (['shared_ipv4', 'ports', 'prr_ipv6'] as const).filter((k) => st[k] !== undefined);
  if (given.length > 0 && given.length < 3) {
    const missing = (['shared_ipv4', 'ports', 'prr_ipv6'] as const).find((k) => st[k] === undefined);
    throw at.error('static', missing, `a static binding needs shared_ipv4, ports and prr_ipv6 together`);
  }
  const reg = cfg.registration;
  if (reg.prr_host !== undefined && reg.host_key_fingerprint === undefined) {
    throw at.error('registration', 'host_key_fingerprint', 'missing: the PRR host key must be pinned (ssh-keygen -lf on its host key)');
  }
  if (given.length === 3 && reg.prr_host !== undefined) {
    throw at.error('registration', 'prr_host', 'both [static] and [registration] give a binding; keep one');
  }
  if (given.length === 0 && reg.prr_host === undefined) {
    throw at.error('registration', 'prr_host', 'no binding: set [registration] prr_host, or [static] shared_ipv4, ports and prr_ipv6');
  }
}
