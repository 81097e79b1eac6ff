/**
 * The SMAP's registration metrics, added to its registry (smap/metrics.ts) when the binding comes
 * from the PRR by SSH registration ([registration]). Read at scrape time.
 *
 *   smap_registration_state{state}              1 for the current state, 0 for the others:
 *                                               registering (no lease yet), registered, failing
 *                                               (the last request failed; the last binding, if
 *                                               any, keeps forwarding)
 *   smap_registration_lease_remaining_seconds   until the lease ends unless renewed (0 without one)
 *   smap_registrations_total{result}            requests to the PRR: ok, failed,
 *                                               host_key_mismatch (the PRR's key is not the pinned one)
 */
import { Counter, Gauge, type Registry } from 'prom-client';

export const REGISTRATION_STATES = ['registering', 'registered', 'failing'] as const;

export interface SmapRegistrationSource {
  state(): (typeof REGISTRATION_STATES)[number];
  /** When the lease ends, ms since the epoch; undefined before the first lease. */
  leaseEndsAt(): number | undefined;
  counts(): { ok: number; failed: number; host_key_mismatch: number };
}

export function smapRegistrationMetrics(registry: Registry, src: SmapRegistrationSource, now: () => number = Date.now): void {
  const registers = [registry];
  new Gauge({
    name: 'smap_registration_state',
    help: 'Registration with the PRR: 1 for the current state (registering, registered, failing)',
    labelNames: ['state'] as const,
    registers,
    collect() {
      const current = src.state();
      for (const state of REGISTRATION_STATES) this.set({ state }, state === current ? 1 : 0);
    },
  });
  new Gauge({
    name: 'smap_registration_lease_remaining_seconds',
    help: 'Seconds until the lease from the PRR ends unless renewed (0 without a lease)',
    registers,
    collect() {
      const end = src.leaseEndsAt();
      this.set(end === undefined ? 0 : Math.max(0, Math.round((end - now()) / 1000)));
    },
  });
  new Counter({
    name: 'smap_registrations_total',
    help: 'Registration requests to the PRR by result (ok, failed, host_key_mismatch)',
    labelNames: ['result'] as const,
    registers,
    collect() {
      this.reset();
      for (const [result, n] of Object.entries(src.counts())) this.inc({ result }, n);
    },
  });
}
