/**
 * The kernel-captured packets in test/fixtures/kernel (made by test/fixtures/capture.sh), found
 * from the TS sources (tap) or from dist/.
 */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ipPacket, readPcap, type Pcap } from './pcap.js';

const here = fileURLToPath(import.meta.url);
const marker = `${'/'}dist${'/'}`;
const root = here.includes(marker) ? here.slice(0, here.lastIndexOf(marker)) : resolve(dirname(here), '../..');
export const KERNEL_FIXTURES = join(root, 'test', 'fixtures', 'kernel');

export function kernelPcap(name: string): Pcap {
  return readPcap(join(KERNEL_FIXTURES, `${name}.pcap`));
}

/** The length an IP packet says it has (IPv4 total length, IPv6 40 + payload length). */
function ipLength(p: Buffer): number {
  if (p.length >= 20 && p[0] >>> 4 === 4) return p.readUInt16BE(2);
  if (p.length >= 40 && p[0] >>> 4 === 6) return 40 + p.readUInt16BE(4);
  return p.length;
}

/** The IP packets of a capture, each in its own Buffer at offset 0, link-layer padding cut off. */
export function kernelPackets(name: string): Buffer[] {
  return kernelPcap(name).frames.map((f) => {
    const p = ipPacket(f);
    return p.subarray(0, Math.min(p.length, ipLength(p)));
  });
}
