/**
 * Where the repository and its compiled output are, whether this module runs from the TS
 * sources (under tap) or from dist/ (the lab, the benchmarks, child processes).
 */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(import.meta.url);
const marker = `${'/'}dist${'/'}`;
export const REPO_ROOT = here.includes(marker) ? here.slice(0, here.lastIndexOf(marker)) : resolve(dirname(here), '../..');

/** The compiled JS of a source file, e.g. distPath('test/lab/pipe-forwarder.js'). */
export function distPath(rel: string): string {
  return join(REPO_ROOT, 'dist', rel);
}
