/**
 * Snabb lwAFTR configurations (snabb-softwire-v3, YANG text syntax) read and turned into the
 * prr.ini that expresses the same binding table and policies, so that the conformance harness
 * loads every case through the PRR's own config loader (prr/model.ts parsePrrModel).
 *
 *   parseYangText(text)      statements: `keyword [argument] ;` or `keyword [argument] { ... }`
 *   readSnabbConf(text)      the parts of softwire-config an lwAFTR's forwarding depends on
 *   snabbToPrrIni(conf)      prr.ini text; throws SnabbConfError when prr.ini cannot say it
 *
 * How each Snabb setting lands in prr.ini (Snabb's schema defaults are written out explicitly,
 * because ours differ: Snabb's external MTU is 1460, its rate limit 200 per 2 s, ...):
 *
 *   binding-table/softwire               one [subscriber.swN] per softwire (N = order in the file)
 *     ipv4, b4-ipv6, br-address            shared_ipv4, ipv6, br
 *     psid + port-set/psid-length,         ports = psid:a=R/k=K/id=PSID (RFC 7597 a, k, PSID;
 *       reserved-ports-bit-count (R)         Snabb's "shift" is our m = 16 - a - k)
 *   instance/queue/external-interface/ip [prr] ipv4 (source of the ICMPv4 errors)
 *   instance/queue/internal-interface/ip [prr] tunnel_ipv6, first; then every other br-address
 *   (every softwire ipv4)                [prr] shared_ipv4, one address each
 *   (a port set holding ports < 1024)    [prr] allow_system_ports = true
 *   internal-interface/hairpinning       [prr] hairpinning
 *   external-/internal-interface         [external] / [internal]:
 *     mtu, allow-incoming-icmp,            mtu, allow_incoming_icmp, generate_icmp_errors,
 *     generate-icmp-errors,                icmp_rate_limit = PACKETS/PERIODs
 *     error-rate-limiting/{packets,period}
 *   external-interface/reassembly/       [external] reassembly_max_fragments, reassembly_max_packets
 *     {max-fragments-per-packet, max-packets}   (IPv4 from the Internet: prr/reassembly.ts)
 *
 * Snabb's internal-interface/reassembly bounds its IPv6 reassembly, which is the kernel's here
 * (net.ipv6.ip6frag_*): it is noted, not carried. ([internal] reassembly_* bound the PRR's
 * reassembly of IPv4 fragments inside the tunnel, which Snabb does not do; left at defaults.)
 *
 * Not carried, and why (listed in SnabbConf.notes): MAC addresses, next hops, VLAN tags, device
 * names, queues, mru and flow-label are the kernel's in this design (it owns the links and builds
 * the outer IPv6 header). Not expressible (SnabbConf.unsupported, snabbToPrrIni refuses): pflang
 * ingress/egress filters (packet filtering is nftables' job on the PRR host), and values outside
 * prr.ini's ranges (e.g. max-fragments-per-packet 1, an internal MTU below 1280).
 */
import { FIRST_USER_PORT, PsidSet } from '../../common/portset.js';

export class SnabbConfError extends Error {
  override name = 'SnabbConfError';
}

// ---- YANG text ---------------------------------------------------------------------------------

export interface Stmt {
  keyword: string;
  arg: string | undefined;
  children: Stmt[];
  line: number;
}

