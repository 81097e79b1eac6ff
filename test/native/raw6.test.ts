/**
 * Raw IPv6 (next header 4) sockets against the real kernel, in three namespaces:
 *
 *   A  va0 2001:db8:1::1/64 ----------------------- 2001:db8:1::2/64 vb0  B
 *   A  var 2001:db8:2::1/64 --- 2001:db8:2::2 R 2001:db8:3::1 --mtu 1280-- 2001:db8:3::2 vbr  B
 *                                             R: unreachable 2001:db8:dead::/48
 *
 * One fixtures/raw6-agent.mjs per end (A, B) holds a Tunnel6Socket bound to '::'.
 */
import t, { type Test } from 'tap';

type Tap = Test;
import { addNs, Agent, ensureDist, removeAll, sh, skipReason, type Reply } from './fixtures/netns.js';

t.test('raw IPv6 tunnel sockets in namespaces', { skip: skipReason() }, run);

type Pkt = { len: number; src: string; dst: string; seq: number; intact: boolean };
type Err = { origin: string; errno: number; type: number; code: number; info: number; dst: string; offender: string | null; payloadHead: string; payloadLen: number };
type Stats = Record<string, number>;

function topology(): { a: string; b: string; r: string } {
  const a = addNs('a');
  const b = addNs('b');
  const r = addNs('r');
  sh(a, `ip link add va0 type veth peer name vb0 netns ${b}`);
  sh(a, `ip link add var type veth peer name vra netns ${r}`);
  sh(r, `ip link add vrb mtu 1280 type veth peer name vbr netns ${b}`);
  sh(b, 'ip link set vbr mtu 1280');
  sh(r, 'sysctl -qw net.ipv6.conf.all.forwarding=1');
  for (const [ns, dev, addr] of [
    [a, 'va0', '2001:db8:1::1/64'], [b, 'vb0', '2001:db8:1::2/64'],
    [a, 'var', '2001:db8:2::1/64'], [r, 'vra', '2001:db8:2::2/64'],
    [r, 'vrb', '2001:db8:3::1/64'], [b, 'vbr', '2001:db8:3::2/64'],
  ] as const) {
    sh(ns, `ip -6 addr add ${addr} dev ${dev} nodad`);
    sh(ns, `ip link set ${dev} up`);
  }
  sh(a, 'ip -6 route add 2001:db8:3::/64 via 2001:db8:2::2');
  sh(a, 'ip -6 route add 2001:db8:dead::/48 via 2001:db8:2::2');
  sh(b, 'ip -6 route add 2001:db8:2::/64 via 2001:db8:3::1');
  sh(r, 'ip -6 route add unreachable 2001:db8:dead::/48');
  // Resolve neighbours first, so no test packet waits in (or overflows) a neighbour queue. Up to
  // five tries each (any reply is success): on a loaded machine a just-raised veth can lose one.
  for (const dst of ['2001:db8:1::2', '2001:db8:3::2']) sh(a, `ping -6 -c5 -i0.2 -W2 -q ${dst}`);
  sh(b, 'ping -6 -c5 -i0.2 -W2 -q 2001:db8:2::1');
  return { a, b, r };
}

function ok(t: { ok: (v: unknown, msg: string) => boolean }, r: Reply, what: string): Reply {
  t.ok(r.ok, `${what}${r.ok ? '' : `: ${r.error}`}`);
  return r;
}

