/**
 * IPv6 text <-> 16 bytes, for the native edge (the addon takes addresses as 16-byte Buffers).
 * `parseIpv6` throws NativeError on bad text; `formatIpv6` gives RFC 5952 text.
 */
import { isIPv6 } from 'node:net';
import { NativeError } from '../errors.js';

/** Writes `text` at buf[off..off+16). */
export function writeIpv6(text: string, buf: Buffer, off: number): void {
  const s = text.includes('%') ? text.slice(0, text.indexOf('%')) : text;
  if (!isIPv6(s)) throw new NativeError(`not an IPv6 address: ${text}`);
  let head = s;
  let tail = '';
  const dbl = s.indexOf('::');
  if (dbl >= 0) {
    head = s.slice(0, dbl);
    tail = s.slice(dbl + 2);
  }
  const words = (part: string): number[] => {
    if (part === '') return [];
    const out: number[] = [];
    for (const g of part.split(':')) {
      if (g.includes('.')) {
        const o = g.split('.').map(Number);
        out.push((o[0]! << 8) | o[1]!, (o[2]! << 8) | o[3]!);
      } else {
        out.push(parseInt(g, 16));
      }
    }
    return out;
  };
  const h = words(head);
  const t = words(tail);
  const all = dbl >= 0 ? [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t] : h;
  for (let i = 0; i < 8; i++) buf.writeUInt16BE(all[i]!, off + 2 * i);
}

export function parseIpv6(text: string): Buffer {
  const b = Buffer.alloc(16);
  writeIpv6(text, b, 0);
  return b;
}

/** RFC 5952: lower case, longest run (>= 2) of zero groups as '::', first one on a tie. */
export function formatIpv6(buf: Uint8Array, off = 0): string {
  const w: number[] = [];
  for (let i = 0; i < 8; i++) w.push((buf[off + 2 * i]! << 8) | buf[off + 2 * i + 1]!);
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (a: number[]): string => a.map((x) => x.toString(16)).join(':');
  if (best < 0) return hex(w);
  return `${hex(w.slice(0, best))}::${hex(w.slice(best + bestLen))}`;
}
