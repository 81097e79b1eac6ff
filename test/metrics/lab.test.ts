/**
 * Metrics in the lab: a real `prr run` (the PRR lab topology, test/lab/prr-topology.ts) with
 * [metrics] on, traffic from the Internet host to cpe1 and to an unbound port, and a real
 * Prometheus in the PRR's namespace, configured from grafana/prometheus.yml and
 * grafana/alerts.yml, asked over its HTTP API (curl in the namespace).
 */
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { labUnavailableReason, waitFor } from '../lab/lab.js';
import { buildPrrTopology, distMissingReason, ORIGINAL_SUBSCRIBERS, SHARED4 } from '../lab/prr-topology.js';
import { promtoolCheckMetrics, value } from './helpers.js';
import { curlApi, GRAFANA, instant, noPrometheusReason, prometheusArgs, testConfig, type PromGet } from './prometheus.js';

const METRICS = '127.0.0.1:9150';
const PROM = '127.0.0.1:9090';

/** The first sample's value of `expr`, or undefined when it has none. */
async function one(get: PromGet, expr: string): Promise<string | undefined> {
  return (await instant(get, expr))[0]?.value[1];
}

t.test('Prometheus scrapes a running PRR: subscriber traffic, drops, pool, PrrDown', { skip: labUnavailableReason() ?? distMissingReason() ?? noPrometheusReason(), timeout: 180_000 }, async (t) => {
  const topo = buildPrrTopology('metricslab');
  t.teardown(() => topo.destroy());
  const [inet, cpe1] = await Promise.all([topo.startInet(), topo.startDriver('cpe1')]);
  const config = topo.writeConfig(ORIGINAL_SUBSCRIBERS, `\n[metrics]\nenabled = true\nlisten = ${METRICS}\nper_subscriber = all\n`);
  const prr = await topo.startPrr(config);
  await waitFor('metrics listener logged', () => (`${prr.out}${prr.err}`.includes(`metrics on http://${METRICS}/metrics`) ? true : undefined), 5000);

  // 5 datagrams to cpe1's port 10005; 3 to a port no one holds (dropped: no_binding).
  for (let i = 0; i < 5; i++) await inet.sendto(SHARED4, 10005, `metrics-${i}`);
  for (let i = 0; i < 3; i++) await inet.sendto(SHARED4, 30000, `nobody-${i}`);
  await waitFor('cpe1 got the 5 datagrams', () => (cpe1.received().length >= 5 ? true : undefined), 5000);

  // The PRR's own /metrics, as Prometheus will read it, passes promtool.
  const scrape = await topo.prr.exec('curl', ['-sS', '--max-time', '5', `http://${METRICS}/metrics`]);
  t.equal(scrape.code, 0, `curl /metrics: ${scrape.stderr.trim()}`);
  t.equal(value(scrape.stdout, 'prr_subscriber_packets_total', { subscriber: 'cpe1', direction: 'to_cpe' }), 5, '/metrics: cpe1 got 5 packets');
  t.same(promtoolCheckMetrics(scrape.stdout), { code: 0, output: '' }, 'promtool check metrics on the live scrape');

  // A real Prometheus in the PRR's namespace, from the shipped scrape config and rules.
  const promConfig = join(topo.dir, 'prometheus.yml');
  writeFileSync(promConfig, testConfig({ prr: METRICS, smap: '127.0.0.1:9151', rules: join(GRAFANA, 'alerts.yml') }));
  const prom = topo.prr.spawn('prometheus', prometheusArgs(promConfig, join(topo.dir, 'tsdb'), PROM), { stdio: ['ignore', 'ignore', 'pipe'] });
  let promErr = '';
  prom.stderr?.setEncoding('utf8').on('data', (d: string) => (promErr += d));
  const get = curlApi(topo.prr, `http://${PROM}`);
  await waitFor('prometheus scraped the PRR', async () => {
    if (prom.exitCode !== null) throw new Error(`prometheus exited ${prom.exitCode}: ${promErr.trim()}`);
    try {
      return (await one(get, 'up{job="prr"}')) === '1' ? true : undefined;
    } catch {
      return undefined; // not listening yet
    }
  }, 30_000, 250);

  t.equal(await one(get, 'prr_subscriber_packets_total{subscriber="cpe1",direction="to_cpe"}'), '5', 'query: cpe1 to_cpe packets = 5');
  t.equal(await one(get, 'prr_subscriber_packets_total{subscriber="cpe2",direction="to_cpe"}'), '0', 'query: cpe2 to_cpe packets = 0');
  t.equal(await one(get, 'prr_drops_total{side="internet",reason="no_binding"}'), '3', 'query: 3 internet-side no_binding drops');
  t.equal(await one(get, 'prr_packets_total{direction="to_cpe"}'), '5', 'query: PRR to_cpe packets = 5');
  t.equal(await one(get, 'prr_bindings'), '2', 'query: 2 bindings');
  t.equal(await one(get, `prr_pool_ports_allocated{address="${SHARED4}"}`), '2001', 'query: 1001 + 1000 ports allocated on the shared address');
  t.equal(await one(get, `prr_subscriber_ports_allocated{subscriber="cpe1"}`), '1001', 'query: cpe1 holds 1001 ports');

  // Released at run time: cpe1's series go from the next scrape on.
  const rel = await prr.subscribers('release', 'cpe1');
  t.equal(rel.code, 0, `prr subscribers release cpe1: ${rel.stderr.trim()}`);
  await waitFor('one binding left', async () => ((await one(get, 'prr_bindings')) === '1' ? true : undefined), 10_000, 250);
  await waitFor("cpe1's series gone", async () => ((await instant(get, '{job="prr",subscriber="cpe1"}')).length === 0 ? true : undefined), 5_000, 250);
  t.pass("query: cpe1's series are gone (stale) after its release");
  t.equal(await one(get, 'prr_subscriber_ports_allocated{subscriber="cpe2"}'), '1000', "query: cpe2's series stay");

  // The PRR stops: up goes to 0 and PrrDown goes pending (it fires after 1m).
  await prr.stop();
  await waitFor('PrrDown pending', async () => ((await instant(get, 'ALERTS{alertname="PrrDown"}')).length > 0 ? true : undefined), 20_000, 250);
  t.equal(await one(get, 'up{job="prr"}'), '0', 'query: up{job="prr"} = 0 after stop');
  t.pass('alert PrrDown is pending after the PRR stopped');
});
