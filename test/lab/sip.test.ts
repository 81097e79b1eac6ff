/**
 * SIP end to end, in network namespaces, with the real PRR, the real agents and sipp (Debian
 * package sip-tester): both LAN hosts (192.168.1.2 behind CPE 1 and CPE 2, which share
 * 192.0.2.100 with PSID 5 and PSID 6 of a=6/k=6) call a sipp UAS on the Internet host at the
 * same time, from the same local ports (SIP 5060, RTP 6000). Each call plays sipp's G.711 stream
 * (236 RTP packets) to the UAS, which echoes RTP to where it comes from (-rtp_echo: symmetric
 * RTP, as a media relay or SBC does), and ends with BYE (test/lab/fixtures/sip-uac-rtp.xml).
 *
 * No SIP ALG is involved: the SMAP attaches no conntrack helper (smap/nft.ts), so the SDP still
 * offers the LAN address; the kernel's nf_nat_sip would rewrite it and open RTP expectations on
 * ports of its own choosing, outside the CPE's set. The test checks that every port seen from
 * 192.0.2.100 lies in the calling CPE's set, and the counters of the PRR and the agents.
 */
import { join } from 'node:path';
import t from 'tap';
import { parsePortSet } from '../../common/portset.js';
import { labUnavailableReason, waitFor } from './lab.js';
import { capture, FIXTURES, grew, prrSubscriber, smapStatus } from './e2e.js';
import { buildSmapLab, INET, LAN_HOST, SHARED, type SmapLab } from './smap-topology.js';

const SETS = ['psid:a=6/k=6/id=5', 'psid:a=6/k=6/id=6'] as const;
const sets = SETS.map((s) => parsePortSet(s));
const RTP_PACKETS = 236; // /usr/share/sip-tester/g711a.pcap

/** "IP a.b.c.d.P > e.f.g.h.Q: UDP" lines of tcpdump -n: [source port, destination port] when the source is `src`. */
function flows(lines: string[], src: string): Array<[number, number]> {
  const re = new RegExp(`IP ${src.replaceAll('.', '\\.')}\\.(\\d+) > [\\d.]+\\.(\\d+):`);
  return lines.map((x) => re.exec(x)).filter((m) => m !== null).map((m) => [Number(m[1]), Number(m[2])]);
}

