/**
 * The PRR's local control socket: one JSON request per line, one JSON reply per line, over a
 * Unix socket that only root can reach (directory 0700, socket 0600). `prr subscribers ...`
 * talks to a running PRR through it; so will the registration server's store (later issue).
 *
 * Requests (all fields read, then validated once; a bad request changes nothing):
 *   {"cmd":"list","limit":N}                 -> {"ok":true,"total":T,"subscribers":[Sub,...]}
 *   {"cmd":"show","name":NAME}               -> {"ok":true,"subscriber":Sub}
 *   {"cmd":"bind","name":NAME,"ipv6":A,"ipv4":A,"ports":SET[,"br":A]}
 *                                            -> {"ok":true,"subscriber":Sub,"created":bool}
 *   {"cmd":"release","name":NAME}            -> {"ok":true,"released":N}   (a registered binding
 *                                               also leaves the store: its set is freed)
 *   {"cmd":"reload_keys"}                    -> {"ok":true,"keys":N}   (re-read authorized_keys)
 *   {"cmd":"stats"}                          -> {"ok":true,"global":{..},"drops4":{..},"drops6":{..},"bindings":N}
 * Errors: {"ok":false,"error":"one line"}.
 *   Sub = {name, ipv6, ipv4, ports, psid?, br, mtu, from_cpe_packets, from_cpe_bytes,
 *          to_cpe_packets, to_cpe_bytes, drops}
 */
import type net from 'node:net';
import { isIPv4, isIPv6 } from 'node:net';
import { ControlError, controlRequest as request, serveControl } from '../common/control.js';
import { parsePortSet, type PortSetOptions } from '../common/portset.js';
import { ipv4ToString, parseIpv4 } from '../common/codec/ipv4.js';
import { ipv6ToString, parseIpv6OrThrow } from '../common/codec/ipv6.js';
import type { Logger } from '../common/log.js';
import type { BindingTable } from './bindings.js';
import { B, type PrrCounters } from './counters.js';
import type { PrrPolicy } from './policy.js';

export interface ControlContext {
  table: BindingTable;
  counters: PrrCounters;
  policy: PrrPolicy;
  portOptions: PortSetOptions;
  /** Shared pools: a bound address must lie in one. */
  inPool: (ipv4: number) => boolean;
  log: Logger;
  /** The registration server, once it runs ([registration] enabled). */
  registration?: () => RegistrationControl | undefined;
}

/** What the control socket asks of the registration server. */
export interface RegistrationControl {
  /** Re-read the authorized-keys file; the number of keys. Throws ConfigError naming file:line. */
  reloadKeys(): number;
  /** Release the registered binding of this subscriber (store, table, set); false if none. */
  releaseByName(name: string): boolean;
}

export { ControlError };

export interface SubscriberView {
  name: string;
  ipv6: string;
  ipv4: string;
  ports: string;
  br: string;
  mtu: number;
  from_cpe_packets: number;
  from_cpe_bytes: number;
  to_cpe_packets: number;
  to_cpe_bytes: number;
  drops: number;
}

function view(ctx: ControlContext, id: number): SubscriberView {
  const t = ctx.table;
  const c = ctx.counters;
  const br = ctx.policy.brAddresses[t.brOf(id)];
  return {
    name: t.subscriberOf(id)!,
    ipv6: ipv6ToString(t.ipv6Of(id), 0),
    ipv4: ipv4ToString(t.ipv4Of(id)),
    ports: t.portsOf(id)!.toString(),
    br: br !== undefined ? ipv6ToString(br, 0) : '',
    mtu: t.mtuOf(id),
    from_cpe_packets: c.binding(id, B.from_cpe_packets),
    from_cpe_bytes: c.binding(id, B.from_cpe_bytes),
    to_cpe_packets: c.binding(id, B.to_cpe_packets),
    to_cpe_bytes: c.binding(id, B.to_cpe_bytes),
    drops: c.binding(id, B.drops),
  };
}

function str(req: Record<string, unknown>, key: string): string {
  const v = req[key];
  if (typeof v !== 'string' || v === '') throw new ControlError(`field "${key}": expected a non-empty string`);
  return v;
}

