/**
 * `[tunnel] mtu_hook` as the real system runs it (smap/daemon.ts systemIo().runHook): the agent
 * hands the MTU over and turns a failure into one line naming the hook. (In the lab, the bundled
 * agent runs it for real: test/provisioning/bundle.test.ts.)
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { NativeError } from '../../common/errors.js';
import { systemIo } from '../../smap/daemon.js';

const dir = mkdtempSync(path.join(tmpdir(), 'smap-hook-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const script = (name: string, body: string): string => {
  const f = path.join(dir, name);
  writeFileSync(f, `#!/bin/sh\n${body}\n`);
  chmodSync(f, 0o755);
  return f;
};
const unused = (): never => {
  throw new Error('not used here');
};
const io = systemIo(unused, unused, unused);

t.test('the hook gets the MTU; a failure is one line naming the hook', async (t) => {
  const out = path.join(dir, 'got');
  await io.runHook!(script('ok', `echo "$@" >${out}`), ['1420']);
  t.equal(readFileSync(out, 'utf8'), '1420\n');

  const bad = script('bad', 'echo "dhcp-mtu: no dhcp section" >&2\necho second >&2\nexit 1');
  const err = await io.runHook!(bad, ['1420']).then(() => undefined, (e: unknown) => e);
  t.ok(err instanceof NativeError);
  t.equal((err as Error).message, `${bad} 1420: dhcp-mtu: no dhcp section`);

  const missing = path.join(dir, 'absent');
  const gone = await io.runHook!(missing, ['1420']).then(() => undefined, (e: unknown) => e);
  t.ok(gone instanceof NativeError);
  t.match((gone as Error).message, new RegExp(`^${missing} 1420: .*ENOENT`));
});
