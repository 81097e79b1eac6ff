/**
 * Control-plane failures. Each error has a stable literal code and a one-line message that
 * names the file, key, peer or field at fault. The CLIs print `message` and exit 2.
 * Data-plane problems are never thrown: they are drops with a reason (see common/codec).
 */
export type ErrorCode =
  | 'ERR_CONFIG' // a config file or key is wrong
  | 'ERR_USAGE' // a CLI flag or argument is wrong
  | 'ERR_NATIVE' // the native addon could not load or a native call failed
  | 'ERR_PORTSET' // a port set is malformed or does not fit
  | 'ERR_POOL_EXHAUSTED' // no free port set left in the pools
  | 'ERR_LAB'; // the test lab could not be built

export class AplusError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.code = code;
    this.name = new.target.name;
  }
}

/** `file [section] key: reason` — any part may be absent. */
export class ConfigError extends AplusError {
  readonly file: string | undefined;
  readonly section: string | undefined;
  readonly key: string | undefined;
  readonly reason: string;
  constructor(reason: string, where: { file?: string; section?: string; key?: string; line?: number } = {}) {
    const parts: string[] = [];
    if (where.file !== undefined) parts.push(where.line !== undefined ? `${where.file}:${where.line}` : where.file);
    if (where.section !== undefined) parts.push(`[${where.section}]`);
    if (where.key !== undefined) parts.push(where.key);
    super('ERR_CONFIG', parts.length > 0 ? `${parts.join(' ')}: ${reason}` : reason);
    this.file = where.file;
    this.section = where.section;
    this.key = where.key;
    this.reason = reason;
  }
}

export class UsageError extends AplusError {
  constructor(message: string) {
    super('ERR_USAGE', message);
  }
}

export class NativeError extends AplusError {
  readonly errno: number | undefined;
  constructor(message: string, errno?: number) {
    super('ERR_NATIVE', message);
    this.errno = errno;
  }
}

export class PortSetError extends AplusError {
  constructor(message: string) {
    super('ERR_PORTSET', message);
  }
}

export class PoolExhaustedError extends AplusError {
  constructor(message: string) {
    super('ERR_POOL_EXHAUSTED', message);
  }
}

export class LabError extends AplusError {
  constructor(message: string) {
    super('ERR_LAB', message);
  }
}

/** One line, never a stack: what the CLIs print for any failure. */
export function oneLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.replace(/\s*\n\s*/g, ' ');
}
