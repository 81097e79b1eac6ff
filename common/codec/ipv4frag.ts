/**
 * IPv4 fragmentation (RFC 791 §3.2, "An Example Fragmentation Procedure"; RFC 1812 §5.2.6).
 *
 * The first fragment keeps the whole header and its options; later fragments carry only the
 * options whose "copied" flag is set, padded with End of Option List to a 4-byte boundary.
 * Every fragment's data length, except the last one's, is a multiple of 8 bytes.
 * A fragment may be fragmented again: offsets add to the packet's own, and the last piece keeps
 * the packet's More Fragments flag.
 */
import {
  IPV4_FLAG_MF,
  IPV4_FRAG_OFFSET_MASK,
  IPV4_MIN_HLEN,
  IPV4_OFF_FRAG,
  IPV4_OFF_TOTAL_LEN,
  IPV4_OFF_VER_IHL,
  IPV4_OPT_COPIED,
  IPV4_OPT_EOL,
  IPV4_OPT_NOP,
  IPV4_VERSION,
} from './constants.js';
import { decodeIpv4, ipv4UpdateChecksum, newIpv4Header } from './ipv4.js';
import { DECODE_NO_VERIFY, DecodeError, type LengthSink } from './result.js';

const scratch = newIpv4Header();

/**
 * Walk the options in buf[p, end) and copy those with the copied flag to dst[q...] (or only
 * measure them when `dst` is null). Returns the number of option bytes, or bad_option.
 */
export function copyCopiedOptions(buf: Buffer, p: number, end: number, dst: Buffer | null, q: number): number {
  let n = 0;
  while (p < end) {
    const type = buf[p];
    if (type === IPV4_OPT_EOL) break;
    if (type === IPV4_OPT_NOP) {
      p++;
      continue;
    }
    if (p + 1 >= end) return DecodeError.bad_option;
    const len = buf[p + 1];
    if (len < 2 || p + len > end) return DecodeError.bad_option;
    if ((type & IPV4_OPT_COPIED) !== 0) {
      if (dst !== null) buf.copy(dst, q + n, p, p + len);
      n += len;
    }
    p += len;
  }
  return n;
}

/**
 * Fragment the IPv4 packet at buf[off, end) for `mtu`, writing fragment i into out[i] at offset
 * `outOff` (room before it is left alone, e.g. for a tunnel header) and its length into lens[i].
 * Returns the number of fragments, 1 when the packet already fits (it is copied unchanged), or:
 * dont_fragment (too big with DF set: send Fragmentation Needed), bad_mtu (no room for 8 bytes of
 * data), no_space (too few or too small out buffers), bad_option, or a decodeIpv4 error.
 * The out buffers must not overlap the packet. The packet's checksum is not verified.
 */
export function fragmentIpv4(
  buf: Buffer,
  off: number,
  end: number,
  mtu: number,
  out: readonly Buffer[],
  outOff: number,
  lens: LengthSink,
): number {
  const h = scratch;
  const payOff = decodeIpv4(buf, off, h, end, DECODE_NO_VERIFY);
  if (payOff < 0) return payOff;
  if (out.length < 1) return DecodeError.no_space;
  if (h.totalLen <= mtu) {
    if (outOff < 0 || outOff + h.totalLen > out[0].length) return DecodeError.no_space;
    buf.copy(out[0], outOff, off, off + h.totalLen);
    lens[0] = h.totalLen;
    return 1;
  }
  if (h.df) return DecodeError.dont_fragment;

  const laterOpts = copyCopiedOptions(buf, payOff - h.optLen, payOff, null, 0);
  if (laterOpts < 0) return laterOpts;
  const laterHlen = IPV4_MIN_HLEN + ((laterOpts + 3) & ~3);
  const firstData = (mtu - h.hlen) & ~7;
  const laterData = (mtu - laterHlen) & ~7;
  if (firstData < 8) return DecodeError.bad_mtu; // laterData >= firstData: laterHlen <= hlen
  const dataLen = h.totalLen - h.hlen;
  const count = 1 + Math.ceil((dataLen - firstData) / laterData);
  if (count > out.length) return DecodeError.no_space;

  let pos = 0;
  for (let i = 0; i < count; i++) {
    const o = out[i];
    const hlen = i === 0 ? h.hlen : laterHlen;
    const n = Math.min(i === 0 ? firstData : laterData, dataLen - pos);
    const last = i === count - 1;
    if (outOff < 0 || outOff + hlen + n > o.length) return DecodeError.no_space;
    if (i === 0) {
      buf.copy(o, outOff, off, off + h.hlen);
    } else {
      buf.copy(o, outOff, off, off + IPV4_MIN_HLEN);
      copyCopiedOptions(buf, payOff - h.optLen, payOff, o, outOff + IPV4_MIN_HLEN);
      o.fill(IPV4_OPT_EOL, outOff + IPV4_MIN_HLEN + laterOpts, outOff + hlen);
    }
    buf.copy(o, outOff + hlen, payOff + pos, payOff + pos + n);
    o[outOff + IPV4_OFF_VER_IHL] = (IPV4_VERSION << 4) | (hlen >>> 2);
    o.writeUInt16BE(hlen + n, outOff + IPV4_OFF_TOTAL_LEN);
    const mf = !last || h.mf ? IPV4_FLAG_MF : 0;
    o.writeUInt16BE(mf | (((h.fragOff + pos) >>> 3) & IPV4_FRAG_OFFSET_MASK), outOff + IPV4_OFF_FRAG);
    ipv4UpdateChecksum(o, outOff);
    lens[i] = hlen + n;
    pos += n;
  }
  return count;
}
