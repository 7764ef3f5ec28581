import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import pino from 'pino';
import { type DataSource } from 'typeorm';
import { evaluatePlacement, parsePolicyDocuments, type Placement, rendezvousScore } from '@flotilla/policy';
import { enroll } from '../../apps/agent/src/enroll/enroll.js';
import { runAgent, type AgentHandle } from '../../apps/agent/src/agent.js';
import { NoneRuntime } from '../../apps/agent/src/runtime/none/none-runtime.js';
import { createDataSource } from '../../apps/hub/src/database/data-source.js';
import { EnvelopePublisher } from '../../apps/hub/src/desired/envelope-publisher.js';
import { FleetRenderer } from '../../apps/hub/src/desired/fleet-renderer.js';
import { loadSigningKey } from '../../apps/hub/src/desired/signing-key.js';
import { HubMetrics } from '../../apps/hub/src/metrics/hub-metrics.js';
import type { HubPublisher } from '../../apps/hub/src/mqtt/hub-publisher.js';
import { startTestHub, type TestHub } from '../support/hub.js';
import { DIGEST_1, DIGEST_2 } from '../support/fleet-kit.js';
import { waitFor } from '../support/wait.js';

const CAP = 3;
const policy = (usVersion = '1.0.0') => `
apiVersion: flotilla.dev/v1
kind: Model
metadata: { name: m }
spec:
  task: image-classification
  versions:
    - { version: "1.0.0", uri: "file:///models/m/1.0.0/model.onnx", digest: "${DIGEST_1}", format: onnx }
    - { version: "1.1.0", uri: "file:///models/m/1.1.0/model.onnx", digest: "${DIGEST_2}", format: onnx }
---
apiVersion: flotilla.dev/v1
kind: Placement
metadata: { name: eu-few }
spec:
  selector: { matchLabels: { region: eu } }
  maxSpokes: ${CAP}
---
apiVersion: flotilla.dev/v1
kind: Placement
metadata: { name: us-all }
spec:
  selector: { matchLabels: { region: us } }
---
apiVersion: flotilla.dev/v1
kind: ModelDeployment
metadata: { name: m-eu }
spec:
  model: { name: m, version: "1.0.0" }
  placement: eu-few
  runtime: builtin
  rollout: { strategy: AllAtOnce }
---
apiVersion: flotilla.dev/v1
kind: ModelDeployment
metadata: { name: m-us }
spec:
  model: { name: m, version: "${usVersion}" }
  placement: us-all
  runtime: builtin
  rollout: { strategy: AllAtOnce }
`;

/**
 * Incremental rendering with real Postgres and the real hub: an enrolment
 * renders the spoke itself and, under a `maxSpokes` placement, the one spoke
 * it displaces; nobody else gets a new generation. The decisions stored per
 * (placement, spoke) always equal a full evaluation over the fleet.
 */
