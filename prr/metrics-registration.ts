/**
 * The registration server's Prometheus metrics, added to the PRR's registry (prr/metrics.ts) when
 * [registration] is enabled. Values are read from the server's counters at scrape time.
 *
 *   prr_registrations_total{command,result}        exec requests: command = register | renew |
 *                                                  release | status | unknown; result = ok |
 *                                                  usage (malformed) | refused | exhausted (pool) |
 *                                                  internal | rate_limited
 *   prr_registration_connections_total             SSH connections accepted by the listener
 *   prr_registration_auth_ok_total                 successful public-key authentications
 *   prr_registration_auth_rejected_total{reason}   unknown_key | bad_signature | other_method
 *   prr_registration_refused_requests_total{request}  shell, pty, subsystem, agent or port
 *                                                  forwarding ... asked for and refused
 *   prr_registered_bindings                        bindings in the table that came from registration
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import { scrapedCounter } from '../common/metrics-server.js';
import type { RegistrationCounters } from './registration.js';

export interface RegistrationMetricsSource {
  counters: RegistrationCounters;
  /** Registered bindings now in the table. */
  registered(): number;
}

export function registrationMetrics(registry: Registry, src: RegistrationMetricsSource): void {
  const registers = [registry];
  const c = src.counters;
  new Counter({
    name: 'prr_registrations_total',
    help: 'Registration requests (SSH exec) by command and result (ok, usage, refused, exhausted, internal, rate_limited)',
    labelNames: ['command', 'result'] as const,
    registers,
    collect() {
      this.reset();
      for (const [command, byResult] of c.results) for (const [result, n] of byResult) this.inc({ command, result }, n);
    },
  });
  scrapedCounter(registers, 'prr_registration_connections_total', 'SSH connections to the registration server', () => c.connections);
  scrapedCounter(registers, 'prr_registration_auth_ok_total', 'Successful public-key authentications', () => c.auth_ok);
  new Counter({
    name: 'prr_registration_auth_rejected_total',
    help: 'Authentications refused: unknown_key (not in authorized_keys), bad_signature, other_method (not publickey)',
    labelNames: ['reason'] as const,
    registers,
    collect() {
      this.reset();
      this.inc({ reason: 'unknown_key' }, c.auth_unknown_key);
      this.inc({ reason: 'bad_signature' }, c.auth_bad_signature);
      this.inc({ reason: 'other_method' }, c.auth_other_method);
    },
  });
  new Counter({
    name: 'prr_registration_refused_requests_total',
    help: 'Session and global requests refused (shell, pty, subsystem, agent and port forwarding ...)',
    labelNames: ['request'] as const,
    registers,
    collect() {
      this.reset();
      for (const [request, n] of c.refused_by_request) this.inc({ request }, n);
    },
  });
  new Gauge({
    name: 'prr_registered_bindings',
    help: 'Bindings in the table that came from SSH registration',
    registers,
    collect() {
      this.set(src.registered());
    },
  });
}
