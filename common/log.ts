/**
 * A small leveled logger. It is passed in to whatever needs it, never imported as a global.
 * Lines are `LEVEL component: message` on stderr, so stdout stays free for command output.
 */
export type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
  child(component: string): Logger;
}

export function createLogger(
  component: string,
  level: Level = 'info',
  write: (line: string) => void = (l) => process.stderr.write(l + '\n'),
): Logger {
  const min = ORDER[level];
  const emit = (lvl: Level, msg: string): void => {
    if (ORDER[lvl] >= min) write(`${lvl.toUpperCase()} ${component}: ${msg}`);
  };
  return {
    debug: (m) => emit('debug', m),
    info: (m) => emit('info', m),
    warn: (m) => emit('warn', m),
    error: (m) => emit('error', m),
    child: (c) => createLogger(`${component}/${c}`, level, write),
  };
}

/** A logger that keeps lines in memory: for tests. */
export function memoryLogger(component = 'test'): Logger & { lines: string[] } {
  const lines: string[] = [];
  const log = createLogger(component, 'debug', (l) => lines.push(l));
  return Object.assign(log, { lines });
}
