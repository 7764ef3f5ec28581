import { Injectable } from '@nestjs/common';
import { DataSource, MoreThan } from 'typeorm';
import { AuditService } from '../audit/audit.service.js';
import { decodeCursor } from '../common/pagination.js';
import { hashSecret, newSecret, secretPrefix } from '../common/secrets.js';
import { ApiTokenEntity, type Role } from '../database/entities/api-token.entity.js';
import { conflict, notFound } from '../errors/domain-error.js';

/**
 * API tokens: issued with a secret shown once (stored as a hash), listed
 * without secrets, revoked at once. Every change is audited in its transaction.
 */
@Injectable()
export class ApiTokens {
  constructor(
    private readonly ds: DataSource,
    private readonly audit: AuditService,
  ) {}

  async issue(req: { name: string; role: Role; expiresInSeconds?: number | undefined; actor: string; requestId: string | null }): Promise<{ row: ApiTokenEntity; token: string }> {
    const token = newSecret('flt');
    const row = await this.ds.transaction(async (em) => {
      if (await em.exists(ApiTokenEntity, { where: { name: req.name } })) {
        throw conflict('api_token_exists', `an API token named "${req.name}" exists`, { name: req.name });
      }
      const r = em.create(ApiTokenEntity, {
        name: req.name,
        role: req.role,
        tokenHash: hashSecret(token),
        tokenPrefix: secretPrefix(token),
        createdBy: req.actor,
        expiresAt: req.expiresInSeconds ? new Date(Date.now() + req.expiresInSeconds * 1000) : null,
      });
      await em.save(r);
      await this.audit.record(em, { actor: req.actor, action: 'api-token.create', target: `api-token/${req.name}`, after: { name: req.name, role: req.role }, requestId: req.requestId });
      return r;
    });
    return { row, token };
  }

  /** limit+1 tokens after `cursor`, by name. */
  page(q: { cursor?: string | undefined; limit: number }): Promise<ApiTokenEntity[]> {
    const after = decodeCursor(q.cursor);
    return this.ds.getRepository(ApiTokenEntity).find({ where: after ? { name: MoreThan(after) } : {}, order: { name: 'ASC' }, take: q.limit + 1 });
  }

  async revoke(name: string, actor: string, requestId: string | null): Promise<void> {
    await this.ds.transaction(async (em) => {
      const row = await em.findOne(ApiTokenEntity, { where: { name } });
      if (!row) throw notFound('API token', name);
      await em.delete(ApiTokenEntity, { id: row.id });
      await this.audit.record(em, { actor, action: 'api-token.delete', target: `api-token/${name}`, before: { name: row.name, role: row.role }, requestId });
    });
  }
}
