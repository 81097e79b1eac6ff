/**
 * The replay engine of the lwAFTR conformance harness (test/conformance/lwaftr.test.ts).
 *
 *   Snabb conf ──snabb-conf.ts──► prr.ini text ──parsePrrModel──► PrrModel
 *   input pcaps ──kernelInput──► what reaches the PRR: TUN reads, tunnel packets, error-queue reports
 *   PrrModel + input ──replay──► a real PrrDataplane over in-memory fakes (common/native/fake.ts):
 *                                the packets it wrote to the TUN and sent into the tunnel, its counters
 *   expected pcaps ──expectedOutput──► what the PRR should send (the kernel's part taken out)
 *   compareOutputs / compareCounters ──► a list of differences, field by field
 *
 * The kernel's part, as this design has it (README "How the design maps"): Ethernet, ARP, NDP
 * and VLAN tags; local delivery to the host's own addresses (ICMP echo is answered there); IPv6
 * reassembly before the raw socket reads (done here, as the kernel would) and IPv6 fragmentation
 * of what it sends (expected fragments are reassembled here and compared whole); IPv4
 * fragmentation toward the Internet (expected IPv4 fragments are reassembled and compared whole,
 * but for the IPv4 id, which the fragmenter picks); the outer IPv6 header (hop limit, traffic
 * class, flow label, payload length are not compared; source and destination are).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { memoryLogger } from '../../common/log.js';
import { formatIpv6, parseIpv6 } from '../../common/native/addr6.js';
import { FakeIcmp6, FakeNet6, FakeTun, settle } from '../../common/native/fake.js';
import { BindingTable } from '../../prr/bindings.js';
import { PrrCore } from '../../prr/core.js';
import { PrrCounters } from '../../prr/counters.js';
import { PrrDataplane } from '../../prr/dataplane.js';
import { parsePrrModel, type PrrModel } from '../../prr/model.js';
import { ConfigError } from '../../common/errors.js';
import { readPcap, type Pcap } from '../helpers/pcap.js';
import { ETH, MAPPED, ourCounters, ourValue, rowOf, type InputFacts, type OurCounters } from './counters.js';
import {
  PROTO_ICMP, PROTO_ICMP6, PROTO_IPIP, diff4, ip4Text, ip6Text, ipOf, ipv4ChecksumOk, reassemble4, reassemble6, withId,
} from './packets.js';

export interface CaseSpec {
  name: string;
  conf: string;
  in_v4: string | null;
  in_v6: string | null;
  out_v4: string | null;
  out_v6: string | null;
  counters: string;
  expected_counters: Record<string, number>;
}

export function loadCases(dir: string): CaseSpec[] {
  return (JSON.parse(readFileSync(join(dir, 'cases.json'), 'utf8')) as { cases: CaseSpec[] }).cases;
}

export function pcapOf(dir: string, name: string | null): Pcap | undefined {
  return name === null ? undefined : readPcap(join(dir, 'data', name));
}

// ---- what reaches the PRR -----------------------------------------------------------------------

export type InputItem =
  | { kind: 'tun'; pkt: Buffer }
  | { kind: 'tunnel'; src: Buffer; dst: Buffer; inner: Buffer }
  | { kind: 'error'; type: number; code: number; info: number; offender: string; dst: string; quoted: Buffer };

export interface Input {
  items: InputItem[];
  /** What the kernel does with the frames that do not reach the PRR. */
  kernel: string[];
  facts: InputFacts;
}

const own6 = (model: PrrModel, p: Buffer, off: number): boolean => model.policy.brAddresses.some((b) => b.equals(p.subarray(off, off + 16)));

function frameNote(side: string, i: number, what: string): string {
  return `${side} frame ${i + 1}: ${what}`;
}

