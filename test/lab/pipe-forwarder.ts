/**
 * Test-only forwarder for the foundation's end-to-end proof (not the SMAP or PRR):
 * IPv4 read from a TUN is sent through the raw IPv6 proto-4 socket to one peer, and IPv4
 * received from that peer is written back to the TUN. Both directions move whole batches:
 * the TX batch points into the RX ring, so no packet is copied in JS.
 *
 *   node dist/test/lab/pipe-forwarder.js --tun pipe0 --bind 2001:db8:100::1 --peer 2001:db8:100::2
 *
 * Prints "ready" once the TUN and socket are open; stops on SIGTERM/SIGINT.
 */
import { isIPv6 } from 'node:net';
import { openTun, openTunnel6, type TxBatch } from '../../common/native/index.js';
import { parseIpv6Into } from '../../common/codec/ipv6.js';

function arg(name: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : undefined;
  if (v === undefined) {
    process.stderr.write(`pipe-forwarder: missing --${name}\n`);
    process.exit(2);
  }
  return v;
}

const tunName = arg('tun');
const bind = arg('bind');
const peer = arg('peer');
if (!isIPv6(bind) || !isIPv6(peer)) {
  process.stderr.write('pipe-forwarder: --bind and --peer must be IPv6 addresses\n');
  process.exit(2);
}

const tun = openTun({ name: tunName });
const sock = openTunnel6({ bind });
const peerAddr = Buffer.alloc(16);
parseIpv6Into(peer, peerAddr, 0);

function txFor(ring: { batch: number }): TxBatch {
  return {
    slab: Buffer.alloc(0),
    offsets: new Int32Array(ring.batch),
    lens: new Int32Array(ring.batch),
    dsts: Buffer.alloc(16 * ring.batch),
    count: 0,
  };
}

// TUN -> tunnel: every packet goes to the one peer.
const up = txFor(tun.ring);
for (let i = 0; i < tun.ring.batch; i++) peerAddr.copy(up.dsts!, i * 16);
up.slab = tun.ring.slab;
tun.start((count) => {
  const r = tun.ring;
  for (let i = 0; i < count; i++) {
    up.offsets[i] = i * r.slotSize + r.headroom;
    up.lens[i] = r.lens[i]!;
  }
  up.count = count;
  sock.send(up);
});

// tunnel -> TUN: only packets whose outer source is the peer.
const down = txFor(sock.ring);
down.slab = sock.ring.slab;
let rejected = 0;
sock.start((count) => {
  const r = sock.ring;
  let n = 0;
  for (let i = 0; i < count; i++) {
    if (r.srcs.compare(peerAddr, 0, 16, i * 16, i * 16 + 16) !== 0) {
      rejected++;
      continue;
    }
    down.offsets[n] = i * r.slotSize + r.headroom;
    down.lens[n] = r.lens[i]!;
    n++;
  }
  down.count = n;
  if (n > 0) tun.send(down);
});

function stop(): void {
  tun.close();
  sock.close();
  process.stdout.write(JSON.stringify({ tun: tun.stats(), tunnel: sock.stats(), rejected }) + '\n');
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdout.write('ready\n');
