import t from 'tap';
import { linkMtu, pickWanAddress } from '../../smap/wan.js';

const addr = (local: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ family: 'inet6', local, prefixlen: 64, scope: 'global', ...extra });

t.test('the first usable global address', async (t) => {
  const show = (...a: unknown[]): unknown => [{ ifindex: 2, ifname: 'wan', addr_info: a }];
  t.equal(pickWanAddress(show(addr('2001:db8:1::2'))), '2001:db8:1::2');
  t.equal(pickWanAddress(show({ family: 'inet6', local: 'fe80::1', scope: 'link' }, addr('2001:db8:1::3'), addr('2001:db8:1::2'))), '2001:db8:1::3', 'newest first, link-local skipped');
  t.equal(pickWanAddress(show(addr('2001:db8:1::9', { tentative: true }), addr('2001:db8:1::2'))), '2001:db8:1::2', 'tentative (DAD running) skipped');
  t.equal(pickWanAddress(show(addr('2001:db8:1::9', { deprecated: true }), addr('2001:db8:1::2'))), '2001:db8:1::2', 'deprecated skipped');
  t.equal(pickWanAddress(show(addr('2001:db8:1::9', { temporary: true }), addr('2001:db8:1::2'))), '2001:db8:1::2', 'privacy address skipped');
  t.equal(pickWanAddress(show(addr('2001:db8:1::9', { dadfailed: true, tentative: true }))), undefined, 'DAD failed: none');
  t.equal(pickWanAddress(show({ family: 'inet', local: '192.0.2.1', scope: 'global' })), undefined, 'IPv4 only: none');
  t.equal(pickWanAddress([]), undefined, 'no such link');
  t.equal(pickWanAddress({}), undefined, 'not ip -j output');
});

t.test('the WAN MTU', async (t) => {
  t.equal(linkMtu([{ ifname: 'wan', mtu: 1500 }]), 1500);
  t.equal(linkMtu([{ ifname: 'wan' }]), undefined);
  t.equal(linkMtu(null), undefined);
});
