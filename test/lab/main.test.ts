/**
 * The main job: `npm run lab -- --check` builds the lab, lets both CPEs register themselves with the
 * PRR over SSH, and checks that each LAN reaches the Internet from inside its own port set.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { labUnavailableReason } from './lab.js';
import { distPath } from './paths.js';

const main = distPath('test/lab/main.js');

t.test('npm run lab -- --check', { skip: labUnavailableReason() ?? (existsSync(main) ? undefined : 'dist not built (npm test builds it)'), timeout: 180_000 }, async (t) => {
  const child = spawn(process.execPath, [main, '--check'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  t.equal(code, 0, `exit 0 (output: ${out.trim()})`);
  const lines = out.split('\n').filter((l) => /registered 192\.0\.2\.100 ports \d+-\d+; lan\d -> .* seen from 192\.0\.2\.100:\d+: ok$/.test(l));
  t.equal(lines.length, 2, 'both CPEs registered and reached the Internet from their own set');
  const left = existsSync('/run/netns') ? readdirSync('/run/netns').filter((n) => n.startsWith(`ap-lab-${child.pid}-`)) : [];
  t.same(left, [], 'no namespace left behind');
});
