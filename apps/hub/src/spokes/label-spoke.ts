import { type DataSource, IsNull } from 'typeorm';
import type { AuditService } from '../audit/audit.service.js';
import { LabelsSchema } from '../common/labels.js';
import type { FleetTriggers } from '../controllers/fleet-triggers.js';
import { SpokeEntity } from '../database/entities/spoke.entity.js';
import { notFound, validationFailed } from '../errors/domain-error.js';

/**
 * Merge-patches a spoke's labels (null removes one), audited, then asks the
 * desired-state controller to render again: labels move placements.
 */
export class LabelSpoke {
  constructor(
    private readonly ds: DataSource,
    private readonly audit: AuditService,
    private readonly triggers: FleetTriggers,
  ) {}

  async execute(name: string, patch: Record<string, string | null>, actor: string, requestId: string | null): Promise<SpokeEntity> {
    const updated = await this.ds.transaction(async (em) => {
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
      return { ...row, labels };
    });
    this.triggers.renderFleet();
    return updated;
  }
}
