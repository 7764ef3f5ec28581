import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { ProcessRuntime } from '../../apps/agent/src/runtime/process/index.js';
import { readLedger } from '../../apps/agent/src/runtime/process/ledger.js';
import { isAlive } from '../../apps/agent/src/runtime/process/os-process.js';
import {
  builtinDeployment,
  CLASSIFIER_V1,
  CLASSIFIER_V2,
  ensureInferenceServerBuilt,
  EXPECTED_LOGITS,
  FixtureArtifacts,
  infer,
  logitsOf,
  payload,
  sha256Of,
  tempStateDir,
  waitUntil,
} from './support.js';

describe('process runtime serving the builtin server', () => {
  let entry: string;
  let artifacts: FixtureArtifacts;
  let v1: { version: string; digest: string };
  let v2: { version: string; digest: string };
  let stateDir: string;
  let runtime: ProcessRuntime;

  beforeAll(async () => {
    entry = await ensureInferenceServerBuilt();
    artifacts = await FixtureArtifacts.create({ v1: CLASSIFIER_V1, v2: CLASSIFIER_V2 });
    v1 = { version: '1.0.0', digest: await sha256Of(CLASSIFIER_V1) };
    v2 = { version: '2.0.0', digest: await sha256Of(CLASSIFIER_V2) };
  }, 300_000);
  afterAll(() => artifacts.dispose());

  beforeEach(async () => {
    stateDir = await tempStateDir();
    runtime = new ProcessRuntime({ stateDir, artifacts, builtinEntry: entry, stopGraceMs: 10_000, drainMs: 3000 });
  });
  afterEach(async () => {
    await runtime.close({ stopWorkloads: true });
    await rm(stateDir, { recursive: true, force: true });
  });

  it('starts the model, reports Ready with its endpoint, and the endpoint answers /infer with the right outputs', async () => {
    const report = await runtime.reconcile(payload([builtinDeployment('classifier', v1)]), AbortSignal.timeout(60_000));

    const [status] = report.deployments;
    expect(status).toMatchObject({
      name: 'classifier',
      phase: 'Ready',
      readyReplicas: 1,
      desiredReplicas: 1,
      servingVersion: '1.0.0',
      compliance: 'Compliant',
      endpoint: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+\/v2\/models\/classifier$/),
    });
    expect(status?.conditions.find((c) => c.type === 'Ready')).toMatchObject({ status: 'True', reason: 'Serving' });

    const { status: code, json } = await infer(status?.endpoint as string);
    expect(code).toBe(200);
    expect(json.model_version).toBe('1.0.0');
    logitsOf(json).forEach((v, i) => expect(v).toBeCloseTo(EXPECTED_LOGITS['1.0.0']![i]!, 5));

    // The ledger names the process, and its output went to the deployment's log.
    const { ledger } = await readLedger(stateDir);
    expect(ledger.processes).toEqual([expect.objectContaining({ deployment: 'classifier', digest: v1.digest, role: 'active' })]);
    const log = await readFile(path.join(stateDir, 'logs', 'classifier.log'), 'utf8');
    expect(log).toContain('inference server ready');

    // The builtin server's Triton-style metrics sit beside its endpoint.
    const [metrics] = runtime.metricsEndpoints();
    expect(metrics?.url).toBe(`${new URL(status?.endpoint as string).origin}/metrics`);
    expect(await (await fetch(metrics?.url as string)).text()).toContain('nv_inference_request_success{model="classifier",version="1.0.0"} 1');
  });

  it('replaces a version with zero failed requests while a client keeps calling the reported endpoint', async () => {
    let report = await runtime.reconcile(payload([builtinDeployment('classifier', v1)]), AbortSignal.timeout(60_000));
    let endpoint = report.deployments[0]?.endpoint as string;
    const oldPid = (await readLedger(stateDir)).ledger.processes[0]?.pid as number;

    const seen: Record<string, number> = {};
    const failures: string[] = [];
    const stop = new AbortController();
    const client = (async () => {
      while (!stop.signal.aborted) {
        try {
          const { status, json } = await infer(endpoint);
          const version = String(json.model_version);
          if (status !== 200) failures.push(`${status} ${JSON.stringify(json)}`);
          else if (JSON.stringify(logitsOf(json).map((x) => Math.round(x * 1000))) !== JSON.stringify(EXPECTED_LOGITS[version]?.map((x) => x * 1000))) {
            failures.push(`wrong outputs for ${version}: ${JSON.stringify(logitsOf(json))}`);
          } else seen[version] = (seen[version] ?? 0) + 1;
        } catch (err) {
          failures.push(String(err));
        }
      }
    })();

    try {
      await waitUntil('requests to version 1.0.0', () => (seen['1.0.0'] ?? 0) > 5);
      report = await runtime.reconcile(payload([builtinDeployment('classifier', v2)]), AbortSignal.timeout(60_000));
      expect(report.deployments[0]).toMatchObject({ phase: 'Ready', servingVersion: '2.0.0' });
      const newEndpoint = report.deployments[0]?.endpoint as string;
      expect(newEndpoint).not.toBe(endpoint);
      endpoint = newEndpoint;

      // The old process drains, then stops; the client never sees an error.
      await waitUntil('the old version to stop after draining', async () => !(await isAlive(oldPid)));
      const after = seen['2.0.0'] ?? 0;
      await waitUntil('more requests to version 2.0.0', () => (seen['2.0.0'] ?? 0) > after + 5);
    } finally {
      stop.abort();
      await client;
    }
    expect(failures).toEqual([]);
    expect(seen['1.0.0']).toBeGreaterThan(0);
    expect(seen['2.0.0']).toBeGreaterThan(0);
    const { ledger } = await readLedger(stateDir);
    expect(ledger.processes.map((p) => [p.modelVersion, p.role])).toEqual([['2.0.0', 'active']]);
  });

  it('stops the process when the deployment is removed', async () => {
    await runtime.reconcile(payload([builtinDeployment('classifier', v1)]), AbortSignal.timeout(60_000));
    const pid = (await readLedger(stateDir)).ledger.processes[0]?.pid as number;
    expect(await isAlive(pid)).toBe(true);

    const report = await runtime.reconcile(payload([]), AbortSignal.timeout(60_000));
    expect(report.deployments).toEqual([]);
    expect(await isAlive(pid)).toBe(false);
    expect((await readLedger(stateDir)).ledger).toEqual({ version: 1, processes: [], ports: {} });
  });

  it('asks to be reconciled when the next schedule window opens, with no hub to tell it', async () => {
    // 06:59:58 in Paris on a Monday: the window opens in two seconds.
    const clock = new Date('2025-01-20T05:59:58Z');
    await runtime.close();
    runtime = new ProcessRuntime({ stateDir, artifacts, builtinEntry: entry, now: () => clock });
    const woken = new Promise<void>((resolve) => runtime.onChange(resolve));
    const scheduled = builtinDeployment('classifier', v1, {
      schedule: {
        timezone: 'Europe/Paris',
        windows: [{ days: ['mon'], start: '07:00', end: '19:00', replicas: { min: 1, max: 1 } }],
        outside: { min: 0, max: 0 },
      },
    });

    const report = await runtime.reconcile(payload([scheduled]), AbortSignal.timeout(60_000));
    expect(report.deployments[0]?.phase).toBe('ScaledToZero');
    await expect(woken).resolves.toBeUndefined();
  });

  it('runs no process while the schedule says zero replicas and starts one when its window opens', async () => {
    let clock = new Date('2025-01-18T10:00:00Z'); // Saturday, outside the weekday window
    await runtime.close();
    runtime = new ProcessRuntime({ stateDir, artifacts, builtinEntry: entry, now: () => clock });
    const scheduled = builtinDeployment('classifier', v1, {
      schedule: {
        timezone: 'Europe/Paris',
        windows: [{ days: ['mon', 'tue', 'wed', 'thu', 'fri'], start: '07:00', end: '19:00', replicas: { min: 1, max: 1 } }],
        outside: { min: 0, max: 0 },
      },
    });

    let report = await runtime.reconcile(payload([scheduled]), AbortSignal.timeout(60_000));
    expect(report.deployments[0]).toMatchObject({ phase: 'ScaledToZero', readyReplicas: 0, desiredReplicas: 0, endpoint: null, compliance: 'Compliant' });
    expect((await readLedger(stateDir)).ledger.processes).toEqual([]);

    clock = new Date('2025-01-20T08:00:00Z'); // Monday 09:00 in Paris
    report = await runtime.reconcile(payload([scheduled]), AbortSignal.timeout(60_000));
    expect(report.deployments[0]).toMatchObject({ phase: 'Ready', readyReplicas: 1, desiredReplicas: 1 });

    clock = new Date('2025-01-20T18:30:00Z'); // Monday 19:30 in Paris
    const pid = (await readLedger(stateDir)).ledger.processes[0]?.pid as number;
    report = await runtime.reconcile(payload([scheduled]), AbortSignal.timeout(60_000));
    expect(report.deployments[0]).toMatchObject({ phase: 'ScaledToZero', endpoint: null });
    expect(await isAlive(pid)).toBe(false);
  });
});