/** Tokens: `{`, `}`, `;`, quoted strings and bare words; `//` and `/* *\/` comments skipped. */
function tokenize(text: string, file: string): Array<{ t: string; quoted: boolean; line: number }> {
  const out: Array<{ t: string; quoted: boolean; line: number }> = [];
  let i = 0;
  let line = 1;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '\n') line++;
    if (/\s/.test(c)) {
      i++;
    } else if (text.startsWith('//', i)) {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (text.startsWith('/*', i)) {
      const end = text.indexOf('*/', i + 2);
      if (end < 0) throw new SnabbConfError(`${file}:${line}: comment not closed`);
      for (let j = i; j < end; j++) if (text[j] === '\n') line++;
      i = end + 2;
    } else if (c === '{' || c === '}' || c === ';') {
      out.push({ t: c, quoted: false, line });
      i++;
    } else if (c === '"' || c === "'") {
      let s = '';
      let j = i + 1;
      while (j < text.length && text[j] !== c) {
        if (c === '"' && text[j] === '\\' && j + 1 < text.length) j++;
        if (text[j] === '\n') line++;
        s += text[j];
        j++;
      }
      if (j >= text.length) throw new SnabbConfError(`${file}:${line}: string not closed`);
      out.push({ t: s, quoted: true, line });
      i = j + 1;
    } else {
      let j = i;
      while (j < text.length && !/[\s{};]/.test(text[j]!)) j++;
      out.push({ t: text.slice(i, j), quoted: false, line });
      i = j;
    }
  }
  return out;
}

export function parseYangText(text: string, file = '<conf>'): Stmt[] {
  const toks = tokenize(text, file);
  let p = 0;
  const block = (top: boolean): Stmt[] => {
    const list: Stmt[] = [];
    for (;;) {
      const tok = toks[p];
      if (tok === undefined) {
        if (top) return list;
        throw new SnabbConfError(`${file}: '}' missing at the end`);
      }
      if (tok.t === '}' && !tok.quoted) {
        if (top) throw new SnabbConfError(`${file}:${tok.line}: '}' without '{'`);
        p++;
        return list;
      }
      if (tok.quoted || tok.t === '{' || tok.t === ';') throw new SnabbConfError(`${file}:${tok.line}: expected a keyword, got ${JSON.stringify(tok.t)}`);
      const st: Stmt = { keyword: tok.t, arg: undefined, children: [], line: tok.line };
      p++;
      const a = toks[p];
      if (a !== undefined && (a.quoted || (a.t !== '{' && a.t !== ';' && a.t !== '}'))) {
        st.arg = a.t;
        p++;
      }
      const end = toks[p];
      if (end?.t === ';' && !end.quoted) p++;
      else if (end?.t === '{' && !end.quoted) {
        p++;
        st.children = block(false);
      } else throw new SnabbConfError(`${file}:${st.line}: "${st.keyword}" must end with ';' or a '{...}' block`);
      list.push(st);
    }
  };
  return block(true);
}

// ---- softwire-config ---------------------------------------------------------------------------

export interface SnabbSoftwire {
  ipv4: string;
  psid: number;
  b4: string;
  br: string;
  psidLength: number;
  reservedBits: number;
}

export interface SnabbSide {
  mtu: number;
  allowIncomingIcmp: boolean;
  generateIcmpErrors: boolean;
  ratePackets: number;
  ratePeriod: number;
  maxFragments: number;
  maxPackets: number;
}

export interface SnabbConf {
  file: string;
  softwires: SnabbSoftwire[];
  /** The lwAFTR's own addresses: external-interface ip, internal-interface ip. */
  ipv4: string;
  ipv6: string;
  hairpinning: boolean;
  external: SnabbSide;
  internal: SnabbSide;
  /** Settings that are the kernel's in this design: path and why. */
  notes: string[];
  /** Settings prr.ini cannot express: path and why. */
  unsupported: string[];
}

/** Snabb's schema defaults (snabb-softwire-v3.yang). */
const SNABB_DEFAULTS = {
  external: { mtu: 1460 },
  internal: { mtu: 1500 },
  ratePackets: 200,
  ratePeriod: 2,
  maxFragments: 20,
  maxPackets: 20000,
};

const KERNELS = 'the kernel owns the links in this design (TUN and raw IPv6 socket)';

function num(st: Stmt, file: string): number {
  const n = Number(st.arg);
  if (st.arg === undefined || !/^\d+$/.test(st.arg) || !Number.isSafeInteger(n)) throw new SnabbConfError(`${file}:${st.line}: ${st.keyword} needs a number`);
  return n;
}

