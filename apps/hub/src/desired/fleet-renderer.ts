import { type DesiredPayload, canonicalHash, canonicalJson } from '@flotilla/contracts';
import { type Decision, type FleetRender, type Placement, type SpokeView, placementEligibility, renderFleet, rendezvousScore } from '@flotilla/policy';
import type { Logger } from 'pino';
import type { EntityManager } from 'typeorm';
import { type ObjectCondition, PolicyObjectEntity } from '../database/entities/policy-object.entity.js';
import type { HubMetrics } from '../metrics/hub-metrics.js';
import type { EnvelopePublisher, OutgoingEnvelope } from './envelope-publisher.js';
import { type SpokeRow, loadRegistry, loadSpokes, loadSpokesNamed, toPolicyObject } from './fleet-snapshot.js';
import { SpokeVersionDecisions } from './spoke-version-decisions.js';

/** Serialises renders across hub replicas and against applies: a transaction-scoped advisory lock. */
export const RENDER_LOCK = 0x666c6f74; // "flot"

/** Rows written per statement. */
const WRITE_CHUNK = 1000;

/** Spokes handled between two yields to the event loop in whole-fleet loops. */
const YIELD_EVERY = 2000;
const yieldToIo = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Render requests (enrolments, capacity changes) taken per incremental render. */
export const RENDER_REQUEST_BATCH = 2000;

/** The part of a spoke's placement decision one row of `placement_decision_spokes` holds. */
interface DecisionRow {
  placement: string;
  spoke: string;
  selected: boolean;
  eligible: boolean;
  score: number;
  reasons: string[] | null;
}

/**
 * Leaves a durable "render this spoke" marker in the caller's transaction (an
 * enrolment, a capacity change): the desired-state controller renders the
 * marked spokes incrementally and removes the marker in the render's own
 * transaction, so a crash in between leaves it for the next leader.
 */
export async function requestRender(em: Pick<EntityManager, 'query'>, spokes: readonly string[]): Promise<void> {
  if (spokes.length === 0) return;
  await em.query(
    `INSERT INTO render_requests (spoke) SELECT unnest($1::text[])
     ON CONFLICT (spoke) DO UPDATE SET seq = nextval('render_request_seq'), requested_at = now()`,
    [spokes],
  );
}

export interface StoredRender {
  /** Envelopes of the spokes whose payload changed, signed and ready to publish after the commit. */
  changed: OutgoingEnvelope[];
  /** `Kind/name` of every object that could not be rendered, with why. */
  stalled: Map<string, string[]>;
  /** Every spoke's payload before and after, for the apply's per-spoke diff. */
  before: Map<string, DesiredPayload>;
  after: Map<string, DesiredPayload>;
}

