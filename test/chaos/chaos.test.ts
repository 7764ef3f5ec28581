import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

/**
 * The short run of `npm run chaos` that is part of `npm test`: two trials on
 * the embedded broker (the first on the hub's embedded Postgres, which is
 * then a fault target, the second on a throw-away database of the test
 * server), with SIGKILLs of the hub, Postgres and agents. It passes only if
 * every invariant held in both trials; on failure the message lists each
 * violation with the trial and invariant it broke.
 */

const run = promisify(execFile);

async function mtimes(dir: string, ext: string): Promise<number[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return Promise.all(entries.filter((e) => e.isFile() && e.name.endsWith(ext) && !e.name.endsWith('.test.ts')).map(async (e) => (await stat(path.join(e.parentPath, e.name))).mtimeMs));
}

/** Whether a harness source (or the Mosquitto helper it uses) changed since dist/test/chaos was built. */
async function stale(): Promise<boolean> {
  const built = await mtimes('dist/test/chaos', '.js');
  if (built.length === 0) return true;
  const sources = [...(await mtimes('test/chaos', '.ts')), (await stat('test/support/mosquitto.ts')).mtimeMs];
  return Math.max(...sources) > Math.min(...built);
}
const entry = path.resolve('dist/test/chaos/chaos.js');

interface Report {
  summary: { ok: boolean; trials: number; faultsInjected: Record<string, number>; invariants: Record<string, { held: number }> };
  trials: Array<{
    index: number;
    error?: string;
    errorEvidence?: { phase?: string; faults?: unknown; hubLogTail?: string; hubExits?: unknown; agentLogTails?: Record<string, string> };
    faults: Array<{ skipped?: string }>;
    crashes: Array<{ unit: string; count: number; exits: Array<{ code: number | null; signal: string | null }> }>;
    invariants: Record<string, { status: string; violations: { message: string }[] }>;
  }>;
}

describe('npm run chaos (short run: 2 trials, embedded broker)', () => {
  let out: string;
  beforeAll(async () => {
    out = await mkdtemp(path.join(os.tmpdir(), 'flotilla-chaos-test-'));
    // `npm test` builds first (tsconfig.build.json includes the harness); a run of this file alone may find it stale.
    if (await stale()) throw new Error('dist/test/chaos is older than test/chaos: run `npm run build` first');
  }, 300_000);
  afterAll(async () => {
    await rm(out, { recursive: true, force: true });
  });

  test('every invariant holds under SIGKILLs of the hub, its Postgres and agents', async () => {
    const args = [
      entry,
      '--trials', '2',
      '--seed', '20261129',
      '--broker', 'embedded',
      '--postgres', 'mixed',
      '--database-url', process.env.FLOTILLA_TEST_DATABASE_URL!,
      '--agents', '3',
      '--steps', '4',
      '--faults', '4',
      '--chaos-seconds', '10',
      '--converge-seconds', '30',
      // Locally a trial takes ~15 s; a trial still running after 200 s is hung, and the run must say where.
      '--trial-timeout', '200',
      '--out', out,
    ];
    let code = 0;
    let stdout = '';
    try {
      ({ stdout } = await run(process.execPath, args, { timeout: 480_000, maxBuffer: 20 * 1024 * 1024 }));
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      if (typeof e.code !== 'number') throw err;
      code = e.code;
      stdout = `${e.stdout ?? ''}${e.stderr ?? ''}`;
    }
    const files = (await readdir(out)).filter((f) => f.endsWith('.json'));
    expect(files).toHaveLength(1);
    const report = JSON.parse(await readFile(path.join(out, files[0]!), 'utf8')) as Report;
    // The report and the exit code agree, and the run did what it says.
    expect(report.summary.trials).toBe(2);
    expect(code).toBe(report.summary.ok ? 0 : 1);
    expect(stdout).toContain('trials run: 2');
    const injected = report.trials.map((t) => t.faults.filter((f) => !f.skipped).length);
    const failures = report.trials.flatMap((t) => [
      ...(t.error ? [`trial ${t.index}: ${t.error.split('\n')[0]}`] : []),
      ...Object.entries(t.invariants).flatMap(([name, r]) => (r.status === 'held' ? [] : r.violations.map((v) => `trial ${t.index} ${name} (${r.status}): ${v.message}`))),
    ]);
    // Exits the harness did not cause (a hub crash loop, say) explain most failures: shown with them.
    const crashes = report.trials.flatMap((t) => t.crashes.map((c) => `trial ${t.index}: ${c.unit} exited without a harness fault ${c.count} time(s): ${c.exits.map((e) => (e.signal ? `signal ${e.signal}` : `code ${e.code}`)).join(', ')}`));
    // A failed trial brings its evidence into the assertion message (CI keeps only that): the harness'
    // own progress lines, the faults, and the ends of the hub's and agents' logs.
    const evidence = failures.length === 0 ? undefined : {
      harness: stdout.split('\n').slice(-40).join('\n'),
      trials: report.trials.filter((t) => t.errorEvidence).map((t) => ({ trial: t.index, ...t.errorEvidence })),
    };
    expect({ failures, exitCode: code, crashes, evidence }).toEqual({ failures: [], exitCode: 0, crashes: expect.any(Array), evidence: undefined });
    expect(injected.every((n) => n > 0)).toBe(true);
    for (const name of ['convergence', 'appliedOnce', 'noUntrackedProcess', 'revokedCannotConnect', 'everyChangeAudited']) {
      expect({ name, held: report.summary.invariants[name]!.held }).toEqual({ name, held: 2 });
    }
  }, 600_000);
});
