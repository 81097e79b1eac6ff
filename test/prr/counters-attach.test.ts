/**
 * prr/counters.ts attached to prr/bindings.ts: the per-binding counters live in the binding
 * records (prr run's layout). They must not disturb the records' fields, must survive the table
 * growing and a change of the binding (new IPv6 address, port set, MTU), and a reused id starts
 * at zero.
 */
import t from 'tap';
import { BindingTable } from '../../prr/bindings.js';
import { B, PER_BINDING, PrrCounters } from '../../prr/counters.js';
import { PortRange, PsidSet } from '../../common/portset.js';

const V4 = 0xc0000201;
const v6 = (i: number): Buffer => {
  const b = Buffer.alloc(16);
  b.writeUInt32BE(0x20010db8, 0);
  b.writeUInt32BE(i + 1, 12);
  return b;
};

t.test('counters in the records: fields intact, counts kept across attach, growth and change', async (t) => {
  const table = new BindingTable(16);
  const counters = new PrrCounters(4);
  table.onChange = (id, what) => {
    if (what === 'add') counters.resetBinding(id);
  };
  const a = table.add({ subscriber: 'a', ipv6: v6(0), ipv4: V4, ports: new PortRange(10000, 10999), mtu: 1400, br: 1 });
  counters.perBinding[a * PER_BINDING + B.from_cpe_bytes] = 77; // counted before attach
  counters.attach(table);
  t.equal(counters.perBinding, table.slots, 'the counters are the table\'s records');
  t.equal(counters.binding(a, B.from_cpe_bytes), 77, 'a count made before attach is kept');
  const pb = counters.perBinding;
  pb[a * PER_BINDING + B.from_cpe_packets] = 2 ** 40;
  pb[a * PER_BINDING + B.to_cpe_bytes] = 5;
  pb[a * PER_BINDING + B.drops] = 3;
  t.equal(table.mtuOf(a), 1400, 'MTU untouched by the counters');
  t.equal(table.brOf(a), 1, 'BR index untouched');
  t.equal(table.ipv4Of(a), V4, 'IPv4 untouched');
  t.ok(table.ipv6Is(a, v6(0), 0), 'IPv6 untouched');
  t.equal(table.portsOf(a)?.toString(), '10000-10999', 'port set untouched');

  const ids: number[] = [];
  for (let i = 1; i < 100; i++) {
    ids.push(table.add({ subscriber: `s${i}`, ipv6: v6(i), ipv4: V4 + 1, ports: new PsidSet(4, 11, i, { allowSystemPorts: true }) }));
  }
  t.equal(counters.binding(a, B.from_cpe_packets), 2 ** 40, 'kept when the table grew (16 -> 128 records)');
  t.equal(counters.binding(a, B.drops), 3, 'drops kept');
  t.equal(counters.binding(ids[50]!, B.from_cpe_packets), 0, 'a new binding starts at zero');
  t.equal(table.lookupPort(V4, 10500), a, 'port lookup unchanged');
  t.equal(table.lookupIpv6(v6(0), 0), a, 'IPv6 lookup unchanged');
  t.equal(table.portsOf(ids[3]!)?.toString(), new PsidSet(4, 11, 4, { allowSystemPorts: true }).toString(), 'port set rebuilt');

  table.change(a, { subscriber: 'a', ipv6: v6(900), ipv4: V4 + 2, ports: new PortRange(20000, 20999), mtu: 1300 });
  t.equal(counters.binding(a, B.from_cpe_packets), 2 ** 40, 'a change (IPv6, address, ports, MTU) keeps the counters');
  t.equal(counters.binding(a, B.to_cpe_bytes), 5, 'every one of them');
  t.equal(counters.binding(a, B.drops), 3);
  t.equal(table.lookupPort(V4 + 2, 20500), a, 'the new ports lead to it');
  t.ok(table.lookupPort(V4, 10500) < 0, 'the old ones no longer');
  t.equal(table.mtuOf(a), 1300, 'the new MTU, beside the counters');

  table.remove(a);
  const b = table.add({ subscriber: 'b', ipv6: v6(500), ipv4: V4, ports: new PortRange(10000, 10999) });
  t.equal(b, a, 'the released id is reused');
  t.equal(counters.binding(b, B.from_cpe_packets), 0, 'its counters start at zero for the new binding');
  t.equal(counters.binding(b, B.drops), 0);
  t.equal(table.mtuOf(b), 0, 'and its MTU is the new binding\'s');
});

t.test('a table not attached to counters zeroes the record counters of a reused id itself', async (t) => {
  const table = new BindingTable(16);
  const a = table.add({ subscriber: 'a', ipv6: v6(0), ipv4: V4, ports: new PortRange(10000, 10999) });
  table.slots[a * PER_BINDING + B.to_cpe_packets] = 9;
  table.remove(a);
  const b = table.add({ subscriber: 'b', ipv6: v6(1), ipv4: V4, ports: new PortRange(10000, 10999) });
  t.equal(b, a);
  t.equal(table.slots[b * PER_BINDING + B.to_cpe_packets], 0);
});