/** The input frames as the PRR would get them from the kernel. */
export function kernelInput(v4: Pcap | undefined, v6: Pcap | undefined, model: PrrModel): Input {
  const items: InputItem[] = [];
  const kernel: string[] = [];
  const facts: InputFacts = { errqueueFrameBytes: 0, kernelFrames4: 0 };
  const own4 = model.policy.ipv4;
  (v4?.frames ?? []).forEach((f, i) => {
    const p = ipOf(f);
    if (p === undefined) {
      kernel.push(frameNote('IPv4-side', i, 'not IP (ARP): the kernel\'s'));
      facts.kernelFrames4++;
    } else if (f.ipVersion === 4 && p.readUInt32BE(16) === own4) {
      kernel.push(frameNote('IPv4-side', i, `to the PRR host's own ${ip4Text(p, 16)}: local delivery, the kernel answers`));
      facts.kernelFrames4++;
    } else items.push({ kind: 'tun', pkt: p }); // an IPv6 packet here is fed as a misrouted TUN packet
  });
  const v6pkts: Buffer[] = [];
  (v6?.frames ?? []).forEach((f, i) => {
    const p = ipOf(f);
    if (p === undefined || f.ipVersion !== 6) {
      kernel.push(frameNote('IPv6-side', i, `${p === undefined ? 'not IP' : 'IPv4'}: a raw IPv6 socket never sees it, the kernel's`));
      return;
    }
    v6pkts.push(p);
  });
  for (const { pkt: p, fragments } of reassemble6(v6pkts)) {
    const note = fragments > 1 ? ` (reassembled by the kernel from ${fragments} fragments)` : '';
    const nh = p[6];
    if (nh === PROTO_IPIP) {
      if (!own6(model, p, 24)) {
        kernel.push(`IPv6 packet to ${ip6Text(p, 24)}${note}: not one of the PRR's addresses, the kernel forwards it`);
        continue;
      }
      items.push({ kind: 'tunnel', src: p.subarray(8, 24), dst: p.subarray(24, 40), inner: Buffer.from(p.subarray(40)) });
      continue;
    }
    const type = p[40] ?? 0;
    // An ICMPv6 error about a tunnel packet we sent: the kernel queues it on the raw socket.
    if (nh === PROTO_ICMP6 && type >= 1 && type <= 4 && p.length >= 88 && p[48 + 6] === PROTO_IPIP && own6(model, p, 48 + 8) && own6(model, p, 24)) {
      items.push({
        kind: 'error', type, code: p[41]!, info: p.readUInt32BE(44), offender: ip6Text(p, 8), dst: ip6Text(p, 48 + 24), quoted: Buffer.from(p.subarray(88)),
      });
      facts.errqueueFrameBytes += ETH + p.length;
      continue;
    }
    const what = nh === PROTO_ICMP6 ? (type >= 133 && type <= 137 ? `NDP (ICMPv6 ${type})` : type === 128 ? 'ICMPv6 echo request' : `ICMPv6 type ${type}`) : `next header ${nh}`;
    kernel.push(`IPv6 ${what} to ${ip6Text(p, 24)}${note}: the kernel's`);
  }
  return { items, kernel, facts };
}

// ---- what the PRR should send --------------------------------------------------------------------

export interface Out4 {
  pkt: Buffer;
  /** > 1: Snabb sent it as that many fragments (compared whole, the IPv4 id aside). */
  fragments: number;
}

export interface Out6 {
  src: string;
  dst: string;
  /** 4 for a tunnel packet; anything else is a packet the PRR cannot send (e.g. ICMPv6 58). */
  nh: number;
  /** The inner IPv4 packet (nh 4), or the IPv6 payload. */
  pkt: Buffer;
  fragments: number;
}

export interface Expected {
  out4: Out4[];
  out6: Out6[];
  kernel: string[];
}

export function expectedOutput(v4: Pcap | undefined, v6: Pcap | undefined, model: PrrModel): Expected {
  const kernel: string[] = [];
  const p4: Buffer[] = [];
  (v4?.frames ?? []).forEach((f, i) => {
    const p = ipOf(f);
    if (p === undefined || f.ipVersion !== 4) kernel.push(frameNote('expected IPv4-side', i, 'not IPv4 (ARP): the kernel\'s'));
    else if (p[9] === PROTO_ICMP && p[ihlOf(p)] === 0 && p.readUInt32BE(12) === model.policy.ipv4) {
      kernel.push(frameNote('expected IPv4-side', i, `echo reply from the PRR host's own ${ip4Text(p, 12)}: the kernel's`));
    } else p4.push(p);
  });
  const p6: Buffer[] = [];
  (v6?.frames ?? []).forEach((f, i) => {
    const p = ipOf(f);
    if (p === undefined || f.ipVersion !== 6) kernel.push(frameNote('expected IPv6-side', i, 'not IPv6: the kernel\'s'));
    else p6.push(p);
  });
  const out6: Out6[] = [];
  for (const { pkt: p, fragments } of reassemble6(p6)) {
    const type = p[40] ?? 0;
    if (p[6] === PROTO_ICMP6 && (type === 129 || (type >= 133 && type <= 137))) {
      kernel.push(`expected ICMPv6 ${type === 129 ? 'echo reply' : `NDP (type ${type})`} from ${ip6Text(p, 8)}: the kernel's`);
      continue;
    }
    out6.push({ src: ip6Text(p, 8), dst: ip6Text(p, 24), nh: p[6]!, pkt: Buffer.from(p.subarray(40)), fragments });
  }
  return { out4: reassemble4(p4).map(({ pkt, fragments }) => ({ pkt, fragments })), out6, kernel };
}

