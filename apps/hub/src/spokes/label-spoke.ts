import { type DataSource, IsNull } from 'typeorm';
import type { AuditService } from '../audit/audit.service.js';
import { LabelsSchema } from '../common/labels.js';
import { RESERVED_LABEL_PREFIX, isReservedLabelKey } from '../enrollment/label-claims.js';
import { SpokeEntity } from '../database/entities/spoke.entity.js';
import type { EnvelopePublisher } from '../desired/envelope-publisher.js';
import { type FleetRenderer, RENDER_LOCK, type StoredRender } from '../desired/fleet-renderer.js';
import { notFound, validationFailed } from '../errors/domain-error.js';

/**
 * Merge-patches a spoke's labels (null removes one), audited. Labels move
 * placements, so the fleet is rendered in the same transaction, as an apply
 * is: once the patch is answered, every spoke's desired generation already
 * says what the new labels ask (no window where a stale rendering looks in
 * sync). The envelopes go out after the commit.
 */
export class LabelSpoke {
  constructor(
    private readonly ds: DataSource,
    private readonly audit: AuditService,
    private readonly renderer: FleetRenderer,
    private readonly envelopes: EnvelopePublisher,
  ) {}

  async execute(name: string, patch: Record<string, string | null>, actor: string, requestId: string | null): Promise<SpokeEntity> {
    // flotilla.dev/ labels are the hub's (e.g. flotilla.dev/local on its own agent): no API caller sets or removes them.
    const reserved = Object.keys(patch).filter(isReservedLabelKey);
    if (reserved.length) {
      throw validationFailed(reserved.map((k) => ({ field: `labels.${k}`, message: `the "${RESERVED_LABEL_PREFIX}" prefix is reserved for the hub` })));
    }
    let rendered: StoredRender | null = null;
    const updated = await this.ds.transaction(async (em) => {
      // The render lock before any row lock, in the order every renderer takes them (else a render running now deadlocks with us).
      await em.query('SELECT pg_advisory_xact_lock($1)', [RENDER_LOCK]);
      const row = await em.findOne(SpokeEntity, { where: { name, revokedAt: IsNull() }, lock: { mode: 'pessimistic_write' } });
      if (!row) throw notFound('spoke', name);
      const labels: Record<string, string> = { ...row.labels };
      for (const [k, v] of Object.entries(patch)) {
        if (v === null) delete labels[k];
        else labels[k] = v;
      }
      const check = LabelsSchema.safeParse(labels);
      if (!check.success) {
        throw validationFailed(check.error.issues.map((i) => ({ field: ['labels', ...i.path.map(String)].join('.'), message: i.message })));
      }
      await em.update(SpokeEntity, { id: row.id }, { labels });
      await this.audit.record(em, { actor, action: 'spoke.labels.patch', target: `spoke/${name}`, before: row.labels, after: labels, details: { patch }, requestId });
      rendered = await this.renderer.renderSpokes(em, { spokes: [name] });
      return { ...row, labels };
    });
    if (rendered) await this.envelopes.publish((rendered as StoredRender).changed, 'changed');
    return updated;
  }
}
