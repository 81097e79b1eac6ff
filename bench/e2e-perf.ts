/**
 * `npm run bench -- e2e --perf`: where the SMAP's CPU goes, by `perf record -g` of the `smap run`
 * process while a load runs through it. Reports the kernel's and user space's shares of its
 * samples and the inclusive share of each syscall path of the data plane: TUN read and write
 * (tun_do_read, tun_get_user: the latter includes the kernel forwarding the packet on, which a
 * TUN write runs in the writer's context), the tunnel's sendmmsg and recvmmsg. perf (Debian
 * linux-perf) is optional: without it the note says so.
 */
import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';

const PATHS: Array<[string, string]> = [
  ['TUN write', 'tun_get_user'],
  ['TUN read', 'tun_do_read'],
  ['tunnel sendmmsg', '__x64_sys_sendmmsg'],
  ['tunnel recvmmsg', '__x64_sys_recvmmsg'],
];

export function perfAvailable(): boolean {
  try {
    execFileSync('perf', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function report(file: string, args: string[]): string {
  return execFileSync('perf', ['report', '-i', file, '--stdio', '-g', 'none', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 64 << 20 });
}

/** Profile `pid` for `seconds` while `load` runs; one line of shares. */
export async function profile(pid: number, dir: string, tag: string, seconds: number, load: () => Promise<unknown>): Promise<string> {
  const file = join(dir, `perf-${tag}.data`);
  const rec = spawn('perf', ['record', '-q', '-g', '-o', file, '-p', String(pid), '--', 'sleep', String(seconds)], { stdio: 'ignore' });
  const done = new Promise<number | null>((res) => rec.on('close', res));
  await load();
  if ((await done) !== 0) return 'perf record failed';
  const dso = new Map<string, number>();
  for (const m of report(file, ['--no-children', '--sort', 'dso']).matchAll(/^\s+([\d.]+)%\s+(\S.*?)\s*$/gm)) dso.set(m[2]!, Number(m[1]));
  const kernel = [...dso].filter(([k]) => k.includes('kernel')).reduce((a, [, v]) => a + v, 0);
  const jit = [...dso].filter(([k]) => k.startsWith('[JIT]')).reduce((a, [, v]) => a + v, 0);
  const sym = new Map<string, number>();
  for (const m of report(file, ['--children', '--sort', 'sym']).matchAll(/^\s+([\d.]+)%\s+[\d.]+%\s+\[.\]\s+(\S+)/gm)) sym.set(m[2]!, Number(m[1]));
  const paths = PATHS.map(([name, s]) => `${name} ${(sym.get(s) ?? 0).toFixed(0)}%`).join(', ');
  return `kernel ${kernel.toFixed(0)}%, JIT-compiled JS ${jit.toFixed(0)}%, user space other ${(100 - kernel - jit).toFixed(0)}%; inclusive: ${paths}`;
}
