import type { DesiredPayload, ModelRef } from '@flotilla/contracts';
import type { ModelDeployment } from '@flotilla/policy';
import type { EntityManager } from 'typeorm';
import type { AuditService } from '../audit/audit.service.js';
import type { DeploymentOverrideSource, DeploymentOverrides, RenderContext } from '../desired/spoke-version-decisions.js';
import { promotionHolds } from './promotion-plan.js';
import { isActive, type PromotionRow, type PromotionStore } from './promotion-store.js';

export const PROMOTION_ACTOR = 'system:promotion-controller';

/** Registered versions as the renderer puts them in a payload, field for field (the canonical JSON must not depend on the source). */
export async function loadVersionRefs(em: EntityManager, wanted: readonly { model: string; version: string }[]): Promise<Map<string, ModelRef>> {
  if (wanted.length === 0) return new Map();
  const rows: { model: string; version: string; digest: string; uri: string; format: ModelRef['format']; size_bytes: string | null }[] = await em.query(
    `SELECT m.name AS model, v.version, v.digest, v.uri, v.format, v.size_bytes
     FROM model_versions v JOIN models m ON m.id = v.model_id
     JOIN jsonb_to_recordset($1::jsonb) AS w(model text, version text) ON w.model = m.name AND w.version = v.version`,
    [JSON.stringify(wanted)],
  );
  return new Map(
    rows.map((r) => [
      `${r.model}@${r.version}`,
      { name: r.model, version: r.version, digest: r.digest, uri: r.uri, format: r.format, ...(r.size_bytes !== null ? { sizeBytes: Number(r.size_bytes) } : {}) },
    ]),
  );
}

/**
 * The promotion side of rendering (issue 13, deliverable 7). For every
 * promotion still rendered, the spoke gets the deployment as the policy (or
 * a rollout) renders it with one change: the model is the produced version.
 * Nothing else of the deployment changes and no other spoke is touched.
 * Before that, each promotion is checked against the policy being rendered
 * (promotionHolds): one the policy no longer allows is withdrawn here, in
 * the render's transaction, with its reason and an audit event; a
 * promotion of a deleted deployment or spoke is removed.
 */
export class PromotionOverrides implements DeploymentOverrideSource {
  readonly name = 'promotions';

  constructor(
    private readonly store: PromotionStore,
    private readonly audit: AuditService,
  ) {}

  async withoutOwnOverrides(em: EntityManager, ctx: RenderContext): Promise<ReadonlyMap<string, DesiredPayload>> {
    const rows = (await this.store.all(em)).filter((r) => r.previousModel !== null);
    if (rows.length === 0) return ctx.previous;
    const policyVersion = new Map(ctx.objects.filter((o): o is ModelDeployment => o.kind === 'ModelDeployment').map((d) => [d.metadata.name, d.spec.model.version]));
    const out = new Map(ctx.previous);
    for (const r of rows) {
      const payload = out.get(r.spoke);
      const d = payload?.deployments.find((x) => x.name === r.deployment);
      // Any version once promoted there (the spoke may still have the one a newer promotion replaced)...
      if (!payload || !d || d.model.name !== r.model || (d.model.version !== r.version && !r.history.includes(d.model.version))) continue;
      // ...unless the deployment's policy itself names it: then it is served by the policy, not by this source.
      if (policyVersion.get(r.deployment) === d.model.version) continue;
      out.set(r.spoke, { ...payload, deployments: payload.deployments.map((x) => (x === d ? { ...d, model: r.previousModel! } : x)) });
    }
    return out;
  }

  async decide(em: EntityManager, ctx: RenderContext): Promise<DeploymentOverrides> {
    const overrides: DeploymentOverrides = new Map();
    const rows = await this.store.all(em);
    if (rows.length === 0) return overrides;
    const deployments = new Map(ctx.objects.filter((o): o is ModelDeployment => o.kind === 'ModelDeployment').map((d) => [d.metadata.name, d]));
    const jobs = new Set(ctx.objects.filter((o) => o.kind === 'FineTuneJob').map((o) => o.metadata.name));
    const spokes = new Set(ctx.spokes.map((s) => s.name));
    const refs = await loadVersionRefs(em, rows.filter((r) => isActive(r.state)).map((r) => ({ model: r.model, version: r.version })));

    for (const r of rows) {
      const d = deployments.get(r.deployment);
      if (!d || !spokes.has(r.spoke)) {
        // The deployment or the spoke is gone: so is the promotion.
        await this.store.delete(em, r.deployment, r.spoke);
        await this.audit.record(em, {
          actor: PROMOTION_ACTOR,
          action: 'finetune.promotion-removed',
          target: `ModelDeployment/${r.deployment}`,
          before: { spoke: r.spoke, version: r.version, state: r.state },
          details: { spoke: r.spoke, version: r.version, job: r.job, reason: !d ? 'DeploymentDeleted' : 'SpokeRemoved' },
        });
        continue;
      }
      if (!isActive(r.state)) continue;
      if (ctx.render.stalled.has(`ModelDeployment/${r.deployment}`)) continue; // its spokes keep what they had, promotion included
      const rendered = ctx.render.payloads.get(r.spoke)?.deployments.find((x) => x.name === r.deployment);
      const ref = refs.get(`${r.model}@${r.version}`);
      const withdrawal = promotionHolds(r, { deploymentModel: d.spec.model, jobExists: jobs.has(r.job), placed: rendered !== undefined, versionRegistered: ref !== undefined });
      if (withdrawal) {
        await this.withdraw(em, r, withdrawal.reason, withdrawal.message);
        continue;
      }
      // What the spoke would serve without the promotion: kept to go back to, and shown.
      if (rendered!.model.version !== r.version && (r.previousModel === null || r.previousModel.version !== rendered!.model.version || r.previousModel.digest !== rendered!.model.digest)) {
        r.previousModel = rendered!.model;
        r.previousVersion = rendered!.model.version;
        await this.store.save(em, r);
      }
      let m = overrides.get(r.spoke);
      if (!m) overrides.set(r.spoke, (m = new Map()));
      m.set(r.deployment, { ...rendered!, model: ref! });
    }
    return overrides;
  }

  private async withdraw(em: EntityManager, r: PromotionRow, reason: string, message: string): Promise<void> {
    const before = { state: r.state, version: r.version };
    Object.assign(r, { state: 'Withdrawn', reason, message: `withdrawn: ${message}`, targetGeneration: null });
    await this.store.save(em, r);
    await this.audit.record(em, {
      actor: PROMOTION_ACTOR,
      action: 'finetune.promotion-withdrawn',
      target: `ModelDeployment/${r.deployment}`,
      before,
      after: { state: r.state },
      details: { spoke: r.spoke, version: r.version, job: r.job, reason, message },
    });
  }
}
