import type { ReportedJobRunStatus } from '@flotilla/contracts';
import type { EntityManager } from 'typeorm';
import type { AuditService } from '../audit/audit.service.js';
import { parseLineageBase } from './promotion-plan.js';
import { isActive, type PromotionStore } from './promotion-store.js';

/** A version a job's run produced on a spoke, registered, that may be promoted there. */
export interface ProducedOnSpoke {
  job: string;
  jobGeneration: number;
  spoke: string;
  model: string;
  version: string;
  baseModel: string | null;
  baseVersion: string | null;
}

/** The FineTuneJob as stored: its output model, its promote mode and its policy generation. */
export interface StoredJob {
  name: string;
  generation: number;
  outputModel: string;
  promote: 'auto' | 'manual';
}

export async function loadJobs(em: EntityManager, names?: readonly string[]): Promise<StoredJob[]> {
  const rows: { name: string; generation: number; spec: { output?: { model?: string }; promote?: string } }[] = await em.query(
    `SELECT name, generation, spec FROM policy_objects WHERE kind = 'FineTuneJob'${names ? ' AND name = ANY($1)' : ''} ORDER BY name`,
    names ? [names] : [],
  );
  return rows.flatMap((r) => (r.spec.output?.model ? [{ name: r.name, generation: r.generation, outputModel: r.spec.output.model, promote: r.spec.promote === 'auto' ? 'auto' : 'manual' } as StoredJob] : []));
}

/** What one spoke last reported of one job's run. */
export async function reportedRun(em: EntityManager, spoke: string, job: string): Promise<{ spokeFound: boolean; run: ReportedJobRunStatus | null }> {
  const rows: { job_statuses: ReportedJobRunStatus[] | null }[] = await em.query(`SELECT job_statuses FROM spokes WHERE name = $1 AND revoked_at IS NULL`, [spoke]);
  if (rows.length === 0) return { spokeFound: false, run: null };
  return { spokeFound: true, run: (rows[0]!.job_statuses ?? []).find((j) => j.name === job) ?? null };
}

/**
 * The registered produced version `version` of `model`, if a run of `job`
 * on `spoke` registered it (its lineage names both), with the base it was
 * tuned from.
 */
export async function registeredProduced(em: EntityManager, model: string, version: string, job: string, spoke: string): Promise<{ baseModel: string | null; baseVersion: string | null } | null> {
  const rows: { lineage: { spoke?: string; job?: string; baseVersion?: string } | null }[] = await em.query(
    `SELECT v.lineage FROM model_versions v JOIN models m ON m.id = v.model_id WHERE m.name = $1 AND v.version = $2`,
    [model, version],
  );
  const lineage = rows[0]?.lineage;
  if (!lineage || lineage.spoke !== spoke || !(lineage.job ?? '').startsWith(`${job}@`)) return null;
  const base = parseLineageBase(lineage.baseVersion);
  return { baseModel: base?.model ?? null, baseVersion: base?.version ?? null };
}

/**
 * The deployments that serve `model` on `spoke`: their policy names that
 * model, and the spoke's stored desired state carries them (their placement
 * selects it). With each, the version its policy names.
 */
export async function deploymentsServing(em: EntityManager, model: string, spoke: string): Promise<{ name: string; policyVersion: string }[]> {
  const rows: { name: string; version: string }[] = await em.query(
    `SELECT o.name, o.spec->'model'->>'version' AS version
     FROM policy_objects o
     WHERE o.kind = 'ModelDeployment' AND o.spec->'model'->>'name' = $1
       AND EXISTS (SELECT 1 FROM desired_states d JOIN spokes s ON s.id = d.spoke_id, jsonb_array_elements(d.payload->'deployments') x
                   WHERE s.name = $2 AND s.revoked_at IS NULL AND x->>'name' = o.name)
     ORDER BY o.name`,
    [model, spoke],
  );
  return rows.map((r) => ({ name: r.name, policyVersion: r.version }));
}

/**
 * Starts the promotion of `p` on every deployment in `deployments`
 * (replacing what each had on that spoke), audited. A deployment already
 * promoted to that very version keeps its promotion as it is. Returns the
 * deployments whose promotion started.
 */
export async function beginPromotions(
  em: EntityManager,
  store: PromotionStore,
  audit: AuditService,
  p: ProducedOnSpoke,
  deployments: readonly { name: string; policyVersion: string }[],
  how: { actor: string; reason: 'AutoPromoted' | 'ManuallyPromoted'; requestId?: string | null },
): Promise<string[]> {
  const started: string[] = [];
  for (const d of deployments) {
    const existing = (await store.forDeployment(em, d.name, { lock: true })).find((r) => r.spoke === p.spoke) ?? null;
    if (existing && isActive(existing.state) && existing.version === p.version) continue;
    const message = `${how.reason === 'AutoPromoted' ? 'promote: auto' : `promoted by ${how.actor}`}: ${p.model} ${p.version} from job ${p.job} (generation ${p.jobGeneration}) replaces ${existing && isActive(existing.state) ? existing.version : d.policyVersion} on ${p.spoke}`;
    await store.begin(
      em,
      { deployment: d.name, spoke: p.spoke, model: p.model, version: p.version, job: p.job, jobGeneration: p.jobGeneration, baseModel: p.baseModel, baseVersion: p.baseVersion, policyVersion: d.policyVersion, reason: how.reason, message, actor: how.actor },
      existing,
    );
    await audit.record(em, {
      actor: how.actor,
      action: 'finetune.promoted',
      target: `ModelDeployment/${d.name}`,
      before: existing ? { version: existing.version, state: existing.state } : null,
      after: { spoke: p.spoke, version: p.version },
      details: { spoke: p.spoke, version: p.version, job: p.job, jobGeneration: p.jobGeneration, replaces: existing?.version ?? null, reason: how.reason },
      requestId: how.requestId ?? null,
    });
    started.push(d.name);
  }
  return started;
}
