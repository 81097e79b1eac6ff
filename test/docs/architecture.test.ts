/**
 * The README's architecture picture (docs/architecture.svg) is rendered from its source
 * (docs/architecture.dot) by `npm run docs`: rendering it again gives the committed file, so
 * the picture never drifts from the source. Also: the README shows it.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { REPO_ROOT } from '../lab/paths.js';

const dot = spawnSync('dot', ['-V'], { encoding: 'utf8' });
const noDot = dot.status === 0 ? undefined : 'graphviz `dot` is missing (Debian package graphviz, in test/lab/debian-packages.txt)';

t.test('docs/architecture.svg is the rendering of docs/architecture.dot', { skip: process.env['CI'] ? undefined : noDot }, async (t) => {
  const src = path.join(REPO_ROOT, 'docs/architecture.dot');
  const r = spawnSync('dot', ['-Tsvg', src], { encoding: 'utf8' });
  t.equal(r.status, 0, `dot renders the source (${r.stderr.trim()})`);
  t.equal(r.stderr, '', 'without a warning');
  const committed = readFileSync(path.join(REPO_ROOT, 'docs/architecture.svg'), 'utf8');
  t.ok(r.stdout === committed, 'the committed SVG is up to date (run `npm run docs` after editing the .dot)');
});

t.test('the README shows the picture', async (t) => {
  const readme = readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
  t.match(readme, /!\[[^\]]+\]\(docs\/architecture\.svg\)/, 'README links docs/architecture.svg');
});
