/**
 * The main job: `npm run lab -- --check` builds the lab (core router with radvd, a 1280-byte path),
 * lets the three CPEs take their WAN addresses by SLAAC and register themselves with the PRR over
 * SSH, and checks that each LAN reaches the Internet from inside its own port set (HTTP, a download
 * that needs path-MTU discovery on the narrow path, DNS, ping).
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
  const lines = out.split('\n').filter((l) => /\(WAN 2001:db8:\d:0:[0-9a-f:]+ by SLAAC\) registered 192\.0\.2\.100 ports \d+-\d+; lan\d -> .* seen from 192\.0\.2\.100:\d+: ok$/.test(l));
  t.equal(lines.length, 3, 'three CPEs took a SLAAC address, registered and reached the Internet from their own set');
  const more = out.split('\n').filter((l) => /lan\d: 300000-byte download ok, DNS ok, ping ok;/.test(l));
  t.equal(more.length, 3, 'download, DNS and ping from each LAN');
  t.match(out, /cpe3 lan3: .*PRR toward it 1240 \(path MTU 1280: ok\)/, "the PRR's tunnel MTU toward cpe3 settled to the 1280-byte path");
  t.match(out, /lab: check passed/);
  const left = existsSync('/run/netns') ? readdirSync('/run/netns').filter((n) => n.startsWith(`ap-lab-${child.pid}-`)) : [];
  t.same(left, [], 'no namespace left behind');
});
