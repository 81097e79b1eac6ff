/**
 * Snabb lwAFTR's 84 end-to-end cases replayed against the PRR (issue #9). Method, the case table
 * and every deliberate difference: test/conformance/README.md. One subtest per case, named as
 * the case; each prints one status line on stderr: `pass`, `n/a: why` or `known-failing: why`
 * (a known failure is asserted to still fail, so a fix shows up as a failing test), then a
 * summary line with the counts.
 *
 * The data (Snabb's pcaps, confs and counters, Apache-2.0) is read from
 * $APLUS_LWAFTR_DATA or ../shared/conformance/lwaftr next to the repository.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { DIFFERENCES, KNOWN_FAILING, KNOWN_FAILING_CONFS, NOT_APPLICABLE, SHARED_B4, SHARED_B4_SHORT, type Ctx } from './cases.js';
import { COUNTER_MAP } from './counters.js';
import {
  SHARED_B4_RULE, compareCounters, compareOutputs, expectedOutput, kernelInput, loadCases, loadSnabbModel, pcapOf, replay, type CaseSpec,
  type LoadedModel,
} from './replay.js';
import { readSnabbConf, snabbToPrrIni } from './snabb-conf.js';

const here = fileURLToPath(import.meta.url);
const marker = `${'/'}dist${'/'}`;
const root = here.includes(marker) ? here.slice(0, here.lastIndexOf(marker)) : resolve(dirname(here), '../..');
const DATA = process.env.APLUS_LWAFTR_DATA ?? join(root, '..', 'shared', 'conformance', 'lwaftr');

const translate = (text: string, file: string): string => snabbToPrrIni(readSnabbConf(text, file));

type Status = 'pass' | 'n/a' | 'known-failing' | 'FAIL';
interface Result {
  name: string;
  status: Status;
  /** The replay matched (Snabb's expectation, or the PRR's deliberate difference from it). */
  replayOk: boolean;
  differs: boolean;
  config: boolean;
}
const results: Result[] = [];

/** A status line where `npm test` shows it, terminal or CI (tap passes test stderr through). */
function say(line: string): void {
  process.stderr.write(`${line}\n`);
}