export interface IncrementalRender extends StoredRender {
  /** Spokes rendered: the changed ones plus those a capped placement took in or let go because of them. */
  rendered: number;
  /** Render requests were left for another pass (more than RENDER_REQUEST_BATCH were waiting). */
  more: boolean;
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
    // Requests seen now are answered by this render (one made after this read keeps its newer seq).
    const requests: { spoke: string; seq: string }[] = opts.dryRun ? [] : await em.query(`SELECT spoke, seq FROM render_requests`);
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
    if (opts.dryRun) {
      end();
      return { changed: [], stalled: render.stalled, before, after: render.payloads };
    }
    const changed = await this.storePayloads(em, spokes, render, storedById);
    await this.storeDecisions(em, render, objectRows);
    await this.storeConditions(em, render.stalled, objectRows, new Date());
    await this.answerRequests(em, requests);
    end();
    return { changed, stalled: render.stalled, before, after: render.payloads };
  }

  /**
   * Renders only the spokes a change can reach: `spokes` (a label change, a
   * revocation: named by the caller, in its transaction) and the spokes with a
   * render request (enrolments, capacity changes), plus, per placement with
   * `maxSpokes`, the spokes its rendezvous ranking takes in or lets go because
   * of them (at most one per changed spoke and placement). Placement decisions
   * are read and updated per (placement, spoke) row, so the cost follows the
   * number of changed spokes, not the fleet.
   */
  async renderSpokes(em: EntityManager, opts: { spokes?: readonly string[] } = {}): Promise<IncrementalRender> {
    const end = this.metrics.renderSeconds.startTimer();
    await em.query('SELECT pg_advisory_xact_lock($1)', [RENDER_LOCK]);
    // Named spokes (a label change, a revocation) are rendered on their own; the controller takes the requests.
    const requests: { spoke: string; seq: string }[] = opts.spokes
      ? []
      : await em.query(`SELECT spoke, seq FROM render_requests ORDER BY seq LIMIT $1`, [RENDER_REQUEST_BATCH + 1]);
    const more = requests.length > RENDER_REQUEST_BATCH;
    if (more) requests.pop();
    const changedNames = [...new Set([...(opts.spokes ?? []), ...requests.map((r) => r.spoke)])];
    const objectRows = await em.find(PolicyObjectEntity, { order: { kind: 'ASC', name: 'ASC' } });
    const objects = objectRows.map(toPolicyObject);
    const present = await loadSpokesNamed(em, changedNames, this.telemetryIntervalSeconds);
    const presentNames = new Set(present.map((s) => s.view.name));
    const gone = changedNames.filter((n) => !presentNames.has(n));

    // 1. The changed spokes' own rows: eligible or not, and why.
    const placements = objects.filter((o): o is Placement => o.kind === 'Placement');
    const rows: DecisionRow[] = [];
    for (const p of placements) {
      for (const e of placementEligibility(p, present.map((s) => s.view))) {
        rows.push({ placement: p.metadata.name, spoke: e.view.name, selected: false, eligible: e.reasons.length === 0, score: rendezvousScore(p.metadata.name, e.view.name), reasons: e.reasons.length ? e.reasons : null });
      }
    }
    const capped = new Set(placements.filter((p) => p.spec.maxSpokes !== undefined).map((p) => p.metadata.name));
    const touched = new Set<string>(present.map((s) => s.view.name));
    for (let i = 0; i < rows.length; i += WRITE_CHUNK) {
      // Uncapped: selected exactly when eligible. Capped: a spoke keeps its seat while eligible, a newcomer waits for step 2.
      await em.query(
        `INSERT INTO placement_decision_spokes AS t (placement, spoke, selected, eligible, score, reasons, computed_at)
         SELECT v.placement, v.spoke, CASE WHEN v.placement = ANY($2) THEN false ELSE v.eligible END, v.eligible, v.score, v.reasons, now()
         FROM jsonb_to_recordset($1::jsonb) AS v(placement text, spoke text, eligible boolean, score float8, reasons jsonb)
         ON CONFLICT (placement, spoke) DO UPDATE SET
           selected = CASE WHEN EXCLUDED.placement = ANY($2) THEN t.selected AND EXCLUDED.eligible ELSE EXCLUDED.eligible END,
           eligible = EXCLUDED.eligible, score = EXCLUDED.score, reasons = EXCLUDED.reasons, computed_at = now()
         WHERE t.eligible IS DISTINCT FROM EXCLUDED.eligible OR t.reasons IS DISTINCT FROM EXCLUDED.reasons OR t.score IS DISTINCT FROM EXCLUDED.score`,
        [JSON.stringify(rows.slice(i, i + WRITE_CHUNK)), [...capped]],
      );
    }
    if (gone.length) await em.query(`DELETE FROM placement_decision_spokes WHERE spoke = ANY($1)`, [gone]);
    // 2. Capped placements: the seats go to the best-ranked eligible spokes again; only spokes at the boundary move.
    for (const p of placements) {
      const max = p.spec.maxSpokes;
      if (max === undefined) continue;
      for (const spoke of await this.rebalance(em, p.metadata.name, max)) touched.add(spoke);
    }
    if (rows.length || gone.length) {
      await em.query(
        `INSERT INTO placement_decisions (placement, policy_generation, computed_at)
         SELECT v.placement, v.generation, now() FROM jsonb_to_recordset($1::jsonb) AS v(placement text, generation int)
         ON CONFLICT (placement) DO UPDATE SET policy_generation = EXCLUDED.policy_generation, computed_at = now()`,
        [JSON.stringify(objectRows.filter((r) => r.kind === 'Placement').map((r) => ({ placement: r.name, generation: r.generation })))],
      );
    }

    // 3. Render the touched spokes with the stored decisions, exactly as a full render would.
    const spokes = touched.size === presentNames.size ? present : await loadSpokesNamed(em, [...touched], this.telemetryIntervalSeconds);
    const registry = await loadRegistry(em);
    const stored: { spoke_id: string; generation: number; hash: string; payload: DesiredPayload }[] = await em.query(
      `SELECT spoke_id, generation, hash, payload FROM desired_states WHERE spoke_id = ANY($1::uuid[])`,
      [spokes.map((s) => s.id)],
    );
    const storedById = new Map(stored.map((d) => [d.spoke_id, d]));
    const before = new Map<string, DesiredPayload>();
    for (const s of spokes) {
      const d = storedById.get(s.id);
      if (d) before.set(s.view.name, d.payload);
    }
    const seats: { placement: string; spoke: string }[] = spokes.length
      ? await em.query(`SELECT placement, spoke FROM placement_decision_spokes WHERE spoke = ANY($1) AND selected`, [spokes.map((s) => s.view.name)])
      : [];
    const decisions = new Map<string, Decision>();
    for (const seat of seats) {
      let d = decisions.get(seat.placement);
      if (!d) decisions.set(seat.placement, (d = { selected: [], excluded: [] }));
      d.selected.push(seat.spoke);
    }
    for (const d of decisions.values()) d.selected.sort(byName);
    const views: SpokeView[] = spokes.map((s) => s.view);
    const render = renderFleet(objects, views, { telemetryIntervalSeconds: this.telemetryIntervalSeconds, registry, previous: before, decisions });
    await this.versions.apply(em, { objects, spokes: views, render, previous: before, scope: new Set(views.map((v) => v.name)) });
    const changed = await this.storePayloads(em, spokes, render, storedById);
    await this.storeConditions(em, render.stalled, objectRows, new Date());
    await this.answerRequests(em, requests);
    end();
    return { changed, stalled: render.stalled, before, after: render.payloads, rendered: spokes.length, more };
  }

  /**
   * Gives a capped placement's seats to its `max` best-ranked eligible spokes
   * (rendezvous score, then name), touching only the rows on the wrong side of
   * the boundary: the spokes that changed and those they displace or make room
   * for. Returns the spokes whose seat changed.
   */
  private async rebalance(em: EntityManager, placement: string, max: number): Promise<string[]> {
    const boundary: { score: number; spoke: string }[] = await em.query(
      `SELECT score, spoke FROM placement_decision_spokes WHERE placement = $1 AND eligible
       ORDER BY score DESC, spoke COLLATE "C" ASC OFFSET $2 LIMIT 1`,
      [placement, max - 1],
    );
    const b = boundary[0];
    const moved: string[] = [];
    const [out]: [{ spoke: string }[], number] = b
      ? await em.query(
          `UPDATE placement_decision_spokes SET selected = false, computed_at = now()
           WHERE placement = $1 AND selected AND (NOT eligible OR score < $2 OR (score = $2 AND spoke COLLATE "C" > $3)) RETURNING spoke`,
          [placement, b.score, b.spoke],
        )
      : await em.query(`UPDATE placement_decision_spokes SET selected = false, computed_at = now() WHERE placement = $1 AND selected AND NOT eligible RETURNING spoke`, [placement]);
    const [into]: [{ spoke: string }[], number] = b
      ? await em.query(
          `UPDATE placement_decision_spokes SET selected = true, computed_at = now()
           WHERE placement = $1 AND eligible AND NOT selected AND (score > $2 OR (score = $2 AND spoke COLLATE "C" <= $3)) RETURNING spoke`,
          [placement, b.score, b.spoke],
        )
      : await em.query(`UPDATE placement_decision_spokes SET selected = true, computed_at = now() WHERE placement = $1 AND eligible AND NOT selected RETURNING spoke`, [placement]);
    for (const r of out) moved.push(r.spoke);
    for (const r of into) moved.push(r.spoke);
    return moved;
  }

  /** Removes the render requests this render answered (a request renewed meanwhile has another seq and stays). */
  private async answerRequests(em: EntityManager, requests: readonly { spoke: string; seq: string }[]): Promise<void> {
    for (let i = 0; i < requests.length; i += WRITE_CHUNK) {
      await em.query(
        `DELETE FROM render_requests r USING jsonb_to_recordset($1::jsonb) AS v(spoke text, seq bigint) WHERE r.spoke = v.spoke AND r.seq = v.seq`,
        [JSON.stringify(requests.slice(i, i + WRITE_CHUNK))],
      );
    }
  }

  /**
   * Stores a new generation for each rendered spoke whose payload hash
   * changed (and only those: an unchanged spoke keeps its generation), and
   * signs their envelopes while Postgres writes.
   */
  private async storePayloads(
    em: EntityManager,
    spokes: readonly SpokeRow[],
    render: FleetRender,
    storedById: ReadonlyMap<string, { generation: number; hash: string }>,
  ): Promise<OutgoingEnvelope[]> {
    const now = new Date();
    const updates: { spokeId: string; name: string; generation: number; hash: string; payload: DesiredPayload; canonical: string; text: string }[] = [];
    let n = 0;
    for (const s of spokes) {
      // Hashing a whole fleet takes long enough to starve the leader's lock session and the broker: let them run.
      if (++n % YIELD_EVERY === 0) await yieldToIo();
      const payload = render.payloads.get(s.view.name);
      if (!payload) continue;
      const canonical = canonicalJson(payload);
      const hash = canonicalHash(canonical);
      const old = storedById.get(s.id);
      if (old?.hash === hash) continue;
      updates.push({ spokeId: s.id, name: s.view.name, generation: (old?.generation ?? 0) + 1, hash, payload, canonical, text: '' });
    }
    // While Postgres writes, this process signs (the two run on different cores).
    const writing = this.write(em, updates, now);
    writing.catch(() => undefined); // awaited below; signing must not leave it unobserved
    for (let i = 0; i < updates.length; i += 200) {
      if (i > 0) await new Promise<void>((resolve) => setImmediate(resolve)); // let the database client's I/O run
      for (const u of updates.slice(i, i + 200)) {
        u.text = JSON.stringify(this.envelopes.sign(u.name, u.generation, now, u.payload, u.canonical));
        u.canonical = ''; // the signed text carries it; nothing else needs the copy
      }
    }
    await writing;
    return updates.map((u) => ({ spoke: u.name, generation: u.generation, text: () => u.text }));
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

  /**
   * Each placement's decision as rows per (placement, spoke), written only
   * where they differ from the stored ones (after a full render most rows are
   * unchanged), plus the per-placement row with its generation.
   */
  private async storeDecisions(em: EntityManager, render: FleetRender, rows: readonly PolicyObjectEntity[]): Promise<void> {
    const placements = rows.filter((r) => r.kind === 'Placement');
    const names = placements.map((p) => p.name);
    await em.query(`DELETE FROM placement_decisions WHERE NOT (placement = ANY($1))`, [names]);
    await em.query(`DELETE FROM placement_decision_spokes WHERE NOT (placement = ANY($1))`, [names]);
    if (placements.length === 0) return;
    await em.query(
      `INSERT INTO placement_decisions (placement, policy_generation, computed_at)
       SELECT v.placement, v.generation, now() FROM jsonb_to_recordset($1::jsonb) AS v(placement text, generation int)
       ON CONFLICT (placement) DO UPDATE SET policy_generation = EXCLUDED.policy_generation, computed_at = now()
       WHERE placement_decisions.policy_generation IS DISTINCT FROM EXCLUDED.policy_generation`,
      [JSON.stringify(placements.map((p) => ({ placement: p.name, generation: p.generation })))],
    );
    const old = new Map<string, string>();
    const oldRows: { placement: string; spoke: string; selected: boolean; eligible: boolean; score: number; reasons: string | null }[] = await em.query(
      `SELECT placement, spoke, selected, eligible, score, reasons::text AS reasons FROM placement_decision_spokes`,
    );
    const keyOf = (placement: string, spoke: string) => `${placement}\u0000${spoke}`;
    const sig = (r: { selected: boolean; eligible: boolean; score: number; reasons: unknown }) =>
      `${r.selected ? 1 : 0}${r.eligible ? 1 : 0}${r.score}|${r.reasons === null ? '' : typeof r.reasons === 'string' ? r.reasons : JSON.stringify(r.reasons)}`;
    let n = 0;
    for (const r of oldRows) {
      if (++n % YIELD_EVERY === 0) await yieldToIo();
      old.set(keyOf(r.placement, r.spoke), sig({ ...r, reasons: r.reasons === null ? null : JSON.stringify(JSON.parse(r.reasons)) }));
    }
    oldRows.length = 0;
    const writes: DecisionRow[] = [];
    const keep = new Set<string>();
    for (const p of placements) {
      const d = render.decisions.get(p.name);
      if (!d) continue;
      await yieldToIo();
      const consider = (row: DecisionRow) => {
        const key = keyOf(row.placement, row.spoke);
        keep.add(key);
        if (old.get(key) !== sig(row)) writes.push(row);
      };
      for (const spoke of d.selected) consider({ placement: p.name, spoke, selected: true, eligible: true, score: rendezvousScore(p.name, spoke), reasons: null });
      for (const e of d.excluded) {
        // Only maxSpokes gives this reason, and only alone: the spoke passed every check. Its rank is computed when read.
        const ranked = e.reasons.length === 1 && e.reasons[0]!.startsWith('maxSpokes:');
        consider({ placement: p.name, spoke: e.spoke, selected: false, eligible: ranked, score: rendezvousScore(p.name, e.spoke), reasons: ranked ? null : e.reasons });
      }
    }
    const stale = [...old.keys()].filter((k) => !keep.has(k)).map((k) => k.split('\u0000') as [string, string]);
    for (let i = 0; i < stale.length; i += WRITE_CHUNK) {
      await em.query(
        `DELETE FROM placement_decision_spokes t USING jsonb_to_recordset($1::jsonb) AS v(placement text, spoke text) WHERE t.placement = v.placement AND t.spoke = v.spoke`,
        [JSON.stringify(stale.slice(i, i + WRITE_CHUNK).map(([placement, spoke]) => ({ placement, spoke })))],
      );
    }
    for (let i = 0; i < writes.length; i += WRITE_CHUNK) {
      await em.query(
        `INSERT INTO placement_decision_spokes (placement, spoke, selected, eligible, score, reasons, computed_at)
         SELECT v.placement, v.spoke, v.selected, v.eligible, v.score, v.reasons, now()
         FROM jsonb_to_recordset($1::jsonb) AS v(placement text, spoke text, selected boolean, eligible boolean, score float8, reasons jsonb)
         ON CONFLICT (placement, spoke) DO UPDATE SET selected = EXCLUDED.selected, eligible = EXCLUDED.eligible, score = EXCLUDED.score,
           reasons = EXCLUDED.reasons, computed_at = now()`,
        [JSON.stringify(writes.slice(i, i + WRITE_CHUNK))],
      );
    }
    if (writes.length || stale.length) {
      await em.query(`UPDATE placement_decisions SET computed_at = now() WHERE placement = ANY($1)`, [[...new Set([...writes.map((w) => w.placement), ...stale.map(([p]) => p)])]]);
    }
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

const byName = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
