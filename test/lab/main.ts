/**
 * `npm run lab`: build the lab and run what exists until Ctrl-C; `npm run lab -- --check` runs a
 * scripted smoke check and exits 0 or 1.
 *
 * What exists today: the foundation's pipe (two gateways moving IPv4 through TUN -> raw IPv6
 * proto 4 -> TUN). The full demo (Internet side, PRR, IPv6 core with radvd, three CPEs that
 * register themselves over SSH) arrives with the registration issue; until then this says so.
 */
import { labUnavailableReason } from './lab.js';
import { ensurePackages } from './packages.js';
import { buildPipe, HOSTA, HOSTB } from './pipe.js';

const say = (line: string): void => void process.stdout.write(line + '\n');

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
  const pipe = await buildPipe('lab', 'aplus');
  try {
    const ping = await pipe.hosta.exec('ping', ['-c', '2', '-i', '0.2', '-W', '2', HOSTB]);
    say(`lab: ping ${HOSTA} -> ${HOSTB} through the tunnel: ${ping.code === 0 ? 'ok' : 'FAILED'}`);
    if (check) return ping.code === 0 ? 0 : 1;
    say('');
    say('The pipe lab is up: hosta (192.168.1.2) -- gwa == IPv4-in-IPv6 over 2001:db8:100::/64 == gwb -- hostb (198.51.100.2)');
    say('Try:');
    say(`  ip netns exec ${pipe.hosta.name} ping ${HOSTB}`);
    say(`  ip netns exec ${pipe.hostb.name} iperf3 -s -1 &  ip netns exec ${pipe.hosta.name} iperf3 -c ${HOSTB}`);
    say(`  ip netns exec ${pipe.gwa.name} tcpdump -ni eth-gwb ip6`);
    say('Not yet here: the PRR, the SMAP CPEs and SSH registration (issues 3, 4, 5); the full demo comes with them.');
    say('Ctrl-C stops the lab and removes every namespace.');
    await new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
    });
    return 0;
  } finally {
    await pipe.stop();
    pipe.lab.destroy();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`lab: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
