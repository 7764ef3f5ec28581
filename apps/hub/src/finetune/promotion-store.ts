import type { ModelRef } from '@flotilla/contracts';
import type { EntityManager } from 'typeorm';
import type { GateReading } from '../rollouts/rollout-plan.js';

/**
 * Where a promotion of a fine-tuned version is on one spoke:
 * - Progressing: the spoke is sent the produced version; waiting for it to report Ready at that generation;
 * - Verifying: Ready on it; its live health is watched for the deployment's minSuccessTime;
 * - Promoted: passed; still watched (an error ratio above the threshold later still rolls it back);
 * - RolledBack: it failed readiness or its gates; the spoke serves the previous version again;
 * - Withdrawn: the policy no longer allows it (job deleted, deployment's model changed, spoke left the placement).
 */
export type PromotionState = 'Progressing' | 'Verifying' | 'Promoted' | 'RolledBack' | 'Withdrawn';
export const PROMOTION_STATES: readonly PromotionState[] = ['Progressing', 'Verifying', 'Promoted', 'RolledBack', 'Withdrawn'];
export const ACTIVE_PROMOTION_STATES: readonly PromotionState[] = ['Progressing', 'Verifying', 'Promoted'];

/** The one rule for whether a promotion is rendered: the spoke serves the produced version. */
export const isActive = (state: PromotionState): boolean => state === 'Progressing' || state === 'Verifying' || state === 'Promoted';

/** One row of `spoke_promotions`: the produced version a spoke serves for a deployment instead of the policy's. */
export interface PromotionRow {
  deployment: string;
  spoke: string;
  model: string;
  version: string;
  job: string;
  /** The FineTuneJob's policy generation when it was promoted. */
  jobGeneration: number;
  /** The base the version was tuned from (its lineage), when known. */
  baseModel: string | null;
  baseVersion: string | null;
  /** The version the deployment's policy named when it was promoted. */
  policyVersion: string;
  /** What the spoke served before (the policy's or a rollout's rendering), and its model reference. */
  previousVersion: string | null;
  previousModel: ModelRef | null;
  state: PromotionState;
  reason: string;
  message: string;
  actor: string;
  gates: GateReading[];
  targetGeneration: number | null;
  stepStartedAt: Date;
  readyAt: Date | null;
  /** Versions once promoted on this spoke for this deployment, oldest first (at most 50). */
  history: string[];
  createdAt: Date;
  updatedAt: Date;
}

const COLUMNS = `deployment, spoke, model, version, job, job_generation AS "jobGeneration", base_model AS "baseModel", base_version AS "baseVersion",
  policy_version AS "policyVersion", previous_version AS "previousVersion", previous_model AS "previousModel", state, reason, message, actor, gates,
  target_generation AS "targetGeneration", step_started_at AS "stepStartedAt", ready_at AS "readyAt", history, created_at AS "createdAt", updated_at AS "updatedAt"`;

export type NewPromotion = Pick<PromotionRow, 'deployment' | 'spoke' | 'model' | 'version' | 'job' | 'jobGeneration' | 'baseModel' | 'baseVersion' | 'policyVersion' | 'reason' | 'message' | 'actor'>;

/** The `spoke_promotions` table, read and written inside the caller's transaction (or on the data source). */
export class PromotionStore {
  async all(em: EntityManager): Promise<PromotionRow[]> {
    return em.query(`SELECT ${COLUMNS} FROM spoke_promotions ORDER BY deployment, spoke`);
  }

  async forDeployment(em: EntityManager, deployment: string, opts: { lock?: boolean } = {}): Promise<PromotionRow[]> {
    return em.query(`SELECT ${COLUMNS} FROM spoke_promotions WHERE deployment = $1 ORDER BY spoke${opts.lock ? ' FOR UPDATE' : ''}`, [deployment]);
  }

  async forJob(em: EntityManager, job: string): Promise<PromotionRow[]> {
    return em.query(`SELECT ${COLUMNS} FROM spoke_promotions WHERE job = $1 ORDER BY spoke, deployment`, [job]);
  }

  /** Deployments with a promotion still rendered (and so watched). */
  async activeDeployments(em: EntityManager): Promise<string[]> {
    const rows: { deployment: string }[] = await em.query(
      `SELECT DISTINCT deployment FROM spoke_promotions WHERE state = ANY($1) ORDER BY deployment`,
      [ACTIVE_PROMOTION_STATES],
    );
    return rows.map((r) => r.deployment);
  }

  /**
   * Starts a promotion on (deployment, spoke), replacing whatever row was
   * there; the version it replaces (if any) joins the history.
   */
  async begin(em: EntityManager, p: NewPromotion, existing: PromotionRow | null): Promise<void> {
    const history = [...(existing?.history ?? [])];
    if (existing && !history.includes(existing.version)) history.push(existing.version);
    if (!history.includes(p.version)) history.push(p.version);
    await em.query(
      `INSERT INTO spoke_promotions (deployment, spoke, model, version, job, job_generation, base_model, base_version, policy_version,
         state, reason, message, actor, gates, target_generation, step_started_at, ready_at, history, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'Progressing', $10, $11, $12, '[]', NULL, now(), NULL, $13, now(), now())
       ON CONFLICT (deployment, spoke) DO UPDATE SET model = EXCLUDED.model, version = EXCLUDED.version, job = EXCLUDED.job,
         job_generation = EXCLUDED.job_generation, base_model = EXCLUDED.base_model, base_version = EXCLUDED.base_version,
         policy_version = EXCLUDED.policy_version, state = 'Progressing', reason = EXCLUDED.reason, message = EXCLUDED.message,
         actor = EXCLUDED.actor, gates = '[]', target_generation = NULL, step_started_at = now(), ready_at = NULL,
         history = EXCLUDED.history, created_at = now(), updated_at = now()`,
      [p.deployment, p.spoke, p.model, p.version, p.job, p.jobGeneration, p.baseModel, p.baseVersion, p.policyVersion, p.reason, p.message.slice(0, 2000), p.actor, JSON.stringify(history.slice(-50))],
    );
  }

  /** Writes the mutable part of a row. */
  async save(em: EntityManager, r: PromotionRow): Promise<void> {
    await em.query(
      `UPDATE spoke_promotions SET state = $3, reason = $4, message = $5, gates = $6, target_generation = $7, step_started_at = $8, ready_at = $9,
         previous_version = $10, previous_model = $11, updated_at = now()
       WHERE deployment = $1 AND spoke = $2`,
      [r.deployment, r.spoke, r.state, r.reason, r.message.slice(0, 2000), JSON.stringify(r.gates), r.targetGeneration, r.stepStartedAt, r.readyAt, r.previousVersion, r.previousModel === null ? null : JSON.stringify(r.previousModel)],
    );
  }

  async delete(em: EntityManager, deployment: string, spoke: string): Promise<void> {
    await em.query(`DELETE FROM spoke_promotions WHERE deployment = $1 AND spoke = $2`, [deployment, spoke]);
  }
}
