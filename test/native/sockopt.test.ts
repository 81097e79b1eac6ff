/**
 * originalDst (SO_ORIGINAL_DST), which the SMAP's FTP ALG uses to find the server a redirected
 * control connection was going to: bad descriptors are errors, and in a network namespace with a
 * real nftables `redirect` it returns the address and port before the redirect.
 */
import t from 'tap';
import { NativeError } from '../../common/errors.js';
import { originalDst } from '../../common/native/index.js';
import { Lab, labUnavailableReason } from '../lab/lab.js';
import { distPath } from '../lab/paths.js';

t.test('bad descriptors are NativeErrors', async (t) => {
  t.throws(() => originalDst(-1), NativeError, 'negative fd');
  t.throws(() => originalDst(999_999), { message: /SO_ORIGINAL_DST: .*Bad file descriptor/ }, 'closed fd: EBADF');
});

const SCRIPT = `
const net = require('net');
import(process.argv[1]).then(({ originalDst }) => {
  const srv = net.createServer((s) => {
    console.log(JSON.stringify(originalDst(s._handle.fd)));
    s.destroy(); srv.close();
  }).listen(4021, '0.0.0.0', () => net.connect(21, '198.51.100.7').on('error', () => {}));
});`;

t.test('after an nft redirect: the original destination', { skip: labUnavailableReason() }, async (t) => {
  const lab = Lab.create('sockopt');
  t.teardown(() => lab.destroy());
  const h = lab.host('h');
  h.run('ip', 'link', 'set', 'lo', 'up');
  h.run('ip', 'route', 'add', 'local', '198.51.100.0/24', 'dev', 'lo');
  h.run('nft', 'add table ip t; add chain ip t out { type nat hook output priority -100; }; add rule ip t out tcp dport 21 redirect to :4021');
  const r = await h.exec(process.execPath, ['-e', SCRIPT, distPath('common/native/index.js')], { timeoutMs: 10_000 });
  t.same(JSON.parse(r.stdout || 'null'), { address: '198.51.100.7', port: 21 }, `SO_ORIGINAL_DST ${r.stderr.trim()}`);
});
