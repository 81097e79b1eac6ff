/**
 * The WAN side: this CPE's IPv6 address (the tunnel's source) and the WAN MTU (for `mtu = auto`).
 *
 * The address comes from `[smap] wan_ipv6`, or is the first usable global address of the WAN
 * interface: SLAAC (or DHCPv6, or a hand-made address) puts it there; until one exists the agent
 * waits. An address is usable when it is global, not tentative (DAD still running), not failed
 * DAD, not deprecated (its preferred lifetime is over: a renumbering is under way) and not a
 * privacy (temporary) address, which would change under the binding every day. The kernel lists
 * addresses newest first; `ip` prints them in that order, and the first usable one is taken.
 *
 * Changes are followed with `ip -6 monitor address` (netlink events): on any event the list is
 * read again and, if the chosen address differs, the tunnel's source follows it.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

/** One entry of `ip -j addr show`'s addr_info. */
interface AddrInfo {
  family?: string;
  local?: string;
  scope?: string;
  tentative?: boolean;
  dadfailed?: boolean;
  deprecated?: boolean;
  temporary?: boolean;
}

/** The address to use from `ip -j -6 addr show dev WAN` output (parsed JSON), or undefined. */
export function pickWanAddress(json: unknown): string | undefined {
  if (!Array.isArray(json)) return undefined;
  for (const link of json as Array<{ addr_info?: AddrInfo[] }>) {
    for (const a of link.addr_info ?? []) {
      if (a.family !== 'inet6' || a.scope !== 'global' || typeof a.local !== 'string') continue;
      if (a.tentative === true || a.dadfailed === true || a.deprecated === true || a.temporary === true) continue;
      return a.local;
    }
  }
  return undefined;
}

/** The MTU from `ip -j link show dev WAN` output, or undefined. */
export function linkMtu(json: unknown): number | undefined {
  if (!Array.isArray(json)) return undefined;
  const mtu = (json[0] as { mtu?: unknown } | undefined)?.mtu;
  return typeof mtu === 'number' ? mtu : undefined;
}

/**
 * Run `ip -6 monitor address` and call `onEvent` (debounced by `debounceMs`) after each burst of
 * address events. Returns a function that stops the monitor.
 */
export function monitorAddresses(onEvent: () => void, debounceMs = 100): () => void {
  const child = spawn('ip', ['-6', 'monitor', 'address'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let timer: NodeJS.Timeout | undefined;
  const lines = createInterface({ input: child.stdout });
  lines.on('line', () => {
    if (timer !== undefined) return;
    timer = setTimeout(() => {
      timer = undefined;
      onEvent();
    }, debounceMs);
  });
  child.on('error', () => {
    /* `ip` missing: the daemon's own ip calls report that */
  });
  return () => {
    if (timer !== undefined) clearTimeout(timer);
    lines.close();
    child.kill('SIGTERM');
  };
}
