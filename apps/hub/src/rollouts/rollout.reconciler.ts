import type { ReportedDeploymentStatus, Telemetry } from '@flotilla/contracts';
import type { ModelDeployment } from '@flotilla/policy';
import type { Logger } from 'pino';
import type { DataSource, EntityManager } from 'typeorm';
import type { AuditService } from '../audit/audit.service.js';
import type { ReconcileOutcome, Reconciler } from '../controllers/controller.js';
import type { EnvelopePublisher, OutgoingEnvelope } from '../desired/envelope-publisher.js';
import { RENDER_LOCK, type FleetRenderer } from '../desired/fleet-renderer.js';
import { toPolicyObject } from '../desired/fleet-snapshot.js';
import { PolicyObjectEntity } from '../database/entities/policy-object.entity.js';
import { connectionOf } from '../spokes/spoke.dto.js';
import type { RolloutMetrics } from './rollout-metrics.js';
import { type RolloutSettings, type SpokeObservation, servesTarget, settingsOf, stepSpoke } from './rollout-plan.js';
import { ROLLOUT_ACTOR } from './rollout-revisions.js';
import type { RolloutRow, RolloutSpokeRow, RolloutStore } from './rollout-store.js';

interface ObservedSpokeRow {
  name: string;
  presence: 'online' | 'offline';
  last_seen_at: Date | null;
  observed_generation: number;
  desired_generation: number;
  deployment_statuses: ReportedDeploymentStatus[];
  telemetry: Telemetry | null;
  telemetry_at: Date | null;
}

/**
 * Sends every spoke a rollout moved to the new revision back to its previous
 * one (forward spokes only: Pending ones never got it). Used when a rollout
 * fails, and by abort and undo. The rollback is gated like the way forward.
 */
export function beginRollback(rows: RolloutSpokeRow[], reason: string, message: string, now: Date): RolloutSpokeRow[] {
  const changed: RolloutSpokeRow[] = [];
  for (const row of rows) {
    if (!servesTarget(row.state)) continue;
    Object.assign(row, { state: 'RollingBack', reason, message, targetGeneration: null, stepStartedAt: now, readyAt: null, gates: [] });
    changed.push(row);
  }
  return changed;
}

/**
 * The rollout controller (DESIGN.md section 11), level-based over deployment
 * names: reads the rollout and what its spokes last reported from Postgres,
 * moves each in-flight spoke (Ready at the generation that carries its
 * revision, then within the gates for minSuccessTime, or failed), starts the
 * current wave's spokes that are online, advances waves, fails the rollout
 * past maxFailures and rolls back what it touched. Whenever a spoke changes
 * revision it renders again in the same transaction (the renderer asks
 * RolloutRevisions which revision each spoke gets) and publishes after the
 * commit. Nothing lives in memory: after a kill -9 the next reconcile
 * continues from the stored wave.
 */
export class RolloutReconciler implements Reconciler {
  readonly name = 'rollouts';

  constructor(
    private readonly ds: DataSource,
    private readonly store: RolloutStore,
    private readonly renderer: FleetRenderer,
    private readonly envelopes: EnvelopePublisher,
    private readonly audit: AuditService,
    private readonly metrics: RolloutMetrics,
    private readonly log: Logger,
    private readonly telemetryIntervalSeconds: number,
    /** How often an active rollout is looked at again. */
    private readonly pollMs = 1_000,
    private readonly now: () => number = Date.now,
  ) {}

  async listKeys(): Promise<string[]> {
    return this.store.active(this.ds.manager);
  }

