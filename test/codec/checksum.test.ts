import t from 'tap';
import {
  csumAdd,
  csumFinish,
  csumFix16,
  csumFix32,
  csumFold,
  csumReplace16,
  csumReplace32,
  internetChecksum,
  pseudoSum4,
  pseudoSum6,
  rewrite16,
  rewrite32,
  swap16,
  udpCsumValue,
} from '../../common/codec/checksum.js';
import { rng } from '../helpers/codec.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

t.test('RFC 1071 §3 numerical example', async (t) => {
  // 00 01 f2 03 f4 f5 f6 f7: sum 2ddf0, folded ddf2, checksum 220d.
  const b = hex('0001 f203 f4f5 f6f7');
  t.equal(csumAdd(b, 0, 8), 0xddf2);
  t.equal(internetChecksum(b, 0, 8), 0x220d);
  // Byte-order independence (RFC 1071 §2(B)): the swapped data sums to the swapped sum.
  t.equal(csumAdd(hex('0100 03f2 f5f4 f7f6'), 0, 8), swap16(0xddf2));
  // Offset and odd length: a trailing byte counts as its high half.
  t.equal(csumAdd(hex('ff 0001 f203 f4f5 f6f7 99'), 1, 9), csumFold(0x2ddf0 + 0x9900));
  // Never reads past the buffer.
  t.equal(csumAdd(b, 4, 100), csumFold(0xf4f5 + 0xf6f7));
});

t.test('a real IPv4 header sums to 0xffff and its checksum recomputes', async (t) => {
  // An echo request 192.0.2.1 -> 192.0.2.2 as the kernel sent it (captured by capture.sh).
  const ip = hex('4500 0054 8b24 4000 4001 2b81 c000 0201 c000 0202');
  t.equal(csumAdd(ip, 0, 20), 0xffff);
  const z = Buffer.from(ip);
  z.writeUInt16BE(0, 10);
  t.equal(internetChecksum(z, 0, 20), 0x2b81);
  t.equal(csumFinish(csumAdd(z, 0, 10) + csumAdd(z, 10, 10)), 0x2b81, 'partial sums add up');
});

t.test('pseudo headers', async (t) => {
  t.equal(pseudoSum4(0xc0000201, 0xc0000202, 17, 21), csumFold(0xc000 + 0x0201 + 0xc000 + 0x0202 + 17 + 21));
  const a = Buffer.alloc(40);
  a.write('20010db8000100000000000000000001', 4, 'hex');
  a.write('20010db8000100000000000000000002', 20, 'hex');
  const words = 0x2001 + 0x0db8 + 0x0001 + 0x0001 + 0x2001 + 0x0db8 + 0x0001 + 0x0002;
  t.equal(pseudoSum6(a, 4, 20, 58, 64), csumFold(words + 58 + 64));
  t.equal(pseudoSum6(a, 4, 20, 58, 0x12345), csumFold(words + 58 + 0x1 + 0x2345), '32-bit length');
});

t.test('RFC 1624 §3 edge case: eqn. 3 gives 0x0000 where eqn. 2 gave 0xffff', async (t) => {
  // Data whose sum is 0x22d0 with a word m = 0x5555; checksum 0xdd2f. m changes to 0x3285:
  // the new sum is 0xffff, so the correct new checksum (full recomputation) is 0x0000.
  const data = hex('5555 cd7a 0000');
  t.equal(internetChecksum(data, 0, 6), 0xdd2f);
  t.equal(csumReplace16(0xdd2f, 0x5555, 0x3285), 0x0000);
  data.writeUInt16BE(0x3285, 0);
  t.equal(internetChecksum(data, 0, 6), 0x0000, 'full recomputation agrees');
  // RFC 1141's eqn. 2, HC' = HC + m + ~m' (ones' complement), is what gets this wrong:
  const eqn2 = csumFold(0xdd2f + 0x5555 + (~0x3285 & 0xffff));
  t.equal(eqn2, 0xffff, 'eqn. 2 yields the other zero');
  // And the fixed checksum field verifies.
  data.writeUInt16BE(csumReplace16(0xdd2f, 0x5555, 0x3285), 4);
  t.equal(csumAdd(data, 0, 6), 0xffff);
});

