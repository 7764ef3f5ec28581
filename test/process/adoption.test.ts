import { spawn, type ChildProcess } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ProcessRuntime } from '../../apps/agent/src/runtime/process/index.js';
import { readLedger, writeLedger } from '../../apps/agent/src/runtime/process/ledger.js';
import { isAlive } from '../../apps/agent/src/runtime/process/os-process.js';
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

describe('process runtime after an agent restart', () => {
  let entry: string;
  let artifacts: FixtureArtifacts;
  let v1: { version: string; digest: string };
  let stateDir: string;
  const runtimes: ProcessRuntime[] = [];
  const strangers: ChildProcess[] = [];

  const newRuntime = (over: Partial<ConstructorParameters<typeof ProcessRuntime>[0]> = {}): ProcessRuntime => {
    const r = new ProcessRuntime({ stateDir, artifacts, builtinEntry: entry, stopGraceMs: 2000, watchIntervalMs: 100, restartBackoff: { initialMs: 100 }, ...over });
    runtimes.push(r);
    return r;
  };
  const pidsOf = async (deployment: string) =>
    (await readLedger(stateDir)).ledger.processes.filter((p) => p.deployment === deployment).map((p) => p.pid);

  beforeAll(async () => {
    entry = await ensureInferenceServerBuilt();
    artifacts = await FixtureArtifacts.create({ v1: CLASSIFIER_V1 });
    v1 = { version: '1.0.0', digest: await sha256Of(CLASSIFIER_V1) };
  }, 300_000);
  afterAll(() => artifacts.dispose());

  beforeEach(async () => {
    stateDir = await tempStateDir();
  });
  afterEach(async () => {
    // The last runtime owns whatever still runs.
    for (const r of runtimes.splice(0).reverse()) await r.close({ stopWorkloads: true });
    for (const s of strangers.splice(0)) s.kill('SIGKILL');
    await rm(stateDir, { recursive: true, force: true });
  });

  it('re-adopts the running process (same pid, same endpoint) instead of restarting it', async () => {
    const desired = payload([builtinDeployment('classifier', v1)]);
    const before = await newRuntime().reconcile(desired, AbortSignal.timeout(60_000));
    const [pid] = await pidsOf('classifier');
    await runtimes[0]?.close(); // the agent stops; its workloads do not
    expect(await isAlive(pid as number)).toBe(true);

    const after = await newRuntime().reconcile(desired, AbortSignal.timeout(60_000));

    expect(after.deployments[0]).toMatchObject({ phase: 'Ready', endpoint: before.deployments[0]?.endpoint, servingVersion: '1.0.0' });
    expect(await pidsOf('classifier')).toEqual([pid]);
    expect((await infer(after.deployments[0]?.endpoint as string)).status).toBe(200);
  });

  it('restarts a re-adopted process when it dies, though it is not the new agent\'s child', async () => {
    const desired = payload([builtinDeployment('classifier', v1)]);
    await newRuntime().reconcile(desired, AbortSignal.timeout(60_000));
    await runtimes[0]?.close();
    const adopter = newRuntime();
    await adopter.reconcile(desired, AbortSignal.timeout(60_000));
    const [pid] = await pidsOf('classifier');

    process.kill(pid as number, 'SIGKILL');
    const recovered = await reconcileUntil(
      adopter,
      desired,
      'the replacement process to be ready',
      (r) => r.deployments[0]?.phase === 'Ready' && (r.deployments[0]?.conditions.find((c) => c.type === 'Degraded')?.message ?? '').includes('restarted'),
    );
    const [newPid] = await pidsOf('classifier');
    expect(newPid).not.toBe(pid);
    expect((await infer(recovered.deployments[0]?.endpoint as string)).status).toBe(200);
    expect(recovered.deployments[0]?.conditions.find((c) => c.type === 'Degraded')?.message).toContain(
      'exit status unknown: it was started by a previous agent',
    );
  });

  it('stops processes it owns that are no longer desired, and keeps the others', async () => {
    await newRuntime().reconcile(payload([builtinDeployment('keep-me', v1), builtinDeployment('drop-me', v1)]), AbortSignal.timeout(60_000));
    const [kept] = await pidsOf('keep-me');
    const [dropped] = await pidsOf('drop-me');
    await runtimes[0]?.close();

    await newRuntime().reconcile(payload([builtinDeployment('keep-me', v1)]), AbortSignal.timeout(60_000));

    expect(await isAlive(dropped as number)).toBe(false);
    expect(await pidsOf('keep-me')).toEqual([kept]);
    expect(await pidsOf('drop-me')).toEqual([]);
  });

  it('stops a process of its own that no longer answers, and starts a fresh one', async () => {
    const desired = payload([builtinDeployment('classifier', v1)]);
    await newRuntime().reconcile(desired, AbortSignal.timeout(60_000));
    const [pid] = await pidsOf('classifier');
    await runtimes[0]?.close();
    process.kill(pid as number, 'SIGSTOP'); // alive, but answers nothing

    const report = await newRuntime().reconcile(desired, AbortSignal.timeout(60_000));

    expect(await isAlive(pid as number)).toBe(false);
    expect(report.deployments[0]?.phase).toBe('Ready');
    const [fresh] = await pidsOf('classifier');
    expect(fresh).not.toBe(pid);
  });

  it('never signals a ledger pid that now belongs to a process it did not start', async () => {
    const stranger = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    strangers.push(stranger);
    await new Promise((resolve) => stranger.once('spawn', resolve));
    await writeLedger(stateDir, {
      version: 1,
      ports: {},
      processes: [
        {
          instanceId: 'an-instance-that-is-not-this-process',
          deployment: 'classifier',
          key: 'classifier/x/y',
          digest: v1.digest,
          modelName: 'classifier',
          modelVersion: '1.0.0',
          pid: stranger.pid as number,
          port: 1,
          role: 'active',
          startedAt: new Date().toISOString(),
          restarts: 0,
          launch: { runtime: 'builtin', modelName: 'classifier', modelVersion: '1.0.0', modelPath: '/nowhere', executionProvider: 'cpu' },
        },
      ],
    });

    const report = await newRuntime().reconcile(payload([builtinDeployment('classifier', v1)]), AbortSignal.timeout(60_000));

    expect(await isAlive(stranger.pid as number)).toBe(true);
    expect(report.deployments[0]?.phase).toBe('Ready');
    expect(await pidsOf('classifier')).not.toContain(stranger.pid);
  });

  it('starts afresh from a corrupt ledger instead of failing', async () => {
    await writeFile(path.join(stateDir, 'process-ledger.json'), '{"version": 1, "processes": [');
    const report = await newRuntime().reconcile(payload([builtinDeployment('classifier', v1)]), AbortSignal.timeout(60_000));
    expect(report.deployments[0]?.phase).toBe('Ready');
    expect((await readLedger(stateDir)).problem).toBeNull();
  });

  it('adopts a process carrying its marks that the ledger lost, when it serves a desired deployment', async () => {
    const desired = payload([builtinDeployment('classifier', v1)]);
    const before = await newRuntime().reconcile(desired, AbortSignal.timeout(60_000));
    const [pid] = await pidsOf('classifier');
    await runtimes[0]?.close();
    await rm(path.join(stateDir, 'process-ledger.json'));

    const after = await newRuntime().reconcile(desired, AbortSignal.timeout(60_000));

    expect(after.deployments[0]).toMatchObject({ phase: 'Ready', endpoint: before.deployments[0]?.endpoint });
    expect(await pidsOf('classifier')).toEqual([pid]);
    expect((await infer(after.deployments[0]?.endpoint as string)).status).toBe(200);
  });

  it('stops a process carrying its marks that the ledger lost, when no desired deployment needs it', async () => {
    await newRuntime().reconcile(payload([builtinDeployment('orphan', v1)]), AbortSignal.timeout(60_000));
    const [pid] = await pidsOf('orphan');
    await runtimes[0]?.close();
    await writeFile(path.join(stateDir, 'process-ledger.json'), 'not json');

    await newRuntime().reconcile(payload([builtinDeployment('classifier', v1)]), AbortSignal.timeout(60_000));

    expect(await isAlive(pid as number)).toBe(false);
    expect(await pidsOf('orphan')).toEqual([]);
    expect((await pidsOf('classifier')).length).toBe(1);
  });

  it('resolves an intent left without a pid to the process that carries its marks', async () => {
    const desired = payload([builtinDeployment('classifier', v1)]);
    await newRuntime().reconcile(desired, AbortSignal.timeout(60_000));
    const [pid] = await pidsOf('classifier');
    await runtimes[0]?.close();
    // As if the agent died between the spawn and the ledger write that records the pid.
    const { ledger } = await readLedger(stateDir);
    await writeLedger(stateDir, { ...ledger, processes: ledger.processes.map(({ pid: _pid, startTime: _startTime, readySince: _readySince, ...intent }) => intent) });

    const after = await newRuntime().reconcile(desired, AbortSignal.timeout(60_000));

    expect(after.deployments[0]?.phase).toBe('Ready');
    expect(await pidsOf('classifier')).toEqual([pid]);
  });

  it('drops an intent whose process never started, and starts one', async () => {
    const desired = payload([builtinDeployment('classifier', v1)]);
    await writeLedger(stateDir, {
      version: 1,
      ports: {},
      processes: [
        {
          instanceId: 'an-instance-that-was-never-spawned',
          deployment: 'classifier',
          key: 'classifier/x/y',
          digest: v1.digest,
          modelName: 'classifier',
          modelVersion: '1.0.0',
          port: 1,
          role: 'active',
          startedAt: new Date().toISOString(),
          restarts: 0,
          launch: { runtime: 'builtin', modelName: 'classifier', modelVersion: '1.0.0', modelPath: '/nowhere', executionProvider: 'cpu' },
        },
      ],
    });

    const report = await newRuntime().reconcile(desired, AbortSignal.timeout(60_000));

    expect(report.deployments[0]?.phase).toBe('Ready');
    const { ledger } = await readLedger(stateDir);
    expect(ledger.processes.map((e) => e.instanceId)).not.toContain('an-instance-that-was-never-spawned');
    expect(ledger.processes).toEqual([expect.objectContaining({ deployment: 'classifier', pid: expect.any(Number), startTime: expect.any(Number) })]);
  });

  it('re-adopts a process that was still starting when the agent stopped, and waits for it instead of restarting it', async () => {
    // A server that takes 3 s before it listens, like a large model loading.
    const slowEntry = path.join(stateDir, 'slow-server.mjs');
    await writeFile(slowEntry, `setTimeout(() => import(${JSON.stringify(entry)}), 3000);\n`);
    const desired = payload([builtinDeployment('classifier', v1)]);
    await expect(newRuntime({ builtinEntry: slowEntry }).reconcile(desired, AbortSignal.timeout(500))).rejects.toThrow();
    await runtimes[0]?.close();
    const [pid] = await pidsOf('classifier');
    expect(pid).toEqual(expect.any(Number));

    const adopter = newRuntime({ builtinEntry: slowEntry });
    const report = await reconcileUntil(adopter, desired, 'the adopted process to become ready', (r) => r.deployments[0]?.phase === 'Ready');

    expect(await pidsOf('classifier')).toEqual([pid]);
    expect((await infer(report.deployments[0]?.endpoint as string)).status).toBe(200);
  });

  it('stops every workload on close when asked to', async () => {
    const r = newRuntime();
    await r.reconcile(payload([builtinDeployment('classifier', v1)]), AbortSignal.timeout(60_000));
    const [pid] = await pidsOf('classifier');

    await r.close({ stopWorkloads: true });

    await waitUntil('the process to be gone', async () => !(await isAlive(pid as number)));
    expect((await readLedger(stateDir)).ledger.processes).toEqual([]);
  });
});
