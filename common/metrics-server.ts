/**
 * The HTTP listener of `[metrics] listen`: GET /metrics answers with the registry's text
 * exposition; / points there; anything else is 404. A scrape that fails answers 500 with the
 * reason, and the daemon goes on forwarding. Both daemons use it.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Counter, type Registry } from 'prom-client';
import { formatHostPort, type HostPort } from './config/values.js';

export interface MetricsServer {
  /** The address actually bound (port 0 in tests picks a free port). */
  readonly address: HostPort;
  close(): Promise<void>;
}

export function serveMetrics(registry: Registry, listen: HostPort): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/') {
      res.writeHead(200, { 'content-type': 'text/html' }).end('<a href="/metrics">/metrics</a>\n');
      return;
    }
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(req.method === 'HEAD' ? undefined : text),
      (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`scrape failed: ${(err as Error).message}\n`),
    );
  });
  server.keepAliveTimeout = 65_000; // longer than a scrape interval: one connection per scraper
  return new Promise((resolve, reject) => {
    server.once('error', (err) => reject(new Error(`metrics listen ${formatHostPort(listen)}: ${err.message}`)));
    server.listen(listen.port, listen.host, () => {
      const a = server.address();
      const port = typeof a === 'object' && a !== null ? a.port : listen.port;
      resolve({
        address: { host: listen.host, port },
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}

/** The project version, from the package.json above this file (source or dist). */
export function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++, dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'aplus' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      /* not here: one level up */
    }
  }
  return 'unknown';
}

/**
 * Two counters, packets and bytes by `direction`, read at scrape time from slots of a typed array:
 * `directions` lists [direction, packets slot, bytes slot]. Both daemons export their traffic so.
 */
export function directionCounters(
  registers: Registry[],
  g: Float64Array,
  directions: ReadonlyArray<readonly [string, number, number]>,
  packets: { name: string; help: string },
  bytes: { name: string; help: string },
): void {
  for (const [spec, slot] of [[packets, 1], [bytes, 2]] as const) {
    new Counter({
      name: spec.name,
      help: spec.help,
      labelNames: ['direction'] as const,
      registers,
      collect() {
        this.reset();
        for (const d of directions) this.inc({ direction: d[0] }, g[d[slot]]!);
      },
    });
  }
}

/** A counter without labels whose value is `read()` at scrape time. */
export function scrapedCounter(registers: Registry[], name: string, help: string, read: () => number): void {
  new Counter({
    name,
    help,
    registers,
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}
