import t from 'tap';
import { buildProgram, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, exitCodeFor, runCli, type CliIo } from '../../common/cli.js';
import { ConfigError, PortSetError } from '../../common/errors.js';

function memoryIo(): CliIo & { out_: string[]; err_: string[] } {
  const out_: string[] = [];
  const err_: string[] = [];
  return { out_, err_, out: (s) => out_.push(s), err: (s) => err_.push(s) };
}

/** A program with one verb `go` that throws what it is given. */
function program(io: CliIo, fail: () => void) {
  return buildProgram('demo', 'test program', [(p) => { p.command('go').action(() => { fail(); io.out('went\n'); }); }], io);
}

t.test('exit codes: 0 ok, 2 for AplusError and usage, 1 for the unexpected', async (t) => {
  const cases: Array<[string, () => void, number, RegExp | null]> = [
    ['ok', () => {}, EXIT_OK, null],
    ['config', () => { throw new ConfigError('bad', { file: 'f.ini', line: 3, section: 's', key: 'k' }); }, EXIT_USAGE, /^demo: f\.ini:3 \[s\] k: bad\n$/],
    ['portset', () => { throw new PortSetError('two\nlines'); }, EXIT_USAGE, /^demo: two lines\n$/],
    ['bug', () => { throw new TypeError('x is not a function'); }, EXIT_FAILURE, /^demo: internal error: x is not a function\n$/],
    ['thrown string', () => { throw 'weird'; }, EXIT_FAILURE, /^demo: internal error: weird\n$/],
  ];
  for (const [what, fail, code, re] of cases) {
    const io = memoryIo();
    t.equal(await runCli(program(io, fail), ['go'], io), code, what);
    if (re === null) {
      t.same(io.err_, [], what);
      t.same(io.out_, ['went\n']);
    } else {
      t.equal(io.err_.length, 1, `${what}: one write`);
      t.match(io.err_[0] ?? '', re, what);
    }
  }
  t.equal(exitCodeFor(new Error('x')), EXIT_FAILURE);
});

t.test('commander errors are usage errors', async (t) => {
  const io = memoryIo();
  t.equal(await runCli(program(io, () => {}), ['go', 'extra'], io), EXIT_USAGE);
  t.match(io.err_.join(''), /^demo: too many arguments for 'go'\. Expected 0 arguments but got 1\. \(see demo --help\)\n$/);
  const help = memoryIo();
  t.equal(await runCli(program(help, () => {}), ['--help'], help), EXIT_OK);
  t.match(help.out_.join(''), /Usage: demo/);
  t.same(help.err_, []);
});