  async reconcile(deployment: string): Promise<ReconcileOutcome | void> {
    const changed: OutgoingEnvelope[] = [];
    const active = await this.ds.transaction(async (em) => {
      // Serialised with applies and renders: they may start, supersede or end this rollout.
      await em.query('SELECT pg_advisory_xact_lock($1)', [RENDER_LOCK]);
      const rollout = await this.store.one(em, deployment, { lock: true });
      if (!rollout || (rollout.phase !== 'Progressing' && !rollout.rollingBack)) return false;
      const policy = await em.findOne(PolicyObjectEntity, { where: { kind: 'ModelDeployment', name: deployment } });
      if (!policy) return false; // the next render removes the rollout
      const settings = settingsOf((toPolicyObject(policy) as ModelDeployment).spec.rollout);
      const rows = await this.store.spokes(em, deployment);
      // Only what can move now is read: spokes in flight and the current wave (a fleet-wide rollout reads a wave, not the fleet).
      const observations = await this.observe(em, deployment, rows.filter((r) => r.state === 'Progressing' || r.state === 'Verifying' || r.state === 'RollingBack' || r.wave === rollout.wave));
      const now = new Date(this.now());
      const touched = new Set<RolloutSpokeRow>();

      this.stepInFlight(rollout, rows, observations, settings, now, touched);
      const failures = rows.filter((r) => r.failed).length;
      if (!rollout.rollingBack && failures > settings.maxFailures) {
        await this.fail(em, rollout, rows, failures, settings, now, touched);
      } else if (!rollout.rollingBack) {
        await this.advance(em, rollout, rows, observations, settings, now, touched);
      } else if (!rows.some((r) => r.state === 'RollingBack')) {
        await this.finishRollback(em, rollout, rows);
      }

      await this.store.saveSpokes(em, [...touched]);
      // A spoke that changes revision needs a new desired state: render, then note the generation that carries it.
      const unrendered = rows.filter((r) => (r.state === 'Progressing' || r.state === 'RollingBack') && r.targetGeneration === null);
      if (unrendered.length > 0) {
        const stored = await this.renderer.renderAndStore(em);
        changed.push(...stored.changed);
        const generations: { name: string; desired_generation: number }[] = await em.query(
          `SELECT name, desired_generation FROM spokes WHERE name = ANY($1) AND revoked_at IS NULL`,
          [unrendered.map((r) => r.spoke)],
        );
        const byName = new Map(generations.map((g) => [g.name, g.desired_generation]));
        for (const r of unrendered) r.targetGeneration = byName.get(r.spoke) ?? null;
        await this.store.saveSpokes(em, unrendered);
      }
      const after = await this.store.one(em, deployment);
      return after !== null && (after.phase === 'Progressing' || after.rollingBack);
    });
    if (changed.length > 0) await this.envelopes.publish(changed, 'changed');
    if (active) return { requeueAfterMs: this.pollMs };
  }

  private async observe(em: EntityManager, deployment: string, rows: readonly RolloutSpokeRow[]): Promise<Map<string, SpokeObservation>> {
    const found: ObservedSpokeRow[] = await em.query(
      `SELECT name, presence, last_seen_at, observed_generation, desired_generation, deployment_statuses, telemetry, telemetry_at
       FROM spokes WHERE name = ANY($1) AND revoked_at IS NULL`,
      [rows.map((r) => r.spoke)],
    );
    const now = this.now();
    return new Map(
      found.map((s) => {
        const line = s.telemetry?.inference.find((i) => i.deployment === deployment) ?? null;
        const telemetryAt = s.telemetry_at ? new Date(s.telemetry_at).getTime() : null;
        const obs: SpokeObservation = {
          online: connectionOf({ presence: s.presence, lastSeenAt: s.last_seen_at }, now, this.telemetryIntervalSeconds) === 'online',
          observedGeneration: s.observed_generation,
          telemetryAt,
          deployment: s.deployment_statuses.find((d) => d.name === deployment) ?? null,
          inference: line && telemetryAt !== null ? { at: telemetryAt, errorRatio: line.errorRatio, latencyP99Ms: line.latencyP99Ms, requestsPerSecond: line.requestsPerSecond } : null,
        };
        return [s.name, obs] as const;
      }),
    );
  }