const ihlOf = (p: Buffer): number => (p[0]! & 0x0f) * 4;

// ---- running the PRR -----------------------------------------------------------------------------

export interface Got {
  out4: Buffer[];
  out6: Out6[];
  counters: OurCounters;
}

/** Ring slots big enough for the largest packet of the suite (2720 bytes of IPv4). */
const RING = { slotSize: 16384 };
/** The sender of the tunnel input (any address that is no one else's). */
const INJECTOR = '100::1';

/**
 * The PRR's data plane, as `prr run` builds it from the model, over in-memory fakes; the core
 * acts as the IPv4 hop (ttlByKernel false), as a stand-alone lwAFTR does, and its ICMPv4 errors
 * carry TTL 255 as Snabb's do (the daemon uses 64).
 */
export async function replay(model: PrrModel, input: Input): Promise<Got> {
  const table = new BindingTable(Math.max(1024, model.bindings.length * 2));
  for (const b of model.bindings) table.add({ subscriber: b.subscriber, ipv6: b.ipv6, ipv4: b.ipv4, ports: b.ports, br: b.br });
  const counters = new PrrCounters(table.idLimit + 16);
  const core = new PrrCore(table, model.policy, { ttlByKernel: false, icmpTtl: 255, tunnelMtu: model.tunnelMtu, now: () => 0 });
  const tun = new FakeTun(model.tun, RING);
  const net = new FakeNet6({ mtu: 65535 });
  const prr = net.socket({ bind: '::', addresses: model.policy.brAddresses.map((b) => formatIpv6(b)), ...RING });
  const cpes = [...new Set(model.bindings.map((b) => formatIpv6(b.ipv6)))];
  const sink = net.socket({ bind: '::', addresses: cpes, ...RING });
  const injector = net.socket({ bind: INJECTOR, ...RING });
  const out6: Out6[] = [];
  sink.start((n) => {
    const r = sink.ring;
    for (let i = 0; i < n; i++) {
      const off = i * r.slotSize + r.headroom;
      out6.push({ src: formatIpv6(r.srcs, 16 * i), dst: formatIpv6(r.dsts, 16 * i), nh: PROTO_IPIP, pkt: Buffer.from(r.slab.subarray(off, off + r.lens[i]!)), fragments: 1 });
    }
  });
  // The ICMPv6 errors the PRR makes (Destination Unreachable 5) leave through its raw ICMPv6 socket.
  const icmp6 = new FakeIcmp6();
  icmp6.onSend = (m) => void out6.push({ src: formatIpv6(m.src), dst: formatIpv6(m.dst), nh: PROTO_ICMP6, pkt: m.msg, fragments: 1 });
  const dp = new PrrDataplane(core, counters, tun, prr, { log: memoryLogger('prr'), icmp6 });
  dp.start();
  try {
    for (const it of input.items) {
      if (it.kind === 'tun') tun.inject(it.pkt);
      else if (it.kind === 'tunnel') {
        injector.send({ slab: it.inner, offsets: Int32Array.of(0), lens: Int32Array.of(it.inner.length), count: 1, dsts: it.dst, srcs: it.src });
      } else {
        prr.report({ origin: 'icmp6', errno: 0, type: it.type, code: it.code, info: it.info, dst: it.dst, offender: it.offender }, it.quoted);
      }
      await settle(); // one input at a time, in capture order, as Snabb's test driver feeds them
    }
  } finally {
    dp.stop();
    sink.close();
    injector.close();
  }
  return { out4: tun.written.map((b) => Buffer.from(b)), out6, counters: ourCounters(counters, prr.stats().errqueueMessages) };
}

