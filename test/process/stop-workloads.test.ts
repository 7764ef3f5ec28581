import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ProcessRuntime } from '../../apps/agent/src/runtime/process/index.js';
import { readLedger, writeLedger } from '../../apps/agent/src/runtime/process/ledger.js';
import { isAlive } from '../../apps/agent/src/runtime/process/os-process.js';
import { StateDirLock } from '../../apps/agent/src/state/state-dir-lock.js';
import { runCli } from '../support/cli.js';
import { builtinDeployment, CLASSIFIER_V1, ensureInferenceServerBuilt, FixtureArtifacts, infer, payload, sha256Of, waitUntil } from './support.js';

/**
 * `flotilla agent stop-workloads` against real workload processes that an
 * agent (the process runtime) started and left running when it stopped.
 */
describe('flotilla agent stop-workloads', () => {
  let entry: string;
  let artifacts: FixtureArtifacts;
  let v1: { version: string; digest: string };
  let home: string;
  let stateDir: string;
  let pids: number[] = [];
  let pidOf: Record<string, number> = {};

  beforeAll(async () => {
    entry = await ensureInferenceServerBuilt();
    artifacts = await FixtureArtifacts.create({ v1: CLASSIFIER_V1 });
    v1 = { version: '1.0.0', digest: await sha256Of(CLASSIFIER_V1) };
  }, 300_000);
  afterAll(() => artifacts.dispose());

  /** Two served deployments whose agent stopped, leaving them running. */
  beforeEach(async () => {
    home = await mkdtemp(path.join(tmpdir(), 'flotilla-stop-workloads-'));
    stateDir = path.join(home, 'local-agent');
    const runtime = new ProcessRuntime({ stateDir, artifacts, builtinEntry: entry, stopGraceMs: 5000 });
    const report = await runtime.reconcile(payload([builtinDeployment('alpha', v1), builtinDeployment('beta', v1)]), AbortSignal.timeout(60_000));
    expect(report.deployments.map((d) => d.phase)).toEqual(['Ready', 'Ready']);
    await runtime.close();
    const { processes } = (await readLedger(stateDir)).ledger;
    pids = processes.map((p) => p.pid as number);
    pidOf = Object.fromEntries(processes.map((p) => [p.deployment, p.pid as number]));
    expect(pids).toHaveLength(2);
    for (const d of report.deployments) expect((await infer(d.endpoint as string)).status).toBe(200);
  }, 60_000);
  afterEach(async () => {
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Stopped by the test, as it should be.
      }
    }
    await rm(home, { recursive: true, force: true });
  });

  it('stops every workload the ledger lists, with the local agent of $FLOTILLA_HOME as the default state directory', async () => {
    const { code, stdout, stderr } = await runCli(['agent', 'stop-workloads', '--grace-period', '10'], { FLOTILLA_HOME: home });

    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    expect(stdout).toBe(`stopped alpha (pid ${pidOf.alpha})\nstopped beta (pid ${pidOf.beta})\n`);
    for (const pid of pids) expect(await isAlive(pid)).toBe(false);
    expect((await readLedger(stateDir)).ledger.processes).toEqual([]);

    const again = await runCli(['agent', 'stop-workloads', '--state-dir', stateDir]);
    expect(again).toMatchObject({ code: 0, stdout: `no workload processes running for ${stateDir}\n` });
  });

  it('also stops a process the ledger only knows as an intent, found by its marks', async () => {
    const { ledger } = await readLedger(stateDir);
    // As if the agent had been killed between the spawn and the ledger write of the pid.
    await writeLedger(stateDir, { ...ledger, processes: ledger.processes.map(({ pid: _pid, startTime: _startTime, ...intent }) => intent) });

    const { code, stdout } = await runCli(['agent', 'stop-workloads', '--state-dir', stateDir, '--grace-period', '10']);

    expect(code).toBe(0);
    expect(stdout).toBe(`stopped alpha (pid ${pidOf.alpha})\nstopped beta (pid ${pidOf.beta})\n`);
    for (const pid of pids) expect(await isAlive(pid)).toBe(false);
  });

  it('kills a workload that ignores SIGTERM once the grace period is over', async () => {
    const [stuck] = pids as [number];
    process.kill(stuck, 'SIGSTOP'); // SIGTERM stays pending; only SIGKILL ends it

    const started = Date.now();
    const { code, stdout } = await runCli(['agent', 'stop-workloads', '--state-dir', stateDir, '--grace-period', '1']);

    expect(code).toBe(0);
    expect(stdout).toContain(`(pid ${stuck}) with SIGKILL after the grace period`);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    await waitUntil('the stopped process to be reaped', async () => !(await isAlive(stuck)), { timeoutMs: 5000 });
  });

  it('refuses while an agent holds the state directory, and touches nothing', async () => {
    const lock = await StateDirLock.acquire(stateDir);
    try {
      const { code, stderr } = await runCli(['agent', 'stop-workloads', '--state-dir', stateDir]);

      expect(code).toBe(4);
      expect(stderr).toContain(`an agent (pid ${process.pid}, running since`);
      expect(stderr).toContain('stop that agent first');
      for (const pid of pids) expect(await isAlive(pid)).toBe(true);
      expect((await readLedger(stateDir)).ledger.processes).toHaveLength(2);
    } finally {
      await lock.release();
    }
  });

  it('goes ahead over the lock of an agent that was killed', async () => {
    await writeFile(StateDirLock.file(stateDir), JSON.stringify({ pid: 2 ** 22 - 1, startTime: 1, since: '2020-01-01T00:00:00.000Z' }));

    const { code } = await runCli(['agent', 'stop-workloads', '--state-dir', stateDir, '--grace-period', '10']);

    expect(code).toBe(0);
    for (const pid of pids) expect(await isAlive(pid)).toBe(false);
  });

});

describe('flotilla agent stop-workloads, given a wrong state directory', () => {
  it('says that it does not exist', async () => {
    const nowhere = path.join(tmpdir(), 'flotilla-no-such-state-dir');
    const { code, stderr } = await runCli(['agent', 'stop-workloads', '--state-dir', nowhere]);
    expect(code).toBe(3);
    expect(stderr).toContain(`${nowhere} does not exist`);
  });
});
