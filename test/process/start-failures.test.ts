import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { DesiredDeployment } from '@flotilla/contracts';
import { ProcessRuntime } from '../../apps/agent/src/runtime/process/index.js';
import { readLedger } from '../../apps/agent/src/runtime/process/ledger.js';
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
} from './support.js';

describe('process runtime start failures and Triton', () => {
  let entry: string;
  let artifacts: FixtureArtifacts;
  let v1: { version: string; digest: string };
  let v2: { version: string; digest: string };
  let stateDir: string;
  let runtime: ProcessRuntime | undefined;

  beforeAll(async () => {
    entry = await ensureInferenceServerBuilt();
    artifacts = await FixtureArtifacts.create({ v1: CLASSIFIER_V1, v2: CLASSIFIER_V2 });
    v1 = { version: '1.0.0', digest: await sha256Of(CLASSIFIER_V1) };
    v2 = { version: '2.0.0', digest: await sha256Of(CLASSIFIER_V2) };
  }, 300_000);
  afterAll(() => artifacts.dispose());

  beforeEach(async () => {
    stateDir = await tempStateDir();
    artifacts.failWith(v1.digest, null);
    artifacts.failWith(v2.digest, null);
  });
  afterEach(async () => {
    await runtime?.close({ stopWorkloads: true });
    runtime = undefined;
    await rm(stateDir, { recursive: true, force: true });
  });

  const readyCondition = (d: { conditions: { type: string }[] } | undefined) => d?.conditions.find((c) => c.type === 'Ready');

  it('does not start a model whose artifact fails digest verification and reports ArtifactDigestMismatch', async () => {
    artifacts.failWith(v1.digest, 'ArtifactDigestMismatch');
    runtime = new ProcessRuntime({ stateDir, artifacts, builtinEntry: entry });

    const report = await runtime.reconcile(payload([builtinDeployment('classifier', v1)]), AbortSignal.timeout(60_000));

    expect(report.deployments[0]).toMatchObject({ phase: 'Failed', readyReplicas: 0, endpoint: null, servingVersion: null, compliance: 'NonCompliant' });
    expect(readyCondition(report.deployments[0])).toMatchObject({
      status: 'False',
      reason: 'ArtifactDigestMismatch',
      message: expect.stringContaining('content has a different sha256'),
    });
    expect((await readLedger(stateDir)).ledger.processes).toEqual([]);

    // Not fetched again on every reconcile: the failure backs off.
    const fetches = artifacts.ensured.length;
    const again = await runtime.reconcile(payload([builtinDeployment('classifier', v1)]), AbortSignal.timeout(60_000));
    expect(artifacts.ensured.length).toBe(fetches);
    expect(again.deployments[0]?.phase).toBe('Failed');
  });

  it('reports ArtifactUnavailable as Pending without throwing, and starts the model once the artifact can be had', async () => {
    artifacts.failWith(v1.digest, 'ArtifactUnavailable');
    runtime = new ProcessRuntime({ stateDir, artifacts, builtinEntry: entry });
    const desired = payload([builtinDeployment('classifier', v1)]);

    const pending = await runtime.reconcile(desired, AbortSignal.timeout(60_000));
    expect(pending.deployments[0]).toMatchObject({ phase: 'Pending', endpoint: null });
    expect(readyCondition(pending.deployments[0])).toMatchObject({ status: 'False', reason: 'ArtifactUnavailable' });

    artifacts.failWith(v1.digest, null);
    const ready = await runtime.reconcile(desired, AbortSignal.timeout(60_000));
    expect(ready.deployments[0]).toMatchObject({ phase: 'Ready', servingVersion: '1.0.0' });
  });

  it('keeps serving the old version, Degraded, when the new version fails verification', async () => {
    runtime = new ProcessRuntime({ stateDir, artifacts, builtinEntry: entry });
    const first = await runtime.reconcile(payload([builtinDeployment('classifier', v1)]), AbortSignal.timeout(60_000));
    artifacts.failWith(v2.digest, 'ArtifactDigestMismatch');

    const report = await runtime.reconcile(payload([builtinDeployment('classifier', v2)]), AbortSignal.timeout(60_000));

    expect(report.deployments[0]).toMatchObject({
      phase: 'Degraded',
      servingVersion: '1.0.0',
      endpoint: first.deployments[0]?.endpoint,
      compliance: 'NonCompliant',
    });
    expect(report.deployments[0]?.conditions.find((c) => c.type === 'Degraded')).toMatchObject({ status: 'True', reason: 'ArtifactDigestMismatch' });
    expect((await infer(report.deployments[0]?.endpoint as string)).status).toBe(200);
  });

  it('reports TritonNotInstalled, without fetching the model, when tritonserver is not on PATH', async () => {
    runtime = new ProcessRuntime({ stateDir, artifacts, builtinEntry: entry, env: { ...process.env, PATH: path.join(stateDir, 'empty-bin') } });
    const triton: DesiredDeployment = { ...builtinDeployment('classifier', v1), runtime: 'triton', resources: { gpu: 1 } };
    const fetchesBefore = artifacts.ensured.length;

    const report = await runtime.reconcile(payload([triton]), AbortSignal.timeout(60_000));

    expect(report.deployments[0]).toMatchObject({ phase: 'Failed', endpoint: null });
    expect(readyCondition(report.deployments[0])).toMatchObject({
      status: 'False',
      reason: 'TritonNotInstalled',
      message: expect.stringContaining('needs the tritonserver binary, which is not installed on PATH'),
    });
    expect(artifacts.ensured.slice(fetchesBefore)).toEqual([]);
  });

  it('refuses a non-ONNX model under the builtin server with UnsupportedModelFormat', async () => {
    runtime = new ProcessRuntime({ stateDir, artifacts, builtinEntry: entry });
    const d = builtinDeployment('classifier', v1);
    const report = await runtime.reconcile(payload([{ ...d, model: { ...d.model, format: 'torchscript' } }]), AbortSignal.timeout(60_000));
    expect(report.deployments[0]?.phase).toBe('Failed');
    expect(readyCondition(report.deployments[0])).toMatchObject({ reason: 'UnsupportedModelFormat' });
  });

  it('runs tritonserver from PATH with the prepared model repository and its own HTTP and metrics ports', async () => {
    // A stand-in tritonserver: records its arguments and serves the repository with the builtin server.
    const bin = path.join(stateDir, 'bin');
    await mkdir(bin);
    const argsFile = path.join(stateDir, 'triton-args.json');
    await writeFile(
      path.join(bin, 'tritonserver'),
      `#!${process.execPath}
const fs = require('node:fs');
const { spawn } = require('node:child_process');
fs.writeFileSync(${JSON.stringify(argsFile)}, JSON.stringify(process.argv.slice(2)));
const opt = (name) => process.argv.find((a) => a.startsWith('--' + name + '='))?.split('=')[1];
const child = spawn(process.execPath, [${JSON.stringify(entry)}, '--model-repository', opt('model-repository'), '--host', opt('http-address'), '--port', opt('http-port')], { stdio: 'inherit' });
process.on('SIGTERM', () => child.kill('SIGTERM'));
child.on('exit', (code) => process.exit(code ?? 1));
`,
    );
    await chmod(path.join(bin, 'tritonserver'), 0o755);
    runtime = new ProcessRuntime({ stateDir, artifacts, builtinEntry: entry, env: { ...process.env, PATH: `${bin}${path.delimiter}${process.env.PATH}` } });
    const triton: DesiredDeployment = { ...builtinDeployment('classifier', v1), runtime: 'triton' };

    const report = await runtime.reconcile(payload([triton]), AbortSignal.timeout(60_000));

    expect(report.deployments[0]).toMatchObject({ phase: 'Ready', servingVersion: '1.0.0' });
    const { json } = await infer(report.deployments[0]?.endpoint as string);
    logitsOf(json).forEach((v, i) => expect(v).toBeCloseTo(EXPECTED_LOGITS['1.0.0']![i]!, 5));
    const args = JSON.parse(await readFile(argsFile, 'utf8')) as string[];
    const [entryInLedger] = (await readLedger(stateDir)).ledger.processes;
    expect(args).toEqual([
      expect.stringMatching(/^--model-repository=\/.+/),
      '--http-address=127.0.0.1',
      `--http-port=${entryInLedger?.port}`,
      '--allow-grpc=false',
      '--allow-metrics=true',
      `--metrics-port=${entryInLedger?.metricsPort}`,
    ]);
    expect(entryInLedger?.metricsPort).not.toBe(entryInLedger?.port);
    expect(runtime.metricsEndpoints()).toEqual([{ deployment: 'classifier', url: `http://127.0.0.1:${entryInLedger?.metricsPort}/metrics` }]);
  });
});
