/**
 * The FTP ALG over real loopback sockets, with in-memory mappings and conntrack: what reaches the
 * server, what the client is told, which port of the set is picked, what is counted. (The lab test,
 * test/lab/ftp.test.ts, runs it for real: nft redirect, SO_ORIGINAL_DST, vsftpd, curl.)
 */
import net from 'node:net';
import t, { type Test } from 'tap';
import { parseIpv4, parseIpv4Prefix } from '../../common/config/values.js';
import { memoryLogger } from '../../common/log.js';
import { parsePortSet } from '../../common/portset.js';
import { SmapCounters } from '../../smap/counters.js';
import { FtpAlg, nthPort, pickDataPort, type DataMapping } from '../../smap/ftp-alg.js';
import { smapRegistry } from '../../smap/metrics.js';

const SHARED = parseIpv4('192.0.2.100')!;
const LOOP = parseIpv4('127.0.0.1')!;

/** A stand-in FTP server: greets, answers "200 ok" to every line (QUIT: "221 bye" and close),
 * records the lines. */
async function fakeServer(): Promise<{ port: number; lines: string[]; close(): Promise<void> }> {
  const lines: string[] = [];
  const socks = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    socks.add(s);
    s.on('error', () => undefined);
    s.write('220 fake\r\n');
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString('latin1');
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl).replace(/\r$/, '');
        lines.push(line);
        buf = buf.slice(nl + 1);
        if (line === 'QUIT') s.end('221 bye\r\n');
        else s.write('200 ok\r\n');
      }
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  return {
    port: (srv.address() as net.AddressInfo).port,
    lines,
    close: () => new Promise((r) => { for (const s of socks) s.destroy(); srv.close(() => r()); }),
  };
}

interface Rig {
  alg: FtpAlg;
  port: number;
  added: DataMapping[];
  removed: DataMapping[];
  server: Awaited<ReturnType<typeof fakeServer>>;
  /** Connect a client; `say` sends and waits for `n` more reply lines. */
  client(): Promise<{ say(text: string | Buffer, n?: number): Promise<string[]>; closed: Promise<void>; sock: net.Socket }>;
}

async function rig(t: Test, opts: { ports?: string; inUse?: number[]; failMapping?: boolean; lan?: string; dst?: () => { address: string; port: number }; maxSessions?: number } = {}): Promise<Rig> {
  const server = await fakeServer();
  const added: DataMapping[] = [];
  const removed: DataMapping[] = [];
  const alg = new FtpAlg({
    log: memoryLogger(),
    lanPrefix: parseIpv4Prefix(opts.lan ?? '127.0.0.0/8')!,
    binding: () => ({ shared: SHARED, ports: parsePortSet(opts.ports ?? '20000-20002') }),
    serverPort: server.port,
    random: () => 0,
    ...(opts.maxSessions !== undefined ? { maxSessions: opts.maxSessions } : {}),
    io: {
      originalDst: opts.dst ?? (() => ({ address: '127.0.0.1', port: server.port })),
      addMapping: async (m) => {
        if (opts.failMapping === true) throw new Error('nft: No such file or directory');
        added.push(m);
      },
      removeMapping: async (m) => void removed.push(m),
      portsInUse: async () => new Set(opts.inUse ?? []),
    },
  });
  const port = await alg.listen('127.0.0.1');
  t.teardown(async () => {
    await alg.close();
    await server.close();
  });
  const client: Rig['client'] = async () => {
    const sock = net.connect(port, '127.0.0.1');
    sock.on('error', () => undefined);
    const replies: string[] = [];
    let buf = '';
    let want = 0;
    let wake: (() => void) | undefined;
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        replies.push(buf.slice(0, nl).replace(/\r$/, ''));
        buf = buf.slice(nl + 1);
      }
      if (replies.length >= want) wake?.();
    });
    const closed = new Promise<void>((r) => sock.once('close', () => { wake?.(); r(); }));
    const wait = (n: number): Promise<string[]> => {
      want = n;
      return new Promise((resolve) => {
        const done = (): void => resolve(replies.splice(0, n));
        if (replies.length >= n) return done();
        wake = done;
        setTimeout(done, 3000).unref();
      });
    };
    await wait(1); // the greeting
    return { sock, closed, say: async (text, n = 1) => { sock.write(text); return wait(n); } };
  };
  return { alg, port, added, removed, server, client };
}