/** Handle one request object; throws ControlError (or AplusError) for a bad one. */
export function handleControl(ctx: ControlContext, req: Record<string, unknown>): Record<string, unknown> {
  const t = ctx.table;
  switch (req['cmd']) {
    case 'list': {
      const limit = typeof req['limit'] === 'number' && req['limit'] > 0 ? Math.floor(req['limit']) : 1000;
      const subs: SubscriberView[] = [];
      for (const id of t.ids()) {
        if (subs.length >= limit) break;
        subs.push(view(ctx, id));
      }
      return { ok: true, total: t.size, subscribers: subs };
    }
    case 'show': {
      const name = str(req, 'name');
      const ids = t.findSubscriber(name);
      if (ids.length === 0) throw new ControlError(`no subscriber named "${name}"`);
      return { ok: true, subscriber: view(ctx, ids[0]!), bindings: ids.map((id) => view(ctx, id)) };
    }
    case 'bind': {
      const name = str(req, 'name');
      const ipv6Text = str(req, 'ipv6');
      const ipv4Text = str(req, 'ipv4');
      const portsText = str(req, 'ports');
      if (!isIPv6(ipv6Text)) throw new ControlError(`field "ipv6": "${ipv6Text}" is not an IPv6 address`);
      if (!isIPv4(ipv4Text)) throw new ControlError(`field "ipv4": "${ipv4Text}" is not an IPv4 address`);
      const ipv4 = parseIpv4(ipv4Text);
      if (!ctx.inPool(ipv4)) throw new ControlError(`field "ipv4": ${ipv4Text} is not in a shared pool`);
      const ports = parsePortSet(portsText, ctx.portOptions);
      let br = 0;
      if (req['br'] !== undefined) {
        const brText = str(req, 'br');
        br = ctx.policy.brAddresses.findIndex((a) => isIPv6(brText) && a.equals(parseIpv6OrThrow(brText)));
        if (br < 0) throw new ControlError(`field "br": ${brText} is not one of the PRR's tunnel addresses`);
      }
      const input = { subscriber: name, ipv6: parseIpv6OrThrow(ipv6Text), ipv4, ports, br };
      const ids = t.findSubscriber(name);
      if (ids.length > 0) {
        t.change(ids[0]!, input);
        ctx.log.info(`binding changed: ${name} ${ipv6Text} ${ipv4Text} ${ports}`);
        return { ok: true, created: false, subscriber: view(ctx, ids[0]!) };
      }
      const id = t.add(input);
      ctx.log.info(`binding added: ${name} ${ipv6Text} ${ipv4Text} ${ports}`);
      return { ok: true, created: true, subscriber: view(ctx, id) };
    }
    case 'release': {
      const name = str(req, 'name');
      const ids = t.findSubscriber(name);
      const registered = ctx.registration?.()?.releaseByName(name) ?? false;
      if (ids.length === 0 && !registered) throw new ControlError(`no subscriber named "${name}"`);
      for (const id of t.findSubscriber(name)) t.remove(id);
      ctx.log.info(`binding released: ${name}${registered ? ' (registered: its set is freed)' : ''}`);
      return { ok: true, released: Math.max(ids.length, 1) };
    }
    case 'reload_keys': {
      const reg = ctx.registration?.();
      if (reg === undefined) throw new ControlError('registration is not enabled on this PRR ([registration] enabled = true)');
      const keys = reg.reloadKeys();
      ctx.log.info(`authorized keys re-read: ${keys} keys`);
      return { ok: true, keys };
    }
    case 'stats':
      return { ok: true, bindings: t.size, ...ctx.counters.snapshot() };
    default:
      throw new ControlError(`unknown command ${JSON.stringify(req['cmd'])}: expected list, show, bind, release, reload_keys or stats`);
  }
}

/** Listen on `file` (root-only) and serve this PRR's requests until closed. */
export function servePrrControl(file: string, ctx: ControlContext): Promise<net.Server> {
  return serveControl(file, (req) => handleControl(ctx, req));
}

/** Send one request to a running PRR (throws ControlError naming the socket). */
export function controlRequest(file: string, req: Record<string, unknown>, timeoutMs?: number): Promise<Record<string, unknown>> {
  return request(file, req, { who: 'the PRR', verb: 'prr run', ...(timeoutMs !== undefined ? { timeoutMs } : {}) });
}
