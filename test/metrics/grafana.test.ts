/**
 * grafana/: the dashboards name their datasource by the provisioned uid; the scrape config and
 * alert rules pass promtool; and every panel query, dashboard variable and alert expression runs
 * without error on a real Prometheus scraping a PRR and a SMAP registry (in-process, with data).
 */
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseIpv4, parseIpv4Prefix } from '../../common/config/values.js';
import { PortRange } from '../../common/portset.js';
import { BindingTable } from '../../prr/bindings.js';
import { B, Drop, G, PER_BINDING, PrrCounters } from '../../prr/counters.js';
import { prrRegistry } from '../../prr/metrics.js';
import { PortActivity } from '../../prr/port-activity.js';
import { UsageReports } from '../../prr/usage-reports.js';
import { REASSEMBLY_DROP_NAMES } from '../../prr/reassembly.js';
import { serveMetrics as servePrrMetrics } from '../../common/metrics-server.js';
import { SmapCounters } from '../../smap/counters.js';
import { smapRegistry } from '../../smap/metrics.js';
const serveSmapMetrics = servePrrMetrics;
import { waitFor } from '../lab/lab.js';
import {
  dashboardQueries,
  evaluate,
  fetchApi,
  freePort,
  GRAFANA,
  grafanaToPromQL,
  instant,
  loadDashboard,
  noPrometheusReason,
  prometheusArgs,
  testConfig,
} from './prometheus.js';

const DASHBOARDS = readdirSync(join(GRAFANA, 'dashboards')).filter((f) => f.endsWith('.json')).sort();
const DS_UID = /uid:\s*(\S+)/.exec(readFileSync(join(GRAFANA, 'provisioning/datasources/prometheus.yml'), 'utf8'))?.[1];

