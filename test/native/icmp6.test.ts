/**
 * The send-only raw ICMPv6 socket (openIcmp6) against the real kernel: an ICMPv6 Destination
 * Unreachable code 5 sent from namespace A, with a per-packet source (IPV6_PKTINFO) and its
 * checksum field left 0, arrives in namespace B from that source with a valid checksum (the
 * kernel computes it: IPV6_CHECKSUM is always on for raw ICMPv6 sockets).
 *
 *   A  va0 2001:db8:1::1/64, 2001:db8:1::100/64 (the "BR") ---- 2001:db8:1::2/64 vb0  B
 *
 * B's receiver is a python3 raw ICMPv6 socket; A's sender a node script over dist/.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { addNs, ensureDist, removeAll, ROOT, sh, skipReason } from './fixtures/netns.js';

function inNs(ns: string, argv: string[], timeoutMs: number): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const c = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

const RECEIVER = `
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.settimeout(5)
print('ready', flush=True)
while True:
    data, addr = s.recvfrom(2048)
    if data[0] == 1:
        print(addr[0], data.hex(), flush=True)
        break
`;

const SENDER = `
const { openIcmp6, parseIpv6 } = await import(${JSON.stringify(`${ROOT}dist/common/native/index.js`)});
const s = openIcmp6({ bind: '::' });
const msg = Buffer.alloc(8 + 40 + 20);
msg[0] = 1; msg[1] = 5; // checksum left 0: the kernel writes it
msg[8] = 0x60; msg.writeUInt16BE(20, 12); msg[14] = 4; msg[15] = 64;
parseIpv6('2001:db8:1::2').copy(msg, 16); parseIpv6('2001:db8:1::100').copy(msg, 32);
msg[48] = 0x45;
const n = s.send({ slab: msg, offsets: Int32Array.of(0), lens: Int32Array.of(msg.length), count: 1,
  dsts: parseIpv6('2001:db8:1::2'), srcs: parseIpv6('2001:db8:1::100') });
console.log(JSON.stringify({ sent: n, stats: s.stats() }));
s.close();
`;

function sumOk(msg: Buffer, src: string, dst: string, parse: (s: string) => Buffer): boolean {
  const ph = Buffer.alloc(40);
  parse(src).copy(ph, 0);
  parse(dst).copy(ph, 16);
  ph.writeUInt32BE(msg.length, 32);
  ph[39] = 58;
  const all = Buffer.concat([ph, msg]);
  let s = 0;
  for (let i = 0; i + 1 < all.length; i += 2) s += all.readUInt16BE(i);
  if (all.length % 2 === 1) s += all[all.length - 1]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s === 0xffff;
}

t.test('raw ICMPv6 send socket in namespaces', { skip: skipReason() }, async (t) => {
  t.teardown(removeAll);
  ensureDist();
  const { parseIpv6 } = await import('../../common/native/addr6.js');
  const a = addNs('i6a');
  const b = addNs('i6b');
  sh(a, `ip link add va0 type veth peer name vb0 netns ${b}`);
  for (const [ns, dev, addr] of [[a, 'va0', '2001:db8:1::1/64'], [a, 'va0', '2001:db8:1::100/64'], [b, 'vb0', '2001:db8:1::2/64']] as const) {
    sh(ns, `ip -6 addr add ${addr} dev ${dev} nodad`);
    sh(ns, `ip link set ${dev} up`);
  }
  sh(a, 'ping -6 -c1 -W2 -q 2001:db8:1::2');

  const rx = inNs(b, ['python3', '-c', RECEIVER], 8000);
  await new Promise((r) => setTimeout(r, 300)); // the receiver's socket is open before the send
  const tx = await inNs(a, [process.execPath, '--input-type=module', '-e', SENDER], 8000);
  t.equal(tx.code, 0, `sender exits 0 ${tx.err}`);
  const sent = JSON.parse(tx.out.trim()) as { sent: number; stats: { txPackets: number; txBytes: number } };
  t.equal(sent.sent, 1, 'the kernel took it');
  t.equal(sent.stats.txPackets, 1, 'txPackets');
  t.equal(sent.stats.txBytes, 68, 'txBytes');
  const got = await rx;
  const line = got.out.split('\n').find((l) => l.startsWith('2001:'));
  t.ok(line, `B received an ICMPv6 type 1 ${got.err}`);
  if (line === undefined) return;
  const [src, hexMsg] = line.split(' ');
  const msg = Buffer.from(hexMsg!, 'hex');
  t.equal(src, '2001:db8:1::100', 'from the per-packet source (IPV6_PKTINFO)');
  t.equal(msg[0], 1, 'type 1');
  t.equal(msg[1], 5, 'code 5');
  t.not(msg.readUInt16BE(2), 0, 'the kernel filled the checksum');
  t.ok(sumOk(msg, '2001:db8:1::100', '2001:db8:1::2', parseIpv6), 'checksum valid over the pseudo header');
  t.equal(msg.length, 68, 'whole message');
  t.equal(msg[48], 0x45, 'quote intact');
});
