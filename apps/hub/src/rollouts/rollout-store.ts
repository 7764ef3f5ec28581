import type { DesiredDeployment } from '@flotilla/contracts';
import type { EntityManager } from 'typeorm';
import type { Baseline, GateReading, SpokeRolloutState } from './rollout-plan.js';

/** A deployment's current rollout as stored (table `rollouts`). */
export interface RolloutRow {
  deployment: string;
  id: string;
  phase: 'Progressing' | 'Succeeded' | 'Failed' | 'RolledBack' | 'Aborted';
  paused: boolean;
  rollingBack: boolean;
  fromVersion: string | null;
  toVersion: string;
  toHash: string;
  /** Rendered deployments by canonical hash: the target and every spoke's previous one. */
  revisions: Record<string, DesiredDeployment>;
  wave: number;
  waves: number;
  waveStartedAt: Date;
  message: string;
  startedAt: Date;
  updatedAt: Date;
  finishedAt: Date | null;
}

/** One spoke a rollout moves (table `rollout_spokes`). */
export interface RolloutSpokeRow {
  deployment: string;
  spoke: string;
  position: number;
  wave: number;
  fromHash: string;
  state: SpokeRolloutState;
  failed: boolean;
  reason: string;
  message: string;
  /** The current window's gate readings. */
  gates: GateReading[];
  /** The readings that failed the spoke on the way forward, kept while it rolls back. */
  failedGates: GateReading[] | null;
  baseline: Baseline | null;
  targetGeneration: number | null;
  stepStartedAt: Date | null;
  readyAt: Date | null;
}

const ROLLOUT_COLUMNS = `deployment, id, phase, paused, rolling_back AS "rollingBack", from_version AS "fromVersion", to_version AS "toVersion",
  to_hash AS "toHash", revisions, wave, waves, wave_started_at AS "waveStartedAt", message, started_at AS "startedAt",
  updated_at AS "updatedAt", finished_at AS "finishedAt"`;
const SPOKE_COLUMNS = `deployment, spoke, position, wave, from_hash AS "fromHash", state, failed, reason, message, gates, failed_gates AS "failedGates", baseline,
  target_generation AS "targetGeneration", step_started_at AS "stepStartedAt", ready_at AS "readyAt"`;

/** The rollout tables, read and written inside the caller's transaction (or on the data source). */
export class RolloutStore {
  async all(em: EntityManager): Promise<RolloutRow[]> {
    return em.query(`SELECT ${ROLLOUT_COLUMNS} FROM rollouts ORDER BY deployment`);
  }

  async one(em: EntityManager, deployment: string, opts: { lock?: boolean } = {}): Promise<RolloutRow | null> {
    const rows: RolloutRow[] = await em.query(`SELECT ${ROLLOUT_COLUMNS} FROM rollouts WHERE deployment = $1${opts.lock ? ' FOR UPDATE' : ''}`, [deployment]);
    return rows[0] ?? null;
  }

  /** Deployments whose rollout still has work: moving forward, or rolling back. */
  async active(em: EntityManager): Promise<string[]> {
    const rows: { deployment: string }[] = await em.query(
      `SELECT deployment FROM rollouts WHERE phase = 'Progressing' OR rolling_back ORDER BY deployment`,
    );
    return rows.map((r) => r.deployment);
  }

  async spokes(em: EntityManager, deployment: string): Promise<RolloutSpokeRow[]> {
    return em.query(`SELECT ${SPOKE_COLUMNS} FROM rollout_spokes WHERE deployment = $1 ORDER BY position`, [deployment]);
  }

  /** Every spoke row of every rollout, for rendering (one query). */
  async allSpokes(em: EntityManager): Promise<Pick<RolloutSpokeRow, 'deployment' | 'spoke' | 'state' | 'fromHash'>[]> {
    return em.query(`SELECT deployment, spoke, state, from_hash AS "fromHash" FROM rollout_spokes`);
  }

