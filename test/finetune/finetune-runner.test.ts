import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { DesiredFineTuneJobSchema, type DesiredFineTuneJob, type JobRunStatus, type ModelRef } from '@flotilla/contracts';
import { FineTuneRunner } from '../../apps/agent/src/finetune/finetune-runner.js';
import type { ArtifactProvider } from '../../apps/agent/src/runtime/runtime.js';
import { buildTinyBackbone, writeColourDataset } from '../support/finetune/onnx-backbone.js';

const logger = pino({ level: process.env.FLOTILLA_TEST_LOG ?? 'silent' });

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 45_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('fine-tuning runs under the process runtime', () => {
  let dir: string;
  let artifacts: ArtifactProvider;
  let baseModel: ModelRef;
  let dataset: string;
  /** The verified cache, as the fake provider holds it: digest -> file. */
  const files = new Map<string, string>();
  let firstProduced: { version: string; digest: string; path: string } | undefined;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-finetune-runner-'));
    const bytes = buildTinyBackbone();
    const modelPath = path.join(dir, 'base.onnx');
    await writeFile(modelPath, bytes);
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    baseModel = { name: 'bridge-defects', version: '1.0.0', digest, uri: `file://${modelPath}`, format: 'onnx' };
    files.set(digest, modelPath);
    artifacts = {
      ensure: async (m) => {
        const file = files.get(m.digest);
        if (!file) throw new Error(`no artifact ${m.digest}`);
        return { repositoryPath: dir, modelPath: file, digest: m.digest };
      },
      retain: async () => undefined,
    };
    dataset = path.join(dir, 'data');
    await writeColourDataset(dataset, 16);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const job = (name: string, over: Partial<DesiredFineTuneJob> = {}): DesiredFineTuneJob =>
    DesiredFineTuneJobSchema.parse({
      name,
      baseModel,
      dataset: { path: dataset, format: 'imagefolder' },
      trainer: { builtin: 'linear-probe', hyperparameters: { epochs: 40 } },
      evaluation: { metric: 'accuracy', holdoutFraction: 0.25, threshold: 0.8 },
      output: { model: 'bridge-defects', artifact: 'keep-local' },
      promote: 'manual',
      ...over,
    });

  const runner = (stateDir: string) => new FineTuneRunner({ stateDir, spoke: 'site-1', artifacts, logger, threads: 1, stopGraceMs: 2000 });

  async function finish(r: FineTuneRunner, jobs: DesiredFineTuneJob[], name: string): Promise<JobRunStatus> {
    let last: JobRunStatus | undefined;
    await until(`${name} to finish`, async () => {
      last = (await r.reconcile(jobs)).find((s) => s.name === name);
      return last !== undefined && last.phase !== 'Pending' && last.phase !== 'Running';
    });
    return last!;
  }

  it('trains, passes the gate and keeps a content-addressed version named for the spoke', async () => {
    const state = path.join(dir, 'state-a');
    const r = runner(state);
    const seen = new Set<string>();
    const jobs = [job('site-tuning')];
    await until('a running phase', async () => {
      const s = (await r.reconcile(jobs))[0]!;
      seen.add(s.phase === 'Running' ? s.message.split(':')[0]! : s.phase);
      return s.phase !== 'Pending' && s.phase !== 'Running';
    });
    const done = await finish(r, jobs, 'site-tuning');
    expect(done.phase).toBe('Succeeded');
    expect(done.progress).toBe(1);
    expect(done.metrics.accuracy).toBeGreaterThanOrEqual(0.8);
    expect(done.producedVersion).toMatch(/^1\.0\.0-ft\.site-1\.[0-9a-f]{12}$/);
    const record = JSON.parse(await readFile(path.join(state, 'finetune', 'records', 'site-tuning.json'), 'utf8')) as { producedDigest: string; datasetFingerprint: string };
    expect(done.producedVersion!.endsWith(record.producedDigest.slice(7, 19))).toBe(true);
    expect(record.datasetFingerprint).toMatch(/^sha256:/);
    const kept = await readFile(path.join(state, 'finetune', 'produced', record.producedDigest.replace(':', '-'), 'model.onnx'));
    expect(`sha256:${createHash('sha256').update(kept).digest('hex')}`).toBe(record.producedDigest);
    firstProduced = { version: done.producedVersion!, digest: record.producedDigest, path: path.join(state, 'finetune', 'produced', record.producedDigest.replace(':', '-'), 'model.onnx') };
    // A second reconcile with the same spec reports the record and trains nothing again.
    expect((await r.reconcile(jobs))[0]).toEqual(done);
    await r.close();
  });

  it('ends Rejected with an impossible threshold and registers nothing', async () => {
    const r = runner(path.join(dir, 'state-b'));
    const done = await finish(r, [job('strict', { evaluation: { metric: 'accuracy', holdoutFraction: 0.25, threshold: 1.01 } })], 'strict');
    expect(done.phase).toBe('Rejected');
    expect(done.producedVersion).toBeNull();
    expect(done.message).toMatch(/held-out accuracy .* < threshold 1\.01/);
    await r.close();
  });

  it('measures the served version on the same split and rejects a run that does not beat it by minImprovement', async () => {
    files.set(firstProduced!.digest, firstProduced!.path);
    const served: ModelRef = { name: 'bridge-defects', version: firstProduced!.version, digest: firstProduced!.digest, uri: `file://${firstProduced!.path}`, format: 'onnx' };
    const state = path.join(dir, 'state-f');
    const r = runner(state);
    const jobs = [job('must-improve', { evaluation: { metric: 'accuracy', holdoutFraction: 0.25, threshold: 0.5, minImprovement: 0.2 } })];
    let last: JobRunStatus | undefined;
    await until('must-improve to finish', async () => {
      last = (await r.reconcile(jobs, [served]))[0];
      return last!.phase !== 'Pending' && last!.phase !== 'Running';
    });
    // Same data, same seed as the served version: no improvement at all.
    expect(last!.phase).toBe('Rejected');
    expect(last!.message).toMatch(/but \+0\.0000 over the served version \(1\.0000\), below the minimum improvement 0\.2/);
    const metrics = JSON.parse(await readFile(path.join(state, 'finetune', 'runs', 'must-improve', (await readdir(path.join(state, 'finetune', 'runs', 'must-improve')))[0]!, 'output', 'metrics.json'), 'utf8')) as { served: { metrics: { accuracy: number; confusion: number[][] } } };
    expect(metrics.served.metrics.confusion).toHaveLength(3);
    await r.close();
  });

  it('runs a job again after an agent restart and says so', async () => {
    const state = path.join(dir, 'state-c');
    const first = runner(state);
    const jobs = [job('resumed')];
    await until('training to start', async () => ((await first.reconcile(jobs))[0]!.message.startsWith('Training')));
    await first.close();
    const second = runner(state);
    const again = (await second.reconcile(jobs))[0]!;
    expect(again.message).toMatch(/run again after an agent restart \(attempt 2\)/);
    expect((await finish(second, jobs, 'resumed')).phase).toBe('Succeeded');
    await second.close();
  });

  it('cancels a run whose job left the desired state', async () => {
    const state = path.join(dir, 'state-d');
    const r = runner(state);
    await until('training to start', async () => ((await r.reconcile([job('removed')]))[0]!.message.startsWith('Training')));
    await r.reconcile([]);
    await until('the record to say cancelled', async () => /cancelled/.test(await readFile(path.join(state, 'finetune', 'records', 'removed.json'), 'utf8')));
    await r.close();
  });

  it('reports a failing dataset to the hub without its file or class names', async () => {
    const bad = path.join(dir, 'bad-MARKERDIR');
    await writeColourDataset(bad, 4, { labels: { 'label-MARKERLABEL': [1, 2, 3], other: [200, 200, 200] } });
    await writeFile(path.join(bad, 'train', 'label-MARKERLABEL', 'file-MARKERFILE.png'), 'not an image');
    const r = runner(path.join(dir, 'state-e'));
    const done = await finish(r, [job('private', { dataset: { path: bad, format: 'imagefolder' } })], 'private');
    expect(done.phase).toBe('Failed');
    expect(done.message).toMatch(/cannot be decoded/);
    expect(JSON.stringify(done)).not.toMatch(/MARKER/);
    await r.close();
    expect((await stat(path.join(dir, 'state-e', 'finetune', 'records', 'private.json'))).isFile()).toBe(true);
  });
});