function bool(st: Stmt, file: string): boolean {
  if (st.arg === 'true') return true;
  if (st.arg === 'false') return false;
  throw new SnabbConfError(`${file}:${st.line}: ${st.keyword} needs true or false`);
}

function text(st: Stmt, file: string): string {
  if (st.arg === undefined) throw new SnabbConfError(`${file}:${st.line}: ${st.keyword} needs a value`);
  return st.arg;
}

function unknown(st: Stmt, path: string, file: string): never {
  throw new SnabbConfError(`${file}:${st.line}: ${path}/${st.keyword} is not a snabb-softwire-v3 setting this reader knows`);
}

function readSide(stmts: Stmt[], path: string, file: string, mtu: number, c: SnabbConf, internal: boolean): SnabbSide {
  const s: SnabbSide = {
    mtu, allowIncomingIcmp: true, generateIcmpErrors: true, ratePackets: SNABB_DEFAULTS.ratePackets,
    ratePeriod: SNABB_DEFAULTS.ratePeriod, maxFragments: SNABB_DEFAULTS.maxFragments, maxPackets: SNABB_DEFAULTS.maxPackets,
  };
  for (const st of stmts) {
    const at = `${path}/${st.keyword}`;
    switch (st.keyword) {
      case 'mtu': s.mtu = num(st, file); break;
      case 'allow-incoming-icmp': s.allowIncomingIcmp = bool(st, file); break;
      case 'generate-icmp-errors': s.generateIcmpErrors = bool(st, file); break;
      case 'error-rate-limiting':
        for (const r of st.children) {
          if (r.keyword === 'packets') s.ratePackets = num(r, file);
          else if (r.keyword === 'period') s.ratePeriod = num(r, file);
          else unknown(r, at, file);
        }
        break;
      case 'reassembly':
        if (internal) {
          const v = st.children.map((r) => `${r.keyword} ${r.arg}`).join(', ');
          c.notes.push(`${at} {${v}}: IPv6 reassembly is the kernel's (net.ipv6.ip6frag_*); [internal] reassembly_* stay at their defaults`);
          break;
        }
        for (const r of st.children) {
          if (r.keyword === 'max-fragments-per-packet') s.maxFragments = num(r, file);
          else if (r.keyword === 'max-packets') s.maxPackets = num(r, file);
          else unknown(r, at, file);
        }
        break;
      case 'hairpinning':
        if (!internal) unknown(st, path, file);
        c.hairpinning = bool(st, file);
        break;
      case 'ingress-filter':
      case 'egress-filter':
        c.unsupported.push(`${at} ${JSON.stringify(st.arg)}: packet filtering is nftables' job on the PRR host, not the PRR's`);
        break;
      case 'mru':
      case 'flow-label':
      case 'vlan-tag':
        c.notes.push(`${at} ${st.arg}: ${KERNELS}`);
        break;
      default:
        unknown(st, path, file);
    }
  }
  return s;
}

function readInstance(st: Stmt, file: string, c: SnabbConf, addrs: { v4: Set<string>; v6: Set<string> }): void {
  for (const x of st.children) {
    if (x.keyword === 'device' || x.keyword === 'external-device') {
      c.notes.push(`instance/${x.keyword} ${x.arg}: ${KERNELS}`);
      continue;
    }
    if (x.keyword !== 'queue') unknown(x, 'instance', file);
    for (const q of x.children) {
      if (q.keyword === 'id') continue;
      if (q.keyword !== 'external-interface' && q.keyword !== 'internal-interface') unknown(q, 'instance/queue', file);
      for (const f of q.children) {
        const at = `instance/queue/${q.keyword}/${f.keyword}`;
        if (f.keyword === 'ip') (q.keyword === 'external-interface' ? addrs.v4 : addrs.v6).add(text(f, file));
        else if (f.keyword === 'mac' || f.keyword === 'next-hop' || f.keyword === 'vlan-tag') {
          const v = f.arg ?? f.children.map((h) => `${h.keyword} ${h.arg}`).join(', ');
          c.notes.push(`${at} ${v}: ${KERNELS}: ARP, NDP and 802.1Q are its job`);
        } else unknown(f, `instance/queue/${q.keyword}`, file);
      }
    }
  }
}