t.test('nthPort and pickDataPort walk the set, PSID runs included', async (t) => {
  const psid = parsePortSet('psid:a=6/k=6/id=9');
  t.equal(nthPort(psid, 0), psid.chunks()[0]![0]);
  t.equal(nthPort(psid, 16), psid.chunks()[1]![0], 'the 17th port starts the second run');
  t.throws(() => nthPort(psid, psid.size));
  const range = parsePortSet('20000-20002');
  t.equal(pickDataPort(range, (p) => p !== 20001, () => 0), 20001);
  t.equal(pickDataPort(range, () => false, () => 0.99), 20002, 'starts at a random place');
  t.equal(pickDataPort(range, () => true), undefined, 'none free');
  const seen = new Set<number>();
  for (let i = 0; i < 200; i++) seen.add(pickDataPort(psid, () => false)!);
  t.ok([...seen].every((p) => psid.has(p)), 'random picks stay in the PSID set');
});

t.test('PORT and EPRT reach the server rewritten; other lines pass in order', async (t) => {
  const r = await rig(t, { inUse: [20000] });
  const c = await r.client();
  t.same(await c.say('USER a\r\nPORT 127,0,0,1,156,64\r\nRETR f\r\n', 3), ['200 ok', '200 ok', '200 ok']);
  t.same(r.server.lines, ['USER a', 'PORT 192,0,2,100,78,33', 'RETR f'], 'PORT names shared:20001 (20000 is held by conntrack)');
  t.same(r.added, [{ server: LOOP, port: 20001, client: LOOP, clientPort: 40000, timeoutSec: 60 }], 'the mapping steers shared:20001 to the client');
  await c.say('EPRT |1|127.0.0.1|40001|\r\n');
  t.equal(r.server.lines.at(-1), 'EPRT |1|192.0.2.100|20002|', 'EPRT: the next free port (20001 is reserved)');
  t.same(await c.say('PORT 127,0,0,1,1,1\r\n'), ['425 No free port in 20000-20002 for the data connection (smap FTP ALG)'], 'set exhausted: 425');
  t.same(r.server.lines.length, 4, 'the refused PORT never reached the server');
  const e = r.alg.snapshot();
  t.same([e.events.sessions, e.events.port_rewritten, e.events.eprt_rewritten, e.events.no_free_port, e.active_mappings], [1, 1, 1, 1, 2]);
  const registry = smapRegistry({
    counters: new SmapCounters(),
    binding: () => ({ shared: SHARED, ports: parsePortSet('20000-20002') }),
    tunnelMtu: () => 1460,
    conntrackTable: async () => '',
    ftpAlg: () => r.alg.snapshot(),
  });
  const text = await registry.metrics();
  t.match(text, /^smap_ftp_alg_events_total\{event="port_rewritten"\} 1$/m, 'Prometheus: the rewrites');
  t.match(text, /^smap_ftp_alg_events_total\{event="no_free_port"\} 1$/m, 'Prometheus: the refusals by kind');
  t.match(text, /^smap_ftp_alg_mappings 2$/m, 'Prometheus: the mappings waiting');
  c.sock.end();
  await c.closed;
  await new Promise((res) => setTimeout(res, 50));
  t.same(r.removed.map((m) => m.port).sort(), [20001, 20002], 'the session ended: its mappings are removed');
  t.equal(r.alg.snapshot().active_sessions, 0);
});

