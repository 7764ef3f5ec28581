import type { DataSource } from 'typeorm';
import type { AuditService } from '../audit/audit.service.js';
import type { Controller } from '../controllers/controller.js';
import { RENDER_LOCK } from '../desired/fleet-renderer.js';
import { conflict, notFound } from '../errors/domain-error.js';
import { beginPromotions, deploymentsServing, loadJobs, registeredProduced, reportedRun } from './promotion-candidates.js';
import { type PromotionView, toPromotionView } from './promotion-view.js';
import type { PromotionStore } from './promotion-store.js';

export interface PromoteResult {
  job: string;
  spoke: string;
  model: string;
  version: string;
  /** Deployments whose promotion started now (empty when every one was already promoted to this version). */
  started: string[];
  promotions: PromotionView[];
}

/**
 * `POST /api/v1/finetune-jobs/{name}/promote {spoke}`: an operator promotes
 * the version a job's run produced on a spoke and that passed its gate
 * (Succeeded and registered), on every deployment serving the job's output
 * model there, as `promote: auto` would. Works for `promote: manual` jobs and
 * to promote again a version that was rolled back. The promotion controller
 * renders it and watches it.
 */
export class PromoteProducedVersion {
  constructor(
    private readonly ds: DataSource,
    private readonly store: PromotionStore,
    private readonly audit: AuditService,
    private readonly promotions: Controller,
  ) {}

  async execute(jobName: string, spoke: string, actor: string, requestId: string | null): Promise<PromoteResult> {
    const result = await this.ds.transaction(async (em) => {
      await em.query('SELECT pg_advisory_xact_lock($1)', [RENDER_LOCK]);
      const job = (await loadJobs(em, [jobName]))[0];
      if (!job) throw notFound('fine-tune job', jobName);
      const { spokeFound, run } = await reportedRun(em, spoke, jobName);
      if (!spokeFound) throw notFound('spoke', spoke);
      const refuse = (code: string, why: string, details: Record<string, unknown> = {}) =>
        conflict(code, `cannot promote ${jobName} on ${spoke}: ${why}`, { job: jobName, spoke, ...details });
      if (!run) throw refuse('no_produced_version', 'the job has not run on this spoke (its placement does not select it, or the spoke has not reported it yet)');
      if (run.phase !== 'Succeeded' || !run.producedVersion) {
        throw refuse('no_produced_version', `its run there is ${run.phase}${run.message ? ` (${run.message})` : ''}; only a run that passed its evaluation gate produces a version to promote`, { phase: run.phase });
      }
      const produced = await registeredProduced(em, job.outputModel, run.producedVersion, jobName, spoke);
      if (!produced) throw refuse('no_produced_version', `${job.outputModel} ${run.producedVersion} is not registered yet; try again in a moment`, { version: run.producedVersion });
      const deployments = await deploymentsServing(em, job.outputModel, spoke);
      if (deployments.length === 0) throw refuse('no_deployment', `no ModelDeployment serves ${job.outputModel} on this spoke`, { model: job.outputModel });
      const started = await beginPromotions(
        em,
        this.store,
        this.audit,
        { job: jobName, jobGeneration: job.generation, spoke, model: job.outputModel, version: run.producedVersion, ...produced },
        deployments,
        { actor, reason: 'ManuallyPromoted', requestId },
      );
      const rows = (await this.store.forJob(em, jobName)).filter((r) => r.spoke === spoke && r.version === run.producedVersion);
      return { job: jobName, spoke, model: job.outputModel, version: run.producedVersion, started, promotions: rows.map(toPromotionView) };
    });
    for (const d of result.started) this.promotions.enqueue(d);
    return result;
  }
}
