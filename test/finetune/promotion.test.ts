import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { startAgent, type RunningAgent } from '../../apps/agent/src/compose.js';
import { parseAgentConfig } from '../../apps/agent/src/config/agent-config.js';
import { enroll } from '../../apps/agent/src/index.js';
import { stopWorkloads } from '../../apps/agent/src/runtime/process/stop-workloads.js';
import { ensureInferenceServerBuilt } from '../process/support.js';
import { runCli } from '../support/cli.js';
import { buildTinyBackbone, writeColourDataset } from '../support/finetune/onnx-backbone.js';
import { startTestHub, type TestHub } from '../support/hub.js';
import { waitFor } from '../support/wait.js';

/**
 * Promotion of fine-tuned versions (issue 13, deliverable 7) with real parts
 * only: a real hub, two real agents with the process runtime serving the
 * deployment through the real inference server, the builtin linear-probe
 * trainer run by the agents on tiny generated datasets, gates measured from
 * the telemetry the agents send. With `promote: auto` and a passing gate the
 * spoke that trained serves the produced classifier (its KServe v2 output
 * changes) while the other keeps the base model; an impossible threshold
 * changes nothing; a manual job is promoted through the CLI, and rolled back
 * when real requests fail above the deployment's maxErrorRatio.
 * FLOTILLA_PROMOTION_FULL=1 (`npm run promotion`) adds the slower policy
 * interactions: a newer run replaces the promotion, a base version change
 * withdraws it, deleting the job withdraws it, deleting the deployment removes it.
 */
const FULL = process.env.FLOTILLA_PROMOTION_FULL === '1';
const DEPLOYMENT = 'bridge-inference';
const COLOURS: Record<string, [number, number, number]> = { crack: [200, 60, 60], spalling: [60, 200, 60], corrosion: [60, 60, 200] };

interface Tensor {
  name: string;
  shape: number[];
  datatype: string;
  data: number[];
}