t.test('bad lines get a reply and a count, nothing reaches the server, the session goes on', async (t) => {
  const r = await rig(t);
  const c = await r.client();
  t.match((await c.say('PORT 1,2,3\r\n'))[0], /^501 Syntax error in PORT/);
  t.match((await c.say('PORT 10,1,1,1,1,1\r\n'))[0], /^501 PORT must name the client's own address/);
  t.match((await c.say('EPRT |2|::1|5|\r\n'))[0], /^522 /);
  t.match((await c.say(Buffer.from([0xff, 0xf4, 0x0d, 0x0a])))[0], /^200 ok/, 'binary bytes pass');
  t.same(r.server.lines.map((l) => Buffer.from(l, 'latin1').toString('hex')), ['fff4'], 'only the last line reached the server, byte for byte');
  t.same(await c.say('x'.repeat(5000), 1), ['500 Command line too long (smap FTP ALG)']);
  await c.closed;
  const e = r.alg.snapshot().events;
  t.same([e.malformed, e.foreign_address, e.unsupported_family, e.line_too_long], [1, 1, 1, 1]);
  const c2 = await r.client();
  t.same(await c2.say('NOOP\r\n'), ['200 ok'], 'a new session works after all that');
  t.same(await c2.say('QUIT\r\n'), ['221 bye'], "the server's last reply reaches the client before the close");
  await c2.closed;
  await new Promise((res) => setTimeout(res, 20));
  t.equal(r.alg.snapshot().active_sessions, 0, 'both sessions are gone');
});

t.test('refusals: not from the LAN, no original destination, not the FTP port, nft refuses the mapping', async (t) => {
  const notLan = await rig(t, { lan: '10.0.0.0/8' });
  const s = net.connect(notLan.port, '127.0.0.1');
  s.on('error', () => undefined);
  await new Promise<void>((r) => s.once('close', () => r()));
  t.equal(notLan.alg.snapshot().events.refused, 1, 'a connection from outside the LAN prefix is dropped');

  const noDst = await rig(t, { dst: () => { throw new Error('SO_ORIGINAL_DST: No such file or directory'); } });
  const s2 = net.connect(noDst.port, '127.0.0.1');
  s2.on('error', () => undefined);
  await new Promise<void>((r) => s2.once('close', () => r()));
  t.equal(noDst.alg.snapshot().events.refused, 1, 'no original destination: dropped');

  const closedPort = await new Promise<number>((res) => { const x = net.createServer().listen(0, '127.0.0.1', () => { const p = (x.address() as net.AddressInfo).port; x.close(() => res(p)); }); });
  const down = await rig(t, { dst: () => ({ address: '127.0.0.1', port: closedPort }) });
  const s3 = net.connect(down.port, '127.0.0.1');
  s3.on('error', () => undefined);
  await new Promise<void>((r) => s3.once('close', () => r()));
  t.equal(down.alg.snapshot().events.refused, 1, 'a destination port other than the FTP port: dropped');

  const failing = await rig(t, { failMapping: true });
  const c = await failing.client();
  t.same(await c.say('PORT 127,0,0,1,1,1\r\n'), ['425 Cannot prepare the data connection (smap FTP ALG)']);
  t.equal(failing.alg.snapshot().events.mapping_failed, 1);
  t.equal(failing.alg.snapshot().active_mappings, 0, 'the port is not kept reserved');
});

t.test('sessions are bounded: over the limit, refused and counted', async (t) => {
  const r = await rig(t, { maxSessions: 1 });
  const first = await r.client();
  const second = net.connect(r.port, '127.0.0.1');
  second.on('error', () => undefined);
  await new Promise<void>((res) => second.once('close', () => res()));
  t.equal(r.alg.snapshot().events.refused, 1, 'the second session is refused');
  t.same(await first.say('NOOP\r\n'), ['200 ok'], 'the first goes on');
});

t.test('server unreachable: 421 to the client, counted', async (t) => {
  const r = await rig(t);
  await r.server.close();
  const sock = net.connect(r.port, '127.0.0.1');
  let got = '';
  sock.on('data', (d) => (got += d));
  sock.on('error', () => undefined);
  await new Promise<void>((res) => sock.once('close', () => res()));
  t.match(got, /^421 Service not available/);
  t.equal(r.alg.snapshot().events.upstream_failed, 1);
});
