import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import type { DesiredPayload } from '@flotilla/contracts';
import { NoneRuntime, enroll, runAgent, type AgentHandle } from '../../apps/agent/src/index.js';
import { FineTuneRunner } from '../../apps/agent/src/finetune/finetune-runner.js';
import type { ArtifactProvider, RuntimeReport } from '../../apps/agent/src/runtime/runtime.js';
import { runCli } from '../support/cli.js';
import { startTestHub, type TestHub } from '../support/hub.js';
import { waitFor } from '../support/wait.js';
import { buildTinyBackbone, writeColourDataset } from '../support/finetune/onnx-backbone.js';

/** The agent's fine-tuning runner behind the runtime seam, without serving (the process runtime does both). */
class FineTuneOnlyRuntime extends NoneRuntime {
  private listener: () => void = () => undefined;
  constructor(readonly runner: (changed: () => void) => FineTuneRunner) {
    super();
    this.built = runner(() => this.listener());
  }
  private readonly built: FineTuneRunner;
  onChange(listener: () => void): void {
    this.listener = listener;
  }
  private seen: DesiredPayload['fineTuneJobs'] | undefined;
  lastJobs(): DesiredPayload['fineTuneJobs'] | undefined {
    return this.seen;
  }
  override async reconcile(desired: DesiredPayload, signal: AbortSignal): Promise<RuntimeReport> {
    this.seen = desired.fineTuneJobs;
    const base = await super.reconcile(desired, signal);
    return { deployments: base.deployments, jobs: await this.built.reconcile(desired.fineTuneJobs) };
  }
  override async close(): Promise<void> {
    await this.built.close();
    await super.close();
  }
}

const MARKERS = ['QZXMARKERLABEL', 'QZXMARKERFILE'];

describe('fine-tuning through the hub', () => {
  let t: TestHub;
  let dir: string;
  let agent: AgentHandle;

  beforeAll(async () => {
    t = await startTestHub();
    dir = await mkdtemp(path.join(os.tmpdir(), 'flotilla-finetune-hub-'));
  }, 60_000);
  afterAll(async () => {
    await agent?.stop();
    await t?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('runs a FineTuneJob on the spoke, shows progress and metrics, registers the version with lineage, and sends no dataset name', async () => {
    const bytes = buildTinyBackbone();
    const modelPath = path.join(dir, 'base.onnx');
    await writeFile(modelPath, bytes);
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    const dataset = path.join(dir, `site-data-${MARKERS[1]}`);
    // Marker strings in a label name and in every file name (and the dataset directory's name, which the policy itself holds).
    await writeColourDataset(dataset, 16, {
      labels: { [`crack-${MARKERS[0]}`]: [200, 60, 60], spalling: [60, 200, 60], corrosion: [60, 60, 200] },
      fileName: (label, i) => `${label}-${MARKERS[1]}-${i}.png`,
    });

    const tok = await t.api('POST', '/api/v1/enrollment-tokens', { uses: 1, allowedLabelKeys: ['region'] });
    const stateDir = path.join(dir, 'agent');
    await enroll({ hubUrl: t.hub.apiUrl, token: tok.body.token, name: 'bridge-7', labels: { region: 'eu' }, stateDir });
    const artifacts: ArtifactProvider = { ensure: async () => ({ repositoryPath: dir, modelPath, digest }), retain: async () => undefined };
    const runtime = new FineTuneOnlyRuntime((changed) => new FineTuneRunner({ stateDir, spoke: 'bridge-7', artifacts, logger: pino({ level: 'silent' }), threads: 1, changed }));
    agent = await runAgent({ stateDir, runtime, logger: pino({ level: 'silent' }), timing: { statusIntervalMs: 300, reconcileIntervalMs: 1000, reconnect: { initialMs: 100, maxMs: 500 }, stopTimeoutMs: 500 } });

    const applied = await t.api(
      'POST',
      '/api/v1/apply',
      `apiVersion: flotilla.dev/v1
kind: Model
metadata: { name: bridge-defects }
spec:
  task: image-classification
  versions:
    - version: "1.0.0"
      uri: "file://${modelPath}"
      digest: "${digest}"
      format: onnx
      input: { width: 32, height: 32, layout: NCHW, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] }
---
apiVersion: flotilla.dev/v1
kind: Placement
metadata: { name: eu-sites }
spec: { selector: { matchLabels: { region: eu } } }
---
apiVersion: flotilla.dev/v1
kind: FineTuneJob
metadata: { name: bridge-site-tuning }
spec:
  baseModel: { name: bridge-defects, version: "1.0.0" }
  placement: eu-sites
  dataset: { path: ${dataset}, format: imagefolder }
  trainer: { builtin: linear-probe, hyperparameters: { epochs: 40 } }
  evaluation: { metric: accuracy, holdoutFraction: 0.25, threshold: 0.8 }
  output: { model: bridge-defects, artifact: keep-local }
`,
    );
    expect(applied.status).toBe(200);
    // The normalisation declared on the model version reaches the spoke with the job.
    await waitFor('the job in the desired state', () => runtime.lastJobs()?.[0]?.baseModel.input?.mean[0] === 0.5);

    const run = await waitFor('the run to succeed on bridge-7', async () => {
      const r = (await t.api('GET', '/api/v1/finetune-jobs/bridge-site-tuning')).body.runs.spokes?.[0];
      return r?.state === 'Succeeded' ? r : null;
    }, 60_000);
    expect(run.progress).toBe(1);
    expect(run.phase).toBe('Succeeded');
    expect(run.datasetFingerprint).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(run.metrics.accuracy).toBeGreaterThanOrEqual(0.8);
    expect(run.producedVersion).toMatch(/^1\.0\.0-ft\.bridge-7\.[0-9a-f]{12}$/);

    const version = await waitFor('the produced version in the registry', async () => {
      const r = await t.api('GET', `/api/v1/models/bridge-defects/versions/${run.producedVersion}`);
      return r.status === 200 ? r.body : null;
    });
    expect(version).toMatchObject({ model: 'bridge-defects', format: 'onnx', source: 'job:bridge-site-tuning@bridge-7' });
    expect(version.lineage).toMatchObject({ spoke: 'bridge-7', baseVersion: `bridge-defects@1.0.0 (${digest})` });
    expect(version.lineage.job).toMatch(/^bridge-site-tuning@generation-\d+$/);
    expect(version.lineage.datasetFingerprint).toBe(run.datasetFingerprint);
    expect(version.lineage.metrics.accuracy).toBe(run.metrics.accuracy);
    expect(version.digest.slice(7, 19)).toBe(run.producedVersion.slice(-12));

    const described = await runCli(['describe', 'job', 'bridge-site-tuning'], { FLOTILLA_URL: t.hub.apiUrl, FLOTILLA_TOKEN: t.adminToken });
    expect(described.stdout).toMatch(/bridge-7\s+Succeeded\s+\[##########\] 100%\s+\S*accuracy=/);
    expect(described.stdout).toContain(run.producedVersion);

    // Everything the hub stored from the spoke (statuses, the registered version, its audit): no label, file name or dataset path.
    const stored = JSON.stringify(await t.hub.dataSource.query(`SELECT job_statuses, deployment_statuses, conditions FROM spokes`)) + JSON.stringify(await t.hub.dataSource.query(`SELECT * FROM model_versions`)) + JSON.stringify(await t.hub.dataSource.query(`SELECT * FROM audit_events WHERE actor LIKE 'spoke:%'`));
    expect(stored).toContain(run.producedVersion);
    for (const m of MARKERS) expect(stored).not.toContain(m);
  }, 120_000);
});
