import { execFile, execFileSync } from 'node:child_process';
import { chmod, cp, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../apps/hub/src/config/config.js';
import { runCli } from '../support/cli.js';

// deploy/systemd/*.service checked by systemd's own parser: `systemd-analyze verify` in a scratch
// root (the machine's unit tree copied in, and an executable where ExecStart points), so the units
// are verified as installed without installing anything. Warnings count as failures: systemd only
// warns about an unknown or misspelt directive and then ignores it, which would drop hardening silently.

const UNITS_DIR = path.resolve('deploy/systemd');
const SYSTEM_UNITS = ['/usr/lib/systemd/system', '/lib/systemd/system'];

function systemdAnalyze(): string | null {
  try {
    execFileSync('systemd-analyze', ['--version'], { stdio: 'ignore' });
    return 'systemd-analyze';
  } catch {
    return null;
  }
}

const tool = systemdAnalyze();
if (!tool) console.warn('systemd.test.ts: SKIPPED, systemd-analyze is not installed (apt-get install systemd)');
const withSystemd = tool ? describe : describe.skip;

function analyze(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) =>
    execFile('systemd-analyze', args, { timeout: 30_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0, out: `${stdout}${stderr}` }),
    ),
  );
}

withSystemd('deploy/systemd units', () => {
  let root: string;
  let units: string[];

  beforeAll(async () => {
    units = (await readdir(UNITS_DIR)).filter((f) => f.endsWith('.service')).sort();
    root = await mkdtemp(path.join(os.tmpdir(), 'flotilla-systemd-'));
    const systemUnits = SYSTEM_UNITS.find((d) => execFileSync('sh', ['-c', `test -d ${d} && echo y || true`], { encoding: 'utf8' }).trim() === 'y');
    await mkdir(path.join(root, 'usr/lib/systemd'), { recursive: true });
    if (systemUnits) await cp(systemUnits, path.join(root, 'usr/lib/systemd/system'), { recursive: true, verbatimSymlinks: true });
    await mkdir(path.join(root, 'usr/local/bin'), { recursive: true });
    await writeFile(path.join(root, 'usr/local/bin/flotilla'), '#!/bin/sh\n');
    await chmod(path.join(root, 'usr/local/bin/flotilla'), 0o755);
    await mkdir(path.join(root, 'etc/systemd/system'), { recursive: true });
    for (const u of units) await cp(path.join(UNITS_DIR, u), path.join(root, 'etc/systemd/system', u));
  });

  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  test('there is a unit for the hub and one for the agent', () => {
    expect(units).toEqual(['flotilla-agent.service', 'flotilla-hub.service']);
  });

  test('systemd-analyze verify passes with no warning at all', async () => {
    const r = await analyze(['verify', `--root=${root}`, ...units]);
    expect(r).toEqual({ code: 0, out: '' });
  });

  test('a misspelt directive is caught (the check is not blind)', async () => {
    const bad = path.join(root, 'etc/systemd/system/flotilla-typo.service');
    await writeFile(bad, '[Service]\nExecStart=/usr/local/bin/flotilla hub\nProtectSytem=strict\n');
    const r = await analyze(['verify', `--root=${root}`, 'flotilla-typo.service']);
    await rm(bad);
    expect(r.out).toContain("Unknown key 'ProtectSytem'");
  });

  test.each(['flotilla-hub.service', 'flotilla-agent.service'])('%s runs as its own user, restarts, keeps a state directory and is sandboxed (systemd-analyze security ≤ 4.0)', async (unit) => {
    const r = await analyze(['security', `--root=${root}`, '--offline=yes', '--threshold=40', unit]);
    expect({ code: r.code, tail: r.code === 0 ? '' : r.out.slice(-3000) }).toEqual({ code: 0, tail: '' });
    const text = execFileSync('cat', [path.join(UNITS_DIR, unit)], { encoding: 'utf8' });
    for (const line of ['NoNewPrivileges=yes', 'ProtectSystem=strict', 'ProtectHome=yes', 'PrivateTmp=yes']) expect(text).toMatch(new RegExp(`^${line}$`, 'm'));
    expect(text).toMatch(/^User=flotilla(-agent)?$/m);
    expect(text).toMatch(/^StateDirectory=flotilla(-agent)?$/m);
    expect(text).toMatch(/^Restart=(on-failure|always)$/m);
  });
});

/** `Key=value` lines of a unit's [Service] section, in order. */
function serviceLines(text: string, key: string): string[] {
  return [...text.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]!);
}

describe('what the units run', () => {
  test('the hub unit’s environment is accepted by the hub’s configuration loader', async () => {
    const text = await readFile(path.join(UNITS_DIR, 'flotilla-hub.service'), 'utf8');
    const env = Object.fromEntries(serviceLines(text, 'Environment').map((kv) => kv.split(/=(.*)/s).slice(0, 2) as [string, string]));
    expect(loadConfig(env, '/')).toMatchObject({ home: '/var/lib/flotilla', logFormat: 'json' });
    expect(serviceLines(text, 'ExecStart')).toEqual(['/usr/local/bin/flotilla hub --no-local-agent']);
  });

  test('the agent unit’s command line is one `flotilla` accepts (it fails only for want of an enrolment)', async () => {
    const text = await readFile(path.join(UNITS_DIR, 'flotilla-agent.service'), 'utf8');
    const [exec] = serviceLines(text, 'ExecStart');
    const state = path.join(os.tmpdir(), `flotilla-unit-agent-${process.pid}`);
    const [bin, ...args] = exec!.split(/\s+/).map((w) => w.replace('/var/lib/flotilla-agent', state));
    expect(bin).toBe('/usr/local/bin/flotilla');
    const run = await runCli(args);
    expect({ code: run.code, stderr: run.stderr.trim() }).toEqual({ code: 3, stderr: expect.stringContaining(`${state} holds no credentials`) });
  });
});
