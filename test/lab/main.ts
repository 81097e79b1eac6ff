/**
 * `npm run lab`: build the lab, start the PRR and two SMAP CPEs, and run until Ctrl-C;
 * `npm run lab -- --check` runs a scripted smoke check and exits 0 or 1.
 *
 *   lan1 ── cpe1 (smap) ──┐
 *                          prr ── inet (HTTP, DNS, echo)        two CPEs share 192.0.2.100
 *   lan2 ── cpe2 (smap) ──┘
 *
 * The CPEs have static bindings, as in the 2010 experiment (10000-10999 and 11000-11999). What is
 * not here yet: SSH self-registration, radvd and the 1280-byte path (the registration issue).
 */
import { labUnavailableReason } from './lab.js';
import { ensurePackages } from './packages.js';
import { buildSmapLab, INET, SHARED, type Cpe } from './smap-topology.js';

const say = (line: string): void => void process.stdout.write(line + '\n');
const SETS = ['10000-10999', '11000-11999'] as const;

/** curl from a CPE's LAN host to the Internet server, which answers with the source it saw. */
async function fetchFrom(cpe: Cpe): Promise<string> {
  const r = await cpe.lan.exec('curl', ['-sS', '--max-time', '10', `http://${INET}/`]);
  return r.code === 0 ? r.stdout.trim() : `curl failed: ${r.stderr.trim()}`;
}

async function main(): Promise<number> {
  const check = process.argv.includes('--check');
  const reason = labUnavailableReason();
  if (reason !== undefined) {
    process.stderr.write(`lab: ${reason}\n`);
    return 2;
  }
  const cmd = ensurePackages(say);
  if (cmd !== undefined) {
    process.stderr.write(`lab: missing Debian packages; as root run: ${cmd}\n`);
    return 2;
  }
  say('lab: building namespaces, starting the PRR and two CPE agents ...');
  const l = await buildSmapLab('lab', [{ ports: SETS[0] }, { ports: SETS[1] }]);
  try {
    for (const cpe of l.cpes) l.startAgent(cpe);
    for (const cpe of l.cpes) await l.agentRunning(cpe);
    for (const cpe of l.cpes) await l.startDhcp(cpe);
    let ok = true;
    for (const [i, cpe] of l.cpes.entries()) {
      const seen = await fetchFrom(cpe);
      const m = /^192\.0\.2\.100:(\d+)$/.exec(seen);
      const port = m ? Number(m[1]) : -1;
      const [first, last] = SETS[i]!.split('-').map(Number) as [number, number];
      const good = port >= first && port <= last;
      ok &&= good;
      say(`lab: ${cpe.lan.short} -> http://${INET}/ seen from ${seen} (${cpe.host.short} owns ${SETS[i]}): ${good ? 'ok' : 'FAILED'}`);
    }
    if (check) return ok ? 0 : 1;
    say('');
    say(`Two CPEs share ${SHARED} through the PRR. Try:`);
    say(`  ip netns exec ${l.cpes[0].lan.name} curl http://${INET}/`);
    say(`  ip netns exec ${l.cpes[1].lan.name} ping -c 3 ${INET}`);
    say(`  ip netns exec ${l.cpes[0].host.name} node dist/smap/cli.js status --config ${l.cpes[0].config}`);
    say(`  ip netns exec ${l.prr.name} node dist/prr/cli.js subscribers list --config ${l.prrConfig}`);
    say(`  ip netns exec ${l.prr.name} tcpdump -ni cpe1 ip6`);
    say('Not yet here: SSH self-registration (the CPEs use static bindings), radvd and a 1280-byte path.');
    say('Ctrl-C stops the lab and removes every namespace.');
    await new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
    });
    return 0;
  } finally {
    l.destroy();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`lab: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
