import t from 'tap';
import { readFileSync } from 'node:fs';
import { STAT, STATS_COUNT } from '../../common/native/stats.js';

t.test('the TS counter table mirrors the C enum in src/aplus.h', async (t) => {
  const h = readFileSync(new URL('../../common/native/src/aplus.h', import.meta.url), 'utf8');
  const c = new Map<string, number>();
  for (const m of h.matchAll(/^\s+ST_([A-Z0-9_]+) = (\d+),?/gm)) c.set(m[1]!, Number(m[2]));
  t.equal(c.get('COUNT'), STATS_COUNT, 'ST_COUNT');
  c.delete('COUNT');
  const camel = (s: string): string => s.toLowerCase().replace(/_([a-z0-9])/g, (_, x: string) => x.toUpperCase());
  const fromC = Object.fromEntries([...c].map(([k, v]) => [camel(k), v]));
  // ST_ERRQUEUE is errqueueMessages on the TS side.
  const rename: Record<string, string> = { errqueue: 'errqueueMessages' };
  const normalized = Object.fromEntries(Object.entries(fromC).map(([k, v]) => [rename[k] ?? k, v]));
  t.same(normalized, { ...STAT });
});