  /** Forward spokes pass or fail within the wave's deadline; spokes going back within their own. */
  private stepInFlight(rollout: RolloutRow, rows: RolloutSpokeRow[], observations: Map<string, SpokeObservation>, settings: RolloutSettings, now: Date, touched: Set<RolloutSpokeRow>): void {
    const waveDeadline = new Date(rollout.waveStartedAt).getTime() + settings.progressDeadlineSeconds * 1000;
    for (const row of rows) {
      if (row.state !== 'Progressing' && row.state !== 'Verifying' && row.state !== 'RollingBack') continue;
      const obs = observations.get(row.spoke) ?? { online: false, observedGeneration: 0, telemetryAt: null, deployment: null, inference: null };
      const started = row.stepStartedAt ? new Date(row.stepStartedAt).getTime() : now.getTime();
      const back = row.state === 'RollingBack';
      const deadline = back ? started + settings.progressDeadlineSeconds * 1000 : waveDeadline;
      const step = stepSpoke(
        { state: row.state, targetGeneration: row.targetGeneration, stepStartedAt: started, readyAt: row.readyAt ? new Date(row.readyAt).getTime() : null, baseline: row.baseline, gates: row.gates },
        obs,
        settings,
        now.getTime(),
        deadline,
      );
      touched.add(row);
      if (step.kind === 'wait') {
        Object.assign(row, { gates: step.gates, readyAt: step.readyAt === null ? null : new Date(step.readyAt), message: step.message });
        if (!back && step.readyAt !== null) row.state = 'Verifying';
      } else if (step.kind === 'pass') {
        Object.assign(row, { gates: step.gates, state: back ? 'RolledBack' : 'Succeeded', message: back ? `back on ${rollout.fromVersion ?? 'the previous revision'} and healthy` : `healthy on ${rollout.toVersion}` });
        if (!back) row.reason = 'Passed';
      } else if (back) {
        Object.assign(row, { gates: step.gates, state: 'Failed', failed: true, reason: 'RollbackFailed', message: step.message });
      } else {
        // Failed on the way forward: it goes back at once, whatever happens to the rollout.
        Object.assign(row, { gates: [], failedGates: step.gates, state: 'RollingBack', failed: true, reason: step.reason, message: step.message, targetGeneration: null, stepStartedAt: now, readyAt: null });
        this.log.warn({ deployment: rollout.deployment, spoke: row.spoke, reason: step.reason, message: step.message }, 'rollout: spoke failed');
      }
    }
  }

  /** Starts the current wave's online spokes; moves to the next wave once this one passed (unless paused). */
  private async advance(em: EntityManager, rollout: RolloutRow, rows: RolloutSpokeRow[], observations: Map<string, SpokeObservation>, settings: RolloutSettings, now: Date, touched: Set<RolloutSpokeRow>): Promise<void> {
    const wave = rows.filter((r) => r.wave === rollout.wave);
    const deadline = new Date(rollout.waveStartedAt).getTime() + settings.progressDeadlineSeconds * 1000;
    for (const row of wave) {
      if (row.state !== 'Pending' || row.failed) continue;
      const obs = observations.get(row.spoke);
      touched.add(row);
      if (now.getTime() >= deadline) {
        // Offline all along: it never got the new revision, but the wave did not pass in time.
        Object.assign(row, { failed: true, reason: 'ProgressDeadlineExceeded', message: `offline until progressDeadline ${settings.progressDeadlineSeconds}s passed` });
      } else if (obs?.online) {
        const line = obs.inference;
        Object.assign(row, {
          state: 'Progressing',
          reason: 'WaveStarted',
          message: `sent ${rollout.toVersion}`,
          stepStartedAt: now,
          readyAt: null,
          targetGeneration: null,
          gates: [],
          baseline: { latencyP99Ms: line?.latencyP99Ms ?? null, errorRatio: line ? line.errorRatio : null },
        });
      } else {
        Object.assign(row, { reason: 'SpokeOffline', message: 'offline; waits until it is back or the wave deadline passes' });
      }
    }
    const failures = rows.filter((r) => r.failed).length;
    if (failures > settings.maxFailures) return this.fail(em, rollout, rows, failures, settings, now, touched);
    const done = wave.every((r) => r.state === 'Succeeded' || r.failed);
    const running = wave.filter((r) => r.state === 'Progressing' || r.state === 'Verifying').length;
    const pending = wave.filter((r) => r.state === 'Pending' && !r.failed).length;
    if (!done) {
      await this.store.update(em, rollout.deployment, { message: `wave ${rollout.wave + 1} of ${rollout.waves}: ${running} in progress, ${pending} pending${rollout.paused ? '; paused: the next wave waits for resume' : ''}` });
      return;
    }
    if (rollout.paused) {
      await this.store.update(em, rollout.deployment, { message: `paused after wave ${rollout.wave + 1} of ${rollout.waves}` });
      return;
    }
    const next = rollout.wave + 1;
    if (next >= rollout.waves) {
      const message = `${rollout.toVersion} on every spoke${failures > 0 ? ` but ${failures} (within maxFailures ${settings.maxFailures})` : ''}`;
      await this.store.update(em, rollout.deployment, { phase: 'Succeeded', message, finished: true });
      await this.audit.record(em, { actor: ROLLOUT_ACTOR, action: 'rollout.succeeded', target: `ModelDeployment/${rollout.deployment}`, details: { rollout: rollout.id, toVersion: rollout.toVersion, failures } });
      return;
    }
    await this.store.update(em, rollout.deployment, { wave: next, waveStarted: true, message: `wave ${next + 1} of ${rollout.waves} starting` });
    await this.audit.record(em, { actor: ROLLOUT_ACTOR, action: 'rollout.wave-started', target: `ModelDeployment/${rollout.deployment}`, details: { rollout: rollout.id, wave: next + 1, waves: rollout.waves } });
    // The new wave's spokes start now rather than at the next poll.
    rollout.wave = next;
    rollout.waveStartedAt = now;
    for (const [spoke, o] of await this.observe(em, rollout.deployment, rows.filter((r) => r.wave === next))) observations.set(spoke, o);
    await this.advance(em, rollout, rows, observations, settings, now, touched);
  }

