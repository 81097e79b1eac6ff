/**
 * Running a daemon in the lab as a non-root user that holds only some capabilities, as its
 * systemd unit runs it (provisioning/systemd/): `setpriv` drops to the user, clears supplementary
 * groups, sets no_new_privs and leaves exactly `caps` in the inheritable, ambient and bounding sets,
 * so the daemon and the `ip` / `nft` / `conntrack` it executes hold those and nothing else. The
 * environment is emptied but for systemd's PATH.
 *
 * /dev/net/tun: udev makes it 0666 on a normal system (opening it needs no privilege; creating a
 * device through it needs CAP_NET_ADMIN). A container without udev may leave it 0600, which only
 * CAP_DAC_OVERRIDE could open; the wrapper then bind-mounts a 0666 node of the same device over it,
 * inside the mount namespace that `ip netns exec` gives each command (never the host's).
 * Paths in the test's own files need no quoting beyond '...' (no quote in them).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** Who to run as, and the capabilities kept (names as in capabilities(7), without CAP_, lower case). */
export interface RunAs {
  uid: number;
  gid: number;
  caps: readonly string[];
  /** A 0666 character device node for /dev/net/tun (made by `tunNode`), when the host's is not. */
  tunNode?: string;
  /** Give the daemon an empty /run with /run/NAME its own (systemd's RuntimeDirectory=NAME), so
   * a config's default control socket works; the host's /run is not touched. */
  runtimeDir?: string;
}

/**
 * The capabilities the PRR and the SMAP need, and all they get (test/provisioning/unprivileged.test.ts
 * proves them sufficient and each necessary; the systemd units grant exactly these).
 */
export const DAEMON_CAPS = ['net_admin', 'net_raw'] as const;

/** The user the lab's unprivileged daemons run as: nobody/nogroup. */
export const NOBODY = { uid: 65534, gid: 65534 };

/** The PATH systemd gives services. */
export const SERVICE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin';

/** setpriv's arguments for `r`, ending with `--`. */
export function setprivArgs(r: RunAs): string[] {
  const set = ['-all', ...r.caps.map((c) => `+${c}`)].join(',');
  return [`--reuid=${r.uid}`, `--regid=${r.gid}`, '--clear-groups', '--no-new-privs', `--inh-caps=${set}`, `--ambient-caps=${set}`, `--bounding-set=${set}`, '--'];
}

/** The command and arguments that run `cmd args` as `r` (with `Host.spawn` or `Host.exec`). */
export function wrapCommand(r: RunAs | undefined, cmd: string, args: readonly string[]): [string, string[]] {
  if (r === undefined) return [cmd, [...args]];
  // A clean environment with systemd's PATH, as a unit gets (and none of the test runner's
  // NODE_OPTIONS hooks, which write where this user may not).
  const priv = ['setpriv', ...setprivArgs(r), 'env', '-i', `PATH=${SERVICE_PATH}`, cmd, ...args];
  // Set-up as root in the mount namespace `ip netns exec` gives each command (never the host's).
  const steps: string[] = [];
  if (r.tunNode !== undefined) steps.push(`mount --bind '${r.tunNode}' /dev/net/tun`);
  if (r.runtimeDir !== undefined) steps.push(`mount -t tmpfs -o mode=0755 tmpfs /run && mkdir -m 0700 '/run/${r.runtimeDir}' && chown ${r.uid}:${r.gid} '/run/${r.runtimeDir}'`);
  if (steps.length === 0) return [priv[0]!, priv.slice(1)];
  return ['sh', ['-c', `${steps.join(' && ')} && exec "$@"`, 'sh', ...priv]];
}

/** True when an unprivileged process can open /dev/net/tun for reading and writing. */
export function tunOpenToAll(): boolean {
  return (statSync('/dev/net/tun').mode & 0o006) === 0o006;
}

/** A 0666 node of the TUN device in `dir` (for `RunAs.tunNode`); undefined when the host's is 0666. */
export function tunNode(dir: string): string | undefined {
  if (tunOpenToAll()) return undefined;
  const { rdev } = statSync('/dev/net/tun');
  const file = join(dir, 'tun');
  // Linux's dev_t: major in bits 8-19, minor in bits 0-7 and 20-31.
  execFileSync('mknod', [file, 'c', String((rdev >> 8) & 0xfff), String((rdev & 0xff) | ((rdev >> 12) & 0xfff00))]);
  chmodSync(file, 0o666);
  return file;
}
