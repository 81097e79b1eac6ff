/**
 * A registration server in its own process, for the kill -9 test: `server-child.ts DIR KEYS_FILE`.
 * Loads the store in DIR, listens on 127.0.0.1 (a free port) and prints `port N` once ready.
 */
import { readFileSync } from 'node:fs';
import { makeRig, serve } from './helpers.js';

const [dir, keysFile] = process.argv.slice(2);
if (dir === undefined || keysFile === undefined) {
  // Run on its own (tap given the whole directory): not a test.
  process.stdout.write('1..0 # SKIP helper process of ssh.test.ts (usage: server-child.ts DIR KEYS_FILE)\n');
  process.exit(0);
}
const rig = makeRig(dir, readFileSync(keysFile, 'utf8'));
const server = await serve(rig, '127.0.0.1');
process.stdout.write(`port ${server.port} bindings ${rig.table.size}\n`);
