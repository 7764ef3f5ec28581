import { Controller, Get } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { DataSource } from 'typeorm';
import { z } from 'zod';
import { PageQuerySchema, decodeCursor, toPage } from '../common/pagination.js';
import { ZodQuery } from '../common/zod.js';
import { AuditEventEntity } from '../database/entities/audit-event.entity.js';

export const AuditQuery = PageQuerySchema.extend({
  actor: z.string().max(256).optional().describe('exact actor, e.g. token:ci-bot'),
  action: z.string().max(128).optional().describe('exact action, e.g. spoke.delete'),
  target: z.string().max(512).optional().describe('target or target prefix ending in "/", e.g. spoke/'),
}).strict();

@ApiTags('audit')
@ApiBearerAuth()
@Controller('api/v1/audit-events')
export class AuditEventsController {
  constructor(private readonly ds: DataSource) {}

  @Get()
  @ApiOperation({ summary: 'The audit trail, newest first' })
  async list(@ZodQuery(AuditQuery) q: z.infer<typeof AuditQuery>) {
    const qb = this.ds.getRepository(AuditEventEntity).createQueryBuilder('e');
    const after = decodeCursor(q.cursor, 'integer');
    if (after !== null) qb.andWhere('e.id < :after', { after });
    if (q.actor) qb.andWhere('e.actor = :actor', { actor: q.actor });
    if (q.action) qb.andWhere('e.action = :action', { action: q.action });
    if (q.target) {
      if (q.target.endsWith('/')) qb.andWhere('starts_with(e.target, :target)', { target: q.target });
      else qb.andWhere('e.target = :target', { target: q.target });
    }
    const rows = await qb.orderBy('e.id', 'DESC').limit(q.limit + 1).getMany();
    return toPage(rows, q.limit, (r) => String(r.id), (e) => ({
      id: Number(e.id),
      at: e.at.toISOString(),
      actor: e.actor,
      action: e.action,
      target: e.target,
      beforeDigest: e.beforeDigest,
      afterDigest: e.afterDigest,
      details: e.details,
      requestId: e.requestId,
    }));
  }
}
