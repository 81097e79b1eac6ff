/**
 * `npm run lab`: build the lab, start the PRR and two SMAP CPEs, and run until Ctrl-C;
 * `npm run lab -- --check` runs a scripted smoke check and exits 0 or 1.
 *
 *   lan1 ── cpe1 (smap) ──┐
 *                          prr ── inet (HTTP, DNS, echo)        two CPEs share 192.0.2.100
 *   lan2 ── cpe2 (smap) ──┘
 *
 * Each CPE knows only the PRR's address and host-key fingerprint: it registers itself over SSH and
 * gets its port set. Not here yet: radvd (WAN addresses are set by hand) and a 1280-byte path.
 */
import { labUnavailableReason, waitFor } from './lab.js';
import { parsePortSet } from '../../common/portset.js';
import { ensurePackages } from './packages.js';
import { buildSmapLab, INET, SHARED, type Cpe } from './smap-topology.js';

const say = (line: string): void => void process.stdout.write(line + '\n');

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
  const l = await buildSmapLab('lab', [{ ports: '', register: {} }, { ports: '', register: {} }]);
  try {
    for (const cpe of l.cpes) l.startAgent(cpe);
    for (const cpe of l.cpes) await l.agentRunning(cpe);
    let ok = true;
    for (const cpe of l.cpes) {
      // The set each CPE registered for, from its own status.
      const st = await waitFor(`${cpe.host.short} registered`, async () => {
        const r = await l.cli(cpe.host, 'smap', ['status', '--config', cpe.config, '--json']);
        const j = r.code === 0 ? (JSON.parse(r.stdout) as { binding: { ports: string } | null }) : undefined;
        return j?.binding ? j.binding : undefined;
      }, 30_000);
      const set = parsePortSet(st.ports);
      await l.startDhcp(cpe); // the agent wrote the LAN's DHCP MTU snippet when it applied the lease
      const seen = await fetchFrom(cpe);
      const m = /^192\.0\.2\.100:(\d+)$/.exec(seen);
      const good = m !== null && set.has(Number(m[1]));
      ok &&= good;
      say(`lab: ${cpe.host.short} registered ${SHARED} ports ${st.ports}; ${cpe.lan.short} -> http://${INET}/ seen from ${seen}: ${good ? 'ok' : 'FAILED'}`);
    }
    const list = await l.cli(l.prr, 'prr', ['subscribers', 'list', '--config', l.prrConfig]);
    say('');
    say('The PRR\'s bindings (prr subscribers list):');
    for (const line of list.stdout.trimEnd().split('\n')) say(`  ${line}`);
    if (check) return ok ? 0 : 1;
    say('');
    say(`Two CPEs share ${SHARED} through the PRR. Try:`);
    say(`  ip netns exec ${l.cpes[0].lan.name} curl http://${INET}/`);
    say(`  ip netns exec ${l.cpes[1].lan.name} ping -c 3 ${INET}`);
    say(`  ip netns exec ${l.cpes[0].host.name} node dist/smap/cli.js status --config ${l.cpes[0].config}`);
    say(`  ip netns exec ${l.prr.name} node dist/prr/cli.js subscribers list --config ${l.prrConfig}`);
    say(`  ip netns exec ${l.prr.name} tcpdump -ni cpe1 ip6`);
    say(`The PRR's registration server: ssh -p 2222 cpe@[2001:db8:ffff::1] status (host key ${l.registration?.hostKeyFingerprint ?? '?'})`);
    say('Not yet here: radvd (WAN addresses are set by hand) and a 1280-byte path.');
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
