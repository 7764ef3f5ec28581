import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { DesiredFineTuneJobSchema, JobRunStatusSchema, type DesiredFineTuneJob, type DesiredPayload, type JobRunStatus, type ModelRef } from '@flotilla/contracts';
import { KubernetesRuntime } from '../../apps/agent/src/runtime/kubernetes/kubernetes-runtime.js';
import type { ArtifactUploader, ProducedUpload } from '../../apps/agent/src/finetune/artifact-uploader.js';
import type { ArtifactProvider } from '../../apps/agent/src/runtime/runtime.js';
import { startFakeKubeApiServer, type FakeKubeApiServer, type JsonObject } from '../support/fake-kube-apiserver/index.js';
import { buildTinyBackbone, writeColourDataset } from '../support/finetune/onnx-backbone.js';
import { REPO_ROOT } from '../support/finetune/trainer-harness.js';
import { testSourcePolicy } from '../support/source-policy.js';

/**
 * trainer.image under the Kubernetes runtime, against the fake kube-apiserver
 * through the real @kubernetes/client-node. The fake cannot run containers,
 * so this test plays the kubelet: once the agent created the Job, it creates
 * the Job's pod (Running), runs the trainer program the image would hold
 * (test/fixtures/trainers/colour-centroid-trainer.mjs) with the Job's
 * environment, its container paths mapped to the hostPath volumes, appends
 * its stdout to the pod's log, and marks the pod and the Job Complete or
 * Failed as the program exits. Everything on the agent's side is real.
 */

const NS = 'flotilla';
const TRAINER = path.join(REPO_ROOT, 'test', 'fixtures', 'trainers', 'colour-centroid-trainer.mjs');
const logger = pino({ level: process.env.FLOTILLA_TEST_LOG ?? 'silent' });
const at = <T>(obj: unknown, ...p: (string | number)[]): T => p.reduce<unknown>((o, k) => (o as Record<string | number, unknown> | undefined)?.[k], obj) as T;

