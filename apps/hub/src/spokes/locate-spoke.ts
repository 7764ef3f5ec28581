import type { Location } from '@flotilla/contracts';
import { type DataSource, IsNull } from 'typeorm';
import type { AuditService } from '../audit/audit.service.js';
import { SpokeEntity } from '../database/entities/spoke.entity.js';
import { notFound } from '../errors/domain-error.js';

/**
 * Sets or clears where a spoke is, audited. A location moves no placement
 * (it is not a label), so nothing is rendered; the route table re-reads the
 * spoke once the change is committed.
 */
export class LocateSpoke {
  constructor(
    private readonly ds: DataSource,
    private readonly audit: AuditService,
    private readonly changed: (spoke: string) => void,
  ) {}

  async execute(name: string, location: Location | null, actor: string, requestId: string | null): Promise<SpokeEntity> {
    const updated = await this.ds.transaction(async (em) => {
      const row = await em.findOne(SpokeEntity, { where: { name, revokedAt: IsNull() }, lock: { mode: 'pessimistic_write' } });
      if (!row) throw notFound('spoke', name);
      await em.update(SpokeEntity, { id: row.id }, { location });
      await this.audit.record(em, { actor, action: 'spoke.location.set', target: `spoke/${name}`, before: row.location, after: location, details: { location }, requestId });
      return { ...row, location };
    });
    this.changed(name);
    return updated;
  }
}
