/**
 * `prr init [--dir /etc/prr] [--state-dir /var/lib/prr] [--ipv4 A] [--tunnel-ipv6 A] [--shared-ipv4 P] [--force]`:
 * a new PRR's starting point.
 *
 *   DIR/prr.ini                          a short commented config with registration on
 *                                        (prr/prr.ini.example lists every key)
 *   DIR/authorized_keys                  an empty, commented list of CPE keys (kept if it exists)
 *   STATE/ssh_host_ed25519_key (0600)    the registration host key, and its .pub;
 *                                        its SHA256 fingerprint is printed: CPEs pin it
 *
 * The addresses default to documentation prefixes, to be replaced. The text is checked with the
 * config loader before anything is written. An existing prr.ini or host key is refused (exit 2,
 * nothing written) unless --force, which replaces both: CPEs that pinned the old key must then be
 * given the new fingerprint.
 */
import path from 'node:path';
import type { Command } from 'commander';
import type { CliIo } from '../common/cli.js';
import { parsePrrConfig } from '../common/config/prr.js';
import { checkStarter, keyPairFiles, writeNewFiles } from '../provisioning/init-files.js';
import { generateEd25519 } from '../provisioning/keys.js';

export interface PrrInitOptions {
  dir: string;
  stateDir: string;
  ipv4: string;
  tunnelIpv6: string;
  sharedIpv4: string;
}

export const INIT_DEFAULTS: PrrInitOptions = {
  dir: '/etc/prr',
  stateDir: '/var/lib/prr',
  ipv4: '198.51.100.1',
  tunnelIpv6: '2001:db8:ffff::1',
  sharedIpv4: '192.0.2.0/28',
};

/** The starter prr.ini. */
export function starterPrrIni(o: PrrInitOptions): string {
  const file = path.join(o.dir, 'prr.ini');
  return `; ${file}: the Port Range Router, written by \`prr init\`.
; Check it:  prr check-config --config ${file}
; Every key, with its default: prr.ini.example in the aplus sources (prr/prr.ini.example).

[prr]
; This PRR's own IPv4 address (source of the ICMPv4 errors it sends), outside the pools.
ipv4 = ${o.ipv4}
; The IPv6 address CPEs tunnel to (IPv4-in-IPv6); it must be an address of this host.
tunnel_ipv6 = ${o.tunnelIpv6}
; The shared IPv4 pools, routed to this host; each address is shared by port ranges.
shared_ipv4 = ${o.sharedIpv4}

[tunnel]
; IPv4 MTU inside the tunnel: auto = the IPv6 path MTU ([internal] mtu, 1500) - 40.
mtu = auto

[metrics]
; Prometheus /metrics.
listen = 127.0.0.1:9150

[registration]
; CPEs register over SSH: \`register --ipv6 ADDR\` gets them a port set (plug and play).
enabled = true
listen = [::]:2222
; CPEs pin this key's SHA256 fingerprint (\`ssh-keygen -lf ${path.join(o.stateDir, 'ssh_host_ed25519_key')}.pub\`).
host_key = ${path.join(o.stateDir, 'ssh_host_ed25519_key')}
; One line per CPE key: [name=cpe7,ports=500] ssh-ed25519 AAAA... (SIGHUP re-reads it).
authorized_keys = ${path.join(o.dir, 'authorized_keys')}
database = ${path.join(o.stateDir, 'registrations.db')}
; Ports per CPE (1000 is comfortable for a household; 200 is enough for an office).
default_ports = 1000
lease = 1d
`;
}

const AUTHORIZED_KEYS = `# CPE keys allowed to register with this PRR, one per line, OpenSSH format, with optional
# per-key options:  name=cpe7  ports=500  set=10000-10999  (comma separated, no spaces)
#   name=cpe7 ssh-ed25519 AAAA... smap
# A CPE prints its line at \`smap init\` (or find it in its key_file.pub). \`systemctl reload prr\`
# (SIGHUP) re-reads this file.
`;

/** The flag that sets each prr.ini key, for error messages. */
const FLAG_OF: Record<string, string> = { ipv4: '--ipv4', tunnel_ipv6: '--tunnel-ipv6', shared_ipv4: '--shared-ipv4' };

/** Write the files; returns the lines to print. */
export function prrInit(o: PrrInitOptions, force: boolean): string[] {
  const iniFile = path.join(o.dir, 'prr.ini');
  const text = starterPrrIni(o);
  checkStarter(() => parsePrrConfig(text, iniFile), FLAG_OF);
  const keyFile = path.join(o.stateDir, 'ssh_host_ed25519_key');
  const pair = generateEd25519('aplus-prr');
  const written = writeNewFiles([
    { file: iniFile, text, mode: 0o644 },
    { file: path.join(o.dir, 'authorized_keys'), text: AUTHORIZED_KEYS, mode: 0o644, keep: true },
    ...keyPairFiles(keyFile, pair),
  ], force);
  return [
    ...written.map((f) => `wrote ${f}`),
    `host key fingerprint: ${pair.fingerprint}`,
    `next: edit ${iniFile}, add CPE keys to ${path.join(o.dir, 'authorized_keys')}, then \`prr run --config ${iniFile}\` (or systemctl start prr)`,
  ];
}

/** `prr init`: see above. */
export function initVerb(program: Command, io: CliIo): void {
  const d = INIT_DEFAULTS;
  program
    .command('init')
    .description('write a starter prr.ini and authorized_keys, and generate the registration host key (prints its fingerprint)')
    .option('--dir <dir>', 'config directory', d.dir)
    .option('--state-dir <dir>', 'state directory (host key, registrations database)', d.stateDir)
    .option('--ipv4 <addr>', "the PRR's own IPv4 address", d.ipv4)
    .option('--tunnel-ipv6 <addr>', 'the IPv6 address CPEs tunnel to', d.tunnelIpv6)
    .option('--shared-ipv4 <pools>', 'shared IPv4 pools (prefixes or addresses, comma separated)', d.sharedIpv4)
    .option('--force', 'replace an existing prr.ini and host key')
    .action((opts: PrrInitOptions & { force?: boolean }) => {
      for (const line of prrInit(opts, opts.force === true)) io.out(`${line}\n`);
    });
}