  async delete(em: EntityManager, deployment: string): Promise<void> {
    await em.query(`DELETE FROM rollouts WHERE deployment = $1`, [deployment]);
  }

  /** Replaces the deployment's rollout (a new change supersedes the old one). */
  async create(em: EntityManager, r: Omit<RolloutRow, 'startedAt' | 'updatedAt' | 'finishedAt' | 'waveStartedAt'>, spokes: readonly Omit<RolloutSpokeRow, 'deployment'>[]): Promise<void> {
    await this.delete(em, r.deployment);
    await em.query(
      `INSERT INTO rollouts (deployment, id, phase, paused, rolling_back, from_version, to_version, to_hash, revisions, wave, waves, message)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
      [r.deployment, r.id, r.phase, r.paused, r.rollingBack, r.fromVersion, r.toVersion, r.toHash, JSON.stringify(r.revisions), r.wave, r.waves, r.message],
    );
    for (let i = 0; i < spokes.length; i += 1000) {
      await em.query(
        `INSERT INTO rollout_spokes (deployment, spoke, position, wave, from_hash, state, reason, message)
         SELECT $1, v.spoke, v.position, v.wave, v."fromHash", v.state, v.reason, v.message
         FROM jsonb_to_recordset($2::jsonb) AS v(spoke text, position int, wave int, "fromHash" text, state text, reason text, message text)`,
        [r.deployment, JSON.stringify(spokes.slice(i, i + 1000))],
      );
    }
  }

  async update(em: EntityManager, deployment: string, patch: Partial<Pick<RolloutRow, 'phase' | 'paused' | 'rollingBack' | 'wave' | 'message'>> & { waveStarted?: boolean; finished?: boolean }): Promise<void> {
    const sets: string[] = ['updated_at = now()'];
    const args: unknown[] = [deployment];
    const put = (column: string, value: unknown) => {
      args.push(value);
      sets.push(`${column} = $${args.length}`);
    };
    if (patch.phase !== undefined) put('phase', patch.phase);
    if (patch.paused !== undefined) put('paused', patch.paused);
    if (patch.rollingBack !== undefined) put('rolling_back', patch.rollingBack);
    if (patch.wave !== undefined) put('wave', patch.wave);
    if (patch.message !== undefined) put('message', patch.message);
    if (patch.waveStarted) sets.push('wave_started_at = now()');
    if (patch.finished) sets.push('finished_at = now()');
    await em.query(`UPDATE rollouts SET ${sets.join(', ')} WHERE deployment = $1`, args);
  }

  /** Writes the changed spoke rows in one statement. */
  async saveSpokes(em: EntityManager, rows: readonly RolloutSpokeRow[]): Promise<void> {
    if (rows.length === 0) return;
    for (let i = 0; i < rows.length; i += 1000) {
      await em.query(
        `UPDATE rollout_spokes r SET state = v.state, failed = v.failed, reason = v.reason, message = v.message, gates = v.gates, failed_gates = v."failedGates",
           baseline = v.baseline, target_generation = v."targetGeneration", step_started_at = v."stepStartedAt",
           ready_at = v."readyAt", updated_at = now()
         FROM jsonb_to_recordset($1::jsonb) AS v(deployment text, spoke text, state text, failed boolean, reason text, message text,
           gates jsonb, "failedGates" jsonb, baseline jsonb, "targetGeneration" int, "stepStartedAt" timestamptz, "readyAt" timestamptz)
         WHERE r.deployment = v.deployment AND r.spoke = v.spoke`,
        [JSON.stringify(rows.slice(i, i + 1000))],
      );
    }
  }

  async removeSpokes(em: EntityManager, deployment: string, spokes: readonly string[]): Promise<void> {
    if (spokes.length > 0) await em.query(`DELETE FROM rollout_spokes WHERE deployment = $1 AND spoke = ANY($2)`, [deployment, spokes]);
  }
}