function readSoftwire(st: Stmt, file: string): SnabbSoftwire {
  const sw: Partial<SnabbSoftwire> = { reservedBits: 0 };
  for (const f of st.children) {
    switch (f.keyword) {
      case 'ipv4': sw.ipv4 = text(f, file); break;
      case 'psid': sw.psid = num(f, file); break;
      case 'b4-ipv6': sw.b4 = text(f, file); break;
      case 'br-address': sw.br = text(f, file); break;
      case 'padding': break; // Snabb's table layout only
      case 'port-set':
        for (const p of f.children) {
          if (p.keyword === 'psid-length') sw.psidLength = num(p, file);
          else if (p.keyword === 'reserved-ports-bit-count') sw.reservedBits = num(p, file);
          else unknown(p, 'binding-table/softwire/port-set', file);
        }
        break;
      default:
        unknown(f, 'binding-table/softwire', file);
    }
  }
  const { ipv4, psid, b4, br, psidLength, reservedBits } = sw;
  if (ipv4 === undefined || psid === undefined || b4 === undefined || br === undefined || psidLength === undefined || reservedBits === undefined) {
    throw new SnabbConfError(`${file}:${st.line}: a softwire needs ipv4, psid, b4-ipv6, br-address and port-set/psid-length`);
  }
  return { ipv4, psid, b4, br, psidLength, reservedBits };
}

/** The forwarding-relevant parts of a snabb-softwire-v3 configuration. */
export function readSnabbConf(textIn: string, file = '<conf>'): SnabbConf {
  const top = parseYangText(textIn, file);
  const root = top.find((s) => s.keyword === 'softwire-config');
  if (root === undefined || top.length !== 1) throw new SnabbConfError(`${file}: expected one softwire-config { ... } block`);
  const c: SnabbConf = {
    file, softwires: [], ipv4: '', ipv6: '', hairpinning: true, notes: [], unsupported: [],
    external: undefined as unknown as SnabbSide, internal: undefined as unknown as SnabbSide,
  };
  const addrs = { v4: new Set<string>(), v6: new Set<string>() };
  let ext: Stmt[] = [];
  let int: Stmt[] = [];
  for (const st of root.children) {
    if (st.keyword === 'binding-table') {
      for (const sw of st.children) {
        if (sw.keyword === 'softwire') c.softwires.push(readSoftwire(sw, file));
        else if (sw.keyword === 'version') continue; // bookkeeping only
        else unknown(sw, 'binding-table', file);
      }
    } else if (st.keyword === 'external-interface') ext = st.children;
    else if (st.keyword === 'internal-interface') int = st.children;
    else if (st.keyword === 'instance') readInstance(st, file, c, addrs);
    else if (st.keyword === 'name') c.notes.push(`name ${st.arg}: a Snabb process name`);
    else unknown(st, 'softwire-config', file);
  }
  c.external = readSide(ext, 'external-interface', file, SNABB_DEFAULTS.external.mtu, c, false);
  c.internal = readSide(int, 'internal-interface', file, SNABB_DEFAULTS.internal.mtu, c, true);
  if (addrs.v4.size !== 1 || addrs.v6.size !== 1) {
    throw new SnabbConfError(`${file}: expected one external and one internal interface address over all instances and queues (got ${[...addrs.v4].join(', ')} / ${[...addrs.v6].join(', ')})`);
  }
  c.ipv4 = [...addrs.v4][0]!;
  c.ipv6 = [...addrs.v6][0]!;
  return c;
}

// ---- prr.ini -----------------------------------------------------------------------------------