async function run(t: Tap): Promise<void> {
  t.teardown(removeAll);
  ensureDist();
  const { a, b } = topology();
  const A = new Agent(a);
  const B = new Agent(b);

  // B holds jumbo-capable slots (4096 bytes of room) and small batches, so batching shows.
  ok(t, await B.request({ op: 'open', bind: '::', batch: 16, slotSize: 4136 }), 'B opens');
  ok(t, await A.request({ op: 'open', bind: '::' }), 'A opens');

  await t.test('a batch of N packets goes out in sendmmsg and arrives in batches', async (t) => {
    const N = 200;
    const sent = ok(t, await A.request({ op: 'send', dst: '2001:db8:1::2', src: '2001:db8:1::1', sizes: Array(N).fill(84), seq0: 0 }), 'send');
    t.equal(sent.sent, N, 'kernel took all N');
    const got = (await B.request({ op: 'wait', count: N, timeoutMs: 5000 })) as Reply & { packets: Pkt[]; batches: number[] };
    t.equal(got.packets.length, N, 'B received N');
    t.ok(got.packets.every((p) => p.len === 84 && p.intact), 'lengths and bytes intact');
    t.same(got.packets.map((p) => p.seq), [...Array(N).keys()], 'in order');
    t.ok(got.packets.every((p) => p.src === '2001:db8:1::1' && p.dst === '2001:db8:1::2'), 'srcs and dsts');
    t.ok(got.batches.every((n) => n >= 1 && n <= 16), 'batches within the batch size');
    t.ok(got.batches.length < N, `batched: ${N} packets in ${got.batches.length} calls`);
    const st = ((await B.request({ op: 'stats' })) as Reply & { stats: Stats }).stats;
    t.equal(st.rxPackets, N);
    t.equal(st.rxBytes, N * 84);
    t.equal(st.rxBatches, got.batches.length, 'rx_batches counts onBatch calls');
    const sa = ((await A.request({ op: 'stats' })) as Reply & { stats: Stats }).stats;
    t.equal(sa.txPackets, N);
    t.equal(sa.txBytes, N * 84);
    t.equal(sa.txBatches, 1, 'one send call');
    t.ok(sa.txSyscalls <= Math.ceil(N / 1024) + 1, 'sendmmsg: one syscall for the batch');
  });

  await t.test('the local destination is reported per packet', async (t) => {
    ok(t, await A.request({ op: 'send', dst: '2001:db8:3::2', sizes: [100, 100], seq0: 1000 }), 'send via R');
    const got = (await B.request({ op: 'wait', count: 202, timeoutMs: 5000 })) as Reply & { packets: Pkt[] };
    const last = got.packets.slice(200);
    t.same(last.map((p) => [p.seq, p.src, p.dst]), [
      [1000, '2001:db8:2::1', '2001:db8:3::2'],
      [1001, '2001:db8:2::1', '2001:db8:3::2'],
    ]);
  });

  await t.test('large packets are fragmented and reassembled; oversized ones are dropped as truncated', async (t) => {
    // 3000 fits B's 4096-byte slots; 5000 does not and sits between two that do (slot compaction).
    ok(t, await A.request({ op: 'send', dst: '2001:db8:1::2', sizes: [3000, 5000, 1200], seq0: 2000 }), 'send');
    const got = (await B.request({ op: 'wait', count: 204, timeoutMs: 5000 })) as Reply & { packets: Pkt[] };
    const last = got.packets.slice(202);
    t.same(last.map((p) => [p.seq, p.len, p.intact]), [[2000, 3000, true], [2002, 1200, true]]);
    const st = ((await B.request({ op: 'stats' })) as Reply & { stats: Stats }).stats;
    t.equal(st.rxTruncated, 1, 'rx_truncated');
  });

  await t.test('Packet Too Big from a router is reported, and the socket keeps working', async (t) => {
    // 1460 inner = 1500 outer: fits A's link, not R's 1280 link toward B.
    ok(t, await A.request({ op: 'send', dst: '2001:db8:3::2', sizes: [1460], seq0: 3000, pmtu: 'do' }), 'send');
    const e = ((await A.request({ op: 'waitErrors', count: 1, timeoutMs: 5000 })) as Reply & { errors: Err[] }).errors;
    t.equal(e.length, 1, 'one report');
    t.match(e[0], { origin: 'icmp6', type: 2, code: 0, info: 1280, errno: 90, dst: '2001:db8:3::2', offender: '2001:db8:2::2' });
    t.equal(e[0]!.payloadHead.slice(0, 2), '45', 'payload starts with the inner IPv4 header we sent');
    const mtu = (await A.request({ op: 'pathMtu', dst: '2001:db8:3::2' })) as Reply & { mtu: number };
    t.equal(mtu.mtu, 1280, 'the kernel learnt the path MTU');

    // Now the kernel knows: with 'do' the next one fails locally (EMSGSIZE), counted, reported.
    const again = await A.request({ op: 'send', dst: '2001:db8:3::2', sizes: [1460, 200], seq0: 3001 });
    t.equal(again.sent, 1, 'the oversized packet is skipped, the next one goes');
    const e2 = ((await A.request({ op: 'waitErrors', count: 2, timeoutMs: 5000 })) as Reply & { errors: Err[] }).errors;
    t.match(e2[1], { origin: 'local', errno: 90, info: 1280, dst: '2001:db8:3::2', offender: null });
    const sa = ((await A.request({ op: 'stats' })) as Reply & { stats: Stats }).stats;
    t.equal(sa.txEmsgsize, 1, 'tx_emsgsize');
    t.equal(sa.errqueueMessages, 2, 'errqueue_messages');

    // Traffic still flows both ways.
    ok(t, await B.request({ op: 'send', dst: '2001:db8:1::1', sizes: Array(20).fill(60), seq0: 4000 }), 'B sends');
    const got = (await A.request({ op: 'wait', count: 20, timeoutMs: 5000 })) as Reply & { packets: Pkt[] };
    t.equal(got.packets.length, 20, 'A still receives');
    const gb = (await B.request({ op: 'wait', count: 205, timeoutMs: 5000 })) as Reply & { packets: Pkt[] };
    t.same(gb.packets.slice(204).map((p) => p.seq), [3002], 'B got the small one sent after the EMSGSIZE');
  });

  await t.test('an unreachable destination yields an ICMPv6 Destination Unreachable report', async (t) => {
    ok(t, await A.request({ op: 'send', dst: '2001:db8:dead::1', sizes: [100], seq0: 5000 }), 'send');
    const e = ((await A.request({ op: 'waitErrors', count: 3, timeoutMs: 5000 })) as Reply & { errors: Err[] }).errors;
    t.match(e[2], { origin: 'icmp6', type: 1, code: 0, errno: 101, dst: '2001:db8:dead::1', offender: '2001:db8:2::2' });
    // The pending socket error must not stop the poller.
    ok(t, await B.request({ op: 'send', dst: '2001:db8:1::1', sizes: [60, 60], seq0: 6000 }), 'B sends');
    const got = (await A.request({ op: 'wait', count: 22, timeoutMs: 5000 })) as Reply & { packets: Pkt[] };
    t.same(got.packets.slice(20).map((p) => p.seq), [6000, 6001], 'A still receives');
  });

  await t.test('close is clean: fd closed, process exits on its own', async (t) => {
    for (const [name, ag] of [['A', A], ['B', B]] as const) {
      const r = ok(t, await ag.request({ op: 'close' }), `${name} closes`);
      t.equal(r.fdGone, true, `${name}: fd closed`);
      const code = await Promise.race([ag.exited, new Promise((res) => setTimeout(() => res('hung'), 5000))]);
      t.equal(code, 0, `${name} exits with nothing left on the loop`);
    }
  });
}
