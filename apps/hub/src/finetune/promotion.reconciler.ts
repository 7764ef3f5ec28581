import type { ReportedDeploymentStatus, ReportedJobRunStatus, Telemetry } from '@flotilla/contracts';
import type { ModelDeployment } from '@flotilla/policy';
import type { Logger } from 'pino';
import type { DataSource, EntityManager } from 'typeorm';
import type { AuditService } from '../audit/audit.service.js';
import type { ReconcileOutcome, Reconciler } from '../controllers/controller.js';
import { PolicyObjectEntity } from '../database/entities/policy-object.entity.js';
import type { EnvelopePublisher, OutgoingEnvelope } from '../desired/envelope-publisher.js';
import { RENDER_LOCK, type FleetRenderer } from '../desired/fleet-renderer.js';
import { toPolicyObject } from '../desired/fleet-snapshot.js';
import type { SpokeObservation } from '../rollouts/rollout-plan.js';
import { connectionOf } from '../spokes/spoke.dto.js';
import { beginPromotions, deploymentsServing, loadJobs, registeredProduced } from './promotion-candidates.js';
import { PROMOTION_ACTOR } from './promotion-overrides.js';
import { autoPromotes, promotionSettings, stepPromotion } from './promotion-plan.js';
import { isActive, type PromotionRow, type PromotionStore } from './promotion-store.js';

interface ObservedSpokeRow {
  name: string;
  presence: 'online' | 'offline';
  last_seen_at: Date | null;
  observed_generation: number;
  deployment_statuses: ReportedDeploymentStatus[];
  job_statuses: ReportedJobRunStatus[];
  telemetry: Telemetry | null;
  telemetry_at: Date | null;
}

/**
 * The promotion controller (issue 13, deliverable 7), level-based over
 * deployment names, run by the HA leader. For a deployment that serves the
 * output model of a `promote: auto` FineTuneJob it promotes, on each spoke,
 * the version a Succeeded run registered there (never one promoted there
 * before). It then watches every rendered promotion with the rollout's
 * health rules: Ready at the generation that carries the version within the
 * deployment's progressDeadline, then within its gates (maxErrorRatio, and
 * noRestarts) for minSuccessTime and after. A promotion that fails is
 * RolledBack: the spoke gets the previous rendering again, and the row says
 * why with the measured value and the threshold. Everything is in Postgres
 * (spoke_promotions); after a hub restart the next reconcile continues.
 */
export class PromotionReconciler implements Reconciler {
  readonly name = 'promotions';

