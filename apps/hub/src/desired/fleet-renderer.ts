import { type DesiredPayload, canonicalHash, canonicalJson } from '@flotilla/contracts';
import { type FleetRender, renderFleet } from '@flotilla/policy';
import type { Logger } from 'pino';
import type { EntityManager } from 'typeorm';
import { type ObjectCondition, PolicyObjectEntity } from '../database/entities/policy-object.entity.js';
import type { HubMetrics } from '../metrics/hub-metrics.js';
import type { EnvelopePublisher, OutgoingEnvelope } from './envelope-publisher.js';
import { loadRegistry, loadSpokes, toPolicyObject } from './fleet-snapshot.js';
import { SpokeVersionDecisions } from './spoke-version-decisions.js';

/** Serialises renders across hub replicas and against applies: a transaction-scoped advisory lock. */
export const RENDER_LOCK = 0x666c6f74; // "flot"

/** Rows written per statement. */
const WRITE_CHUNK = 1000;

export interface StoredRender {
  /** Envelopes of the spokes whose payload changed, signed and ready to publish after the commit. */
  changed: OutgoingEnvelope[];
  /** `Kind/name` of every object that could not be rendered, with why. */
  stalled: Map<string, string[]>;
  /** Every spoke's payload before and after, for the apply's per-spoke diff. */
  before: Map<string, DesiredPayload>;
  after: Map<string, DesiredPayload>;
}

/**
 * Renders the whole fleet inside the caller's transaction and stores the
 * outcome there: a new generation for each spoke whose payload hash changed,
 * each placement's decision, and each object's Stalled condition. Nothing is
 * published here: the caller publishes `changed` after its commit, so no spoke
 * ever sees a generation Postgres does not have.
 */
export class FleetRenderer {
  constructor(
    private readonly envelopes: EnvelopePublisher,
    private readonly metrics: HubMetrics,
    private readonly log: Logger,
    private readonly telemetryIntervalSeconds: number,
    /** Per spoke, which rendering of each deployment it gets (the policy's, or a rollout's previous revision). */
    private readonly versions: SpokeVersionDecisions = new SpokeVersionDecisions([]),
  ) {}

  /** With `dryRun`, computes the same outcome and writes and signs nothing (the caller rolls back anyway). */
  async renderAndStore(em: EntityManager, opts: { dryRun?: boolean } = {}): Promise<StoredRender> {
    const end = this.metrics.renderSeconds.startTimer();
    await em.query('SELECT pg_advisory_xact_lock($1)', [RENDER_LOCK]);
    const spokes = await loadSpokes(em, this.telemetryIntervalSeconds);
    const objectRows = await em.find(PolicyObjectEntity, { order: { kind: 'ASC', name: 'ASC' } });
    const registry = await loadRegistry(em);
    const stored: { spoke_id: string; generation: number; hash: string; payload: DesiredPayload }[] = await em.query(
      `SELECT spoke_id, generation, hash, payload FROM desired_states`,
    );
    const storedById = new Map(stored.map((d) => [d.spoke_id, d]));
    const before = new Map<string, DesiredPayload>();
    for (const s of spokes) {
      const d = storedById.get(s.id);
      if (d) before.set(s.view.name, d.payload);
    }
    const objects = objectRows.map(toPolicyObject);
    const views = spokes.map((s) => s.view);
    const render: FleetRender = renderFleet(objects, views, { telemetryIntervalSeconds: this.telemetryIntervalSeconds, registry, previous: before });
    // The policy says what each deployment should become; the decisions say which spokes get it yet.
    // A dry run previews what the policy will bring each spoke, so it starts no rollout and holds nobody back.
    if (!opts.dryRun) await this.versions.apply(em, { objects, spokes: views, render, previous: before });

    const now = new Date();
    const updates: { spokeId: string; name: string; generation: number; hash: string; payload: DesiredPayload; canonical: string; text: string }[] = [];
    for (const s of spokes) {
      const payload = render.payloads.get(s.view.name);
      if (!payload) continue;
      const canonical = canonicalJson(payload);
      const hash = canonicalHash(canonical);
      const old = storedById.get(s.id);
      if (old?.hash === hash) continue;
      updates.push({ spokeId: s.id, name: s.view.name, generation: (old?.generation ?? 0) + 1, hash, payload, canonical, text: '' });
    }
    if (opts.dryRun) {
      end();
      return { changed: [], stalled: render.stalled, before, after: render.payloads };
    }
    // While Postgres writes, this process signs (the two run on different cores).
    const writing = this.write(em, updates, now);
    writing.catch(() => undefined); // awaited below; signing must not leave it unobserved
    for (let i = 0; i < updates.length; i += 200) {
      if (i > 0) await new Promise<void>((resolve) => setImmediate(resolve)); // let the database client's I/O run
      for (const u of updates.slice(i, i + 200)) u.text = JSON.stringify(this.envelopes.sign(u.name, u.generation, now, u.payload, u.canonical));
    }
    await writing;
    await this.storeDecisions(em, render, objectRows);
    await this.storeConditions(em, render.stalled, objectRows, now);
    end();
    return {
      changed: updates.map((u) => ({ spoke: u.name, generation: u.generation, text: () => u.text })),
      stalled: render.stalled,
      before,
      after: render.payloads,
    };
  }

