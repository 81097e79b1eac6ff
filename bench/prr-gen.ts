/**
 * Packet generator for `npm run bench -- prr` (not a test, not a product): writes pre-built
 * IP packets into a TUN device at a paced rate, so the kernel of its namespace routes them on
 * toward the device under test. The same generator feeds every contender (PRR, tayga, kernel),
 * only the packets differ (IPv4-in-IPv6, IPv6 UDP, IPv4 UDP).
 *
 *   node dist/bench/prr-gen.js --tun gen0 --packets FILE
 *
 * FILE: u32 count, then per packet u16 length + bytes (built by bench/prr-packets.ts).
 * Prints "ready", then reads one JSON command per stdin line:
 *   {"pps":R,"seconds":S}  -> {"sent":N,"seconds":T,"pps":N/T,"errors":E}
 * Packets are sent round-robin over the file, in batches of up to 128 (one write() each,
 * inside one addon call per batch), paced by a 1 ms timer. Exits when stdin closes.
 */
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { openTun, type TxBatch } from '../common/native/index.js';

const BATCH = 128;
/**
 * Most packets sent in one tick. The generator sleeps 1 ms between ticks (it must not spin: on a
 * 2-core host a spinning source steals the device under test's CPU), so it sends in bursts of
 * rate/1000 packets, as a NIC with interrupt coalescing delivers them; a longer stall than this
 * allows counts as the source not keeping up.
 */
const MAX_BURST = 8192;

function arg(name: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : undefined;
  if (v === undefined) {
    process.stderr.write(`prr-gen: missing --${name}\n`);
    process.exit(2);
  }
  return v;
}

/** The packets, cycled into a whole number of batches: batch b holds slots b*128 .. b*128+127. */
function loadBatches(file: string): TxBatch[] {
  const raw = readFileSync(file);
  const count = raw.readUInt32LE(0);
  if (count === 0) throw new Error(`${file}: no packets`);
  const pkts: Buffer[] = [];
  for (let i = 0, at = 4; i < count; i++) {
    const len = raw.readUInt16LE(at);
    pkts.push(raw.subarray(at + 2, at + 2 + len));
    at += 2 + len;
  }
  const slots = Math.ceil(count / BATCH) * BATCH;
  const slotSize = Math.max(...pkts.map((p) => p.length));
  const slab = Buffer.alloc(slots * slotSize);
  const batches: TxBatch[] = [];
  for (let b = 0; b < slots / BATCH; b++) {
    const tx: TxBatch = { slab, offsets: new Int32Array(BATCH), lens: new Int32Array(BATCH), count: BATCH };
    for (let j = 0; j < BATCH; j++) {
      const slot = b * BATCH + j;
      const p = pkts[slot % count]!;
      p.copy(slab, slot * slotSize);
      tx.offsets[j] = slot * slotSize;
      tx.lens[j] = p.length;
    }
    batches.push(tx);
  }
  return batches;
}

const tun = openTun({ name: arg('tun') });
const batches = loadBatches(arg('packets'));
let next = 0; // next batch to send from

function sendUpTo(n: number): number {
  const tx = batches[next]!;
  next = (next + 1) % batches.length;
  tx.count = Math.min(n, BATCH);
  return tun.send(tx);
}

function run(pps: number, seconds: number): Promise<Record<string, number>> {
  return new Promise((resolve) => {
    const before = tun.stats();
    const t0 = performance.now();
    const end = t0 + seconds * 1000;
    let sent = 0;
    const tick = (): void => {
      const t = performance.now();
      if (t >= end) {
        const s = tun.stats();
        const dt = (t - t0) / 1000;
        resolve({ sent, seconds: dt, pps: Math.round(sent / dt), errors: s.txErrors + s.txEagain - before.txErrors - before.txEagain });
        return;
      }
      let due = Math.min(MAX_BURST, Math.floor(((t - t0) * pps) / 1000) - sent);
      while (due > 0) {
        const n = Math.min(due, BATCH);
        sent += sendUpTo(n); // a packet the kernel refuses was never offered
        due -= n;
      }
      setTimeout(tick, 1);
    };
    tick();
  });
}

const rl = createInterface({ input: process.stdin });
let queue: Promise<void> = Promise.resolve();
rl.on('line', (line) => {
  queue = queue.then(async () => {
    const cmd = JSON.parse(line) as { pps: number; seconds: number };
    const r = await run(cmd.pps, cmd.seconds);
    process.stdout.write(JSON.stringify(r) + '\n');
  });
});
rl.on('close', () => {
  void queue.then(() => {
    tun.close();
    process.exit(0);
  });
});
process.stdout.write('ready\n');
