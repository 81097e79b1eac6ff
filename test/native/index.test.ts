import t from 'tap';

t.test('a missing addon is a NativeError that says how to build it', async (t) => {
  process.env['APLUS_NATIVE_ADDON'] = '/nonexistent/aplus_native.node';
  const { openTun, openTunnel6 } = await import('../../common/native/index.js');
  t.throws(() => openTun({ name: 'x0' }), { code: 'ERR_NATIVE', message: /\/nonexistent\/aplus_native\.node.*npm ci/ });
  t.throws(() => openTunnel6({ bind: '::' }), { code: 'ERR_NATIVE', message: /npm ci/ });
});

t.test('ring options are checked before anything is opened', async (t) => {
  const { openTun } = await import('../../common/native/index.js');
  t.throws(() => openTun({ name: 'x0', batch: 0 }), { code: 'ERR_NATIVE', message: /batch 0/ });
  t.throws(() => openTun({ name: 'x0', batch: 2000 }), { code: 'ERR_NATIVE', message: /batch 2000/ });
  t.throws(() => openTun({ name: 'x0', slotSize: 1024 }), { code: 'ERR_NATIVE', message: /slotSize 1024/ });
  t.throws(() => openTun({ name: 'x0', slotSize: 70000 }), { code: 'ERR_NATIVE', message: /slotSize 70000/ });
});