  private async write(
    em: EntityManager,
    updates: readonly { spokeId: string; generation: number; hash: string; payload: DesiredPayload }[],
    issuedAt: Date,
  ): Promise<void> {
    for (let i = 0; i < updates.length; i += WRITE_CHUNK) {
      const chunk = updates.slice(i, i + WRITE_CHUNK);
      await em.query(
        `INSERT INTO desired_states (spoke_id, generation, payload, hash, issued_at, published_at, updated_at)
         SELECT v.spoke_id, v.generation, v.payload, v.hash, $2, NULL, now()
         FROM jsonb_to_recordset($1::jsonb) AS v(spoke_id uuid, generation int, payload jsonb, hash text)
         ON CONFLICT (spoke_id) DO UPDATE SET generation = EXCLUDED.generation, payload = EXCLUDED.payload,
           hash = EXCLUDED.hash, issued_at = EXCLUDED.issued_at, published_at = NULL, updated_at = now()`,
        [JSON.stringify(chunk.map((u) => ({ spoke_id: u.spokeId, generation: u.generation, payload: u.payload, hash: u.hash }))), issuedAt],
      );
      await em.query(
        `UPDATE spokes s SET desired_generation = v.generation
         FROM jsonb_to_recordset($1::jsonb) AS v(spoke_id uuid, generation int) WHERE s.id = v.spoke_id`,
        [JSON.stringify(chunk.map((u) => ({ spoke_id: u.spokeId, generation: u.generation })))],
      );
    }
  }

  /** One row per Placement object: what it chose now, computed from the same fleet as the payloads. */
  private async storeDecisions(em: EntityManager, render: FleetRender, rows: readonly PolicyObjectEntity[]): Promise<void> {
    const placements = rows.filter((r) => r.kind === 'Placement');
    const values = placements.flatMap((p) => {
      const d = render.decisions.get(p.name);
      return d ? [{ placement: p.name, policy_generation: p.generation, selected: d.selected, excluded: d.excluded }] : [];
    });
    await em.query(`DELETE FROM placement_decisions WHERE NOT (placement = ANY($1))`, [values.map((v) => v.placement)]);
    if (values.length === 0) return;
    await em.query(
      `INSERT INTO placement_decisions (placement, policy_generation, selected, excluded, computed_at)
       SELECT v.placement, v.policy_generation, v.selected, v.excluded, now()
       FROM jsonb_to_recordset($1::jsonb) AS v(placement text, policy_generation int, selected jsonb, excluded jsonb)
       ON CONFLICT (placement) DO UPDATE SET policy_generation = EXCLUDED.policy_generation, selected = EXCLUDED.selected,
         excluded = EXCLUDED.excluded, computed_at = now()
       WHERE placement_decisions.selected IS DISTINCT FROM EXCLUDED.selected
          OR placement_decisions.excluded IS DISTINCT FROM EXCLUDED.excluded
          OR placement_decisions.policy_generation IS DISTINCT FROM EXCLUDED.policy_generation`,
      [JSON.stringify(values)],
    );
  }

  /** Stalled=True with the problems, or Stalled=False; written only when it changes. */
  private async storeConditions(em: EntityManager, stalled: Map<string, string[]>, rows: readonly PolicyObjectEntity[], now: Date): Promise<void> {
    for (const r of rows) {
      const key = `${r.kind}/${r.name}`;
      const problems = stalled.get(key);
      const old = (r.conditions ?? []).find((c) => c.type === 'Stalled');
      const next: ObjectCondition = problems
        ? { type: 'Stalled', status: 'True', reason: 'UnresolvedReference', message: problems.join('; '), lastTransitionTime: '', observedGeneration: r.generation }
        : { type: 'Stalled', status: 'False', reason: 'Rendered', message: '', lastTransitionTime: '', observedGeneration: r.generation };
      this.metrics.policyObjectStalled.set({ kind: r.kind, name: r.name }, problems ? 1 : 0);
      if (old && old.status === next.status && old.message === next.message && old.observedGeneration === next.observedGeneration) continue;
      next.lastTransitionTime = old && old.status === next.status ? old.lastTransitionTime : now.toISOString();
      if (problems) this.log.error({ object: key, problems }, 'policy object cannot be rendered; its spokes keep what they had');
      await em.update(PolicyObjectEntity, { id: r.id }, { conditions: [next, ...(r.conditions ?? []).filter((c) => c.type !== 'Stalled')] });
    }
  }
}
