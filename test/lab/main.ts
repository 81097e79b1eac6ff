/**
 * `npm run lab`: build the lab, start the PRR and three SMAP CPEs, and run until Ctrl-C;
 * `npm run lab -- --check` runs a scripted smoke check and exits 0 or 1.
 *
 *   lan1 ── cpe1 (smap) ──────────────┐
 *   lan2 ── cpe2 (smap) ──────────── core (radvd) ── prr ── inet (HTTP, DNS, echo)
 *   lan3 ── cpe3 (smap) ── agg3 (radvd) ══ MTU 1280 ══┘
 *
 * Three CPEs share 192.0.2.100. Each learns its WAN address by SLAAC from the router's
 * advertisements and knows only the PRR's address and host-key fingerprint: it registers itself
 * over SSH and gets its port set. cpe3's path to the PRR crosses a 1280-byte link (its own link is
 * 1500), as the 2010 experiment's tunnel path did.
 */
import { labUnavailableReason, waitFor } from './lab.js';
import { parsePortSet } from '../../common/portset.js';
import { ensurePackages } from './packages.js';
import { buildSmapLab, INET, SHARED, type Cpe, type SmapLab } from './smap-topology.js';

const say = (line: string): void => void process.stdout.write(line + '\n');

/** Bytes fetched per CPE: enough full-size segments to need the 1280 path's PMTU discovery. */
const DOWNLOAD_BYTES = 300_000;
/** The MTU of the link on cpe3's path. */
const NARROW_MTU = 1280;

const DNS_CLIENT = `
const r = new (require('dns').promises.Resolver)({ timeout: 2000, tries: 3 });
r.setServers([process.argv[1]]);
r.resolve4('www.example.test').then((a) => console.log(a.join(',')), (e) => console.log('error ' + e.code));`;

interface Status {
  binding: { ports: string } | null;
  wan: { ipv6: string | null };
  tunnel: { mtu: number | null };
}

async function status(l: SmapLab, cpe: Cpe): Promise<Status | undefined> {
  const r = await l.cli(cpe.host, 'smap', ['status', '--config', cpe.config, '--json']);
  return r.code === 0 ? (JSON.parse(r.stdout) as Status) : undefined;
}

/** One CPE's smoke check: each line printed, true when all passed. */
async function checkCpe(l: SmapLab, cpe: Cpe, narrow: number | undefined): Promise<boolean> {
  const st = await waitFor(`${cpe.host.short} registered`, async () => {
    const s = await status(l, cpe);
    return s?.binding ? s : undefined;
  }, 60_000, 250);
  const set = parsePortSet(st.binding!.ports);
  await l.startDhcp(cpe); // the agent wrote the LAN's DHCP MTU snippet when it applied the lease
  const name = cpe.lan.short;
  const results: Array<[string, boolean]> = [];

  const r = await cpe.lan.exec('curl', ['-sS', '--max-time', '10', `http://${INET}/`]);
  const seen = r.code === 0 ? r.stdout.trim() : `curl failed: ${r.stderr.trim()}`;
  const m = /^192\.0\.2\.100:(\d+)$/.exec(seen);
  const inSet = m !== null && set.has(Number(m[1]));
  say(`lab: ${cpe.host.short} (WAN ${st.wan.ipv6} by SLAAC) registered ${SHARED} ports ${st.binding!.ports}; ${name} -> http://${INET}/ seen from ${seen}: ${inSet ? 'ok' : 'FAILED'}`);
  results.push(['http', inSet]);

  const big = await cpe.lan.exec('curl', ['-sS', '--max-time', '30', '-o', '/dev/null', '-w', '%{size_download}', `http://${INET}/bytes?n=${DOWNLOAD_BYTES}`], { timeoutMs: 40_000 });
  results.push(['download', big.stdout.trim() === String(DOWNLOAD_BYTES)]);
  const dns = await cpe.lan.exec(process.execPath, ['-e', DNS_CLIENT, INET], { timeoutMs: 15_000 });
  results.push(['dns', dns.stdout.trim() === INET]);
  const ping = await cpe.lan.exec('ping', ['-c', '3', '-i', '0.2', '-W', '2', INET]);
  results.push(['ping', /3 received/.test(ping.stdout)]);
  const mtu = (await status(l, cpe))?.tunnel.mtu;
  // The PRR's tunnel MTU toward this CPE: lowered by the core's Packet Too Big on the narrow path.
  const show = await l.cli(l.prr, 'prr', ['subscribers', 'show', cpe.host.short, '--json', '--config', l.prrConfig]);
  const prrMtu = show.code === 0 ? (JSON.parse(show.stdout) as { mtu: number }).mtu : undefined;
  if (narrow !== undefined) results.push(['pmtu', prrMtu !== undefined && prrMtu <= narrow - 40]);
  say(`lab: ${cpe.host.short} ${name}: ${DOWNLOAD_BYTES}-byte download ${results[1]![1] ? 'ok' : `FAILED (${big.stdout.trim() || big.stderr.trim()})`}, ` +
    `DNS ${results[2]![1] ? 'ok' : `FAILED (${dns.stdout.trim()})`}, ping ${results[3]![1] ? 'ok' : 'FAILED'}; ` +
    `tunnel MTU: CPE ${mtu ?? '?'}, PRR toward it ${prrMtu === 0 ? 'the default' : prrMtu ?? '?'}${narrow !== undefined ? ` (path MTU ${narrow}: ${results[4]![1] ? 'ok' : 'FAILED, expected at most ' + (narrow - 40)})` : ''}`);
  return results.every(([, ok]) => ok);
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
  say('lab: building namespaces (core router with radvd, a 1280-byte path), starting the PRR and three CPE agents ...');
  const specs = [{ ports: '', register: {} }, { ports: '', register: {} }, { ports: '', register: {}, pathMtu: NARROW_MTU }] as const;
  const l = await buildSmapLab('lab', specs, { core: true });
  try {
    for (const cpe of l.cpes) l.startAgent(cpe);
    for (const cpe of l.cpes) await l.agentRunning(cpe);
    let ok = true;
    for (const [i, cpe] of l.cpes.entries()) ok = (await checkCpe(l, cpe, (specs[i] as { pathMtu?: number }).pathMtu)) && ok;
    const list = await l.cli(l.prr, 'prr', ['subscribers', 'list', '--config', l.prrConfig]);
    say('');
    say('The PRR\'s bindings (prr subscribers list):');
    for (const line of list.stdout.trimEnd().split('\n')) say(`  ${line}`);
    say(`lab: check ${ok ? 'passed' : 'FAILED'}`);
    if (check) return ok ? 0 : 1;
    const [c1, c2, c3] = l.cpes;
    say('');
    say(`Three CPEs share ${SHARED} through the PRR. Try:`);
    say(`  ip netns exec ${c1.lan.name} curl http://${INET}/`);
    say(`  ip netns exec ${c2.lan.name} ping -c 3 ${INET}`);
    say(`  ip netns exec ${c3!.lan.name} curl -o /dev/null http://${INET}/bytes?n=1000000   # over the 1280-byte path`);
    say(`  ip netns exec ${c1.host.name} node dist/smap/cli.js status --config ${c1.config}`);
    say(`  ip netns exec ${l.prr.name} node dist/prr/cli.js subscribers list --config ${l.prrConfig}`);
    say(`  ip netns exec ${l.core!.name} tcpdump -ni prr ip6`);
    say(`The PRR's registration server: ssh -p 2222 cpe@[2001:db8:ffff::1] status (host key ${l.registration?.hostKeyFingerprint ?? '?'})`);
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