// ---- comparing -----------------------------------------------------------------------------------

function compare4(e: Out4, got: Buffer, what: string): string[] {
  let exp = e.pkt;
  const out: string[] = [];
  if (e.fragments > 1 && got.length >= 20) {
    // The fragmenter (the kernel here) picks the id of the fragments: not compared.
    exp = withId(exp, got.readUInt16BE(4));
    if (!ipv4ChecksumOk(got)) out.push(`${what}: header checksum does not verify`);
  }
  return [...out, ...diff4(exp, got).map((d) => `${what}: ${d}`)];
}

export function compareOutputs(exp: Expected, got: Got): string[] {
  const out: string[] = [];
  const n4 = Math.max(exp.out4.length, got.out4.length);
  if (exp.out4.length !== got.out4.length) out.push(`to the Internet: expected ${exp.out4.length} packet(s), got ${got.out4.length}`);
  for (let i = 0; i < n4; i++) {
    const e = exp.out4[i];
    const g = got.out4[i];
    if (e === undefined) out.push(`to the Internet #${i + 1}: unexpected ${g!.length}-byte packet ${ip4Text(g!, 12)} > ${ip4Text(g!, 16)}`);
    else if (g === undefined) out.push(`to the Internet #${i + 1}: missing ${e.pkt.length}-byte packet ${ip4Text(e.pkt, 12)} > ${ip4Text(e.pkt, 16)}`);
    else out.push(...compare4(e, g, `to the Internet #${i + 1}`));
  }
  const n6 = Math.max(exp.out6.length, got.out6.length);
  if (exp.out6.length !== got.out6.length) out.push(`into the tunnel: expected ${exp.out6.length} packet(s), got ${got.out6.length}`);
  for (let i = 0; i < n6; i++) {
    const e = exp.out6[i];
    const g = got.out6[i];
    const what = `into the tunnel #${i + 1}`;
    if (e === undefined) out.push(`${what}: unexpected packet ${g!.src} > ${g!.dst}`);
    else if (g === undefined) out.push(`${what}: missing ${e.nh === PROTO_IPIP ? 'IPv4-in-IPv6' : `next-header-${e.nh}`} packet ${e.src} > ${e.dst}`);
    else {
      if (e.src !== g.src) out.push(`${what}: outer source: expected ${e.src}, got ${g.src}`);
      if (e.dst !== g.dst) out.push(`${what}: outer destination: expected ${e.dst}, got ${g.dst}`);
      if (e.nh !== g.nh) out.push(`${what}: next header: expected ${e.nh}, got ${g.nh}`);
      else if (e.nh === PROTO_ICMP6) out.push(...compareIcmp6(e.pkt, g, what));
      else out.push(...compare4({ pkt: e.pkt, fragments: 1 }, g.pkt, `${what} inner`));
    }
  }
  return out;
}

/** RFC 1071 sum over the ICMPv6 pseudo header (RFC 8200 §8.1) and the message: 0xffff when the checksum is right. */
function icmp6SumOk(msg: Buffer, src: string, dst: string): boolean {
  const ph = Buffer.alloc(40);
  parseIpv6(src).copy(ph, 0);
  parseIpv6(dst).copy(ph, 16);
  ph.writeUInt32BE(msg.length, 32);
  ph[39] = PROTO_ICMP6;
  const all = Buffer.concat([ph, msg]);
  let s = 0;
  for (let i = 0; i + 1 < all.length; i += 2) s += all.readUInt16BE(i);
  if (all.length % 2 === 1) s += all[all.length - 1]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s === 0xffff;
}

/**
 * An ICMPv6 error the PRR made: type, code, the 32-bit word after the checksum, and the quote
 * byte for byte, except the quoted IPv6 header's traffic class, flow label and hop limit (the
 * raw socket does not report them: the core writes 0, 0, 64); so the checksum is not compared but
 * verified over the pseudo header.
 */