  private async fail(em: EntityManager, rollout: RolloutRow, rows: RolloutSpokeRow[], failures: number, settings: RolloutSettings, now: Date, touched: Set<RolloutSpokeRow>): Promise<void> {
    const first = rows.find((r) => r.failed);
    const why = first ? `spoke ${first.spoke}: ${first.reason}: ${first.message}` : 'spokes failed';
    const message = `failed in wave ${rollout.wave + 1} of ${rollout.waves}: ${failures} failed spoke(s), more than maxFailures ${settings.maxFailures} (${why}); rolling back to ${rollout.fromVersion ?? 'the previous revision'}`;
    for (const r of beginRollback(rows, 'RolloutFailed', `rolling back: ${why}`.slice(0, 1000), now)) touched.add(r);
    rollout.rollingBack = true;
    await this.store.update(em, rollout.deployment, { phase: 'Failed', rollingBack: true, message: message.slice(0, 2000) });
    await this.audit.record(em, {
      actor: ROLLOUT_ACTOR,
      action: 'rollout.failed',
      target: `ModelDeployment/${rollout.deployment}`,
      details: { rollout: rollout.id, wave: rollout.wave + 1, failures, spokes: rows.filter((r) => r.failed).map((r) => ({ spoke: r.spoke, reason: r.reason, message: r.message, gates: r.gates })) },
    });
    this.metrics.rollbacks.inc({ deployment: rollout.deployment, cause: 'failed' });
    this.log.warn({ deployment: rollout.deployment, message }, 'rollout failed; rolling back');
  }

  private async finishRollback(em: EntityManager, rollout: RolloutRow, rows: RolloutSpokeRow[]): Promise<void> {
    const stuck = rows.filter((r) => r.state === 'Failed');
    const phase = rollout.phase === 'Aborted' ? 'Aborted' : stuck.length > 0 ? 'Failed' : 'RolledBack';
    const tail = stuck.length > 0 ? `; the rollback did not pass on ${stuck.map((r) => r.spoke).join(', ')}` : `; every touched spoke is back on ${rollout.fromVersion ?? 'the previous revision'}`;
    await this.store.update(em, rollout.deployment, { phase, rollingBack: false, finished: true, message: `${rollout.message.replace(/; rolling back to .*$/, '')}${tail}`.slice(0, 2000) });
    await this.audit.record(em, { actor: ROLLOUT_ACTOR, action: 'rollout.rolled-back', target: `ModelDeployment/${rollout.deployment}`, details: { rollout: rollout.id, phase, rollbackFailed: stuck.map((r) => r.spoke) } });
  }
}