describe('incremental rendering', () => {
  let t: TestHub;
  let dir: string;
  let token: string;
  let db: { query: (sql: string, params?: unknown[]) => Promise<any[]> };
  let pool: pg.Pool;
  const agents: AgentHandle[] = [];

  const generations = async (): Promise<Map<string, number>> => {
    const rows: { name: string; desired_generation: number }[] = await db.query(`SELECT name, desired_generation FROM spokes WHERE revoked_at IS NULL`);
    return new Map(rows.map((r) => [r.name, r.desired_generation]));
  };
  const enrolOne = async (name: string, labels: Record<string, string>) => {
    const r = await t.api('POST', '/api/v1/enroll', { token, name, labels }, null);
    expect(r.status).toBe(201);
  };
  const settledRenders = () => waitFor('render requests answered', async () => (await db.query(`SELECT count(*)::int AS n FROM render_requests`))[0].n === 0, 15_000, 20);
  /** What a full evaluation over the enrolled fleet says, against what the placement API (the stored rows) says. */
  const expectDecisionsMatchFullEvaluation = async (name: string) => {
    const spokes: { name: string; labels: Record<string, string> }[] = await db.query(`SELECT name, labels FROM spokes WHERE revoked_at IS NULL`);
    const placement = parsePolicyDocuments([{ file: 'policy.yaml', text: policy() }]).objects.find((o) => o.metadata.name === name) as Placement;
    const full = evaluatePlacement(placement, spokes);
    const stored = (await t.api('GET', `/api/v1/placements/${name}`)).body;
    expect(stored.decision?.selected ?? stored.selected).toEqual(full.selected);
    expect(stored.decision?.excluded ?? stored.excluded).toEqual(full.excluded);
  };

  beforeAll(async () => {
    t = await startTestHub();
    pool = new pg.Pool({ connectionString: t.db.url, max: 2 });
    db = { query: async (sql, params) => (await pool.query(sql, params)).rows };
    dir = await mkdtemp(path.join(os.tmpdir(), 'flotilla-incremental-'));
    token = (await t.api('POST', '/api/v1/enrollment-tokens', { uses: 100, allowedLabelKeys: ['*'] })).body.token as string;
    expect((await t.api('POST', '/api/v1/apply', policy())).status).toBe(200);
    for (let i = 0; i < 8; i++) await enrolOne(`eu-${i}`, { region: 'eu' });
    for (let i = 0; i < 4; i++) await enrolOne(`us-${i}`, { region: 'us' });
    await settledRenders();
  }, 60_000);
  afterAll(async () => {
    for (const a of agents) await a.stop();
    await pool.end();
    await t.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('an enrolment into a maxSpokes placement renders the new spoke and the one it displaces, nobody else', async () => {
    await expectDecisionsMatchFullEvaluation('eu-few');
    const before = await generations();
    const selected: string[] = (await db.query(`SELECT spoke FROM placement_decision_spokes WHERE placement = 'eu-few' AND selected`)).map((r: { spoke: string }) => r.spoke);
    expect(selected).toHaveLength(CAP);
    const weakest = selected.map((s) => ({ s, score: rendezvousScore('eu-few', s) })).sort((a, b) => a.score - b.score)[0]!;
    // A name that outranks the weakest seat holder, and one that does not.
    let strong = '';
    let weak = '';
    for (let i = 0; !strong || !weak; i++) {
      const n = `eu-new-${i}`;
      if (rendezvousScore('eu-few', n) > weakest.score) strong ||= n;
      else weak ||= n;
    }

    await enrolOne(weak, { region: 'eu' });
    await settledRenders();
    let after = await generations();
    expect(after.get(weak)).toBe(1); // its first desired state: nothing placed
    for (const [name, g] of before) expect(after.get(name)).toBe(g);

    await enrolOne(strong, { region: 'eu' });
    await settledRenders();
    const after2 = await generations();
    expect(after2.get(strong)).toBe(1);
    const bumped = [...before.keys()].filter((n) => after2.get(n) !== before.get(n));
    expect(bumped).toEqual([weakest.s]); // the displaced spoke lost the deployment; no one else moved
    expect(after2.get(weakest.s)).toBe((before.get(weakest.s) ?? 0) + 1);
    const payload = (await db.query(`SELECT d.payload FROM desired_states d JOIN spokes s ON s.id = d.spoke_id WHERE s.name = $1`, [strong]))[0].payload;
    expect(payload.deployments.map((d: { name: string }) => d.name)).toEqual(['m-eu']);
    await expectDecisionsMatchFullEvaluation('eu-few');
    after = after2;

    // A label change moves a seat holder out: it and the best waiting spoke are rendered.
    const holder = strong;
    expect((await t.api('PATCH', `/api/v1/spokes/${holder}`, { labels: { region: 'us' } })).status).toBe(200);
    const after3 = await generations();
    const moved = [...after.keys()].filter((n) => after3.get(n) !== after.get(n)).sort();
    expect(moved).toContain(holder);
    expect(moved.length).toBeLessThanOrEqual(2);
    await expectDecisionsMatchFullEvaluation('eu-few');
    await expectDecisionsMatchFullEvaluation('us-all');
  });

  it('a policy change touching one placement leaves the other placement\'s spokes at their generation', async () => {
    const before = await generations();
    expect((await t.api('POST', '/api/v1/apply', policy('1.1.0'))).status).toBe(200);
    const after = await generations();
    const us: string[] = (await db.query(`SELECT spoke FROM placement_decision_spokes WHERE placement = 'us-all' AND selected`)).map((r: { spoke: string }) => r.spoke);
    for (const [name, g] of before) expect(after.get(name)).toBe(us.includes(name) ? g + 1 : g);
  });

  it('a hub that dies after storing a render and before publishing it is repaired at restart; a render request left by a crash is rendered', async () => {
    const name = 'us-0';
    const stateDir = path.join(dir, name);
    const tok = (await t.api('POST', '/api/v1/enrollment-tokens', { uses: 1, allowedLabelKeys: ['*'] })).body.token as string;
    await enroll({ hubUrl: t.hub.apiUrl, token: tok, name: 'us-live', labels: { region: 'us' }, stateDir });
    const timing = { statusIntervalMs: 300, reconcileIntervalMs: 1_000, reconnect: { initialMs: 100, maxMs: 300 }, stopTimeoutMs: 500 };
    agents.push(await runAgent({ stateDir, runtime: new NoneRuntime(), logger: pino({ level: 'silent' }), timing }));
    const inSync = (want: (g: number) => boolean) =>
      waitFor('us-live in sync', async () => {
        const s = (await t.api('GET', '/api/v1/spokes/us-live')).body;
        return s.connection === 'online' && want(s.desiredGeneration) && s.acceptedGeneration === s.desiredGeneration ? s : null;
      }, 20_000);
    const first = await inSync((g) => g > 0);

    await t.stopHub();
    // What a hub killed between its render's commit and the publish leaves behind: a new generation
    // stored, never sent. Rendered here by the same renderer the hub runs, with its key, then "killed".
    const ds: DataSource = createDataSource(t.db.url);
    await ds.initialize();
    try {
      const key = await loadSigningKey(t.home, null);
      const envelopes = new EnvelopePublisher(ds, null as unknown as HubPublisher, key, new HubMetrics(), pino({ level: 'silent' }));
      const renderer = new FleetRenderer(envelopes, new HubMetrics(), pino({ level: 'silent' }), t.config.telemetryIntervalSeconds);
      await ds.transaction(async (em) => {
        await em.query(`UPDATE spokes SET labels = '{"region":"eu"}' WHERE name = 'us-live'`);
        const stored = await renderer.renderSpokes(em, { spokes: ['us-live'] });
        expect(stored.changed.map((c) => c.spoke)).toContain('us-live');
      });
      // And an enrolment committed by a hub that died before rendering it: only its request is left.
      await ds.query(`UPDATE spokes SET labels = '{"region":"us"}' WHERE name = 'eu-0'`);
      await ds.query(`INSERT INTO render_requests (spoke) VALUES ('eu-0')`);
    } finally {
      await ds.destroy();
    }
    const stored = (await db.query(`SELECT desired_generation FROM spokes WHERE name = 'us-live'`))[0].desired_generation as number;
    expect(stored).toBe(first.desiredGeneration + 1);

    await t.startHub();
    const repaired = await inSync((g) => g === stored);
    expect(repaired.desiredGeneration).toBe(stored);
    await settledRenders();
    const eu0 = (await db.query(`SELECT d.payload FROM desired_states d JOIN spokes s ON s.id = d.spoke_id WHERE s.name = 'eu-0'`))[0].payload;
    expect(eu0.deployments.map((d: { name: string }) => d.name)).toEqual(['m-us']);
    await expectDecisionsMatchFullEvaluation('eu-few');
    await expectDecisionsMatchFullEvaluation('us-all');
  });
});
