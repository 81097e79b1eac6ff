/**
 * The Debian packages the lab needs (test/lab/debian-packages.txt, also read by .ci/run):
 * find the missing ones, and install them (announced first) when we are root.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './paths.js';

export function labPackages(): string[] {
  return readFileSync(join(REPO_ROOT, 'test/lab/debian-packages.txt'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

export function missingPackages(pkgs = labPackages()): string[] {
  return pkgs.filter((p) => {
    try {
      const out = execFileSync('dpkg-query', ['-W', '-f=${Status}', p], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      return !out.includes('install ok installed');
    } catch {
      return true;
    }
  });
}

/** Install what is missing, saying so first; returns the command a non-root user must run instead. */
export function ensurePackages(say: (line: string) => void): string | undefined {
  const missing = missingPackages();
  if (missing.length === 0) return undefined;
  const cmd = `apt-get update && apt-get install -y ${missing.join(' ')}`;
  if (process.getuid?.() !== 0) return cmd;
  say(`lab: installing missing Debian packages: ${missing.join(' ')} (apt-get)`);
  execFileSync('apt-get', ['update', '-q'], { stdio: 'inherit' });
  execFileSync('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...missing], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  return undefined;
}
