/**
 * A local control socket, shared by the PRR and the SMAP: one JSON request per line, one JSON
 * reply per line, over a Unix socket that only root can reach (directory 0700, socket 0600).
 * The daemon supplies one handler; `controlRequest` is the client the CLIs use.
 * Errors are replies `{"ok":false,"error":"one line"}`; a bad request changes nothing.
 */
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { AplusError } from './errors.js';

const MAX_REQUEST = 64 * 1024;
/** sun_path holds 108 bytes with the terminating NUL; a longer path would be cut silently. */
const MAX_SOCKET_PATH = 107;

export class ControlError extends AplusError {
  constructor(message: string) {
    super('ERR_USAGE', message);
  }
}

export type ControlHandler = (req: Record<string, unknown>) => Record<string, unknown> | Promise<Record<string, unknown>>;

async function reply(handle: ControlHandler, line: string): Promise<Record<string, unknown>> {
  let req: unknown;
  try {
    req = JSON.parse(line);
  } catch {
    return { ok: false, error: 'request is not JSON' };
  }
  if (typeof req !== 'object' || req === null || Array.isArray(req)) return { ok: false, error: 'request must be a JSON object' };
  try {
    return await handle(req as Record<string, unknown>);
  } catch (err) {
    return { ok: false, error: err instanceof Error ? err.message.replace(/\s*\n\s*/g, ' ') : String(err) };
  }
}

/** Listen on `file` (root-only) and answer requests with `handle`, in order, until closed. */
export async function serveControl(file: string, handle: ControlHandler): Promise<net.Server> {
  if (Buffer.byteLength(file) > MAX_SOCKET_PATH) throw new ControlError(`${file}: a Unix socket path is at most ${MAX_SOCKET_PATH} bytes`);
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  rmSync(file, { force: true });
  const server = net.createServer((sock) => {
    let buf = '';
    let chain = Promise.resolve();
    sock.setEncoding('utf8');
    sock.on('error', () => sock.destroy());
    sock.on('data', (d: string) => {
      buf += d;
      if (buf.length > MAX_REQUEST) {
        sock.end(JSON.stringify({ ok: false, error: `request over ${MAX_REQUEST} bytes` }) + '\n');
        buf = '';
        return;
      }
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.trim() === '') continue;
        chain = chain.then(async () => {
          const r = await reply(handle, line);
          if (!sock.destroyed) sock.write(JSON.stringify(r) + '\n');
        });
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(file, () => resolve());
  });
  chmodSync(file, 0o600);
  server.on('close', () => rmSync(file, { force: true }));
  return server;
}

/**
 * Send one request to a running daemon and return its reply. `who` names it in errors
 * ("the PRR", "the agent") and `verb` is the command that starts it.
 */
export function controlRequest(
  file: string,
  req: Record<string, unknown>,
  opts: { who: string; verb: string; timeoutMs?: number },
): Promise<Record<string, unknown>> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    const sock = net.createConnection(file);
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new ControlError(`${file}: no reply from ${opts.who} within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(JSON.stringify(req) + '\n'));
    sock.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      sock.end();
      try {
        resolve(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>);
      } catch {
        reject(new ControlError(`${file}: ${opts.who} sent a reply that is not JSON`));
      }
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const why =
        err.code === 'ENOENT' || err.code === 'ECONNREFUSED'
          ? `${opts.who} is not running there (is \`${opts.verb}\` started?)`
          : err.code === 'EACCES'
            ? 'permission denied (root only)'
            : err.message;
      reject(new ControlError(`control socket ${file}: ${why}`));
    });
  });
}
