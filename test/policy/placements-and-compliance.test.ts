import type { DeploymentStatus } from '@flotilla/contracts';
import { startTestHub, type TestHub } from '../support/hub.js';
import { DIGEST_1 } from '../support/fleet-kit.js';

/**
 * Spokes are written straight into the table (as the ingest would after
 * their reports), so each one sits in exactly the state a case needs:
 * online, stale, offline, behind, failing.
 */
const policy = `
apiVersion: flotilla.dev/v1
kind: Model
metadata: { name: bridge-defects }
spec:
  task: image-classification
  versions:
    - { version: "1.0.0", uri: "file:///models/b/1.0.0/model.onnx", digest: "${DIGEST_1}", format: onnx }
---
apiVersion: flotilla.dev/v1
kind: Placement
metadata: { name: eu-gpu, labels: { team: vision } }
spec:
  selector:
    matchLabels: { region: eu }
    matchExpressions:
      - { key: quarantined, operator: DoesNotExist }
  requirements:
    gpu: { count: 1, memoryGiB: 24 }
---
apiVersion: flotilla.dev/v1
kind: Placement
metadata: { name: everywhere }
spec:
  selector: {}
---
apiVersion: flotilla.dev/v1
kind: ModelDeployment
metadata: { name: defects-eu }
spec:
  model: { name: bridge-defects, version: "1.0.0" }
  placement: eu-gpu
  runtime: builtin
---
apiVersion: flotilla.dev/v1
kind: FineTuneJob
metadata: { name: tune-eu }
spec:
  baseModel: { name: bridge-defects, version: "1.0.0" }
  placement: eu-gpu
  dataset: { path: /data/labelled, format: csv }
  trainer: { builtin: linear-probe }
  evaluation: { metric: accuracy, holdoutFraction: 0.2, threshold: 0.9 }
  output: { model: bridge-defects, artifact: keep-local }
`;

const gpu = { cpuCores: 16, memoryGiB: 64, gpus: [{ index: 0, uuid: 'GPU-0', product: 'NVIDIA L40S', memoryGiB: 48, mig: false }] };
const smallGpu = { cpuCores: 8, memoryGiB: 32, gpus: [{ index: 0, uuid: 'GPU-0', product: 'Tesla T4', memoryGiB: 16, mig: false }] };

const status = (compliance: DeploymentStatus['compliance'], phase: DeploymentStatus['phase'], message = ''): DeploymentStatus => ({
  name: 'defects-eu',
  phase,
  readyReplicas: phase === 'Ready' ? 1 : 0,
  desiredReplicas: 1,
  servingVersion: '1.0.0',
  endpoint: 'http://127.0.0.1:9000',
  compliance,
  conditions: [],
  message,
});

