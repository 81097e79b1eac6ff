/**
 * The port counts CPEs report when they register or renew (`--usage`, provisioning/protocol.ts):
 * their own conntrack figures, kept per subscriber name so the PRR can export them beside what it
 * observes itself (prr/port-activity.ts) and operators see exact figures without scraping every
 * CPE. In memory only: after a PRR restart the figures come back with the next renewals.
 *
 * The registration service is wrapped, not changed: a report is recorded only after the request
 * it came with succeeded (a refused request changes nothing), and forgotten on release.
 */
import type { LeaseReply, Peer, RegisterRequest, RegistrationService, ReleaseReply, RenewRequest, UsageReport } from '../provisioning/protocol.js';

export interface UsageEntry {
  usage: UsageReport;
  /** Unix milliseconds of the report. */
  at: number;
}

export class UsageReports {
  private readonly bySubscriber = new Map<string, UsageEntry>();

  constructor(private readonly now: () => number = Date.now) {}

  set(subscriber: string, usage: UsageReport): void {
    this.bySubscriber.set(subscriber, { usage, at: this.now() });
  }

  get(subscriber: string): UsageEntry | undefined {
    return this.bySubscriber.get(subscriber);
  }

  delete(subscriber: string): void {
    this.bySubscriber.delete(subscriber);
  }

  /** Forget subscribers that are no longer bound (their lease ended, an operator released them). */
  prune(isBound: (subscriber: string) => boolean): void {
    for (const name of this.bySubscriber.keys()) if (!isBound(name)) this.bySubscriber.delete(name);
  }

  get size(): number {
    return this.bySubscriber.size;
  }
}

/** `svc`, recording each successful request's `--usage` report in `reports`. */
export function recordingUsage(svc: RegistrationService, reports: UsageReports): RegistrationService {
  const keep = (reply: LeaseReply, usage: UsageReport | undefined): LeaseReply => {
    if (usage !== undefined) reports.set(reply.subscriber, usage);
    return reply;
  };
  return {
    register: (peer: Peer, req: RegisterRequest) => keep(svc.register(peer, req), req.usage),
    renew: (peer: Peer, req: RenewRequest) => keep(svc.renew(peer, req), req.usage),
    release: (peer: Peer): ReleaseReply => {
      const r = svc.release(peer);
      reports.delete(r.subscriber);
      return r;
    },
    status: (peer: Peer) => svc.status(peer),
  };
}
