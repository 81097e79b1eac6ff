/**
 * `smap init --prr ADDR --fingerprint SHA256:... [--dir /etc/smap] [--state-dir /var/lib/smap]
 *            [--wan IF] [--lan IF] [--lan-prefix P] [--force]`:
 * a plug-and-play CPE needs only the PRR's address and its host key fingerprint.
 *
 *   DIR/smap.ini                  [registration] with those two, the WAN address learnt (SLAAC)
 *   STATE/id_ed25519 (0600)       this CPE's registration key, and its .pub
 *
 * It prints the line to add to the PRR's authorized_keys. The text is checked with the config
 * loader first; an existing smap.ini or key is refused (exit 2, nothing written) unless --force.
 */
import path from 'node:path';
import type { Command } from 'commander';
import type { CliIo } from '../common/cli.js';
import { DEFAULT_REGISTRATION_PORT, parseSmapConfig } from '../common/config/smap.js';
import { checkStarter, keyPairFiles, writeNewFiles } from '../provisioning/init-files.js';
import { generateEd25519 } from '../provisioning/keys.js';

export interface SmapInitOptions {
  prr: string;
  port: string;
  fingerprint: string;
  dir: string;
  stateDir: string;
  wan: string;
  lan: string;
  lanPrefix: string;
}

/** The starter smap.ini. */
export function starterSmapIni(o: SmapInitOptions): string {
  const file = path.join(o.dir, 'smap.ini');
  return `; ${file}: the CPE agent, written by \`smap init\`.
; Check it:  smap check-config --config ${file}
; Every key, with its default: smap.ini.example in the aplus sources (smap/smap.ini.example).

[smap]
; The interface toward the ISP's IPv6 network; its global address is learnt (SLAAC).
wan_interface = ${o.wan}
; The LAN, NATed into this CPE's port set.
lan_interface = ${o.lan}
lan_prefix = ${o.lanPrefix}

[tunnel]
; IPv4 MTU inside the tunnel: auto = the WAN MTU - 40, lowered by the PRR's lease.
mtu = auto
; Give the LAN that MTU by DHCP (option 26): a dnsmasq snippet the agent writes. Uncomment and
; add "conf-file=/run/smap/dnsmasq.conf" to dnsmasq's config.
; dnsmasq_snippet = /run/smap/dnsmasq.conf

[registration]
; The PRR's registration server, and its host key fingerprint, pinned (\`prr init\` printed it).
prr_host = ${o.prr}
prr_port = ${o.port}
host_key_fingerprint = ${o.fingerprint}
; This CPE's key; its .pub line goes into the PRR's authorized_keys.
key_file = ${path.join(o.stateDir, 'id_ed25519')}

[metrics]
listen = 127.0.0.1:9151
`;
}

/** The flag that sets each smap.ini key, for error messages. */
const FLAG_OF: Record<string, string> = {
  prr_host: '--prr', prr_port: '--port', host_key_fingerprint: '--fingerprint', wan_interface: '--wan', lan_interface: '--lan', lan_prefix: '--lan-prefix',
};

/** Write the files; returns the lines to print. */
export function smapInit(o: SmapInitOptions, force: boolean): string[] {
  const iniFile = path.join(o.dir, 'smap.ini');
  const text = starterSmapIni(o);
  checkStarter(() => parseSmapConfig(text, iniFile), FLAG_OF);
  const keyFile = path.join(o.stateDir, 'id_ed25519');
  const pair = generateEd25519('smap');
  const written = writeNewFiles([{ file: iniFile, text, mode: 0o644 }, ...keyPairFiles(keyFile, pair)], force);
  return [
    ...written.map((f) => `wrote ${f}`),
    `key fingerprint: ${pair.fingerprint}`,
    "add this line to the PRR's authorized_keys (name= is optional):",
    `  ${pair.public}`,
  ];
}

/** `smap init`: see above. */
export function initVerb(program: Command, io: CliIo): void {
  program
    .command('init')
    .description("write a starter smap.ini that registers with a PRR, and this CPE's registration key")
    .requiredOption('--prr <addr>', "the PRR's registration address (IPv6 address or host name)")
    .requiredOption('--fingerprint <fp>', "the PRR's SSH host key fingerprint (SHA256:...), printed by `prr init`")
    .option('--port <n>', "the PRR's registration port", String(DEFAULT_REGISTRATION_PORT))
    .option('--dir <dir>', 'config directory', '/etc/smap')
    .option('--state-dir <dir>', 'state directory (the registration key)', '/var/lib/smap')
    .option('--wan <if>', 'WAN interface (toward the ISP, IPv6)', 'wan')
    .option('--lan <if>', 'LAN interface', 'br-lan')
    .option('--lan-prefix <prefix>', 'LAN IPv4 prefix', '192.168.1.0/24')
    .option('--force', 'replace an existing smap.ini and key')
    .action((opts: SmapInitOptions & { force?: boolean }) => {
      for (const line of smapInit(opts, opts.force === true)) io.out(`${line}\n`);
    });
}
