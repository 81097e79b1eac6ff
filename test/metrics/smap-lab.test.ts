/**
 * SMAP metrics in the lab: a real `smap run` (test/lab/smap-topology.ts, cpe1 with [metrics] on)
 * forwarding a LAN client's HTTP request through the real PRR; its /metrics, read in the CPE's
 * namespace, shows the port set, tunnel MTU, tunnel traffic and the kernel's conntrack entry of
 * the request; a real Prometheus there scrapes it.
 */
import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { labUnavailableReason, waitFor } from '../lab/lab.js';
import { buildSmapLab, INET } from '../lab/smap-topology.js';
import { distMissingReason } from '../lab/prr-topology.js';
import { promtoolCheckMetrics, value } from './helpers.js';
import { curlApi, GRAFANA, instant, noPrometheusReason, prometheusArgs, testConfig } from './prometheus.js';

const METRICS = '127.0.0.1:9151';
const PROM = '127.0.0.1:9090';

t.test('a running SMAP: ports in use from conntrack, tunnel counters, MTU; scraped by Prometheus', { skip: labUnavailableReason() ?? distMissingReason() ?? noPrometheusReason(), timeout: 180_000 }, async (t) => {
  const lab = await buildSmapLab('smapmetric', [{ ports: '10000-10999' }, { ports: '11000-11999' }]);
  t.teardown(() => lab.destroy());
  const cpe = lab.cpes[0];
  const ini = readFileSync(cpe.config, 'utf8');
  t.match(ini, /\[metrics\]\nenabled = false/, 'the topology writes [metrics] enabled = false');
  writeFileSync(cpe.config, ini.replace(/\[metrics\]\nenabled = false/, `[metrics]\nenabled = true\nlisten = ${METRICS}`));
  lab.startAgent(cpe);
  await lab.agentRunning(cpe);
  t.match(cpe.log(), new RegExp(`metrics on http://${METRICS.replaceAll('.', '\\.')}/metrics`), 'the agent logs its metrics listener');

  // One HTTP request from the LAN: a conntrack entry NATed to a port of the set (TIME_WAIT keeps it).
  const get = await cpe.lan.exec('curl', ['-sS', '--max-time', '10', `http://${INET}/`]);
  t.equal(get.code, 0, `LAN client's HTTP request: ${get.stderr.trim()}`);
  t.match(get.stdout, /^192\.0\.2\.100:(\d+)/, 'the server saw the shared address');

  const scrape = async (): Promise<string> => {
    const r = await cpe.host.exec('curl', ['-sS', '--max-time', '5', `http://${METRICS}/metrics`]);
    if (r.code !== 0) throw new Error(`curl /metrics: ${r.stderr.trim()}`);
    return r.stdout;
  };
  const text = await scrape();
  t.equal(value(text, 'smap_port_set_size'), 1000, 'port set size');
  t.equal(value(text, 'smap_tunnel_mtu_bytes'), 1460, 'tunnel MTU = WAN 1500 - 40');
  t.ok((value(text, 'smap_ports_in_use', { protocol: 'tcp' }) ?? 0) >= 1, 'at least one TCP port of the set in use');
  t.ok((value(text, 'smap_nat_flows', { service: 'http' }) ?? 0) >= 1, 'the HTTP flow counted under service="http"');
  t.ok((value(text, 'smap_tunnel_packets_total', { direction: 'to_prr' }) ?? 0) >= 3, 'packets sent to the PRR');
  t.ok((value(text, 'smap_tunnel_packets_total', { direction: 'from_tunnel' }) ?? 0) >= 3, 'packets received from the tunnel');
  t.equal(value(text, 'smap_conntrack_up'), 1, 'conntrack readable');
  t.same(promtoolCheckMetrics(text), { code: 0, output: '' }, 'promtool check metrics on the live scrape');

  const promConfig = join(lab.dir, 'prometheus-cpe1.yml');
  writeFileSync(promConfig, testConfig({ prr: '127.0.0.1:9150', smap: METRICS, rules: join(GRAFANA, 'alerts.yml') }));
  const prom = cpe.host.spawn('prometheus', prometheusArgs(promConfig, join(lab.dir, 'tsdb-cpe1'), PROM), { stdio: ['ignore', 'ignore', 'pipe'] });
  let promErr = '';
  prom.stderr?.setEncoding('utf8').on('data', (d: string) => (promErr += d));
  const api = curlApi(cpe.host, `http://${PROM}`);
  await waitFor('prometheus scraped the SMAP', async () => {
    if (prom.exitCode !== null) throw new Error(`prometheus exited ${prom.exitCode}: ${promErr.trim()}`);
    try {
      return (await instant(api, 'up{job="smap"} == 1')).length === 1 ? true : undefined;
    } catch {
      return undefined;
    }
  }, 30_000, 250);
  t.equal((await instant(api, 'smap_port_set_size{subscriber="cpe1"}'))[0]?.value[1], '1000', 'query: smap_port_set_size = 1000');
  t.equal((await instant(api, 'smap_tunnel_mtu_bytes'))[0]?.value[1], '1460', 'query: smap_tunnel_mtu_bytes = 1460');
  t.ok(Number((await instant(api, 'smap_port_utilisation_ratio{protocol="tcp"}'))[0]?.value[1]) > 0, 'query: TCP utilisation above 0');
});
