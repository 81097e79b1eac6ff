/**
 * `npm run bench -- NAME [args]`: run one benchmark in the lab and print its report.
 * Benchmarks are scripts that print figures and ratios; they are never timed tests.
 */
import { labUnavailableReason } from '../test/lab/lab.js';

const BENCHES: Record<string, () => Promise<{ main(args: string[]): Promise<void> }>> = {
  pipe: () => import('./pipe.js'),
  prr: () => import('./prr.js'),
  'prr-core': () => import('./prr-core.js'),
  'prr-memory': () => import('./prr-memory.js'),
  e2e: () => import('./e2e.js'),
  bundle: () => import('./bundle.js'),
  pmtu: () => import('./pmtu.js'),
  metrics: () => import('./metrics.js'),
  store: () => import('./store.js'),
};

async function main(): Promise<void> {
  const [name, ...args] = process.argv.slice(2);
  if (name === undefined || !(name in BENCHES)) {
    process.stderr.write(`bench: name one of: ${Object.keys(BENCHES).join(', ')} (npm run bench -- NAME)\n`);
    process.exit(2);
  }
  const reason = labUnavailableReason();
  if (reason !== undefined) {
    process.stderr.write(`bench: ${reason}\n`);
    process.exit(2);
  }
  const mod = await BENCHES[name]!();
  await mod.main(args);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
