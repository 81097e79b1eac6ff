/**
 * `npm run bundle`: the SMAP agent as one self-contained file for a CPE (no node_modules there).
 *
 *   dist-bundle/smap.mjs           the agent and every JS dependency, minified (esbuild-wasm:
 *                                  platform-independent, no prebuilt native binary downloaded)
 *   dist-bundle/aplus_native.node  the project's addon, found beside the bundle (common/native);
 *                                  `--no-addon` leaves it out (a cross build compiles its own)
 *   dist-bundle/package.json       name and version only (`smap --version`, metrics info)
 *   dist-bundle/LICENSES.txt       the license of every package inside the bundle (the minified
 *                                  file keeps no comments, so the notices travel here)
 *
 * Left out on purpose: better-sqlite3 (the PRR's store; the agent never imports it, and the build
 * fails if it is pulled in), and ssh2's optional native helpers (cpu-features, sshcrypto.node):
 * ssh2 falls back to Node's own crypto without them, so the bundle needs no other .node file.
 */
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild-wasm';

/** The repository root, from dist/provisioning/bundle.js or provisioning/bundle.ts. */
function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++, dir = path.dirname(dir)) {
    try {
      if ((JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string }).name === 'aplus') return dir;
    } catch {
      /* not here: one level up */
    }
  }
  throw new Error('bundle: cannot find the aplus package.json above this script');
}

export const BUNDLE_FILE = 'smap.mjs';
export const ADDON_FILE = 'aplus_native.node';
export const LICENSES_FILE = 'LICENSES.txt';

/** Modules that must never be inside the agent's bundle. */
const FORBIDDEN = [/node_modules\/better-sqlite3\//, /(^|\/)prr\//];

export interface BundleResult {
  dir: string;
  bundle: string;
  /** Absent with `addon: false` (the OpenWrt Makefile cross-compiles it for the target). */
  addon: string | undefined;
  /** The bundle's inputs (paths relative to the repository). */
  inputs: string[];
  /** The node_modules package directories inside it (relative to the repository). */
  packages: string[];
}

/** The package directories (`node_modules/NAME`, scoped names kept) the inputs come from. */
function packageDirs(inputs: string[]): string[] {
  return [...new Set(inputs.map((i) => /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(i)?.[1]).filter((d): d is string => d !== undefined))].sort();
}

/** Builds the bundle into `outDir` (default `<repo>/dist-bundle`), replacing what was there. */
export async function bundleSmap(outDir?: string, o: { addon?: boolean } = {}): Promise<BundleResult> {
  const root = repoRoot();
  const dir = outDir ?? path.join(root, 'dist-bundle');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const bundle = path.join(dir, BUNDLE_FILE);
  const res = await build({
    absWorkingDir: root,
    entryPoints: [path.join(root, 'smap/cli.ts')],
    outfile: bundle,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    minify: true,
    keepNames: true, // error classes name themselves (AplusError: this.name = new.target.name)
    legalComments: 'none',
    metafile: true,
    logLevel: 'silent',
    // CommonJS dependencies (ssh2, commander) use require() and __dirname: give the module real ones.
    banner: {
      js: "import{createRequire as __cr}from'node:module';import{fileURLToPath as __fu}from'node:url';" +
        "const require=__cr(import.meta.url),__filename=__fu(import.meta.url),__dirname=__fu(new URL('.',import.meta.url));",
    },
    external: ['better-sqlite3', 'cpu-features', '*.node'],
  });
  const inputs = Object.keys(res.metafile.inputs);
  const bad = inputs.find((i) => FORBIDDEN.some((re) => re.test(i)));
  if (bad !== undefined) throw new Error(`bundle: ${bad} must not be in the SMAP bundle`);
  const addon = o.addon === false ? undefined : path.join(dir, ADDON_FILE);
  if (addon !== undefined) copyFileSync(path.join(root, 'common/native/build/Release', ADDON_FILE), addon);
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { name: string; version: string; license: string };
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: pkg.name, version: pkg.version, license: pkg.license, private: true }, null, 2) + '\n');
  const packages = packageDirs(inputs);
  writeFileSync(path.join(dir, LICENSES_FILE), licenses(root, packages, pkg));
  return { dir, bundle, addon, inputs, packages };
}

/** The packages the bundle holds (from its inputs), each with its license file's text. */
function licenses(root: string, dirs: string[], own: { name: string; license: string }): string {
  const parts = [`${own.name}: ${own.license} (this project)`];
  for (const d of dirs) {
    const meta = JSON.parse(readFileSync(path.join(root, d, 'package.json'), 'utf8')) as { name: string; version: string; license?: string };
    const file = readdirSync(path.join(root, d)).find((f) => /^(licen[cs]e|copying)/i.test(f));
    const text = file === undefined ? `(no license file; package.json says ${meta.license ?? 'nothing'})` : readFileSync(path.join(root, d, file), 'utf8').trim();
    parts.push(`${'-'.repeat(72)}\n${meta.name}@${meta.version}${meta.license !== undefined ? ` (${meta.license})` : ''}\n\n${text}`);
  }
  return parts.join('\n\n') + '\n';
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  // node dist/provisioning/bundle.js [OUT_DIR] [--no-addon]
  const args = process.argv.slice(2);
  bundleSmap(args.find((a) => !a.startsWith('--')), { addon: !args.includes('--no-addon') }).then(
    (r) => process.stdout.write(`bundle: ${r.bundle} (${r.inputs.length} modules)${r.addon !== undefined ? ` and ${r.addon}` : ', no addon'}\n`),
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