function sideIni(name: 'internal' | 'external', s: SnabbSide, mtuMin: number, problems: string[]): string[] {
  const path = `${name}-interface`;
  if (s.mtu < mtuMin) problems.push(`${path}/mtu ${s.mtu}: [${name}] mtu is at least ${mtuMin}`);
  const reasm = name === 'external'; // see the top of the file
  if (reasm && s.maxFragments < 2) problems.push(`${path}/reassembly/max-fragments-per-packet ${s.maxFragments}: [${name}] reassembly_max_fragments is at least 2`);
  if (reasm && s.maxPackets < 1) problems.push(`${path}/reassembly/max-packets ${s.maxPackets}: [${name}] reassembly_max_packets is at least 1`);
  if (s.ratePackets < 1 && s.generateIcmpErrors) problems.push(`${path}/error-rate-limiting/packets 0: say generate_icmp_errors = false instead`);
  const lines = [
    `[${name}]`,
    `mtu = ${s.mtu}`,
    `generate_icmp_errors = ${s.generateIcmpErrors}`,
    `allow_incoming_icmp = ${s.allowIncomingIcmp}`,
  ];
  if (s.ratePackets >= 1) lines.push(`icmp_rate_limit = ${s.ratePackets}/${s.ratePeriod}s`);
  if (reasm) lines.push(`reassembly_max_fragments = ${s.maxFragments}`, `reassembly_max_packets = ${s.maxPackets}`);
  lines.push('');
  return lines;
}

/**
 * prr.ini text for a Snabb configuration (see the table at the top). Throws SnabbConfError naming
 * every setting prr.ini cannot express.
 */
export function snabbToPrrIni(c: SnabbConf): string {
  const problems = [...c.unsupported];
  const brs = [c.ipv6];
  for (const sw of c.softwires) if (!brs.includes(sw.br)) brs.push(sw.br);
  const pools: string[] = [];
  for (const sw of c.softwires) if (!pools.includes(sw.ipv4)) pools.push(sw.ipv4);
  const sets = c.softwires.map((sw) => {
    try {
      return new PsidSet(sw.reservedBits, sw.psidLength, sw.psid, { allowSystemPorts: true });
    } catch (err) {
      throw new SnabbConfError(`${c.file}: softwire ${sw.ipv4} psid ${sw.psid}: ${(err as Error).message}`);
    }
  });
  const systemPorts = sets.some((s) => s.min < FIRST_USER_PORT);
  const lines = [
    `; Translated from Snabb lwAFTR config ${c.file} by test/conformance/snabb-conf.ts.`,
    '[prr]',
    `ipv4 = ${c.ipv4}`,
    `tunnel_ipv6 = ${brs.join(', ')}`,
    `shared_ipv4 = ${pools.join(', ')}`,
    `hairpinning = ${c.hairpinning}`,
    `allow_system_ports = ${systemPorts}`,
    '',
    '[tunnel]',
    'mtu = auto',
    '',
    ...sideIni('internal', c.internal, 1280, problems),
    ...sideIni('external', c.external, 68, problems),
  ];
  c.softwires.forEach((sw, i) => {
    lines.push(
      `; softwire ${i + 1}: ipv4 ${sw.ipv4} psid ${sw.psid} psid-length ${sw.psidLength} reserved-ports-bit-count ${sw.reservedBits} (ports ${sets[i]!.chunks().length === 1 ? sets[i]!.chunks()[0]!.join('-') : `${sets[i]!.chunks().length} runs`})`,
      `[subscriber.sw${i + 1}]`,
      `ipv6 = ${sw.b4}`,
      `shared_ipv4 = ${sw.ipv4}`,
      `ports = ${sets[i]!.toString()}`,
      `br = ${sw.br}`,
      '',
    );
  });
  if (problems.length > 0) throw new SnabbConfError(`${c.file}: prr.ini cannot express: ${problems.join('; ')}`);
  return lines.join('\n');
}
