/**
 * What both CLIs share: turning any failure into one line on stderr and an exit code.
 *
 *   0  success (and --help, --version)
 *   2  the user's fault: a bad flag or argument (commander), a bad config file, any AplusError
 *   1  anything else: a bug or an unexpected system failure, still one line (no stack)
 *
 * Each verb is one function `(program: Command) => void` that adds one subcommand, so new verbs
 * (`run`, `register`, `status`, ...) are one function and one line in the CLI's verb list.
 */
import { Command, CommanderError } from 'commander';
import { AplusError, oneLine } from './errors.js';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export interface CliIo {
  out(text: string): void;
  err(text: string): void;
}

export const processIo: CliIo = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

export type Verb = (program: Command, io: CliIo) => void;

/** A program named `name` with the given verbs, set up so that errors reach `runCli`. */
export function buildProgram(name: string, description: string, verbs: readonly Verb[], io: CliIo = processIo): Command {
  const program = new Command(name).description(description).showSuggestionAfterError(true);
  program.configureOutput({ writeOut: (s) => io.out(s), writeErr: () => {}, outputError: () => {} });
  program.exitOverride();
  for (const verb of verbs) verb(program, io);
  return program;
}

/** The exit code for an error thrown by a verb or by commander. */
export function exitCodeFor(err: unknown): number {
  if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
  if (err instanceof AplusError) return EXIT_USAGE;
  return EXIT_FAILURE;
}

/** The one line printed for an error (without the program name). */
export function errorLine(err: unknown, program: string): string {
  if (err instanceof CommanderError) {
    if (err.code === 'commander.help') return `missing command (see ${program} --help)`;
    const msg = oneLine(err.message.replace(/^error: /, ''));
    return /did you mean/i.test(msg) ? msg : `${msg} (see ${program} --help)`;
  }
  if (err instanceof AplusError) return oneLine(err);
  return `internal error: ${oneLine(err)}`;
}

/** Parse `argv` (user arguments only), run the verb, and return the exit code. Never throws. */
export async function runCli(program: Command, argv: readonly string[], io: CliIo = processIo): Promise<number> {
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return EXIT_OK;
  } catch (err) {
    const code = exitCodeFor(err);
    if (code !== EXIT_OK) io.err(`${program.name()}: ${errorLine(err, program.name())}\n`);
    return code;
  }
}

/** The body of a bin file: run and set the exit code (pending output is flushed, not cut off). */
export async function main(program: Command, io: CliIo = processIo): Promise<void> {
  process.exitCode = await runCli(program, process.argv.slice(2), io);
}