function compareIcmp6(exp: Buffer, g: Out6, what: string): string[] {
  const out: string[] = [];
  const got = g.pkt;
  if (!icmp6SumOk(got, g.src, g.dst)) out.push(`${what}: ICMPv6 checksum wrong (0x${got.readUInt16BE(2).toString(16)})`);
  if (exp[0] !== got[0] || exp[1] !== got[1]) out.push(`${what}: ICMPv6 type/code: expected ${exp[0]}/${exp[1]}, got ${got[0]}/${got[1]}`);
  if (exp.length !== got.length) out.push(`${what}: ICMPv6 length: expected ${exp.length}, got ${got.length}`);
  const norm = (b: Buffer): Buffer => {
    const c = Buffer.from(b);
    c.fill(0, 2, 4); // checksum
    if (c.length >= 48) {
      c[8] = (c[8]! & 0xf0); // traffic class, flow label
      c.fill(0, 9, 12);
      c[15] = 0; // hop limit
    }
    return c;
  };
  const a = norm(exp);
  const b = norm(got);
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) {
      out.push(`${what}: ICMPv6 byte ${i} (${i < 8 ? 'header' : i < 48 ? 'quoted IPv6 header' : 'quoted inner packet'}): expected 0x${a[i]!.toString(16)}, got 0x${b[i]!.toString(16)}`);
      break;
    }
  }
  return out;
}

/**
 * Every mapped Snabb counter, computed from ours, against Snabb's expected delta (0 when not
 * listed), after the case's overrides; then our own counters the case names.
 */
export function compareCounters(
  expected: Record<string, number>, o: OurCounters, facts: InputFacts,
  overrides: Record<string, number> = {}, ours: Record<string, number> = {},
): string[] {
  const out: string[] = [];
  for (const name of [...Object.keys(expected), ...Object.keys(overrides)]) {
    if (rowOf(name) === undefined) out.push(`${name}: a Snabb counter missing from test/conformance/counters.ts`);
  }
  for (const row of MAPPED) {
    const want = overrides[row.theirs] ?? expected[row.theirs] ?? 0;
    const got = row.value!(o, facts);
    if (want !== got) out.push(`counter ${row.theirs} (= ${row.ours}): expected ${want}, got ${got}`);
  }
  for (const [name, want] of Object.entries(ours)) {
    const got = ourValue(o, name);
    if (want !== got) out.push(`counter ${name} (ours): expected ${want}, got ${got}`);
  }
  return out;
}

// ---- loading a Snabb conf as prr.ini ---------------------------------------------------------------

export interface LoadedModel {
  model: PrrModel;
  /** The prr.ini text the conf translates to. */
  ini: string;
  /** Why parsePrrModel refused the whole file, when it did (see below); undefined when it loaded. */
  strictError: string | undefined;
}

/** The one refusal the harness works around, to replay the behaviour anyway: see loadSnabbModel. */
export const SHARED_B4_RULE = /is also the address of \[subscriber\./;

/**
 * The model of a Snabb conf, loaded from its prr.ini text by parsePrrModel. When the loader
 * refuses the file only because several softwires share one B4 address (prr.ini allows one
 * [subscriber.X] per CPE IPv6 address), the error is kept in strictError and the bindings are
 * loaded in layers (each layer a whole prr.ini with at most one softwire per B4, every one still
 * checked by parsePrrModel), so the case's behaviour can be replayed; the case then counts as
 * failing on config until prr.ini can say it.
 */
export function loadSnabbModel(confPath: string, translate: (text: string, file: string) => string): LoadedModel {
  const ini = translate(readFileSync(confPath, 'utf8'), confPath);
  const file = `${confPath.replace(/\.conf$/, '')}.prr.ini`;
  try {
    return { model: parsePrrModel(ini, file), ini, strictError: undefined };
  } catch (err) {
    if (!(err instanceof ConfigError) || !SHARED_B4_RULE.test(err.message)) throw err;
    const [head, ...blocks] = ini.split(/\n(?=; softwire \d+:)/);
    const layers: string[][] = [];
    const seen = new Map<string, number>();
    for (const b of blocks) {
      const v6 = /^ipv6 = (.*)$/m.exec(b)?.[1] ?? '';
      const k = seen.get(v6) ?? 0;
      seen.set(v6, k + 1);
      (layers[k] ??= []).push(b);
    }
    const models = layers.map((l) => parsePrrModel([head, ...l].join('\n'), file));
    const model = models[0]!;
    model.bindings = models.flatMap((m) => m.bindings);
    return { model, ini, strictError: err.message };
  }
}
