import { type DataSource, IsNull } from 'typeorm';
import { decodeCursor } from '../common/pagination.js';
import { SpokeEntity } from '../database/entities/spoke.entity.js';
import { selectorQueryToSql } from './selector-sql.js';

/** Reads of the spokes table for the API: enrolled (not revoked) spokes only. */
export class SpokesRepository {
  constructor(private readonly ds: DataSource) {}

  /** limit+1 spokes after `cursor`, by name, filtered by a Kubernetes label selector evaluated in Postgres. */
  async page(q: { selector?: string | undefined; cursor?: string | undefined; limit: number }): Promise<SpokeEntity[]> {
    const qb = this.ds.getRepository(SpokeEntity).createQueryBuilder('spoke').where('spoke.revoked_at IS NULL');
    if (q.selector) {
      const frag = selectorQueryToSql(q.selector);
      qb.andWhere(frag.sql, frag.params);
    }
    const after = decodeCursor(q.cursor);
    if (after !== null) qb.andWhere('spoke.name > :after', { after });
    return qb.orderBy('spoke.name', 'ASC').limit(q.limit + 1).getMany();
  }

  findEnrolled(name: string): Promise<SpokeEntity | null> {
    return this.ds.getRepository(SpokeEntity).findOne({ where: { name, revokedAt: IsNull() } });
  }
}
