/**
 * The 2010 experiment's layout as a binding table and policy, plus an RFC 7597 PSID customer on
 * a second shared address, for tests of the forwarding core.
 *
 *   PRR            IPv4 192.0.2.1          tunnel endpoint (BR) 2001:db8::1 (and ::2 with twoBrs)
 *   shared         192.0.2.100
 *     cpe1         2001:db8:1::2           ports 10000-11000
 *     cpe2         2001:db8:2::2           ports 11001-12000   (BR 2001:db8::2 with twoBrs)
 *   shared2        198.51.100.7
 *     cpe3         2001:db8:3::2           psid:a=6/k=8/id=52  (ports A*1024 + 208..211)
 */
import { PortRange, PsidSet } from '../../../common/portset.js';
import { BindingTable } from '../../../prr/bindings.js';
import { PrrCore, newVerdict, type CoreOptions, type Verdict } from '../../../prr/core.js';
import { defaultPolicy, type PrrPolicy } from '../../../prr/policy.js';
import { ip4, ip6 } from './packets.js';

export const PRR4 = ip4('192.0.2.1');
export const SHARED = ip4('192.0.2.100');
export const SHARED2 = ip4('198.51.100.7');
export const BR = ip6('2001:db8::1');
export const BR2 = ip6('2001:db8::2');
export const CPE1 = ip6('2001:db8:1::2');
export const CPE2 = ip6('2001:db8:2::2');
export const CPE3 = ip6('2001:db8:3::2');
/** An IPv6 address with no binding. */
export const STRANGER = ip6('2001:db8:99::2');
/** Internet hosts. */
export const INET = ip4('203.0.113.5');
export const SERVER = ip4('198.51.100.53');
/** A port of cpe3's PSID set (A = 5), and one of the neighbouring PSID 53. */
export const CPE3_PORT = 5 * 1024 + 52 * 4 + 1;
export const PSID53_PORT = 5 * 1024 + 53 * 4 + 1;

export interface Lab {
  table: BindingTable;
  policy: PrrPolicy;
  core: PrrCore;
  cpe1: number;
  cpe2: number;
  cpe3: number;
  v: Verdict;
  /** The injected clock (milliseconds): set `clock.t` to move time. */
  clock: { t: number };
}

export interface LabOptions {
  core?: Omit<CoreOptions, 'now'>;
  /** Change the default policy before the core is built. */
  policy?: (p: PrrPolicy) => void;
  /** Two tunnel endpoints: cpe1 and cpe3 use BR, cpe2 uses BR2. */
  twoBrs?: boolean;
}

export function makeLab(o: LabOptions = {}): Lab {
  const table = new BindingTable();
  const policy = defaultPolicy(PRR4, o.twoBrs === true ? [BR, BR2] : [BR]);
  o.policy?.(policy);
  const cpe1 = table.add({ subscriber: 'cpe1', ipv6: CPE1, ipv4: SHARED, ports: new PortRange(10000, 11000) });
  const cpe2 = table.add({ subscriber: 'cpe2', ipv6: CPE2, ipv4: SHARED, ports: new PortRange(11001, 12000), br: o.twoBrs === true ? 1 : 0 });
  const cpe3 = table.add({ subscriber: 'cpe3', ipv6: CPE3, ipv4: SHARED2, ports: new PsidSet(6, 8, 52) });
  const clock = { t: 0 };
  const core = new PrrCore(table, policy, { ...o.core, now: () => clock.t });
  return { table, policy, core, cpe1, cpe2, cpe3, v: newVerdict(), clock };
}
