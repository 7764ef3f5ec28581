import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { DesiredFineTuneJobSchema, type DesiredFineTuneJob, type JobRunStatus, type ModelRef } from '@flotilla/contracts';
import { FineTuneRunner, type FineTuneRunnerOptions } from '../../apps/agent/src/finetune/finetune-runner.js';
import type { ArtifactProvider } from '../../apps/agent/src/runtime/runtime.js';
import { buildTinyBackbone, writeColourDataset } from '../support/finetune/onnx-backbone.js';
import { REPO_ROOT } from '../support/finetune/trainer-harness.js';

/**
 * Command trainers (trainer.command) under the process runtime, driven with
 * test/fixtures/trainers/colour-centroid-trainer.mjs: a real program that
 * speaks the trainer contract and writes a real ONNX classifier. The agent's
 * own evaluation (a child process running ONNX Runtime) decides the gate.
 */

const logger = pino({ level: process.env.FLOTILLA_TEST_LOG ?? 'silent' });
const TRAINER = path.join(REPO_ROOT, 'test', 'fixtures', 'trainers', 'colour-centroid-trainer.mjs');

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const settled = (s: JobRunStatus | undefined) => s !== undefined && s.phase !== 'Pending' && s.phase !== 'Running';

describe('command trainers under the process runtime', () => {
  let dir: string;
  let artifacts: ArtifactProvider;
  let baseModel: ModelRef;
  let dataset: string;
  const runners: FineTuneRunner[] = [];

  beforeAll(async () => {
    if (!existsSync(path.join(REPO_ROOT, 'dist', 'apps', 'agent', 'src', 'finetune', 'evaluate-main.js'))) throw new Error('run npm run build first');
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-command-trainer-'));
    const bytes = buildTinyBackbone();
    const modelPath = path.join(dir, 'base.onnx');
    await writeFile(modelPath, bytes);
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    baseModel = { name: 'bridge-defects', version: '1.0.0', digest, uri: `file://${modelPath}`, format: 'onnx' };
    artifacts = { ensure: async (m) => ({ repositoryPath: dir, modelPath, digest: m.digest }), retain: async () => undefined };
    dataset = path.join(dir, 'data');
    await writeColourDataset(dataset, 10, { size: 16 });
  });
  afterEach(async () => {
    await Promise.all(runners.splice(0).map((r) => r.close()));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const job = (name: string, over: Partial<DesiredFineTuneJob> = {}, hyperparameters: Record<string, number | string | boolean> = {}): DesiredFineTuneJob =>
    DesiredFineTuneJobSchema.parse({
      name,
      baseModel,
      dataset: { path: dataset, format: 'imagefolder' },
      trainer: { command: [process.execPath, TRAINER], hyperparameters },
      evaluation: { metric: 'accuracy', holdoutFraction: 0.3, threshold: 0.8 },
      output: { model: 'bridge-defects', artifact: 'keep-local' },
      promote: 'manual',
      ...over,
    });

  const runner = (name: string, over: Partial<FineTuneRunnerOptions> = {}) => {
    const r = new FineTuneRunner({ stateDir: path.join(dir, `state-${name}`), spoke: 'site-1', artifacts, logger, threads: 1, stopGraceMs: 1000, ...over });
    runners.push(r);
    return r;
  };

  async function finish(r: FineTuneRunner, jobs: DesiredFineTuneJob[], name: string, seen?: Set<string>): Promise<JobRunStatus> {
    let last: JobRunStatus | undefined;
    await until(`${name} to finish`, async () => {
      last = (await r.reconcile(jobs)).find((s) => s.name === name);
      seen?.add(last!.phase === 'Running' ? last!.message.split(':')[0]! : last!.phase);
      return settled(last);
    });
    return last!;
  }

  it('runs the program with the contract, ignores and counts malformed lines, and gates on the agent\'s own evaluation', async () => {
    const r = runner('ok');
    const seen = new Set<string>();
    const done = await finish(r, [job('colours', {}, { garbage: true })], 'colours', seen);
    expect(done.phase).toBe('Succeeded');
    expect(seen).toContain('Training');
    expect(done.producedVersion).toMatch(/^1\.0\.0-ft\.site-1\.[0-9a-f]{12}$/);
    // The gate's accuracy is the agent's measurement; the trainer's claim (0.99) is kept apart.
    expect(done.metrics.accuracy).toBe(1);
    expect(done.metrics['trainer.accuracy']).toBe(0.99);
    expect(done.metrics['trainer.train.examples']).toBeGreaterThan(10);
    expect(done.metrics['dataset.classes']).toBe(3);
    expect(done.metrics['dataset.class0.images']).toBe(10);
    expect(done.message).toMatch(/held-out accuracy 1\.0000 >= threshold 0\.8 \(the agent's own evaluation\)/);
    expect(done.message).toMatch(/3 malformed trainer lines ignored/);
    const record = JSON.parse(await readFile(path.join(dir, 'state-ok', 'finetune', 'records', 'colours.json'), 'utf8')) as { producedDigest: string; datasetFingerprint: string };
    const kept = await readFile(path.join(dir, 'state-ok', 'finetune', 'produced', record.producedDigest.replace(':', '-'), 'model.onnx'));
    expect(`sha256:${createHash('sha256').update(kept).digest('hex')}`).toBe(record.producedDigest);
    expect(record.datasetFingerprint).toMatch(/^sha256:[0-9a-f]{64}$/);
    // The held-out items were listed for the trainer, and it did not train on them.
    const runDir = path.join(dir, 'state-ok', 'finetune', 'runs', 'colours');
    const holdout = (await readFile(path.join(runDir, (await readdir(runDir))[0]!, 'holdout.txt'), 'utf8')).split('\n').filter(Boolean);
    expect(holdout.length).toBeGreaterThan(3);
    expect(done.metrics['trainer.train.examples']).toBe(30 - holdout.length);
  });

  it('rejects a model whose trainer claims more than the agent measures', async () => {
    const done = await finish(runner('lie'), [job('liar', {}, { lie: true })], 'liar');
    expect(done.phase).toBe('Rejected');
    expect(done.metrics['trainer.accuracy']).toBe(1);
    expect(done.metrics.accuracy).toBeLessThan(0.8);
    expect(done.message).toMatch(/rejected: held-out accuracy .* < threshold 0\.8 \(the agent's own evaluation\); nothing registered/);
    expect(done.producedVersion).toBeNull();
  });

  it('reports the failure file, redacted, and a non-zero exit as Failed', async () => {
    const done = await finish(runner('fail'), [job('failing', {}, { fail: `cannot read ${dataset}/train/crack/crack-1.png of class "crack"` })], 'failing');
    expect(done.phase).toBe('Failed');
    expect(done.message).toBe('trainer failed: cannot read <dataset file> of class "<name>"');
  });

  it('stops a run at the job timeout with SIGTERM and says so', async () => {
    const started = Date.now();
    const done = await finish(runner('timeout'), [job('slow', { timeoutSeconds: 1 }, { sleepMs: 500 })], 'slow');
    expect(done.phase).toBe('Failed');
    expect(done.message).toMatch(/^trainer timed-out: stopped after the 1 s timeout; stopped by SIGTERM/);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('stops a trainer whose resident memory goes above resources.memory', async () => {
    const done = await finish(runner('memory'), [job('greedy', { resources: { gpu: 0, memory: '96Mi' } }, { allocateMiB: 300 })], 'greedy');
    expect(done.phase).toBe('Failed');
    expect(done.message).toMatch(/^trainer memory-exceeded: stopped: resident memory \d+ MiB is above the 96 MiB limit/);
  });

  it('trains from a csv index of image paths', async () => {
    const rows = ['image,label'];
    for (const label of ['corrosion', 'crack', 'spalling']) for (const f of (await readdir(path.join(dataset, 'train', label))).sort()) rows.push(`train/${label}/${f},${label}`);
    const csvDir = await mkdtemp(path.join(dir, 'csv-'));
    // The index lives beside the images: link the image tree in with the csv.
    await writeFile(path.join(csvDir, 'train.csv'), `${rows.join('\n')}\n`);
    await import('node:fs/promises').then((fs) => fs.symlink(path.join(dataset, 'train'), path.join(csvDir, 'train')));
    const done = await finish(runner('csv'), [job('from-csv', { dataset: { path: dataset, format: 'csv' } })].map((j) => ({ ...j, dataset: { path: csvDir, format: 'csv' as const } })), 'from-csv');
    // The symlinked tree leads outside the dataset directory: refused, the file and line named locally, redacted for the hub.
    expect(done.phase).toBe('Failed');
    expect(done.message).toMatch(/^<dataset file> line 2: image <dataset file> leads outside the dataset directory/);
    await rm(path.join(csvDir, 'train'));
    await import('node:fs/promises').then((fs) => fs.cp(path.join(dataset, 'train'), path.join(csvDir, 'train'), { recursive: true }));
    const r = runner('csv2');
    const ok = await finish(r, [{ ...job('from-csv2'), dataset: { path: csvDir, format: 'csv' } }], 'from-csv2');
    expect(ok.phase).toBe('Succeeded');
    expect(ok.metrics.accuracy).toBe(1);
  });

  it('waits in Pending outside its schedule window, says when it opens, and starts once it is open', async () => {
    let clock = new Date('2026-11-30T12:00:00Z'); // a Monday
    const r = runner('window', { now: () => clock, schedulePollMs: 50 });
    const jobs = [job('at-night', { schedule: { timezone: 'Europe/Paris', windows: [{ days: ['mon'], start: '22:00', end: '23:30' }] } }, { fail: 'started' })];
    await until('the window message', async () => /window opens/.test((await r.reconcile(jobs))[0]!.message));
    const waiting = (await r.reconcile(jobs))[0]!;
    expect(waiting.phase).toBe('Pending');
    expect(waiting.message).toBe('outside its schedule window; the window opens at 2026-11-30 22:00 Europe/Paris (2026-11-30T21:00:00.000Z)');
    clock = new Date('2026-11-30T21:00:30Z');
    const done = await finish(r, jobs, 'at-night');
    expect(done.message).toBe('trainer failed: started');
  });

  it('never runs two trainings on one GPU: a second GPU job waits, a CPU job does not', async () => {
    const r = runner('gpu', { gpuCount: 1 });
    const holder = job('holder', { resources: { gpu: 1 } }, { sleepMs: 100 });
    const second = job('second', { resources: { gpu: 1 } }, { fail: 'second ran' });
    const cpu = job('cpu-only', {}, { fail: 'cpu ran' });
    await until('the holder to train', async () => (await r.reconcile([holder]))[0]!.message.startsWith('Training'));
    const all = [holder, second, cpu];
    await until('the CPU job to finish', async () => settled((await r.reconcile(all))[2]));
    const [h, s, c] = await r.reconcile(all);
    expect(h!.phase).toBe('Running');
    expect(s).toMatchObject({ phase: 'Pending', message: 'waiting for GPU: 1 asked, 0 of 1 free' });
    expect(c!.message).toBe('trainer failed: cpu ran');
    // Removing the holder cancels it and frees its GPU for the second job.
    await r.reconcile([second, cpu]);
    expect((await finish(r, [second, cpu], 'second')).message).toBe('trainer failed: second ran');
  });

  it('refuses trainer.image under the process runtime with a clear message', async () => {
    const done = (await runner('image').reconcile([{ ...job('in-a-container'), trainer: { image: 'registry.example/trainer:1', hyperparameters: {} } }]))[0]!;
    expect(done.phase).toBe('Failed');
    expect(done.message).toMatch(/needs a container engine, which the process runtime does not drive; run this spoke's agent with --runtime kubernetes, or give the job trainer\.command/);
  });
});
