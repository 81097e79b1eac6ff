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
  if (r.tunNode === undefined) return [priv[0]!, priv.slice(1)];
  // "$0" is the node, "$@" the setpriv command line.
  return ['sh', ['-c', 'mount --bind "$0" /dev/net/tun && exec "$@"', r.tunNode, ...priv]];
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
