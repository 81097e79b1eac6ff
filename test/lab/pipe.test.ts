/**
 * The foundation's first end-to-end proof: IPv4 hosts on each side of two gateways that move
 * IPv4 packets TUN -> raw IPv6 proto 4 -> TUN through the native addon, both ways.
 */
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { labUnavailableReason, waitFor } from './lab.js';
import { buildPipe, HOSTB } from './pipe.js';

const UDP_ECHO = `
const s = require('dgram').createSocket('udp4');
s.on('message', (m, r) => s.send(m, r.port, r.address));
s.bind(7007, () => console.log('listening'));`;

const UDP_CLIENT = `
const s = require('dgram').createSocket('udp4');
const sizes = [1, 64, 512, 1400, 1432, 3000, 8000];
const got = new Map();
s.on('message', (m) => got.set(m.length, m.equals(Buffer.alloc(m.length, m.length & 255))));
let i = 0;
const send = () => { for (const n of sizes) s.send(Buffer.alloc(n, n & 255), 7007, process.argv[1]); };
const timer = setInterval(() => { send(); if (++i === 5 || got.size === sizes.length) done(); }, 300);
send();
function done() { clearInterval(timer); console.log(JSON.stringify([...got.entries()])); s.close(); }`;

t.test('IPv4 through TUN -> raw IPv6 proto 4 -> TUN, both ways', { skip: labUnavailableReason() }, async (t) => {
  const pipe = await buildPipe('pipe', 'aplus');
  t.teardown(() => pipe.lab.destroy());
  const { hosta, hostb } = pipe;

  const ping = await hosta.exec('ping', ['-c', '3', '-i', '0.2', '-W', '2', HOSTB]);
  t.equal(ping.code, 0, 'ping hosta -> hostb through the pipe');
  t.match(ping.stdout, /3 received/);
  const pingBack = await hostb.exec('ping', ['-c', '2', '-i', '0.2', '-W', '2', '192.168.1.2']);
  t.equal(pingBack.code, 0, 'ping hostb -> hosta through the pipe');

  // UDP echo, including datagrams that the hosts fragment (3000, 8000 bytes).
  const echo = hostb.spawn(process.execPath, ['-e', UDP_ECHO], { stdio: ['ignore', 'pipe', 'inherit'] });
  let echoOut = '';
  echo.stdout?.setEncoding('utf8').on('data', (d: string) => (echoOut += d));
  await waitFor('UDP echo server', () => (echoOut.includes('listening') ? true : undefined));
  const udp = await hosta.exec(process.execPath, ['-e', UDP_CLIENT, HOSTB], { timeoutMs: 10_000 });
  const echoed = new Map<number, boolean>(JSON.parse(udp.stdout.trim() || '[]'));
  for (const n of [1, 64, 512, 1400, 1432, 3000, 8000]) t.equal(echoed.get(n), true, `UDP ${n}-byte datagram echoed intact`);

  // 10 MB over TCP, content checked end to end.
  const dir = mkdtempSync(join(tmpdir(), 'aplus-pipe-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const src = join(dir, 'in.bin');
  const dst = join(dir, 'out.bin');
  const data = randomBytes(10 * 1024 * 1024);
  writeFileSync(src, data);
  const server = hostb.spawn('socat', ['-u', 'TCP4-LISTEN:5001,reuseaddr', `CREATE:${dst}`], { stdio: 'ignore' });
  const serverDone = new Promise<number | null>((r) => server.once('exit', (c) => r(c)));
  await waitFor('TCP server', () => (hostb.run('ss', '-ltnH', 'sport = :5001').trim() !== '' ? true : undefined));
  const client = await hosta.exec('socat', ['-u', `OPEN:${src}`, `TCP4:${HOSTB}:5001`], { timeoutMs: 60_000 });
  t.equal(client.code, 0, 'TCP client sent 10 MB');
  t.equal(await serverDone, 0, 'TCP server received to EOF');
  const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
  t.equal(sha(readFileSync(dst)), sha(data), '10 MB arrived intact');

  const stats = (await pipe.stop()) as Array<{ tun: Record<string, number>; tunnel: Record<string, number>; rejected: number }>;
  const [gwa, gwb] = stats;
  t.ok(gwa !== null && gwb !== null, 'both forwarders reported their counters');
  // 10 MB in segments of at most 1420 bytes: at least 7384 packets each way through the tunnel.
  t.ok(gwa!.tun['rxPackets']! > 7300, `gwa read the transfer from its TUN (${gwa!.tun['rxPackets']})`);
  // Every packet read is sent or counted as dropped: on a loaded machine a queue can be full for
  // a moment (TCP retransmits), and that must show in the counters, never vanish.
  const handled = (s: Record<string, number>): number => s['txPackets']! + s['txEagain']! + s['txErrors']! + s['txEmsgsize']!;
  t.ok(handled(gwa!.tunnel) >= gwa!.tun['rxPackets']!, `gwa sent or counted all of it into the tunnel (${gwa!.tunnel['txPackets']} sent)`);
  t.ok(gwb!.tunnel['rxPackets']! > 7300, `gwb received the transfer through the tunnel (${gwb!.tunnel['rxPackets']})`);
  t.ok(handled(gwb!.tun) >= gwb!.tunnel['rxPackets']!, `gwb wrote or counted all of it to its TUN (${gwb!.tun['txPackets']} written)`);
  t.ok(gwb!.tun['txPackets']! > 7300, `gwb wrote the transfer to its TUN (${gwb!.tun['txPackets']})`);
  t.ok(gwa!.tunnel['rxPackets']! > 0, `gwa received the ACKs through the tunnel (${gwa!.tunnel['rxPackets']})`);
  t.equal(gwa!.rejected + gwb!.rejected, 0, 'no packet from a stranger');
});
