/**
 * The SMAP's packet loop (smap/dataplane.ts) over in-memory TUN and tunnel sockets: a datagram the
 * PRR reassembled and sent whole (the kernels fragment and reassemble the IPv6 packet) reaches
 * the LAN side whole, because the tunnel socket's ring (TUNNEL_RING) holds 64 KiB per packet.
 */
import t from 'tap';
import { parsePortSet } from '../../common/portset.js';
import { FakeNet6, FakeTun, settle } from '../../common/native/fake.js';
import type { Tunnel6Socket } from '../../common/native/types.js';
import { SmapCore } from '../../smap/core.js';
import { SmapCounters } from '../../smap/counters.js';
import { SmapDataplane, TUNNEL_RING } from '../../smap/dataplane.js';
import { ip4, ip6, udp4 } from '../prr/helpers/packets.js';

const SHARED = ip4('192.0.2.100');
const INET = ip4('198.51.100.2');
const PRR = '2001:db8:ffff::1';
const CPE = '2001:db8:1::2';

/** The PRR sends `pkt` into the tunnel to the CPE; returns what the agent wrote to its TUN, and its counters. */
async function deliver(pkt: Buffer, ring: Partial<typeof TUNNEL_RING>): Promise<{ written: Buffer[]; counters: SmapCounters; tunnel: Tunnel6Socket }> {
  const net = new FakeNet6({ mtu: 1500 });
  const prr = net.socket({ bind: PRR });
  const tunnel = net.socket({ bind: CPE, ...ring });
  const tun = new FakeTun('smap0');
  const counters = new SmapCounters();
  const dp = new SmapDataplane(new SmapCore({ shared: SHARED, ports: parsePortSet('10000-10999'), prr: ip6(PRR) }), counters, tun, tunnel);
  dp.setEndpoints(ip6(PRR), ip6(CPE));
  dp.start();
  prr.send({ slab: pkt, offsets: Int32Array.of(0), lens: Int32Array.of(pkt.length), count: 1, dsts: ip6(CPE), srcs: ip6(PRR) });
  await settle();
  dp.stop();
  prr.close();
  return { written: tun.written, counters, tunnel };
}

t.test('a 4028-byte datagram from the PRR reaches the LAN side whole', async (t) => {
  const big = udp4({ src: INET, dst: SHARED, sport: 7007, dport: 10500, data: 4000 });
  const { written, counters, tunnel } = await deliver(big, TUNNEL_RING);
  t.equal(written.length, 1, 'one packet written to the TUN');
  t.equal(written[0]?.toString('hex'), big.toString('hex'), 'the datagram as the PRR sent it');
  t.equal(tunnel.stats().rxTruncated, 0, 'nothing truncated');
  const g = counters.snapshot().global;
  t.same([g['tunnel_packets'], g['tunnel_bytes'], g['to_lan_packets']], [1, big.length, 1], 'counted in and out');

  const max = udp4({ src: INET, dst: SHARED, sport: 7007, dport: 10500, data: 65535 - 28 });
  t.equal((await deliver(max, TUNNEL_RING)).written[0]?.length, 65535, 'the largest IPv4 datagram too');
});

t.test('with the default ring of 2 KiB slots it would be lost (why TUNNEL_RING)', async (t) => {
  const big = udp4({ src: INET, dst: SHARED, sport: 7007, dport: 10500, data: 4000 });
  const { written, tunnel } = await deliver(big, {});
  t.equal(written.length, 0, 'nothing reaches the TUN');
  t.equal(tunnel.stats().rxTruncated, 1, 'the socket dropped it as truncated');
});
