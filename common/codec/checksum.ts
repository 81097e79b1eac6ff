/**
 * The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
 *
 * A "sum" here is the ones'-complement sum of 16-bit big-endian words, folded to 16 bits and NOT
 * complemented; sums of separate parts may be added and folded again. A "checksum" is the
 * complement of the folded sum, the value that goes into a header field. A buffer whose checksum
 * field is correct sums to 0xffff over the covered bytes (plus pseudo header).
 */

/** Fold a non-negative integer sum (below 2^53) to 16 bits with end-around carry. */
export function csumFold(sum: number): number {
  while (sum > 0xffffffff) sum = (sum % 0x10000) + Math.floor(sum / 0x10000);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/**
 * Ones'-complement sum of buf[off, off+len) as big-endian 16-bit words (an odd last byte is padded
 * with a zero byte), plus `initial`, folded. Bytes past the end of `buf` are not read.
 */
export function csumAdd(buf: Buffer, off: number, len: number, initial = 0): number {
  let sum = initial;
  let i = off;
  const end = Math.min(off + len, buf.length);
  const end4 = end - 3;
  for (; i < end4; i += 4) sum += ((buf[i] << 8) | buf[i + 1]) + ((buf[i + 2] << 8) | buf[i + 3]);
  if (i + 1 < end) {
    sum += (buf[i] << 8) | buf[i + 1];
    i += 2;
  }
  if (i < end) sum += buf[i] << 8;
  return csumFold(sum);
}

/** The checksum field value for a folded or unfolded sum: its complement. */
export function csumFinish(sum: number): number {
  return ~csumFold(sum) & 0xffff;
}

/** RFC 1071 checksum of buf[off, off+len) (the checksum field inside must read 0). */
export function internetChecksum(buf: Buffer, off: number, len: number, initial = 0): number {
  return ~csumAdd(buf, off, len, initial) & 0xffff;
}

/** UDP sends a computed checksum of 0 as 0xffff, since 0 means "no checksum" (RFC 768). */
export function udpCsumValue(csum: number): number {
  return csum === 0 ? 0xffff : csum;
}

/** Sum of the IPv4 pseudo header (RFC 793 §3.1, RFC 768): src, dst, zero, protocol, length. */
export function pseudoSum4(src: number, dst: number, proto: number, len: number): number {
  return csumFold((src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + proto + len);
}

/**
 * Sum of the IPv6 pseudo header (RFC 8200 §8.1): the 16-byte addresses are read from `buf` at
 * `srcOff` and `dstOff`, then the 32-bit upper-layer length and the next header.
 */
export function pseudoSum6(buf: Buffer, srcOff: number, dstOff: number, proto: number, len: number): number {
  return csumAdd(buf, srcOff, 16, csumAdd(buf, dstOff, 16, (len >>> 16) + (len & 0xffff) + proto));
}

/**
 * RFC 1624 eqn. 3: the new checksum after one 16-bit word of the covered data changed from
 * `oldWord` to `newWord`: HC' = ~(~HC + ~m + m'). Unlike eqn. 2 (RFC 1141) it never produces
 * 0xffff where a full recomputation gives 0x0000. The one case it cannot know about is data that
 * becomes all zeros (full recomputation gives 0xffff, this gives 0); no IP, UDP or TCP header can.
 */
export function csumReplace16(csum: number, oldWord: number, newWord: number): number {
  return ~csumFold((~csum & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff)) & 0xffff;
}

/** As csumReplace16, for a 32-bit field (two adjacent words, e.g. an IPv4 address). */
export function csumReplace32(csum: number, oldValue: number, newValue: number): number {
  return (
    ~csumFold(
      (~csum & 0xffff) +
        (~(oldValue >>> 16) & 0xffff) +
        (~oldValue & 0xffff) +
        (newValue >>> 16) +
        (newValue & 0xffff),
    ) & 0xffff
  );
}

/** Swap the bytes of a 16-bit value: how a word at an odd offset of the covered data counts. */
export function swap16(v: number): number {
  return ((v & 0xff) << 8) | ((v >>> 8) & 0xff);
}

/**
 * Fix the checksum field at `csumOff` in place after a 16-bit word of the covered data changed.
 * The word must start at an even distance from the start of the covered data (else pass
 * swap16 of both words). With `udp`, a field of 0 ("no checksum") is left alone and a result
 * of 0 is written as 0xffff.
 */
export function csumFix16(buf: Buffer, csumOff: number, oldWord: number, newWord: number, udp = false): void {
  const csum = (buf[csumOff] << 8) | buf[csumOff + 1];
  if (udp && csum === 0) return;
  let next = csumReplace16(csum, oldWord, newWord);
  if (udp) next = udpCsumValue(next);
  buf[csumOff] = next >>> 8;
  buf[csumOff + 1] = next & 0xff;
}

/** As csumFix16, for a changed 32-bit field (or an address in a pseudo header). */
export function csumFix32(buf: Buffer, csumOff: number, oldValue: number, newValue: number, udp = false): void {
  const csum = (buf[csumOff] << 8) | buf[csumOff + 1];
  if (udp && csum === 0) return;
  let next = csumReplace32(csum, oldValue, newValue);
  if (udp) next = udpCsumValue(next);
  buf[csumOff] = next >>> 8;
  buf[csumOff + 1] = next & 0xff;
}

/**
 * Write a 16-bit field at `fieldOff` and fix the checksum at `csumOff` to match (same alignment
 * rule and `udp` meaning as csumFix16). Returns the old value.
 */
export function rewrite16(buf: Buffer, fieldOff: number, value: number, csumOff: number, udp = false): number {
  const old = (buf[fieldOff] << 8) | buf[fieldOff + 1];
  value &= 0xffff;
  buf[fieldOff] = value >>> 8;
  buf[fieldOff + 1] = value & 0xff;
  csumFix16(buf, csumOff, old, value, udp);
  return old;
}

/** Write a 32-bit field at `fieldOff` and fix the checksum at `csumOff`. Returns the old value. */
export function rewrite32(buf: Buffer, fieldOff: number, value: number, csumOff: number, udp = false): number {
  const old = buf.readUInt32BE(fieldOff);
  value >>>= 0;
  buf.writeUInt32BE(value, fieldOff);
  csumFix32(buf, csumOff, old, value, udp);
  return old;
}