  constructor(
    private readonly ds: DataSource,
    private readonly store: PromotionStore,
    private readonly renderer: FleetRenderer,
    private readonly envelopes: EnvelopePublisher,
    private readonly audit: AuditService,
    private readonly log: Logger,
    private readonly telemetryIntervalSeconds: number,
    private readonly pollMs = 1_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Deployments with a promotion to watch, and those serving the output model of an auto-promoted job. */
  async listKeys(): Promise<string[]> {
    const em = this.ds.manager;
    const active = await this.store.activeDeployments(em);
    const models = [...new Set((await loadJobs(em)).filter((j) => j.promote === 'auto').map((j) => j.outputModel))];
    const serving: { name: string }[] = models.length
      ? await em.query(`SELECT name FROM policy_objects WHERE kind = 'ModelDeployment' AND spec->'model'->>'name' = ANY($1)`, [models])
      : [];
    return [...new Set([...active, ...serving.map((s) => s.name)])].sort();
  }

  async reconcile(deployment: string): Promise<ReconcileOutcome | void> {
    const changed: OutgoingEnvelope[] = [];
    const watching = await this.ds.transaction(async (em) => {
      // Serialised with applies, renders and rollouts: they read and change the same rows.
      await em.query('SELECT pg_advisory_xact_lock($1)', [RENDER_LOCK]);
      const policy = await em.findOne(PolicyObjectEntity, { where: { kind: 'ModelDeployment', name: deployment } });
      if (!policy) return false; // the next render removes its promotions
      const d = toPolicyObject(policy) as ModelDeployment;
      let rerender = await this.autoPromote(em, d);

      const rows = (await this.store.forDeployment(em, deployment, { lock: true })).filter((r) => isActive(r.state) && r.targetGeneration !== null);
      const observations = await this.observe(em, deployment, rows.map((r) => r.spoke));
      const settings = promotionSettings(d.spec.rollout);
      const now = this.now();
      for (const r of rows) {
        const obs = observations.get(r.spoke) ?? { online: false, observedGeneration: 0, telemetryAt: null, deployment: null, inference: null };
        const step = stepPromotion(r, obs, settings, now);
        if (step.kind === 'wait') {
          const moved = step.state !== r.state;
          Object.assign(r, { state: step.state, gates: step.gates, readyAt: step.readyAt === null ? null : new Date(step.readyAt) });
          if (moved) r.message = step.state === 'Verifying' ? `Ready on ${r.version}; verifying for minSuccessTime ${settings.minSuccessSeconds}s` : r.message;
          if (moved) r.reason = step.state === 'Verifying' ? 'Ready' : r.reason;
          await this.store.save(em, r);
        } else if (step.kind === 'pass') {
          Object.assign(r, { state: 'Promoted', reason: 'Passed', gates: step.gates, readyAt: new Date(step.readyAt), message: `serving ${r.version}: ${step.message}; still watched (maxErrorRatio ${settings.maxErrorRatio})` });
          await this.store.save(em, r);
          await this.audit.record(em, { actor: PROMOTION_ACTOR, action: 'finetune.promotion-passed', target: `ModelDeployment/${deployment}`, details: { spoke: r.spoke, version: r.version, job: r.job } });
        } else {
          await this.rollBack(em, r, step.reason, step.message, step.gates);
          rerender = true;
        }
      }
      const unrendered = (await this.store.forDeployment(em, deployment)).filter((r) => isActive(r.state) && r.targetGeneration === null);
      if (rerender || unrendered.length > 0) {
        const stored = await this.renderer.renderAndStore(em);
        changed.push(...stored.changed);
        // The rows the render left active (it may have withdrawn some) now wait for the generation that carries them.
        const after = (await this.store.forDeployment(em, deployment)).filter((r) => isActive(r.state) && r.targetGeneration === null);
        if (after.length > 0) {
          const generations: { name: string; desired_generation: number }[] = await em.query(
            `SELECT name, desired_generation FROM spokes WHERE name = ANY($1) AND revoked_at IS NULL`,
            [after.map((r) => r.spoke)],
          );
          const byName = new Map(generations.map((g) => [g.name, g.desired_generation]));
          for (const r of after) {
            r.targetGeneration = byName.get(r.spoke) ?? null;
            r.stepStartedAt = new Date(now);
            if (r.targetGeneration !== null) r.message = `${r.message.replace(/; sent as generation \d+$/, '')}; sent as generation ${r.targetGeneration}`;
            await this.store.save(em, r);
          }
        }
      }
      return (await this.store.forDeployment(em, deployment)).some((r) => isActive(r.state));
    });
    if (changed.length > 0) await this.envelopes.publish(changed, 'changed');
    if (watching) return { requeueAfterMs: this.pollMs };
  }

  /** Starts the promotion of every auto-promoted run the spokes reported; true when one started. */
  private async autoPromote(em: EntityManager, d: ModelDeployment): Promise<boolean> {
    const jobs = (await loadJobs(em)).filter((j) => j.promote === 'auto' && j.outputModel === d.spec.model.name);
    if (jobs.length === 0) return false;
    const spokes: { name: string; job_statuses: ReportedJobRunStatus[] | null }[] = await em.query(
      `SELECT s.name, s.job_statuses FROM spokes s JOIN desired_states ds ON ds.spoke_id = s.id
       WHERE s.revoked_at IS NULL AND EXISTS (SELECT 1 FROM jsonb_array_elements(ds.payload->'deployments') x WHERE x->>'name' = $1)
       ORDER BY s.name`,
      [d.metadata.name],
    );
    let started = false;
    for (const s of spokes) {
      for (const job of jobs) {
        const run = (s.job_statuses ?? []).find((j) => j.name === job.name);
        if (!run || run.phase !== 'Succeeded' || !run.producedVersion) continue;
        const existing = (await this.store.forDeployment(em, d.metadata.name)).find((r) => r.spoke === s.name) ?? null;
        if (!autoPromotes({ job: job.name, phase: run.phase, producedVersion: run.producedVersion }, true, existing)) continue;
        const produced = await registeredProduced(em, job.outputModel, run.producedVersion, job.name, s.name);
        if (!produced) continue; // not registered yet: the next look promotes it
        const serving = (await deploymentsServing(em, job.outputModel, s.name)).filter((x) => x.name === d.metadata.name);
        const begun = await beginPromotions(
          em,
          this.store,
          this.audit,
          { job: job.name, jobGeneration: job.generation, spoke: s.name, model: job.outputModel, version: run.producedVersion, ...produced },
          serving,
          { actor: PROMOTION_ACTOR, reason: 'AutoPromoted' },
        );
        if (begun.length > 0) {
          started = true;
          this.log.info({ deployment: d.metadata.name, spoke: s.name, version: run.producedVersion, job: job.name }, 'promoting a fine-tuned version (promote: auto)');
        }
      }
    }
    return started;
  }

  private async rollBack(em: EntityManager, r: PromotionRow, reason: string, why: string, gates: PromotionRow['gates']): Promise<void> {
    const before = { state: r.state, version: r.version };
    Object.assign(r, {
      state: 'RolledBack',
      reason,
      gates,
      targetGeneration: null,
      message: `rolled back to ${r.previousVersion ?? "the deployment's previous version"}: ${why}`,
    });
    await this.store.save(em, r);
    await this.audit.record(em, {
      actor: PROMOTION_ACTOR,
      action: 'finetune.promotion-rolled-back',
      target: `ModelDeployment/${r.deployment}`,
      before,
      after: { state: r.state },
      details: { spoke: r.spoke, version: r.version, job: r.job, reason, message: why, gates },
    });
    this.log.warn({ deployment: r.deployment, spoke: r.spoke, version: r.version, reason, why }, 'promotion rolled back');
  }

  private async observe(em: EntityManager, deployment: string, spokes: readonly string[]): Promise<Map<string, SpokeObservation>> {
    if (spokes.length === 0) return new Map();
    const found: ObservedSpokeRow[] = await em.query(
      `SELECT name, presence, last_seen_at, observed_generation, deployment_statuses, job_statuses, telemetry, telemetry_at
       FROM spokes WHERE name = ANY($1) AND revoked_at IS NULL`,
      [spokes],
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
          deployment: s.deployment_statuses.find((x) => x.name === deployment) ?? null,
          inference: line && telemetryAt !== null ? { at: telemetryAt, errorRatio: line.errorRatio, latencyP99Ms: line.latencyP99Ms, requestsPerSecond: line.requestsPerSecond } : null,
        };
        return [s.name, obs] as const;
      }),
    );
  }
}
