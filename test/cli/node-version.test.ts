import { execFile, execFileSync } from 'node:child_process';
import path from 'node:path';

/** A Node older than 24.9 on this machine (Debian's, typically), or null. */
function olderNode(): string | null {
  for (const candidate of ['/usr/bin/node', '/usr/local/bin/node']) {
    try {
      const v = execFileSync(candidate, ['-p', 'process.versions.node'], { encoding: 'utf8' }).trim();
      const [major, minor] = v.split('.').map(Number);
      if (major! < 24 || (major === 24 && minor! < 9)) return candidate;
    } catch {
      /* not there */
    }
  }
  return null;
}

const node = olderNode();
if (!node) console.warn('node-version.test.ts: SKIPPED, no Node older than 24.9 on this machine to run bin/flotilla.js with');
const withOldNode = node ? test : test.skip;

describe('bin/flotilla.js on an older Node', () => {
  withOldNode('stops at once with exit code 2 and one sentence saying which Node is needed and how to run it', async () => {
    const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(node!, [path.resolve('bin/flotilla.js'), '--version'], (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr }),
      );
    });
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^flotilla: Node\.js 24\.9 or later is needed and this is \d+\.\d+\.\d+ /);
    expect(r.stderr).toContain('npx flotilla');
    expect(r.stderr).toContain(`${path.resolve('node_modules/.bin/node')} ${path.resolve('bin/flotilla.js')}`);
    expect(r.stderr).not.toContain('TypeError');
  });
});
