import { writeFile, rm, readFile } from 'node:fs/promises';
import path from 'node:path';
import { ProcessRuntime } from '../../apps/agent/src/runtime/process/index.js';
import { readLedger } from '../../apps/agent/src/runtime/process/ledger.js';
import {
  builtinDeployment,
  CLASSIFIER_V1,
  ensureInferenceServerBuilt,
  FixtureArtifacts,
  infer,
  payload,
  reconcileUntil,
  sha256Of,
  tempStateDir,
  waitUntil,
} from './support.js';

describe('process runtime supervision', () => {
  let entry: string;
  let stateDir: string;
  let runtime: ProcessRuntime | undefined;
  const cleanups: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    entry = await ensureInferenceServerBuilt();
  }, 300_000);

  beforeEach(async () => {
    stateDir = await tempStateDir();
  });
  afterEach(async () => {
    await runtime?.close({ stopWorkloads: true });
    runtime = undefined;
    for (const cleanup of cleanups.splice(0)) await cleanup();
    await rm(stateDir, { recursive: true, force: true });
  });

  it('restarts a killed process after a backoff, reporting Degraded with the signal and restart count meanwhile, then Ready on the same endpoint', async () => {
    const artifacts = await FixtureArtifacts.create({ v1: CLASSIFIER_V1 });
    cleanups.push(() => artifacts.dispose());
    // A long first backoff makes the Degraded window easy to observe; it is not what the test measures.
    runtime = new ProcessRuntime({ stateDir, artifacts, builtinEntry: entry, restartBackoff: { initialMs: 3000, maxMs: 3000 }, stopGraceMs: 10_000 });
    const changed: number[] = [];
    runtime.onChange(() => changed.push(Date.now()));
    const desired = payload([builtinDeployment('classifier', { version: '1.0.0', digest: await sha256Of(CLASSIFIER_V1) })]);

    const first = await runtime.reconcile(desired, AbortSignal.timeout(60_000));
    expect(first.deployments[0]?.phase).toBe('Ready');
    const endpoint = first.deployments[0]?.endpoint as string;
    const pid = (await readLedger(stateDir)).ledger.processes[0]?.pid as number;

    changed.length = 0;
    process.kill(pid, 'SIGKILL');
    await waitUntil('the runtime to report the exit by itself', () => changed.length > 0);
    const degraded = await reconcileUntil(runtime, desired, 'the crash to be reported', (r) => r.deployments[0]?.phase === 'Degraded');
    expect(degraded.deployments[0]).toMatchObject({ phase: 'Degraded', readyReplicas: 0, endpoint: null });
    const condition = degraded.deployments[0]?.conditions.find((c) => c.type === 'Degraded');
    expect(condition).toMatchObject({ status: 'True', reason: 'ProcessCrashed' });
    expect(condition?.message).toMatch(/^process killed by SIGKILL; restarted 1 time; next restart in \d+ s$/);

    const recovered = await reconcileUntil(runtime, desired, 'the restarted process to be ready', (r) => r.deployments[0]?.phase === 'Ready');
    expect(recovered.deployments[0]?.endpoint).toBe(endpoint);
    const newPid = (await readLedger(stateDir)).ledger.processes[0]?.pid;
    expect(newPid).not.toBe(pid);
    expect((await infer(endpoint)).status).toBe(200);
    expect(recovered.deployments[0]?.conditions.find((c) => c.type === 'Degraded')).toMatchObject({
      status: 'False',
      message: 'restarted 1 time; last: killed by SIGKILL',
    });
    const log = await readFile(path.join(stateDir, 'logs', 'classifier.log'), 'utf8');
    expect(log).toContain('[flotilla-agent] process killed by SIGKILL; restart 1 in 3000 ms');
  });

  it('keeps restarting a process that exits at start, with growing backoff, and reports it Degraded with the exit code', async () => {
    // A verified artifact that is not a loadable model: the server exits with code 1 each time.
    const broken = path.join(stateDir, 'broken.onnx');
    await writeFile(broken, 'not an onnx model');
    const artifacts = await FixtureArtifacts.create({ broken });
    cleanups.push(() => artifacts.dispose());
    runtime = new ProcessRuntime({ stateDir, artifacts, builtinEntry: entry, restartBackoff: { initialMs: 100, maxMs: 400 } });
    const desired = payload([builtinDeployment('classifier', { version: '1.0.0', digest: await sha256Of(broken) })]);

    const report = await reconcileUntil(runtime, desired, 'three restarts', (r) => {
      const message = r.deployments[0]?.conditions.find((c) => c.type === 'Degraded')?.message ?? '';
      return /restarted ([3-9]|\d\d+) times/.test(message);
    });
    expect(report.deployments[0]).toMatchObject({ readyReplicas: 0, endpoint: null, servingVersion: null });
    expect(['Degraded', 'Progressing']).toContain(report.deployments[0]?.phase);
    expect(report.deployments[0]?.conditions.find((c) => c.type === 'Degraded')).toMatchObject({
      status: 'True',
      reason: 'ProcessCrashed',
      message: expect.stringContaining('process exited with code 1'),
    });
    const log = await readFile(path.join(stateDir, 'logs', 'classifier.log'), 'utf8');
    // Backoff doubles up to its cap: 100, 200, 400, 400 ...
    expect(log).toContain('restart 1 in 100 ms');
    expect(log).toContain('restart 2 in 200 ms');
    expect(log).toContain('restart 3 in 400 ms');
    expect(log).toContain('cannot load');
  });
});