t.test('dashboards: fixed datasource uid, unique panel ids, every panel has a query', async (t) => {
  t.same(DASHBOARDS, ['port-consumption.json', 'tunnel-health.json']);
  t.equal(DS_UID, 'aplus-prometheus', 'the provisioned datasource uid');
  const provider = readFileSync(join(GRAFANA, 'provisioning/dashboards/aplus.yml'), 'utf8');
  t.match(provider, /type: file/, 'a file dashboard provider');
  for (const f of DASHBOARDS) {
    const text = readFileSync(join(GRAFANA, 'dashboards', f), 'utf8');
    t.notMatch(text, /\$\{DS_/, `${f}: no \${DS_...} import placeholders`);
    const d = loadDashboard(f);
    t.ok(d.uid.length > 0 && d.uid.length <= 40, `${f}: has a uid`);
    const ids = d.panels.map((p) => p.id);
    t.equal(new Set(ids).size, ids.length, `${f}: unique panel ids`);
    for (const p of d.panels) {
      t.equal(p.datasource?.uid, DS_UID, `${f} panel ${p.id}: datasource uid`);
      t.ok((p.targets ?? []).length > 0, `${f} panel ${p.id}: has a query`);
      for (const tg of p.targets ?? []) t.equal(tg.datasource?.uid, DS_UID, `${f} panel ${p.id} ${tg.refId}: datasource uid`);
    }
    for (const v of d.templating?.list ?? []) t.equal(v.datasource?.uid, DS_UID, `${f} variable ${v.name}: datasource uid`);
  }
});

t.test('promtool: the scrape config and the alert rules', { skip: noPrometheusReason() }, async (t) => {
  const rules = spawnSync('promtool', ['check', 'rules', join(GRAFANA, 'alerts.yml')], { encoding: 'utf8' });
  t.equal(rules.status, 0, `promtool check rules: ${rules.stdout}${rules.stderr}`);
  t.match(rules.stdout, /SUCCESS: 4 rules found/);
  const config = spawnSync('promtool', ['check', 'config', join(GRAFANA, 'prometheus.yml')], { encoding: 'utf8' });
  t.equal(config.status, 0, `promtool check config: ${config.stdout}${config.stderr}`);
});

t.test('every panel query, variable and alert expression runs on a real Prometheus', { skip: noPrometheusReason(), timeout: 120_000 }, async (t) => {
  // A PRR registry with two subscribers, traffic and drops; a SMAP registry with a conntrack table.
  const table = new BindingTable();
  const counters = new PrrCounters();
  const sh = parseIpv4('192.0.2.100')!;
  const v6 = (n: number): Buffer => Buffer.from(`20010db8${'0'.repeat(22)}${n.toString(16).padStart(2, '0')}`, 'hex');
  const a = table.add({ subscriber: 'cpe1', ipv6: v6(1), ipv4: sh, ports: new PortRange(10000, 11000) });
  table.add({ subscriber: 'cpe2', ipv6: v6(2), ipv4: sh, ports: new PortRange(11001, 12000) });
  counters.perBinding[a * PER_BINDING + B.to_cpe_bytes] = 1e6;
  counters.global[G.in4_packets] = 100;
  counters.drops4[Drop.no_binding] = 5;
  counters.reassembly.internet = { counters: { fragments: 4, reassembled: 2, drops: new Float64Array(REASSEMBLY_DROP_NAMES.length) }, inProgress: 1, fragmentsHeld: 1, bytesHeld: () => 600 };
  // cpe1's CPE sent from 30 ports and reported 28 TCP + 2 UDP; cpe2 sent from 5, reported nothing.
  const activity = new PortActivity();
  for (let p = 10000; p < 10030; p++) activity.mark(sh, p);
  for (let p = 11001; p < 11006; p++) activity.mark(sh, p);
  const usage = new UsageReports();
  usage.set('cpe1', { tcp: 28, udp: 2, icmp: 0, other: 0 });
  const prr = await servePrrMetrics(
    prrRegistry({ table, counters, pools: [parseIpv4Prefix('192.0.2.100/32')!], allowSystemPorts: false, activity, usage }, { perSubscriber: { mode: 'all' } }),
    { host: '127.0.0.1', port: 0 },
  );
  t.teardown(() => prr.close());
  const ct = 'ipv4     2 tcp      6 117 ESTABLISHED src=192.168.1.2 dst=198.51.100.2 sport=54582 dport=443 src=198.51.100.2 dst=192.0.2.100 sport=443 dport=10001 [ASSURED] mark=0 use=1\n';
  let smapPorts = new PortRange(10000, 11000);
  const smap = await serveSmapMetrics(
    smapRegistry({ counters: new SmapCounters(), binding: () => ({ shared: sh, ports: smapPorts }), tunnelMtu: () => 1420, conntrackTable: async () => ct }),
    { host: '127.0.0.1', port: 0 },
  );
  t.teardown(() => smap.close());

  const dir = mkdtempSync(join(tmpdir(), 'aplus-grafana-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const config = join(dir, 'prometheus.yml');
  writeFileSync(config, testConfig({ prr: `127.0.0.1:${prr.address.port}`, smap: `127.0.0.1:${smap.address.port}`, rules: join(GRAFANA, 'alerts.yml') }));
  const port = await freePort();
  const child = spawn('prometheus', prometheusArgs(config, join(dir, 'data'), `127.0.0.1:${port}`), { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.teardown(async () => {
    child.kill('SIGTERM');
    await exited;
  });
  const get = fetchApi(`http://127.0.0.1:${port}`);

  // Both targets up, with a few scrapes in the TSDB (rate() needs two points).
  await waitFor('prometheus scraped prr and smap three times', async () => {
    if (child.exitCode !== null) throw new Error(`prometheus exited ${child.exitCode}: ${stderr.trim()}`);
    try {
      const r = await instant(get, 'count_over_time(up[1m]) >= 3 and up == 1');
      return r.length === 2 ? true : undefined;
    } catch {
      return undefined; // not listening yet
    }
  }, 30_000, 250);
  t.equal((await instant(get, 'prr_subscriber_bytes_total{subscriber="cpe1",direction="to_cpe"}'))[0]?.value[1], '1000000', 'a PRR value through Prometheus');
  const nearest = loadDashboard('port-consumption.json').panels.find((p) => p.title.startsWith('Subscribers nearest exhaustion'))!;
  const shares = (await instant(get, grafanaToPromQL(nearest.targets![0]!.expr))).map((x) => [x.metric['subscriber'], Number(x.value[1]).toFixed(4)]).sort();
  t.same(shares, [['cpe1', (30 / 1001).toFixed(4)], ['cpe2', (5 / 1000).toFixed(4)]], 'nearest exhaustion: the larger of observed and reported, over the set size');

  // The port-usage queries (observed and reported) must not only run but find their data.
  const mustHaveData = /ports_active|ports_in_use|label_values/;
  for (const f of DASHBOARDS) {
    for (const q of dashboardQueries(loadDashboard(f))) {
      try {
        const r = await evaluate(get, q.expr);
        if (mustHaveData.test(q.expr)) t.ok(r.length > 0, `${f} ${q.where}: ${r.length} series (must be some)`);
        else t.pass(`${f} ${q.where}: ${r.length} series`);
      } catch (err) {
        t.fail(`${f} ${q.where}: ${(err as Error).message}`);
      }
    }
  }

  // Alert rules: loaded, evaluated by Prometheus without error, and each expression runs.
  const rules = await waitFor('every rule evaluated', async () => {
    const r = await get('/api/v1/rules');
    const groups = (r.data as { groups: Array<{ rules: Array<{ name: string; query: string; health: string; lastError?: string; lastEvaluation: string }> }> }).groups;
    const all = groups.flatMap((g) => g.rules);
    return all.length > 0 && all.every((x) => !x.lastEvaluation.startsWith('0001')) ? all : undefined;
  }, 15_000, 250);
  t.same(rules.map((r) => r.name).sort(), ['PrrDown', 'PrrDropRateSpike', 'SharedPoolNearlyExhausted', 'SubscriberPortsNearlyExhausted']);
  for (const r of rules) {
    t.equal(r.health, 'ok', `alert ${r.name}: health ok${r.lastError ? ` (${r.lastError})` : ''}`);
    await t.resolves(instant(get, r.query), `alert ${r.name}: expression runs`);
  }
  t.same(await instant(get, 'ALERTS'), [], 'no alert pending or firing on healthy data');

  // The pool fills up and the CPE's set is (almost) all in use: those two alerts go pending.
  table.add({ subscriber: 'cpe3', ipv6: v6(3), ipv4: sh, ports: new PortRange(1024, 9999) });
  table.add({ subscriber: 'cpe4', ipv6: v6(4), ipv4: sh, ports: new PortRange(12001, 65535) });
  smapPorts = new PortRange(10001, 10001); // one port, and conntrack holds it
  const pending = await waitFor('two alerts pending', async () => {
    const names = (await instant(get, 'ALERTS{alertstate="pending"}')).map((x) => x.metric['alertname']).sort();
    return names.length >= 2 ? names : undefined;
  }, 15_000, 250);
  t.same(pending, ['SharedPoolNearlyExhausted', 'SubscriberPortsNearlyExhausted'], 'pool and subscriber alerts pending (they fire after 5m)');
  const sub = await instant(get, 'ALERTS{alertname="SubscriberPortsNearlyExhausted"}');
  t.equal(sub[0]?.metric['subscriber'], 'cpe1', 'the subscriber alert names the CPE by its scrape label');
  const pool = await instant(get, 'ALERTS{alertname="SharedPoolNearlyExhausted"}');
  t.equal(pool[0]?.metric['pool'], '192.0.2.100/32', 'the pool alert names the pool');
});
