/**
 * Bring the registration server up inside a running PRR: authorized keys, the store (its rows go
 * into the binding table), the registrar and the SSH listener, from prr.ini's [registration].
 * Call it after the static bindings are in the table (their sets are reserved first).
 */
import type { PrrConfig } from '../common/config/prr.js';
import type { Logger } from '../common/log.js';
import type { BindingTable } from './bindings.js';
import type { PrrModel } from './model.js';
import { loadAuthorizedKeys, type KeyEntry } from './registration-keys.js';
import { Registrar } from './registration-service.js';
import { startRegistrationServer, type RegistrationServer } from './registration.js';
import { RegistrationStore } from './store.js';
import { recordingUsage, UsageReports } from './usage-reports.js';

export type RegistrationSection = PrrConfig['registration'];

/** How often ended leases are looked for. */
export const EXPIRE_SWEEP_MS = 60_000;

export interface PrrRegistration {
  readonly server: RegistrationServer;
  readonly registrar: Registrar;
  /** The port counts CPEs reported with their requests (`--usage`), for the metrics. */
  readonly usage: UsageReports;
  /** Re-read the authorized-keys file (SIGHUP); returns the number of keys. */
  reloadKeys(): number;
  close(): Promise<void>;
}

/**
 * Start registration for `model` when its [registration] says enabled = true (the model's, as
 * read from its prr.ini, unless `section` is given; a flat 2010 file has none). Undefined when off.
 */
export async function startPrrRegistration(model: PrrModel, table: BindingTable, log: Logger, section?: RegistrationSection): Promise<PrrRegistration | undefined> {
  const reg = section ?? model.registration;
  if (reg === undefined || !reg.enabled) return undefined;
  const rlog = log.child('registration');
  let keys: Map<string, KeyEntry> = loadAuthorizedKeys(reg.authorized_keys);
  const store = new RegistrationStore(reg.database);
  const registrar = new Registrar({
    table,
    store,
    poolAddresses: model.pools.flatMap((p) => p.addresses()),
    keys: () => keys,
    log: rlog,
    policy: {
      minPorts: reg.min_ports,
      maxPorts: reg.max_ports,
      defaultPorts: reg.default_ports,
      leaseSeconds: reg.lease,
      tunnelMtu: model.tunnelMtu,
      prrIpv6: model.policy.brAddresses[0]!,
      allowSystemPorts: model.allowSystemPorts,
      ...(reg.psid_length > 0 ? { psid: { k: reg.psid_length, a: reg.psid_offset } } : {}),
    },
  });
  const { loaded, skipped } = registrar.start();
  const migrated = store.migrated > 0 ? ` (${store.migrated} rows given their load record first: a store from an older version, or edited by hand)` : '';
  rlog.info(`${store.file}: ${loaded} registered bindings restored${skipped > 0 ? `, ${skipped} not restored (see above)` : ''}${migrated}; ${keys.size} authorized keys`);
  const usage = new UsageReports();
  let server: RegistrationServer;
  try {
    server = await startRegistrationServer({
      listen: reg.listen,
      hostKeyFile: reg.host_key,
      keys: () => keys,
      service: recordingUsage(registrar, usage),
      ratePerKey: reg.rate_per_key,
      rateTotal: reg.rate_total,
      log: rlog,
    });
  } catch (err) {
    store.close();
    throw err;
  }
  const sweep = setInterval(() => {
    try {
      registrar.expire();
    } catch (err) {
      rlog.error(`lease sweep: ${(err as Error).message}`);
    }
  }, EXPIRE_SWEEP_MS);
  sweep.unref();
  return {
    server,
    registrar,
    usage,
    reloadKeys() {
      keys = loadAuthorizedKeys(reg.authorized_keys);
      return keys.size;
    },
    async close() {
      clearInterval(sweep);
      await server.close();
      store.close();
    },
  };
}
