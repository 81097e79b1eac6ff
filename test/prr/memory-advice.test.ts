/** prr/memory-advice.ts: advice refused by the kernel is said once, and then no longer asked for. */
import t from 'tap';
import { memoryLogger } from '../../common/log.js';
import { softAdvice } from '../../prr/memory-advice.js';

t.test('a refusal: one warning, no further calls, no throw', async (t) => {
  const log = memoryLogger('prr');
  let calls = 0;
  const advise = softAdvice(() => {
    calls++;
    throw new Error('madvise MADV_HUGEPAGE: Invalid argument');
  }, log);
  advise(new ArrayBuffer(8));
  advise(new ArrayBuffer(8));
  t.equal(calls, 1, 'asked once');
  const warns = log.lines.filter((l) => l.includes('huge pages'));
  t.equal(warns.length, 1, 'one warning');
  t.match(warns[0], /Invalid argument/, 'naming why');
});

t.test('accepted advice is passed every buffer', async (t) => {
  const seen: number[] = [];
  const advise = softAdvice((b) => seen.push(b.byteLength), memoryLogger('prr'));
  advise(new ArrayBuffer(8));
  advise(new ArrayBuffer(16));
  t.same(seen, [8, 16]);
});
