import { spawnSync } from 'node:child_process';

/** promtool from Debian's `prometheus` package, or null (the suite then says it skipped). */
export function promtool(): string | null {
  const r = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? 'promtool' : null;
}

export function promtoolCheck(args: string[], stdin?: string): { code: number; output: string } {
  const r = spawnSync('promtool', ['check', ...args], { input: stdin, encoding: 'utf8' });
  return { code: r.status ?? 1, output: `${r.stdout}${r.stderr}` };
}
