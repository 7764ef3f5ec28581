import type { EntityManager } from 'typeorm';
import type { AuditService } from '../audit/audit.service.js';
import { type Lineage, ModelVersionEntity } from '../database/entities/model-version.entity.js';
import { ModelEntity } from '../database/entities/model.entity.js';
import { conflict, notFound } from '../errors/domain-error.js';

export interface ModelVersionInput {
  model: string;
  version: string;
  digest: string;
  uri: string;
  format: string;
  sizeBytes?: number | undefined;
  lineage?: Lineage | undefined;
}

export interface RegisterContext {
  actor: string;
  source: string;
  requestId?: string | null;
  /** Model YAML creates its model; the API wants it registered first. */
  createModel?: { task: string | null } | undefined;
}

/**
 * The one way a model version enters the registry, from the API, a Model YAML
 * or (later) a fine-tuning run: versions are immutable and content-addressed,
 * so registering one that exists is a no-op when it is the same artifact and
 * a 409 naming the registered digest when it is not. Runs in the caller's
 * transaction; audited.
 */
export class RegisterModelVersion {
  constructor(private readonly audit: AuditService) {}

  async execute(em: EntityManager, v: ModelVersionInput, ctx: RegisterContext): Promise<{ row: ModelVersionEntity; created: boolean }> {
    let model = await em.findOne(ModelEntity, { where: { name: v.model } });
    if (!model) {
      if (!ctx.createModel) throw notFound('model', v.model);
      await em.query(
        `INSERT INTO models (name, task, source) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING`,
        [v.model, ctx.createModel.task, ctx.source],
      );
      model = await em.findOneOrFail(ModelEntity, { where: { name: v.model } });
      await this.audit.record(em, { actor: ctx.actor, action: 'model.create', target: `model/${v.model}`, after: { name: v.model, task: ctx.createModel.task }, requestId: ctx.requestId ?? null });
    }
    // Serialises concurrent registrations of the same version (API and an apply at once).
    await em.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`model-version:${v.model}:${v.version}`]);
    const existing = await em.findOne(ModelVersionEntity, { where: { modelId: model.id, version: v.version } });
    if (existing) {
      const differs = [
        existing.digest !== v.digest ? `digest ${existing.digest}` : null,
        existing.uri !== v.uri ? `uri ${existing.uri}` : null,
        existing.format !== v.format ? `format ${existing.format}` : null,
      ].filter((x): x is string => x !== null);
      if (differs.length === 0) return { row: existing, created: false };
      throw conflict(
        'model_version_exists',
        `model "${v.model}" version "${v.version}" is registered with ${differs.join(', ')}; versions are immutable, give the new artifact a new version`,
        { model: v.model, version: v.version, registeredDigest: existing.digest, registeredUri: existing.uri, source: existing.source },
      );
    }
    const row = em.create(ModelVersionEntity, {
      modelId: model.id,
      version: v.version,
      digest: v.digest,
      uri: v.uri,
      format: v.format,
      sizeBytes: v.sizeBytes === undefined ? null : String(v.sizeBytes),
      lineage: v.lineage ?? null,
      source: ctx.source,
    });
    await em.insert(ModelVersionEntity, row);
    await this.audit.record(em, {
      actor: ctx.actor,
      action: 'model-version.create',
      target: `model/${v.model}/versions/${v.version}`,
      after: v,
      details: { source: ctx.source },
      requestId: ctx.requestId ?? null,
    });
    return { row, created: true };
  }
}