t.test('incremental updates equal full recomputation for random mutations', async (t) => {
  const rand = rng(1624);
  let mismatches = 0;
  const N = 3000;
  for (let i = 0; i < N; i++) {
    const len = 8 + 2 * (rand() % 40);
    const b = Buffer.alloc(len);
    for (let j = 0; j < len; j++) b[j] = rand() & 0xff;
    b[4] = 0x45; // never all zeros: see csumReplace16
    const csumOff = 2 * (rand() % (len / 2));
    b.writeUInt16BE(0, csumOff);
    b.writeUInt16BE(internetChecksum(b, 0, len), csumOff);
    // Mutate a 16- or 32-bit field (not the checksum itself).
    let f = 2 * (rand() % (len / 2 - 1));
    if (f === csumOff || f + 2 === csumOff) f = (csumOff + 4) % (len - 4);
    const wide = rand() % 2 === 0 && f + 4 <= len && f + 2 !== csumOff && f !== csumOff;
    if (wide) rewrite32(b, f, rand(), csumOff);
    else rewrite16(b, f, rand() & 0xffff, csumOff);
    const inc = b.readUInt16BE(csumOff);
    b.writeUInt16BE(0, csumOff);
    const full = internetChecksum(b, 0, len);
    if (inc !== full && mismatches++ < 3) t.equal(inc, full, `mutation ${i} (${wide ? 32 : 16}-bit)`);
  }
  t.equal(mismatches, 0, `${N} random mutations`);
});

t.test('csumReplace32 equals two 16-bit replacements', async (t) => {
  const rand = rng(32);
  for (let i = 0; i < 200; i++) {
    const c = rand() & 0xffff;
    const o = rand();
    const n = rand();
    const two = csumReplace16(csumReplace16(c, o >>> 16, n >>> 16), o & 0xffff, n & 0xffff);
    if (csumReplace32(c, o, n) !== two) t.fail(`case ${i}`);
  }
  t.pass('200 cases');
});

t.test('odd alignment: a word at an odd offset counts byte-swapped', async (t) => {
  const b = hex('0102 0304 0506 0000');
  b.writeUInt16BE(internetChecksum(b, 0, 8), 6);
  const old = b.readUInt16BE(3); // 0x0405, bytes 3..4
  b.writeUInt16BE(0xbeef, 3);
  csumFix16(b, 6, swap16(old), swap16(0xbeef));
  t.equal(csumAdd(b, 0, 8), 0xffff);
});

t.test('UDP: 0 means no checksum', async (t) => {
  t.equal(udpCsumValue(0), 0xffff);
  t.equal(udpCsumValue(0x1234), 0x1234);
  const b = hex('1234 5678 0000');
  csumFix16(b, 4, 0x1234, 0x4321, true);
  t.equal(b.readUInt16BE(4), 0, 'a field of 0 stays 0');
  csumFix32(b, 4, 0x12345678, 0x87654321, true);
  t.equal(b.readUInt16BE(4), 0);
  // A result of 0 is written 0xffff: the data sums to 0xffff after the change.
  const c = hex('5555 cd7a 0000');
  c.writeUInt16BE(0xdd2f, 4);
  rewrite16(c, 0, 0x3285, 4, true);
  t.equal(c.readUInt16BE(4), 0xffff);
  t.equal(csumAdd(c, 0, 6), 0xffff, 'and still verifies');
  const d = hex('5555 cd7a 0000');
  d.writeUInt16BE(0xdd2f, 4);
  rewrite16(d, 0, 0x3285, 4, false);
  t.equal(d.readUInt16BE(4), 0x0000, 'without udp the same change writes 0');
});

t.test('rewrite helpers return the old value and fold large sums', async (t) => {
  const b = hex('0a0b 0c0d 0000');
  b.writeUInt16BE(internetChecksum(b, 0, 6), 4);
  t.equal(rewrite16(b, 0, 0xffff, 4), 0x0a0b);
  t.equal(rewrite32(b, 0, 0xdeadbeef, 4), 0xffff0c0d);
  t.equal(csumAdd(b, 0, 6), 0xffff);
  t.equal(csumFold(2 ** 40 + 5), csumFold(csumFold(2 ** 40) + 5));
  t.equal(csumFold(0x1fffe), 0xffff);
});