if (!existsSync(join(DATA, 'cases.json'))) {
  t.fail(`lwAFTR conformance data not found at ${DATA}: set APLUS_LWAFTR_DATA to the directory holding cases.json`);
} else {
  const cases = loadCases(DATA);
  const names = new Set(cases.map((c) => c.name));
  const models = new Map<string, LoadedModel>();
  const modelOf = (conf: string): LoadedModel => {
    let m = models.get(conf);
    if (m === undefined) {
      m = loadSnabbModel(join(DATA, 'data', conf), translate);
      models.set(conf, m);
    }
    return m;
  };

  t.test('the suite and the case tables agree', async (t) => {
    t.equal(cases.length, 84, 'Snabb\'s 84 cases');
    t.equal(names.size, cases.length, 'case names are unique');
    for (const [table, keys] of Object.entries({ NOT_APPLICABLE, DIFFERENCES, KNOWN_FAILING })) {
      for (const k of Object.keys(keys)) t.ok(names.has(k), `${table} names a real case: ${k}`);
    }
    for (const k of Object.keys(KNOWN_FAILING)) t.notOk(k in NOT_APPLICABLE, `known-failing case is applicable: ${k}`);
    for (const k of Object.keys(DIFFERENCES)) t.notOk(k in NOT_APPLICABLE, `case with a difference is applicable: ${k}`);
    const used = new Set(cases.filter((c) => !(c.name in NOT_APPLICABLE)).map((c) => c.conf));
    for (const conf of Object.keys(KNOWN_FAILING_CONFS)) t.ok(used.has(conf), `KNOWN_FAILING_CONFS names a conf an applicable case uses: ${conf}`);
  });

  t.test('every Snabb counter of the suite has a row in the mapping table', async (t) => {
    const all = new Set(cases.flatMap((c) => Object.keys(c.expected_counters)));
    for (const n of all) t.ok(COUNTER_MAP.some((r) => r.theirs === n), n);
    t.equal(new Set(COUNTER_MAP.map((r) => r.theirs)).size, COUNTER_MAP.length, 'one row per Snabb counter');
  });

  t.test('every conf of an applicable case is prr.ini (or is known to fail to load, for the reason given)', async (t) => {
    const confs = [...new Set(cases.filter((c) => !(c.name in NOT_APPLICABLE)).map((c) => c.conf))].sort();
    for (const conf of confs) {
      const m = modelOf(conf);
      if (KNOWN_FAILING_CONFS[conf] !== undefined) {
        t.comment(`${conf}: known failing: ${KNOWN_FAILING_CONFS[conf]}`);
        t.match(m.strictError ?? '(it loads)', SHARED_B4_RULE, `${conf}: still refused by parsePrrModel; when it loads, drop it from KNOWN_FAILING_CONFS`);
      } else t.equal(m.strictError, undefined, `${conf}: loads through parsePrrModel`);
      t.ok(m.model.bindings.length > 0 && m.model.policy.brAddresses.length > 0, `${conf}: ${m.model.bindings.length} softwires, ${m.model.policy.brAddresses.length} BR address(es)`);
    }
  });

  for (const c of cases) t.test(c.name, (t) => runCase(t, c));

  t.test('summary', async (t) => {
    const n = (f: (r: Result) => boolean): number => results.filter(f).length;
    const kf = results.filter((r) => r.status === 'known-failing');
    say(`lwAFTR conformance, ${cases.length} cases: ${n((r) => r.status === 'pass')} pass (${n((r) => r.status === 'pass' && r.differs)} of them `
      + `asserting a deliberate difference), ${n((r) => r.status === 'n/a')} n/a, ${kf.length} known-failing (${kf.filter((r) => r.config && r.replayOk).length} `
      + `only because prr.ini refuses their conf: the replay itself passes, ${kf.filter((r) => r.config && r.replayOk && r.differs).length} of them with a `
      + `deliberate difference; ${kf.filter((r) => !r.replayOk).length} on behaviour), ${n((r) => r.status === 'FAIL')} FAIL`);
    const fails = results.filter((r) => r.status === 'FAIL').map((r) => r.name);
    t.same(fails, [], 'no unexpected failures');
    t.equal(results.length, cases.length, 'every case has a status');
  });

  async function runCase(t: Test, c: CaseSpec): Promise<void> {
    const na = NOT_APPLICABLE[c.name];
    if (na !== undefined) {
      results.push({ name: c.name, status: 'n/a', replayOk: false, differs: false, config: false });
      say(`n/a: ${c.name}: ${na}`);
      t.pass(`n/a: ${na}`);
      return;
    }
    const loaded = modelOf(c.conf);
    const model = loaded.model;
    const input = kernelInput(pcapOf(DATA, c.in_v4), pcapOf(DATA, c.in_v6), model);
    const exp = expectedOutput(pcapOf(DATA, c.out_v4), pcapOf(DATA, c.out_v6), model);
    const diff = DIFFERENCES[c.name];
    const ctx: Ctx = { input, exp };
    diff?.expect?.(ctx);
    const overrides = typeof diff?.counters === 'function' ? diff.counters(ctx) : diff?.counters;
    t.ok(input.items.length > 0, `something reaches the PRR (${input.items.length} input(s))`);
    for (const k of [...input.kernel, ...exp.kernel]) t.comment(`the kernel's: ${k}`);
    if (diff !== undefined) t.comment(`deliberate difference: ${diff.why}`);
    const got = await replay(model, input);
    const problems = [...compareOutputs(exp, got), ...compareCounters(c.expected_counters, got.counters, input.facts, overrides, diff?.ours)];

    const confReason = KNOWN_FAILING_CONFS[c.conf];
    const coreReason = KNOWN_FAILING[c.name];
    const configOk = loaded.strictError === undefined;
    const replayOk = problems.length === 0;
    t.equal(!configOk, confReason !== undefined,
      confReason !== undefined ? `config still refused (${c.conf}); when it loads, drop it from KNOWN_FAILING_CONFS` : `config ${c.conf} loads through parsePrrModel`);
    if (coreReason !== undefined) {
      t.notOk(replayOk, 'still fails as known; when it passes, move it out of KNOWN_FAILING');
      for (const p of problems) t.comment(`known failure: ${p}`);
    } else {
      t.same(problems, [], 'outputs and counters match');
    }

    let status: Status;
    if (configOk && replayOk) status = 'pass';
    else if ((configOk || confReason !== undefined) && (replayOk || coreReason !== undefined)) status = 'known-failing';
    else status = 'FAIL';
    results.push({ name: c.name, status, replayOk, differs: diff !== undefined, config: !configOk });
    const replayText = !replayOk ? `replay fails: ${coreReason ?? problems.join('; ')}`
      : diff !== undefined ? `replay passes, asserting a deliberate difference: ${diff.why}` : 'replay passes';
    const configText = configOk ? '' : `config refused: ${confReason === SHARED_B4 ? SHARED_B4_SHORT : (confReason ?? loaded.strictError)}; `;
    say(status === 'pass' ? `pass: ${c.name}${diff !== undefined ? ` (deliberate difference: ${diff.why})` : ''}` : `${status}: ${c.name}: ${configText}${replayText}`);
  }
}
