/**
 * adviseHugePages (common/native/src/hugepage.c): madvise(MADV_HUGEPAGE) on the 2 MiB-aligned part
 * of a real ArrayBuffer; pages touched after it are huge pages (this process's AnonHugePages grows)
 * wherever the kernel has transparent huge pages. The in-memory fake advises nothing.
 */
import { readFileSync } from 'node:fs';
import t from 'tap';
import { NativeError } from '../../common/errors.js';
import { adviseHugePages } from '../../common/native/index.js';
import { adviseHugePages as fakeAdvise } from '../../common/native/fake.js';

const HUGE = 2 << 20;

function anonHugeKb(): number {
  return Number(/^AnonHugePages:\s+(\d+) kB/m.exec(readFileSync('/proc/self/smaps_rollup', 'utf8'))?.[1] ?? NaN);
}

/** THP mode, e.g. "madvise"; "never" (or a kernel without THP) means no huge page can appear. */
function thpMode(): string {
  try {
    return /\[(\w+)\]/.exec(readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'))?.[1] ?? 'never';
  } catch {
    return 'never';
  }
}

t.test('the aligned part of a buffer is advised, and touched pages become huge pages', async (t) => {
  const buf = new ArrayBuffer(16 << 20);
  const before = anonHugeKb();
  const n = adviseHugePages(buf);
  // 16 MiB hold at least 7 whole aligned 2 MiB pages, wherever the buffer starts.
  t.ok(n >= 7 * HUGE && n <= 8 * HUGE && n % HUGE === 0, `advised ${n} bytes: whole huge pages inside the buffer`);
  new Uint8Array(buf).fill(1);
  const grew = anonHugeKb() - before;
  if (thpMode() === 'never') t.comment('transparent huge pages are off on this kernel: only the advice is checked');
  else t.ok(grew >= 2048, `AnonHugePages grew by ${grew} kB after the pages were touched`);
  t.equal(new Uint8Array(buf)[12345], 1, 'the memory is the buffer\'s still');
});

t.test('collapse: a buffer filled before the advice', async (t) => {
  const buf = new ArrayBuffer(8 << 20);
  new Uint8Array(buf).fill(7);
  const n = adviseHugePages(buf, { collapse: true });
  t.ok(n >= 3 * HUGE, `advised ${n} bytes`);
  t.equal(new Uint8Array(buf)[HUGE + 5], 7, 'contents kept');
});

t.test('too small for a huge page: nothing advised; not an ArrayBuffer: a NativeError', async (t) => {
  t.equal(adviseHugePages(new ArrayBuffer(4096)), 0, 'a page');
  t.throws(() => adviseHugePages(new Uint8Array(16) as unknown as ArrayBuffer), NativeError, 'a typed array is refused');
});

t.test('the fake advises nothing', async (t) => {
  t.equal(fakeAdvise(new ArrayBuffer(16 << 20)), 0);
});