t.test('SIP calls with RTP from two CPEs sharing one address', { skip: labUnavailableReason() }, async (t) => {
  const l: SmapLab = await buildSmapLab('sipe2e', [{ ports: SETS[0] }, { ports: SETS[1] }]);
  t.teardown(() => l.destroy());
  for (const c of l.cpes) l.startAgent(c);
  for (const c of l.cpes) await l.agentRunning(c);

  const uas = l.inet.spawn('sipp', ['-sn', 'uas', '-i', INET, '-p', '5060', '-mi', INET, '-mp', '6000', '-rtp_echo', '-m', '2', '-nostdin'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let uasOut = '';
  uas.stdout?.setEncoding('utf8').on('data', (d: string) => (uasOut += d));
  uas.stderr?.setEncoding('utf8').on('data', (d: string) => (uasOut += d));
  const uasExit = new Promise<number | null>((r) => uas.once('exit', (code) => r(code)));
  await waitFor('sipp UAS on 5060', () => {
    if (uas.exitCode !== null) throw new Error(`sipp UAS exited ${uas.exitCode}: ${uasOut.trim().split('\n').slice(-3).join(' | ')}`);
    return l.inet.run('ss', '-lunH', 'sport = :5060').trim() !== '' ? true : undefined;
  });

  const before = await Promise.all(['cpe1', 'cpe2'].map((n) => prrSubscriber(l, n)));
  const wan = await capture(l.inet, 'eth0', `udp and host ${SHARED}`);
  const sdp = await capture(l.inet, 'eth0', `udp and src host ${SHARED} and dst port 5060`, ['-A']);
  const lans = await Promise.all(l.cpes.map((c) => capture(c.lan, 'eth0', `udp and src host ${INET} and src port 6000`, ['-Q', 'in'])));
  const calls = await Promise.all(l.cpes.map((c) => c.lan.exec('sipp', [`${INET}:5060`, '-sf', join(FIXTURES, 'sip-uac-rtp.xml'), '-i', LAN_HOST, '-p', '5060', '-mp', '6000', '-m', '1', '-nostdin'],
    { timeoutMs: 60_000 })));
  const uasCode = await Promise.race([uasExit, new Promise<string>((r) => setTimeout(() => r('still running'), 10_000))]);
  await new Promise((r) => setTimeout(r, 500));
  const seen = await wan.stop();
  const offers = (await sdp.stop()).join('\n');
  const echoed = await Promise.all(lans.map((c) => c.stop()));

  for (const [i, r] of calls.entries()) {
    t.equal(r.code, 0, `lan${i + 1}: sipp UAC exits 0 (every call successful)`);
    t.match(r.stdout, /Successful call\s+\|\s+\d+\s+\|\s+1\s/, `lan${i + 1}: one successful call`);
  }
  t.equal(uasCode, 0, `the UAS took both calls and exits 0 ${uasCode === 0 ? '' : uasOut.slice(-400)}`);
  t.match(offers, new RegExp(`c=IN IP4 ${LAN_HOST.replaceAll('.', '\\.')}`), 'the SDP went out unchanged (no SIP ALG rewrote it)');

  const out = flows(seen, SHARED);
  const back = flows(seen, INET);
  const outside = out.filter(([sport]) => !sets[0]!.has(sport) && !sets[1]!.has(sport));
  t.same(outside, [], 'every packet from the shared address came from a port of one of the two sets');
  for (const [i, set] of sets.entries()) {
    const sip = new Set(out.filter(([s, d]) => d === 5060 && set.has(s)).map(([s]) => s));
    const rtp = out.filter(([s, d]) => d === 6000 && set.has(s));
    t.equal(sip.size, 1, `CPE ${i + 1}: SIP from one port of its set (${[...sip].join(', ')})`);
    t.equal(rtp.length, RTP_PACKETS, `CPE ${i + 1}: all ${RTP_PACKETS} RTP packets reached the UAS from its set`);
    const rtpPorts = new Set(rtp.map(([s]) => s));
    t.equal(rtpPorts.size, 1, `CPE ${i + 1}: RTP from one port of its set (${[...rtpPorts].join(', ')})`);
    const echoedToIt = back.filter(([s, d]) => s === 6000 && rtpPorts.has(d)).length;
    t.equal(echoedToIt, RTP_PACKETS, `CPE ${i + 1}: the UAS echoed every one to that port`);
    t.equal(echoed[i]!.length, echoedToIt, `lan${i + 1}: got every echoed RTP packet`);
  }

  const after = await Promise.all(['cpe1', 'cpe2'].map((n) => prrSubscriber(l, n)));
  for (const i of [0, 1]) {
    t.ok(grew(before[i]!, after[i]!, 'from_cpe_packets') >= RTP_PACKETS + 3, `PRR: cpe${i + 1} sent the call (INVITE, ACK, BYE, RTP) (${grew(before[i]!, after[i]!, 'from_cpe_packets')} packets)`);
    t.ok(grew(before[i]!, after[i]!, 'to_cpe_packets') >= RTP_PACKETS + 3, `PRR: cpe${i + 1} got the answers and the echo (${grew(before[i]!, after[i]!, 'to_cpe_packets')} packets)`);
    t.equal(grew(before[i]!, after[i]!, 'drops'), 0, `PRR: no drops for cpe${i + 1}`);
  }
  for (const c of l.cpes) {
    const st = await smapStatus(l, c);
    t.same([st.counters.drops_out, st.counters.drops_in], [{}, {}], `${c.host.short}: no drops either way`);
    const helpers = c.host.run('conntrack', '-L').split('\n').filter((x) => x.includes('helper='));
    t.same(helpers, [], `${c.host.short}: no conntrack entry has a helper`);
  }
});