async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The kubelet's part: pod, container run with the Job's env and mounts, log lines, final status. */
/** `startAfter`: the trainer container starts only once it resolves (the pod is Running meanwhile). */
async function playKubelet(fake: FakeKubeApiServer, jobName: string, startAfter?: Promise<void>): Promise<number> {
  await until(`Job ${jobName}`, () => fake.store.get('Job', NS, jobName) !== undefined);
  const job = fake.store.get('Job', NS, jobName)!;
  const pod = at<JsonObject>(job, 'spec', 'template', 'spec');
  const container = at<JsonObject>(pod, 'containers', 0);
  const hostPaths = new Map((pod['volumes'] as JsonObject[]).filter((v) => v['hostPath']).map((v) => [v['name'] as string, at<string>(v, 'hostPath', 'path')]));
  const mounts = (container['volumeMounts'] as JsonObject[]).filter((m) => hostPaths.has(m['name'] as string)).map((m) => ({ at: m['mountPath'] as string, host: hostPaths.get(m['name'] as string)! }));
  const toHost = (value: string) => {
    const m = mounts.find((x) => value === x.at || value.startsWith(`${x.at}/`));
    return m ? m.host + value.slice(m.at.length) : value;
  };
  const env = Object.fromEntries((container['env'] as { name: string; value: string }[]).map((e) => [e.name, toHost(e.value)]));
  const podName = `${jobName}-x7k2p`;
  fake.store.put({ apiVersion: 'v1', kind: 'Pod', metadata: { name: podName, namespace: NS, labels: at<Record<string, string>>(job, 'spec', 'template', 'metadata', 'labels'), creationTimestamp: new Date().toISOString() }, spec: { containers: [{ name: 'trainer', image: String(container['image']) }] }, status: { phase: 'Running' } });
  await startAfter;
  const child = spawn(process.execPath, [TRAINER], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => fake.store.appendPodLog(NS, podName, chunk));
  const code = await new Promise<number>((resolve) => child.once('close', (c) => resolve(c ?? 1)));
  fake.store.setStatus('Pod', NS, podName, { phase: code === 0 ? 'Succeeded' : 'Failed', containerStatuses: [{ name: 'trainer', state: { terminated: { exitCode: code, reason: code === 0 ? 'Completed' : 'Error' } } }] });
  fake.store.setStatus('Job', NS, jobName, code === 0 ? { succeeded: 1, conditions: [{ type: 'Complete', status: 'True' }] } : { failed: 1, conditions: [{ type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit' }] });
  return code;
}

describe('image trainers as Kubernetes Jobs (fake kube-apiserver; the test plays the kubelet)', () => {
  let dir: string;
  let fake: FakeKubeApiServer;
  let dataset: string;
  let baseModel: ModelRef;
  let artifacts: ArtifactProvider;
  let cacheDir: string;
  const runtimes: KubernetesRuntime[] = [];

  beforeAll(async () => {
    dir = await realpath(await mkdtemp(path.join(tmpdir(), 'flotilla-kube-trainer-')));
    dataset = path.join(dir, 'datasets', 'site-17');
    await writeColourDataset(dataset, 8, { size: 16 });
    const bytes = buildTinyBackbone();
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    cacheDir = path.join(dir, 'cache');
    const modelPath = path.join(cacheDir, 'bridge-defects', '1', 'model.onnx');
    await mkdir(path.dirname(modelPath), { recursive: true });
    await writeFile(modelPath, bytes);
    baseModel = { name: 'bridge-defects', version: '1.0.0', digest, uri: `file://${modelPath}`, format: 'onnx' };
    artifacts = { ensure: async (m) => ({ repositoryPath: cacheDir, modelPath, digest: m.digest }), retain: async () => undefined };
  });
  beforeEach(async () => {
    fake = await startFakeKubeApiServer();
  });
  afterEach(async () => {
    await Promise.all(runtimes.splice(0).map((r) => r.close()));
    await fake.close();
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const runtime = (state: string, uploader?: Pick<ArtifactUploader, 'upload'>) => {
    const r = new KubernetesRuntime({
      kubeConfig: fake.kubeConfig,
      namespace: NS,
      artifacts,
      sources: testSourcePolicy({ datasetRoots: [path.join(dir, 'datasets')], trainerRegistries: ['registry.example/trainers'] }),
      jobOutputHostPath: path.join(dir, 'jobs'),
      watchRetryMs: 50,
      fineTune: { stateDir: path.join(dir, state), spoke: 'site-17', logger, threads: 1, pollMs: 50, stopGraceMs: 1000, ...(uploader ? { uploader } : {}) },
    });
    runtimes.push(r);
    return r;
  };

  const job = (over: Partial<DesiredFineTuneJob> = {}, hyperparameters: Record<string, number | string | boolean> = {}): DesiredFineTuneJob =>
    DesiredFineTuneJobSchema.parse({
      name: 'tune-bridge',
      baseModel,
      dataset: { path: dataset, format: 'imagefolder' },
      trainer: { image: 'registry.example/trainers/colour:1', command: ['node', '/trainer/main.mjs'], hyperparameters },
      evaluation: { metric: 'accuracy', holdoutFraction: 0.3, threshold: 0.8 },
      output: { model: 'bridge-defects', artifact: 'keep-local' },
      promote: 'manual',
      resources: { gpu: 1, memory: '2Gi' },
      ...over,
    });
  const payload = (jobs: DesiredFineTuneJob[]): DesiredPayload => ({ settings: { telemetryIntervalSeconds: 30 }, deployments: [], fineTuneJobs: jobs });

  async function statusOf(r: KubernetesRuntime, jobs: DesiredFineTuneJob[]): Promise<JobRunStatus> {
    const report = await r.reconcile(payload(jobs), AbortSignal.timeout(20_000));
    for (const j of report.jobs) JobRunStatusSchema.parse(j);
    return report.jobs[0]!;
  }

  async function finish(r: KubernetesRuntime, jobs: DesiredFineTuneJob[], seen?: Set<string>): Promise<JobRunStatus> {
    let last: JobRunStatus | undefined;
    await until('the job to finish', async () => {
      last = await statusOf(r, jobs);
      seen?.add(last.phase === 'Running' ? last.message : last.phase);
      return last.phase !== 'Pending' && last.phase !== 'Running';
    });
    return last!;
  }

  it('runs the image as a Job with the contract, streams progress from the pod log, collects the output and registers it', async () => {
    const r = runtime('state-ok');
    const jobs = [job({}, { sleepMs: 20 })];
    const kubelet = playKubelet(fake, 'tune-bridge');
    const seen = new Set<string>();
    await until('the Job', async () => {
      seen.add((await statusOf(r, jobs)).message);
      return fake.store.get('Job', NS, 'tune-bridge') !== undefined;
    });
    const created = fake.store.get('Job', NS, 'tune-bridge')!;
    const pod = at<JsonObject>(created, 'spec', 'template', 'spec');
    const c = at<JsonObject>(pod, 'containers', 0);
    expect(c['image']).toBe('registry.example/trainers/colour:1');
    expect(at(c, 'resources', 'limits')).toEqual({ 'nvidia.com/gpu': '1', memory: '2Gi' });
    expect(c['volumeMounts']).toContainEqual({ name: 'dataset', mountPath: '/data', readOnly: true });
    expect(pod['volumes']).toContainEqual({ name: 'dataset', hostPath: { path: dataset, type: 'Directory' } });
    expect(at(created, 'spec', 'activeDeadlineSeconds')).toBe(7200);
    const env = Object.fromEntries((c['env'] as { name: string; value: string }[]).map((e) => [e.name, e.value]));
    expect(env['FLOTILLA_DATASET_FINGERPRINT']).toMatch(/^sha256:[0-9a-f]{64}$/);
    let exited = false;
    const code = kubelet.finally(() => (exited = true));
    // Statuses while the trainer runs: its progress lines arrive through the pod log.
    await until('the trainer to exit', async () => (seen.add((await statusOf(r, jobs)).message), exited));
    expect(await code).toBe(0);
    const done = await finish(r, jobs, seen);
    if (![...seen].some((m) => /^Training: read \d+\/\d+/.test(m))) throw new Error([...seen].join('\n'));
    expect(done.phase).toBe('Succeeded');
    expect(done.metrics.accuracy).toBe(1);
    expect(done.metrics['trainer.accuracy']).toBe(0.99);
    expect(done.message).toMatch(/\(the agent's own evaluation\); produced bridge-defects 1\.0\.0-ft\.site-17\.[0-9a-f]{12}/);
    expect(done.producedVersion).toMatch(/^1\.0\.0-ft\.site-17\.[0-9a-f]{12}$/);
    expect(done.produced?.datasetFingerprint).toBe(env['FLOTILLA_DATASET_FINGERPRINT']);
  });

  it('reads the failure file of a failed Job and reports it without dataset paths or label names', async () => {
    const r = runtime('state-fail');
    const jobs = [job({}, { fail: `cannot decode ${dataset}/train/crack/crack-3.png of class "crack"` })];
    const kubelet = playKubelet(fake, 'tune-bridge');
    await until('the Job', async () => (await statusOf(r, jobs), fake.store.get('Job', NS, 'tune-bridge') !== undefined));
    expect(await kubelet).not.toBe(0);
    const done = await finish(r, jobs);
    expect(done.phase).toBe('Failed');
    expect(done.message).toBe('trainer failed: cannot decode <dataset file> of class "<name>"');
  });

  it('hands the produced model to the hub store under Kubernetes too (output.artifact: upload), and registers it where the store says', async () => {
    const uploads: ProducedUpload[] = [];
    const uploader = {
      upload: async (u: ProducedUpload) => {
        uploads.push(u);
        return { job: u.job, spoke: 'site-17', version: u.version, digest: u.digest, sizeBytes: u.sizeBytes, uri: `flotilla:artifacts/sha256/${u.digest.slice('sha256:'.length)}`, created: true };
      },
    };
    const r = runtime('state-upload', uploader);
    const jobs = [job({ name: 'tune-upload', output: { model: 'bridge-defects', artifact: 'upload' } })];
    const kubelet = playKubelet(fake, 'tune-upload');
    const done = await finish(r, jobs);
    expect(await kubelet).toBe(0);
    expect(done.phase).toBe('Succeeded');
    expect(uploads).toEqual([expect.objectContaining({ job: 'tune-upload', version: done.producedVersion, digest: done.produced!.digest })]);
    expect((await readFile(uploads[0]!.file)).length).toBe(uploads[0]!.sizeBytes);
    expect(done.produced!.uri).toBe(`flotilla:artifacts/sha256/${done.produced!.digest.slice('sha256:'.length)}`);
    await r.reconcile(payload([]), AbortSignal.timeout(20_000));
  });

  it('refuses builtin and command-only trainers, images from other registries and datasets outside the allowed roots, creating nothing', async () => {
    const r = runtime('state-refused');
    const refused = async (j: DesiredFineTuneJob) => finish(r, [j]);
    expect((await refused(job({ trainer: { builtin: 'linear-probe', hyperparameters: {} } }))).message).toMatch(/^builtin trainer 'linear-probe' runs in a child process of the agent under the process runtime; under Kubernetes give the job a trainer image/);
    expect((await refused(job({ name: 'cmd', trainer: { command: ['/usr/bin/train'], hyperparameters: {} } }))).message).toMatch(/^trainer\.command alone runs a program installed on the appliance, under the process runtime/);
    expect((await refused(job({ name: 'evil', trainer: { image: 'evil.example/miner:1', hyperparameters: {} } }))).message).toMatch(/rule trainer-registry/);
    const outside = path.join(dir, 'elsewhere');
    await writeColourDataset(outside, 2, { size: 8 });
    const o = await refused(job({ name: 'outside', dataset: { path: outside, format: 'imagefolder' } }));
    expect(o.phase).toBe('Failed');
    expect(o.message).toMatch(/rule dataset-root/);
    expect(o.message).not.toContain(outside);
    expect(fake.store.list('Job', { namespace: NS })).toEqual([]);
  });

  it('follows its Job again after an agent restart and says so; deletes the Job when the job leaves the desired state', async () => {
    const first = runtime('state-restart');
    const jobs = [job({}, { sleepMs: 40 })];
    await until('the Job', async () => (await statusOf(first, jobs), fake.store.get('Job', NS, 'tune-bridge') !== undefined));
    const uid = at<string>(fake.store.get('Job', NS, 'tune-bridge'), 'metadata', 'uid');
    await first.close();
    runtimes.splice(runtimes.indexOf(first), 1);
    // The agent is gone; the Job runs on.
    expect(fake.store.get('Job', NS, 'tune-bridge')).toBeDefined();
    // The container runs only once the new agent said it follows the Job: a trainer that finished first would end the run before it could be seen.
    let said!: () => void;
    const kubelet = playKubelet(fake, 'tune-bridge', new Promise<void>((resolve) => (said = resolve)));
    const second = runtime('state-restart');
    await until('the restart to be said', async () => /resumed after an agent restart: following the Job already in the cluster/.test((await statusOf(second, jobs)).message));
    said();
    expect(at(fake.store.get('Job', NS, 'tune-bridge'), 'metadata', 'uid')).toBe(uid);
    await kubelet;
    const done = await finish(second, jobs);
    expect(done.phase).toBe('Succeeded');
    expect(done.message).toMatch(/^run again after an agent restart \(attempt 2\)/);
    await second.reconcile(payload([]), AbortSignal.timeout(20_000));
    expect(fake.store.get('Job', NS, 'tune-bridge')).toBeUndefined();
  });
});
