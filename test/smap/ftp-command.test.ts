/** The FTP ALG's grammar: PORT/EPRT parsing and rewriting, line splitting, malformed input. */
import t from 'tap';
import { parseIpv4 } from '../../common/config/values.js';
import { classify, formatDataCommand, LineSplitter, lineText, MAX_LINE } from '../../smap/ftp-command.js';

const ip = (s: string): number => parseIpv4(s)!;

t.test('PORT and EPRT announcements parse', async (t) => {
  t.same(classify('PORT 192,168,1,2,156,64'), { kind: 'data', cmd: { verb: 'PORT', address: ip('192.168.1.2'), port: 40000 } });
  t.same(classify('port 192, 168, 1, 2, 0, 21'), { kind: 'data', cmd: { verb: 'PORT', address: ip('192.168.1.2'), port: 21 } }, 'any case, spaces after commas');
  t.same(classify('  PORT 255,255,255,255,255,255  '), { kind: 'data', cmd: { verb: 'PORT', address: 0xffffffff, port: 65535 } });
  t.same(classify('EPRT |1|192.168.1.2|40000|'), { kind: 'data', cmd: { verb: 'EPRT', address: ip('192.168.1.2'), port: 40000 } });
  t.same(classify('EPRT !1!10.0.0.1!5!'), { kind: 'data', cmd: { verb: 'EPRT', address: ip('10.0.0.1'), port: 5 } }, 'any delimiter');
});

t.test('other commands pass as other', async (t) => {
  for (const line of ['PASV', 'EPSV', 'EPSV ALL', 'RETR PORT 1,2,3', 'USER port', 'PORTS 1,2,3,4,5,6', '', 'x', '\u00ff\u00f4PORT']) {
    t.same(classify(line), { kind: 'other' }, JSON.stringify(line));
  }
});

t.test('malformed announcements are refused, never thrown', async (t) => {
  const malformed = [
    'PORT', 'PORT ', 'PORT 1,2,3', 'PORT 1,2,3,4,5,6,7', 'PORT 256,1,1,1,1,1', 'PORT 1,1,1,1,1,256', 'PORT a,b,c,d,e,f',
    'PORT -1,1,1,1,1,1', 'PORT 1,1,1,1,0,0', 'PORT 1.1.1.1,1,1', 'PORT 1,,1,1,1,1', 'PORT 99999999999,1,1,1,1,1',
    'EPRT', 'EPRT |1|1.2.3.4|', 'EPRT |1|1.2.3.4|70000|', 'EPRT |1|1.2.3.4|0|', 'EPRT |3|1.2.3.4|5|', 'EPRT |1|1.2.3|5|',
    'EPRT |1|1.2.3.4.5|5|', 'EPRT  1 1.2.3.4 5 ', 'EPRT |1|1.2.3.4|5', 'EPRT |1|1.2.3.4|5|x', 'EPRT \u0000|1|1.2.3.4|5|',
  ];
  for (const line of malformed) {
    const c = classify(line);
    t.equal(c.kind === 'bad' && c.reason, 'malformed', JSON.stringify(line));
  }
  t.same(classify('EPRT |2|2001:db8::1|5000|'), { kind: 'bad', verb: 'EPRT', reason: 'unsupported_family' }, 'IPv6: its own reason');
  t.doesNotThrow(() => classify('PORT ' + '9,'.repeat(100_000)));
});

t.test('announcements are written back with the shared address and the new port', async (t) => {
  t.equal(formatDataCommand('PORT', ip('192.0.2.100'), 20036), 'PORT 192,0,2,100,78,68\r\n');
  t.equal(formatDataCommand('EPRT', ip('192.0.2.100'), 3220), 'EPRT |1|192.0.2.100|3220|\r\n');
  for (const verb of ['PORT', 'EPRT'] as const) {
    const back = classify(lineText(Buffer.from(formatDataCommand(verb, ip('203.0.113.7'), 65535))));
    t.same(back, { kind: 'data', cmd: { verb, address: ip('203.0.113.7'), port: 65535 } }, `${verb} round trip`);
  }
});

t.test('lines split on LF, across chunks, with a length limit', async (t) => {
  const s = new LineSplitter(10);
  t.same(s.push(Buffer.from('US')), []);
  t.same(s.push(Buffer.from('ER a\r\nPASV\r\nNO')).toString(), [Buffer.from('USER a\r\n'), Buffer.from('PASV\r\n')].toString());
  t.same((s.push(Buffer.from('OP\n')) as Buffer[]).map(lineText), ['NOOP']);
  t.equal(s.push(Buffer.from('0123456789A')), 'too_long', 'no LF within the limit');
  const s2 = new LineSplitter(10);
  t.same(s2.push(Buffer.from('0123456789\n')).length, 1, 'exactly the limit plus LF is fine');
  t.same(s2.push(Buffer.from('012345')), [], 'half a line: nothing yet');
  t.equal(s2.push(Buffer.from('6789AB\n')), 'too_long', 'a line over the limit made of two chunks');
  t.equal(new LineSplitter().push(Buffer.alloc(MAX_LINE + 1, 65)), 'too_long', `default limit ${MAX_LINE}`);
  t.equal(lineText(Buffer.from([0x50, 0xff, 0x0d, 0x0a])), 'P\u00ff', 'bytes kept as latin1');
});