describe('promotion of fine-tuned versions on the spoke that trained them', () => {
  let t: TestHub;
  let dir: string;
  const agents = new Map<string, RunningAgent>();
  const stateDir = (spoke: string) => path.join(dir, 'agents', spoke);
  const log = pino({ level: process.env.FLOTILLA_TEST_LOG ?? 'silent' });
  let modelYaml = '';

  const deployment = async () => (await t.api('GET', `/api/v1/deployments/${DEPLOYMENT}`)).body;
  const spokeRow = async (spoke: string) => ((await deployment()).compliance.spokes ?? []).find((s: any) => s.spoke === spoke);
  const promotionOf = async (spoke: string) => ((await deployment()).promotions ?? []).find((p: any) => p.spoke === spoke);
  const runOf = async (job: string, spoke: string) => ((await t.api('GET', `/api/v1/finetune-jobs/${job}`)).body.runs.spokes ?? []).find((r: any) => r.spoke === spoke);
  const serving = (spoke: string, version: string) => async () => {
    const s = await spokeRow(spoke);
    return s?.state === 'Compliant' && s.servingVersion === version ? s : null;
  };

  /** What the spoke's server answers for one solid-colour image, laid out as its model's input asks. */
  async function infer(endpoint: string, rgb: [number, number, number]): Promise<Tensor> {
    const meta = (await (await fetch(endpoint)).json()) as { inputs: { name: string; shape: number[]; datatype: string }[] };
    const input = meta.inputs[0]!;
    const shape = input.shape.map((d) => (d < 0 ? 1 : d));
    const nchw = shape[1] === 3;
    const [h, w] = nchw ? [shape[2]!, shape[3]!] : [shape[1]!, shape[2]!];
    const data: number[] = [];
    // The base backbone takes normalised planes; the exported classifier takes RGB pixels as decoded (0..255).
    if (nchw) for (let c = 0; c < 3; c++) for (let i = 0; i < h * w; i++) data.push((rgb[c]! / 255 - 0.5) / 0.25);
    else for (let i = 0; i < h * w; i++) data.push(...rgb);
    const res = await fetch(`${endpoint}/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ inputs: [{ name: input.name, shape, datatype: 'FP32', data }] }),
    });
    expect(res.status).toBe(200);
    return ((await res.json()) as { outputs: Tensor[] }).outputs[0]!;
  }

  /** The class labels of the version a spoke produced, from its keep-local copy (it never left the spoke). */
  async function producedLabels(spoke: string, version: string): Promise<string[]> {
    const root = path.join(stateDir(spoke), 'finetune', 'produced');
    for (const d of await readdir(root)) {
      if (d.slice('sha256-'.length, 'sha256-'.length + 12) === version.slice(-12)) return (await readFile(path.join(root, d, 'labels.txt'), 'utf8')).trim().split('\n');
    }
    throw new Error(`no keep-local copy of ${version} on ${spoke}`);
  }

  const job = (name: string, placement: string, o: { promote: 'auto' | 'manual'; threshold: number; epochs?: number; seed?: number }) => `apiVersion: flotilla.dev/v1
kind: FineTuneJob
metadata: { name: ${name} }
spec:
  baseModel: { name: bridge-defects, version: "1.0.0" }
  placement: ${placement}
  dataset: { path: ${path.join(dir, 'data', placement)}, format: imagefolder }
  trainer: { builtin: linear-probe, hyperparameters: { epochs: ${o.epochs ?? 40}, seed: ${o.seed ?? 1} } }
  evaluation: { metric: accuracy, holdoutFraction: 0.25, threshold: ${o.threshold} }
  output: { model: bridge-defects, artifact: keep-local }
  promote: ${o.promote}
`;
  const deploymentYaml = (version = '1.0.0') => `apiVersion: flotilla.dev/v1
kind: ModelDeployment
metadata: { name: ${DEPLOYMENT} }
spec:
  model: { name: bridge-defects, version: "${version}" }
  placement: eu-sites
  runtime: builtin
  rollout: { minSuccessTime: 0s, progressDeadline: 25s, gates: { maxErrorRatio: 0.2 } }
`;

  beforeAll(async () => {
    await ensureInferenceServerBuilt();
    t = await startTestHub({ FLOTILLA_TELEMETRY_INTERVAL: '5' });
    dir = await mkdtemp(path.join(os.tmpdir(), 'flotilla-promotion-'));
    const models = path.join(dir, 'models');
    await mkdir(models, { recursive: true });
    const bytes = buildTinyBackbone();
    const base = path.join(models, 'base.onnx');
    await writeFile(base, bytes);
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    for (const site of ['site-a', 'site-b']) await writeColourDataset(path.join(dir, 'data', site), 12, { labels: COLOURS });

    const tok = await t.api('POST', '/api/v1/enrollment-tokens', { uses: 2, labels: { region: 'eu' }, allowedLabelKeys: ['site'] });
    for (const spoke of ['site-a', 'site-b']) {
      await enroll({ hubUrl: t.hub.apiUrl, token: tok.body.token, name: spoke, labels: { site: spoke }, stateDir: stateDir(spoke) });
      const config = parseAgentConfig({ stateDir: stateDir(spoke), runtime: 'process', metricsPort: 'off', gpu: 'none', artifactRoot: [models], datasetRoot: [path.join(dir, 'data')] });
      agents.set(spoke, await startAgent(config, { logger: log.child({ spoke }), processRuntime: { restartBackoff: { initialMs: 500, maxMs: 2_000 }, fineTune: { threads: 1 } } }));
    }
    const version = (v: string) => `    - { version: "${v}", uri: "file://${base}", digest: "${digest}", format: onnx, input: { width: 32, height: 32, layout: NCHW, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] } }`;
    modelYaml = `apiVersion: flotilla.dev/v1
kind: Model
metadata: { name: bridge-defects }
spec:
  task: image-classification
  versions:
${version('1.0.0')}
${version('1.0.1')}
---
apiVersion: flotilla.dev/v1
kind: Placement
metadata: { name: eu-sites }
spec: { selector: { matchLabels: { region: eu } } }
---
apiVersion: flotilla.dev/v1
kind: Placement
metadata: { name: site-a }
spec: { selector: { matchLabels: { site: site-a } } }
---
apiVersion: flotilla.dev/v1
kind: Placement
metadata: { name: site-b }
spec: { selector: { matchLabels: { site: site-b } } }
`;
    const applied = await t.api('POST', '/api/v1/apply', `${modelYaml}---\n${deploymentYaml()}`);
    expect(applied.status).toBe(200);
    for (const spoke of ['site-a', 'site-b']) await waitFor(`${spoke} serving 1.0.0`, serving(spoke, '1.0.0'), 60_000, 200);
  }, 120_000);

  afterAll(async () => {
    for (const a of agents.values()) await a.stop().catch(() => undefined);
    for (const spoke of agents.keys()) await stopWorkloads(stateDir(spoke), { graceMs: 2_000 }).catch(() => undefined);
    await t?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('promote: auto with a passing gate: the spoke that trained serves the tuned classifier, the other keeps the base model; an impossible threshold is Rejected and changes nothing', async () => {
    const before = await spokeRow('site-a');
    const baseOut = await infer(before.endpoint, COLOURS.crack!);
    expect(baseOut).toMatchObject({ name: 'scores', shape: [1, 5] });

    const applied = await t.api(
      'POST',
      '/api/v1/apply',
      `${job('tune-a', 'site-a', { promote: 'auto', threshold: 0.8 })}---\n${job('tune-b-impossible', 'site-b', { promote: 'auto', threshold: 1.5 })}---\n${job('tune-b', 'site-b', { promote: 'manual', threshold: 0.8 })}`,
    );
    expect(applied.status).toBe(200);

    const run = await waitFor('tune-a to succeed on site-a', async () => {
      const r = await runOf('tune-a', 'site-a');
      return r?.state === 'Succeeded' ? r : null;
    }, 90_000, 250);
    const produced: string = run.producedVersion;
    expect(produced).toMatch(/^1\.0\.0-ft\.site-a\.[0-9a-f]{12}$/);

    const promotion = await waitFor('the promotion on site-a to pass', async () => {
      const p = await promotionOf('site-a');
      return p?.state === 'Promoted' ? p : null;
    }, 60_000, 250);
    expect(promotion).toMatchObject({ deployment: DEPLOYMENT, spoke: 'site-a', version: produced, previousVersion: '1.0.0', job: 'tune-a', reason: 'Passed', active: true, actor: 'system:promotion-controller' });
    const a = await waitFor('site-a Compliant on the produced version', serving('site-a', produced), 30_000, 250);
    expect(a.promotedVersion).toBe(produced);

    // The inference output is the fine-tuned classifier's: its three classes, and the right one for a crack-coloured image.
    const labels = await producedLabels('site-a', produced);
    expect([...labels].sort()).toEqual(['corrosion', 'crack', 'spalling']);
    for (const [label, rgb] of Object.entries(COLOURS)) {
      const out = await infer(a.endpoint, rgb);
      expect(out).toMatchObject({ name: 'probabilities', shape: [1, 3] });
      expect(out.data.indexOf(Math.max(...out.data))).toBe(labels.indexOf(label));
      expect(out.data.reduce((x, y) => x + y, 0)).toBeCloseTo(1, 4);
    }
    expect((await runOf('tune-a', 'site-a')).promoted).toBe(true);

    // The other spoke keeps the base model; its impossible job was trained, Rejected, registered nothing and promoted nothing.
    const rejected = await waitFor('tune-b-impossible Rejected on site-b', async () => {
      const r = await runOf('tune-b-impossible', 'site-b');
      return r?.state === 'Rejected' ? r : null;
    }, 90_000, 250);
    expect(rejected.message).toMatch(/threshold 1\.5/);
    expect(rejected.producedVersion).toBeNull();
    expect(rejected.promoted).toBe(false);
    const b = await spokeRow('site-b');
    expect(b).toMatchObject({ state: 'Compliant', servingVersion: '1.0.0' });
    expect(b.promotedVersion).toBeUndefined();
    expect(await infer(b.endpoint, COLOURS.crack!)).toMatchObject({ name: 'scores', shape: [1, 5] });

    // A promotion is not a policy change: no rollout was started by it (the deployment is Progressive).
    expect((await t.api('GET', `/api/v1/rollouts/${DEPLOYMENT}`)).status).toBe(404);
    const audit = (await t.api('GET', '/api/v1/audit-events?limit=200')).body.items.map((e: any) => e.action);
    expect(audit).toEqual(expect.arrayContaining(['finetune.promoted', 'finetune.promotion-passed']));
  }, 200_000);

  test('promote: manual waits: the job ends Succeeded with promoted false; the API refuses what it cannot promote; flotilla promote job serves it', async () => {
    const run = await waitFor('tune-b to succeed on site-b', async () => {
      const r = await runOf('tune-b', 'site-b');
      return r?.state === 'Succeeded' ? r : null;
    }, 90_000, 250);
    const produced: string = run.producedVersion;
    await waitFor('the produced version registered', async () => (await t.api('GET', `/api/v1/models/bridge-defects/versions/${produced}`)).status === 200);
    // Give the promotion controller a few passes: a manual job is not promoted by it.
    await new Promise((r) => setTimeout(r, 2_500));
    expect(await promotionOf('site-b')).toBeUndefined();
    expect((await runOf('tune-b', 'site-b')).promoted).toBe(false);
    expect(await spokeRow('site-b')).toMatchObject({ servingVersion: '1.0.0' });

    const refused = async (job: string, spoke: string) => {
      const r = await t.api('POST', `/api/v1/finetune-jobs/${job}/promote`, { spoke });
      return { status: r.status, code: r.body?.error?.code, message: r.body?.error?.message as string };
    };
    expect(await refused('no-such-job', 'site-b')).toMatchObject({ status: 404, code: 'not_found' });
    expect(await refused('tune-b', 'no-such-spoke')).toMatchObject({ status: 404, code: 'not_found' });
    const rejected = await refused('tune-b-impossible', 'site-b');
    expect(rejected).toMatchObject({ status: 409, code: 'no_produced_version' });
    expect(rejected.message).toContain('Rejected');
    expect(await refused('tune-b', 'site-a')).toMatchObject({ status: 409, code: 'no_produced_version' });
    expect((await t.api('POST', '/api/v1/finetune-jobs/tune-b/promote', { spoke: 'site-b', extra: 1 })).status).toBe(400);

    const cli = await runCli(['promote', 'job', 'tune-b', '--spoke', 'site-b'], { FLOTILLA_URL: t.hub.apiUrl, FLOTILLA_TOKEN: t.adminToken });
    expect({ code: cli.code, stderr: cli.stderr }).toEqual({ code: 0, stderr: '' });
    expect(cli.stdout).toContain(`Promoting bridge-defects ${produced} (job tune-b) on site-b for ${DEPLOYMENT}`);

    const promotion = await waitFor('the manual promotion on site-b to pass', async () => {
      const p = await promotionOf('site-b');
      return p?.state === 'Promoted' ? p : null;
    }, 60_000, 250);
    expect(promotion).toMatchObject({ version: produced, job: 'tune-b', previousVersion: '1.0.0', actor: 'token:bootstrap-admin' });
    const b = await waitFor('site-b Compliant on its produced version', serving('site-b', produced), 30_000, 250);
    expect(await infer(b.endpoint, COLOURS.spalling!)).toMatchObject({ name: 'probabilities', shape: [1, 3] });
    expect((await runOf('tune-b', 'site-b')).promoted).toBe(true);
    // site-a keeps its own promotion; each spoke serves what it trained.
    expect((await spokeRow('site-a')).servingVersion).toMatch(/-ft\.site-a\./);
    const audit = (await t.api('GET', '/api/v1/audit-events?limit=200')).body.items;
    expect(audit.find((e: any) => e.action === 'finetune.promoted' && e.actor === 'token:bootstrap-admin')?.details).toMatchObject({ spoke: 'site-b', version: produced, job: 'tune-b' });

    const described = await runCli(['describe', 'job', 'tune-b'], { FLOTILLA_URL: t.hub.apiUrl, FLOTILLA_TOKEN: t.adminToken });
    expect(described.stdout).toMatch(new RegExp(`site-b\\s+Succeeded\\s+.*${produced.replace(/\./g, '\\.')}\\s+yes`));
  }, 200_000);

  test('a promoted version whose real requests fail above maxErrorRatio is rolled back: the spoke serves 1.0.0 again and says why', async () => {
    const b = await spokeRow('site-b');
    const promoted = b.promotedVersion as string;
    expect(promoted).toMatch(/-ft\.site-b\./);
    // Real requests the promoted classifier refuses (a tensor of the wrong shape): the server counts them as failures.
    let sent = 0;
    const load = setInterval(() => {
      sent += 1;
      void fetch(`${b.endpoint}/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ inputs: [{ name: 'image', shape: [1, 2], datatype: 'FP32', data: [1, 2] }] }),
        signal: AbortSignal.timeout(2_000),
      }).catch(() => undefined);
    }, 50);
    try {
      const back = await waitFor('the promotion on site-b to be rolled back', async () => {
        const p = await promotionOf('site-b');
        return p?.state === 'RolledBack' ? p : null;
      }, 60_000, 250);
      expect(back).toMatchObject({ reason: 'GateFailed', active: false, version: promoted });
      expect(back.message).toMatch(/^rolled back to 1\.0\.0: errorRatio (0\.\d+|1) > maxErrorRatio 0\.2$/);
      const gate = back.gates.find((g: any) => g.name === 'errorRatio');
      expect(gate).toMatchObject({ threshold: 0.2, ok: false });
      expect(gate.value).toBeGreaterThan(0.2);
    } finally {
      clearInterval(load);
    }
    expect(sent).toBeGreaterThan(0);
    const again = await waitFor('site-b Compliant on 1.0.0 again', serving('site-b', '1.0.0'), 30_000, 250);
    expect(again.promotedVersion).toBeUndefined();
    const run = await runOf('tune-b', 'site-b');
    expect(run.promoted).toBe(false);
    expect(run.promotions[0]).toMatchObject({ state: 'RolledBack', reason: 'GateFailed' });
    // Only site-b went back.
    expect((await spokeRow('site-a')).servingVersion).toMatch(/-ft\.site-a\./);
    const audit = (await t.api('GET', '/api/v1/audit-events?limit=200')).body.items.map((e: any) => e.action);
    expect(audit).toContain('finetune.promotion-rolled-back');
    const described = await runCli(['describe', 'deployment', DEPLOYMENT], { FLOTILLA_URL: t.hub.apiUrl, FLOTILLA_TOKEN: t.adminToken });
    expect(described.stdout).toMatch(/site-b\s+RolledBack\s+GateFailed/);
  }, 120_000);

  (FULL ? test : test.skip)('a promoted version that never becomes Ready (its bytes no longer match its digest) is rolled back at progressDeadline', async () => {
    expect((await t.api('POST', '/api/v1/apply', job('tune-a-manual', 'site-a', { promote: 'manual', threshold: 0.8, seed: 2 }))).status).toBe(200);
    const run = await waitFor('tune-a-manual to succeed on site-a', async () => {
      const r = await runOf('tune-a-manual', 'site-a');
      return r?.state === 'Succeeded' ? r : null;
    }, 120_000, 250);
    const produced: string = run.producedVersion;
    await waitFor('the produced version registered', async () => (await t.api('GET', `/api/v1/models/bridge-defects/versions/${produced}`)).status === 200);
    // The spoke's keep-local copy is damaged after registration: the agent refuses to serve bytes that do not match the digest.
    const root = path.join(stateDir('site-a'), 'finetune', 'produced');
    const copy = (await readdir(root)).find((d) => d.slice(7, 19) === produced.slice(-12))!;
    await writeFile(path.join(root, copy, 'model.onnx'), 'not the registered model');
    expect((await t.api('POST', '/api/v1/finetune-jobs/tune-a-manual/promote', { spoke: 'site-a' })).status).toBe(200);
    const back = await waitFor('the promotion rolled back at the deadline', async () => {
      const p = await promotionOf('site-a');
      return p?.version === produced && p.state === 'RolledBack' ? p : null;
    }, 90_000, 250);
    expect(back.reason).toBe('ProgressDeadlineExceeded');
    expect(back.message).toMatch(/^rolled back to 1\.0\.0: not Ready within progressDeadline 25s/);
    // Back on the deployment's own version (not the earlier promoted one this promotion replaced), and serving.
    await waitFor('site-a on 1.0.0 again', serving('site-a', '1.0.0'), 60_000, 250);
    // The replaced promotion did not start a rollout back to it either.
    expect((await t.api('GET', `/api/v1/rollouts/${DEPLOYMENT}`)).status).toBe(404);
    expect((await spokeRow('site-b')).servingVersion).toBe('1.0.0');
  }, 240_000);

  (FULL ? test : test.skip)('a newer passing run replaces the promotion; a base version change withdraws it; so does deleting the job; deleting the deployment removes it', async () => {
    const first = (await promotionOf('site-a')).version as string;
    expect((await t.api('POST', '/api/v1/apply', job('tune-a', 'site-a', { promote: 'auto', threshold: 0.8, epochs: 41 }))).status).toBe(200);
    const replaced = await waitFor('a newer version promoted on site-a', async () => {
      const p = await promotionOf('site-a');
      return p && p.version !== first && p.state === 'Promoted' ? p : null;
    }, 120_000, 250);
    await waitFor('site-a serving the newer version', serving('site-a', replaced.version), 30_000, 250);

    // The deployment moves to 1.0.1: the produced version was tuned from 1.0.0 and promoted over 1.0.0, so it is withdrawn.
    expect((await t.api('POST', '/api/v1/apply', deploymentYaml('1.0.1'))).status).toBe(200);
    const withdrawn = await waitFor('the promotion withdrawn', async () => {
      const p = await promotionOf('site-a');
      return p?.state === 'Withdrawn' ? p : null;
    }, 10_000, 100);
    expect(withdrawn.reason).toBe('BaseVersionChanged');
    expect(withdrawn.message).toContain('bridge-defects 1.0.1');
    for (const spoke of ['site-a', 'site-b']) await waitFor(`${spoke} on 1.0.1`, serving(spoke, '1.0.1'), 90_000, 250);

    // Promoted again by hand over 1.0.1 (it holds: the policy names the version it was promoted over); then the job is deleted.
    expect((await t.api('POST', '/api/v1/finetune-jobs/tune-a/promote', { spoke: 'site-a' })).status).toBe(200);
    await waitFor('site-a serving the produced version again', serving('site-a', replaced.version), 60_000, 250);
    expect((await t.api('DELETE', '/api/v1/policy-objects/FineTuneJob/tune-a')).status).toBe(200);
    const gone = await waitFor('the promotion withdrawn with the job', async () => {
      const p = await promotionOf('site-a');
      return p?.state === 'Withdrawn' ? p : null;
    }, 10_000, 100);
    expect(gone.reason).toBe('JobDeleted');
    await waitFor('site-a on 1.0.1 again', serving('site-a', '1.0.1'), 60_000, 250);

    expect((await t.api('DELETE', `/api/v1/policy-objects/ModelDeployment/${DEPLOYMENT}`)).status).toBe(200);
    const rows = await t.hub.dataSource.query(`SELECT * FROM spoke_promotions WHERE deployment = $1`, [DEPLOYMENT]);
    expect(rows).toEqual([]);
  }, 400_000);
});
