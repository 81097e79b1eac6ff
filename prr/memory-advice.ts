/**
 * The memory advice `prr run` gives the binding table and the ports-active bitmaps: transparent
 * huge pages (common/native adviseHugePages). Only a hint: where the kernel refuses (built
 * without THP), the PRR says so once and carries on with normal pages.
 */
import type { Logger } from '../common/log.js';

export function softAdvice(advise: (buf: ArrayBuffer) => unknown, log: Logger): (buf: ArrayBuffer) => void {
  let failed = false;
  return (buf) => {
    if (failed) return;
    try {
      advise(buf);
    } catch (err) {
      failed = true;
      log.warn(`transparent huge pages for the binding table refused (${(err as Error).message}): it uses normal pages, lookups in a big table cost more`);
    }
  };
}
