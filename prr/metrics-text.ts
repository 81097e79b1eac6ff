/**
 * Per-subscriber metric families written straight to exposition text. With `per_subscriber =
 * all` a PRR has a dozen series per subscriber; prom-client keeps each in a label-hashed map and
 * formats it through several objects, about 130 µs of CPU per subscriber per scrape (13 s at
 * 100,000, bench/metrics.ts). These families skip that: at scrape time they write their lines
 * from the rows of prr/metrics-subscribers.ts, in the format prom-client would print.
 *
 * TextRegistry is a prom-client Registry that asks such a family for its text; every other
 * metric goes through prom-client as usual.
 */
import { Registry, type Metric } from 'prom-client';

export interface TextFamily {
  name: string;
  help: string;
  type: 'gauge' | 'counter';
  /** Append one `name{labels} value` line per sample. */
  write(out: string[]): void;
}

/** A label value as the exposition format wants it (backslash, quote and newline escaped). */
export function labelValue(s: string): string {
  return /[\\"\n]/.test(s) ? s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n') : s;
}

/** A sample value as prom-client prints it. */
export function sampleValue(v: number): string {
  if (Number.isFinite(v)) return String(v);
  return Number.isNaN(v) ? 'NaN' : v > 0 ? '+Inf' : '-Inf';
}

interface FamilyMetric {
  name: string;
  help: string;
  type: string;
  family: TextFamily;
  get(): Promise<{ name: string; help: string; type: string; values: []; aggregator: 'sum' }>;
  reset(): void;
}

export class TextRegistry extends Registry {
  /** Register a family (its samples exist only in the text exposition). */
  registerFamily(family: TextFamily): void {
    const m: FamilyMetric = {
      name: family.name,
      help: family.help,
      type: family.type,
      family,
      get: async () => ({ name: family.name, help: family.help, type: family.type, values: [], aggregator: 'sum' }),
      reset: () => undefined,
    };
    this.registerMetric(m as unknown as Metric);
  }

  // prom-client calls this for each metric in metrics() (not in its typings).
  async getMetricsAsString(metric: Metric): Promise<string> {
    const family = (metric as unknown as Partial<FamilyMetric>).family;
    if (family === undefined) return (Registry.prototype as unknown as { getMetricsAsString(m: Metric): Promise<string> }).getMetricsAsString.call(this, metric);
    const out = [`# HELP ${family.name} ${family.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${family.name} ${family.type}`];
    family.write(out);
    return out.join('\n');
  }
}