describe('placement decisions and deployment compliance', () => {
  let t: TestHub;
  const ago = (s: number) => new Date(Date.now() - s * 1000);

  async function spoke(name: string, labels: Record<string, string>, capacity: object | null, presence: 'online' | 'offline', lastSeenAt: Date | null) {
    await t.hub.dataSource.query(
      `INSERT INTO spokes (name, labels, capacity, presence, last_seen_at, mqtt_username) VALUES ($1, $2::jsonb, $3::jsonb, $4, $5, $6)`,
      [name, JSON.stringify(labels), capacity ? JSON.stringify(capacity) : null, presence, lastSeenAt, `${name}.test`],
    );
  }
  /** The spoke's report: it applied `behind` generations less than desired, with these statuses. */
  async function report(name: string, statuses: DeploymentStatus[], jobs: object[] = [], behind = 0) {
    // As an agent reports: statuses stamped with the generation whose reconcile computed them.
    const rows = (await t.hub.dataSource.query(`SELECT desired_generation FROM spokes WHERE name = $1`, [name])) as { desired_generation: number }[];
    const generation = (rows[0]?.desired_generation ?? 0) - behind;
    await t.hub.dataSource.query(
      `UPDATE spokes SET accepted_generation = $2, observed_generation = $2, deployment_statuses = $3::jsonb, job_statuses = $4::jsonb WHERE name = $1`,
      [name, generation, JSON.stringify(statuses.map((d) => ({ ...d, observedGeneration: generation }))), JSON.stringify(jobs.map((j) => ({ ...j, observedGeneration: generation })))],
    );
  }

  beforeAll(async () => {
    t = await startTestHub();
    await spoke('eu-ok', { region: 'eu' }, gpu, 'online', ago(1));
    await spoke('eu-failing', { region: 'eu' }, gpu, 'online', ago(1));
    await spoke('eu-behind', { region: 'eu' }, gpu, 'online', ago(1));
    await spoke('eu-silent', { region: 'eu' }, gpu, 'online', ago(1));
    await spoke('eu-stale', { region: 'eu' }, gpu, 'online', ago(3600));
    await spoke('eu-offline', { region: 'eu' }, gpu, 'offline', ago(30));
    await spoke('eu-small-gpu', { region: 'eu' }, smallGpu, 'online', ago(1));
    await spoke('eu-new', { region: 'eu' }, null, 'offline', null);
    await spoke('eu-quarantined', { region: 'eu', quarantined: 'true' }, gpu, 'online', ago(1));
    await spoke('us-1', { region: 'us' }, gpu, 'online', ago(1));
    const applied = await t.api('POST', '/api/v1/apply', policy);
    expect(applied.status).toBe(200);
    await report('eu-ok', [status('Compliant', 'Ready')], [{ name: 'tune-eu', phase: 'Succeeded', progress: 1, metrics: { accuracy: 0.93 }, producedVersion: '1.0.0-eu-ok.1', message: '' }]);
    await report('eu-failing', [status('NonCompliant', 'Failed', 'model digest mismatch')], [{ name: 'tune-eu', phase: 'Running', progress: 0.4, metrics: {}, producedVersion: null, message: '' }]);
    await report('eu-behind', [status('Compliant', 'Ready')], [], 1);
    await report('eu-silent', []);
    await report('eu-stale', [status('Compliant', 'Ready')]);
    await report('eu-offline', [status('Compliant', 'Ready')]);
  }, 60_000);

  afterAll(async () => {
    await t?.stop();
  });

  test('a placement shows the spokes it selects and, for each one left out, every reason', async () => {
    const r = await t.api('GET', '/api/v1/placements/eu-gpu');
    expect(r.status).toBe(200);
    expect(r.body).toEqual(
      expect.objectContaining({ kind: 'Placement', name: 'eu-gpu', labels: { team: 'vision' }, source: 'api:bootstrap-admin', commit: null, generation: 1 }),
    );
    expect(r.body.spec.selector.matchLabels).toEqual({ region: 'eu' });
    expect(r.body.decision.selected).toEqual(['eu-behind', 'eu-failing', 'eu-offline', 'eu-ok', 'eu-silent', 'eu-stale']);
    expect(r.body.decision.excluded).toEqual([
      { spoke: 'eu-new', reasons: ['capacity: not reported yet, cannot confirm 1 GPU with at least 24 GiB each'] },
      { spoke: 'eu-quarantined', reasons: ['label selector: needs !quarantined (quarantined is "true")'] },
      { spoke: 'eu-small-gpu', reasons: ['capacity: needs 1 GPU with at least 24 GiB each, 0 fit (reports Tesla T4 16 GiB)'] },
      { spoke: 'us-1', reasons: ['label selector: needs region=eu (region is "us")'] },
    ]);
    expect(r.body.decision).toEqual(expect.objectContaining({ spokeCount: 10, selectedCount: 6, excludedCount: 4 }));
    expect(r.body.usedBy).toEqual({ deployments: ['defects-eu'], fineTuneJobs: ['tune-eu'] });
  });

  test('the placement list counts each decision and filters by the placements’ own labels', async () => {
    const all = await t.api('GET', '/api/v1/placements');
    expect(all.body.items.map((p: any) => [p.name, p.decision.selectedCount, p.decision.excludedCount])).toEqual([
      ['eu-gpu', 6, 4],
      ['everywhere', 10, 0],
    ]);
    expect(all.body.items[0].decision.selected).toBeUndefined();
    const vision = await t.api('GET', '/api/v1/placements?selector=team%3Dvision');
    expect(vision.body.items.map((p: any) => p.name)).toEqual(['eu-gpu']);
    const bad = await t.api('GET', '/api/v1/placements?selector=team%3D%3D%3Dx');
    expect(bad.status).toBe(400);
    expect(bad.body.error.details.problems[0].field).toBe('selector');
  });

  test('a label change moves a spoke in or out of the decision at once', async () => {
    await t.api('PATCH', '/api/v1/spokes/us-1', { labels: { region: 'eu' } });
    expect((await t.api('GET', '/api/v1/placements/eu-gpu')).body.decision.selected).toContain('us-1');
    await t.api('PATCH', '/api/v1/spokes/us-1', { labels: { region: 'us' } });
    expect((await t.api('GET', '/api/v1/placements/eu-gpu')).body.decision.selected).not.toContain('us-1');
  });

  test('deployment compliance per spoke: Compliant, NonCompliant with the message, Pending until caught up, Unknown while stale or offline', async () => {
    const r = await t.api('GET', '/api/v1/deployments/defects-eu');
    expect(r.status).toBe(200);
    expect(r.body.placement).toEqual({ name: 'eu-gpu', found: true, selectedCount: 6, selected: ['eu-behind', 'eu-failing', 'eu-offline', 'eu-ok', 'eu-silent', 'eu-stale'] });
    const by = Object.fromEntries(r.body.compliance.spokes.map((s: any) => [s.spoke, [s.state, s.reason]]));
    expect(by).toEqual({
      'eu-ok': ['Compliant', 'Reported'],
      'eu-failing': ['NonCompliant', 'Failed'],
      'eu-behind': ['Pending', 'GenerationBehind'],
      'eu-silent': ['Pending', 'NotReported'],
      'eu-stale': ['Unknown', 'SpokeStale'],
      'eu-offline': ['Unknown', 'SpokeOffline'],
    });
    expect(r.body.compliance.counts).toEqual({ Compliant: 1, NonCompliant: 1, Pending: 2, Unknown: 2 });
    const failing = r.body.compliance.spokes.find((s: any) => s.spoke === 'eu-failing');
    expect(failing).toEqual(expect.objectContaining({ message: 'model digest mismatch', phase: 'Failed', connection: 'online' }));
    const behind = r.body.compliance.spokes.find((s: any) => s.spoke === 'eu-behind');
    expect(behind.message).toMatch(/accepted generation \d+ of \d+/);
  });

  test('the deployment list carries the counts, not the per-spoke detail', async () => {
    const r = await t.api('GET', '/api/v1/deployments');
    expect(r.body.items).toHaveLength(1);
    expect(r.body.items[0].compliance).toEqual({ evaluatedAt: expect.any(String), counts: { Compliant: 1, NonCompliant: 1, Pending: 2, Unknown: 2 } });
    expect(r.body.items[0].placement.selected).toBeUndefined();
  });

  test('a fine-tune job shows its run on each selected spoke with progress, metrics and the version it produced', async () => {
    const r = await t.api('GET', '/api/v1/finetune-jobs/tune-eu');
    expect(r.status).toBe(200);
    const by = Object.fromEntries(r.body.runs.spokes.map((s: any) => [s.spoke, s.state]));
    expect(by).toEqual({ 'eu-ok': 'Succeeded', 'eu-failing': 'Running', 'eu-behind': 'Pending', 'eu-silent': 'Pending', 'eu-stale': 'Unknown', 'eu-offline': 'Unknown' });
    expect(r.body.runs.counts).toEqual({ Succeeded: 1, Running: 1, Pending: 2, Failed: 0, Rejected: 0, Unknown: 2 });
    expect(r.body.runs.producedVersions).toEqual([{ spoke: 'eu-ok', version: '1.0.0-eu-ok.1' }]);
    expect(r.body.runs.spokes.find((s: any) => s.spoke === 'eu-ok').metrics).toEqual({ accuracy: 0.93 });
    expect((await t.api('GET', '/api/v1/finetune-jobs')).body.items.map((j: any) => j.runs.counts.Succeeded)).toEqual([1]);
  });

  test('unknown names are 404 with the kind named; a viewer may read; bad queries are 400 naming the field', async () => {
    for (const [route, what] of [
      ['/api/v1/placements/nope', 'placement "nope" not found'],
      ['/api/v1/deployments/nope', 'deployment "nope" not found'],
      ['/api/v1/finetune-jobs/nope', 'fine-tune job "nope" not found'],
    ]) {
      const r = await t.api('GET', route!);
      expect({ route, status: r.status, message: r.body.error.message }).toEqual({ route, status: 404, message: what });
    }
    const viewer = (await t.api('POST', '/api/v1/api-tokens', { name: 'reader', role: 'viewer' })).body.token;
    expect((await t.api('GET', '/api/v1/deployments/defects-eu', undefined, viewer)).status).toBe(200);
    expect((await t.api('GET', '/api/v1/deployments/defects-eu', undefined, null)).status).toBe(401);
    const bad = await t.api('GET', '/api/v1/policy-objects?kind=Gadget&limit=0');
    expect(bad.status).toBe(400);
    expect(bad.body.error.details.problems.map((p: any) => p.field).sort()).toEqual(['kind', 'limit']);
    const unknown = await t.api('GET', '/api/v1/deployments?colour=red');
    expect(unknown.status).toBe(400);
  });

  test('policy-objects lists every kind, pages with a cursor, and filters by kind and source', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const r: any = await t.api('GET', `/api/v1/policy-objects?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(r.status).toBe(200);
      seen.push(...r.body.items.map((o: any) => `${o.kind}/${o.name}`));
      cursor = r.body.nextCursor;
    } while (cursor);
    expect(seen).toEqual(['FineTuneJob/tune-eu', 'Model/bridge-defects', 'ModelDeployment/defects-eu', 'Placement/eu-gpu', 'Placement/everywhere']);
    const models = await t.api('GET', '/api/v1/policy-objects?kind=Model');
    expect(models.body.items.map((o: any) => o.name)).toEqual(['bridge-defects']);
    expect((await t.api('GET', '/api/v1/policy-objects?source=git%3Aelsewhere')).body.items).toEqual([]);
  });
});
