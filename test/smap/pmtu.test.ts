import t from 'tap';
import { KERNEL_RECHECK_MS, PathMtu, tunnelMtuOfPtb } from '../../smap/pmtu.js';

t.test('a Packet Too Big lowers the tunnel MTU to its MTU - 40, never below 1240 (RFC 8201 §4)', async (t) => {
  const clock = { t: 0 };
  const p = new PathMtu(1460, 600_000, () => clock.t);
  t.equal(p.mtu, 1460);
  t.equal(p.dueAt, undefined, 'nothing learnt');
  t.equal(p.tooBig(1500), false, 'PTB 1500 on a 1460 tunnel: no change');
  t.equal(p.dueAt, undefined);
  t.equal(p.tooBig(1400), true, 'PTB 1400');
  t.equal(p.mtu, 1360);
  t.equal(p.tooBig(1450), false, 'a larger one does not raise it');
  t.equal(p.mtu, 1360);
  t.equal(p.tooBig(1000), true, 'below the IPv6 minimum');
  t.equal(p.mtu, 1240, '1280 - 40');
  t.equal(tunnelMtuOfPtb(0), 1240);
  t.equal(p.dueAt, 600_000);
  clock.t = 100_000;
  t.equal(p.tooBig(1280), false, 'the same MTU again: no change...');
  t.equal(p.dueAt, 700_000, '...but the timer restarts');
});

t.test('after the timeout the full MTU comes back, unless the kernel still holds a smaller path MTU', async (t) => {
  const clock = { t: 0 };
  const p = new PathMtu(1460, 600_000, () => clock.t);
  p.tooBig(1280);
  clock.t = 599_999;
  t.equal(p.expire(1500), false, 'not yet');
  clock.t = 600_000;
  t.equal(p.expire(1280), false, 'the kernel still says 1280: stays');
  t.equal(p.mtu, 1240);
  t.equal(p.dueAt, 600_000 + KERNEL_RECHECK_MS, 'asked again later');
  clock.t = p.dueAt!;
  t.equal(p.expire(1400), true, 'the kernel has 1400 now: up to 1360');
  t.equal(p.mtu, 1360);
  clock.t = p.dueAt!;
  t.equal(p.expire(1500), true, 'the kernel forgot: the full MTU');
  t.equal(p.mtu, 1460);
  t.equal(p.learntMtu, undefined);
  t.equal(p.expire(1500), false, 'nothing left to expire');
  p.tooBig(1300);
  clock.t += 600_000;
  t.equal(p.expire(undefined), true, 'the kernel unknown: the full MTU');
});

t.test('a new base (lease, config) keeps the learnt MTU below it', async (t) => {
  const p = new PathMtu(1460, 600_000, () => 0);
  p.tooBig(1300);
  p.setBase(1400);
  t.equal(p.mtu, 1260);
  p.setBase(1250);
  t.equal(p.mtu, 1250, 'a base under the learnt MTU wins');
  t.equal(p.base, 1250);
  p.forget();
  t.same([p.mtu, p.learntMtu, p.dueAt], [1250, undefined, undefined], 'forget: back to the base at once');
  const q = new PathMtu(1240, 600_000, () => 0);
  t.equal(q.tooBig(1280), false, 'a 1240 tunnel learns nothing from PTB 1280');
  t.equal(q.dueAt, undefined, 'and keeps no timer');
});
