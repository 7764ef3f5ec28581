import { Controller, Delete, Get, HttpCode, Inject, Param, Patch } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { DataSource, IsNull } from 'typeorm';
import { z } from 'zod';
import { AuditService } from '../audit/audit.service.js';
import { Ctx, RequireRole, type RequestContext } from '../auth/principal.js';
import { LabelsSchema } from '../common/labels.js';
import { PageQuerySchema, decodeCursor, toPage } from '../common/pagination.js';
import { ZodBody, ZodQuery } from '../common/zod.js';
import { HUB_CONFIG, type HubConfig } from '../config/config.js';
import { SpokeEntity } from '../database/entities/spoke.entity.js';
import { DomainError, notFound, validationFailed } from '../errors/domain-error.js';
import { FleetEvents } from './fleet-events.js';
import { selectorQueryToSql } from './selector-sql.js';
import { toSpokeDetailDto, toSpokeDto } from './spoke.dto.js';

export const ListSpokesQuery = PageQuerySchema.extend({
  selector: z.string().max(4096).optional().describe('Kubernetes label selector, e.g. region=eu,gpu.product in (L40S,H100),!quarantined'),
}).strict();

/** JSON merge patch of labels: a null value removes the label. */
export const PatchSpoke = z
  .object({
    labels: z.record(z.string(), z.string().nullable()),
  })
  .strict();

@ApiTags('spokes')
@ApiBearerAuth()
@Controller('api/v1/spokes')
export class SpokesController {
  constructor(
    private readonly ds: DataSource,
    private readonly audit: AuditService,
    private readonly fleet: FleetEvents,
    @Inject(HUB_CONFIG) private readonly config: HubConfig,
  ) {}

  @Get()
  @ApiOperation({ summary: 'List spokes, filtered by a label selector, with connection, generations and conditions' })
  async list(@ZodQuery(ListSpokesQuery) q: z.infer<typeof ListSpokesQuery>) {
    const qb = this.ds.getRepository(SpokeEntity).createQueryBuilder('spoke').where('spoke.revoked_at IS NULL');
    if (q.selector) {
      const frag = selectorQueryToSql(q.selector);
      qb.andWhere(frag.sql, frag.params);
    }
    const after = decodeCursor(q.cursor);
    if (after !== null) qb.andWhere('spoke.name > :after', { after });
    const rows = await qb.orderBy('spoke.name', 'ASC').limit(q.limit + 1).getMany();
    const now = Date.now();
    return toPage(rows, q.limit, (r) => r.name, (r) => toSpokeDto(r, now, this.config.telemetryIntervalSeconds));
  }

  @Get(':name')
  @ApiOperation({ summary: 'One spoke with conditions, workloads, capacity and latest health snapshot' })
  async get(@Param('name') name: string) {
    const row = await this.ds.getRepository(SpokeEntity).findOne({ where: { name, revokedAt: IsNull() } });
    if (!row) throw notFound('spoke', name);
    return toSpokeDetailDto(row, Date.now(), this.config.telemetryIntervalSeconds);
  }

  @Patch(':name')
  @RequireRole('operator')
  @ApiOperation({ summary: 'Merge-patch labels (null removes a label); re-places affected workloads' })
  async patch(@Param('name') name: string, @ZodBody(PatchSpoke) body: z.infer<typeof PatchSpoke>, @Ctx() ctx: RequestContext) {
    const updated = await this.ds.transaction(async (em) => {
      const row = await em.findOne(SpokeEntity, { where: { name, revokedAt: IsNull() }, lock: { mode: 'pessimistic_write' } });
      if (!row) throw notFound('spoke', name);
      const labels: Record<string, string> = { ...row.labels };
      for (const [k, v] of Object.entries(body.labels)) {
        if (v === null) delete labels[k];
        else labels[k] = v;
      }
      const check = LabelsSchema.safeParse(labels);
      if (!check.success) {
        throw validationFailed(check.error.issues.map((i) => ({ field: ['labels', ...i.path.map(String)].join('.'), message: i.message })));
      }
      const before = row.labels;
      await em.update(SpokeEntity, { id: row.id }, { labels });
      await this.audit.record(em, {
        actor: ctx.principal.actor,
        action: 'spoke.labels.patch',
        target: `spoke/${name}`,
        before,
        after: labels,
        details: { patch: body.labels },
        requestId: ctx.requestId,
      });
      return { ...row, labels };
    });
    await this.fleet.emit({ type: 'spokes-changed', spokes: [name] });
    return toSpokeDetailDto(updated, Date.now(), this.config.telemetryIntervalSeconds);
  }

  @Delete(':name')
  @HttpCode(204)
  @RequireRole('admin')
  @ApiOperation({ summary: 'Delete a spoke: revokes its credentials and ends its MQTT session at once' })
  async remove(@Param('name') name: string, @Ctx() ctx: RequestContext) {
    const revoked = await this.ds.transaction(async (em) => {
      const row = await em.findOne(SpokeEntity, { where: { name, revokedAt: IsNull() }, lock: { mode: 'pessimistic_write' } });
      if (!row) throw notFound('spoke', name);
      await em.update(SpokeEntity, { id: row.id }, { revokedAt: new Date(), credentialHash: null, presence: 'offline' });
      await this.audit.record(em, {
        actor: ctx.principal.actor,
        action: 'spoke.delete',
        target: `spoke/${name}`,
        before: { name, labels: row.labels },
        requestId: ctx.requestId,
      });
      return row;
    });
    try {
      await this.fleet.emit({ type: 'spoke-revoked', spoke: name, mqttUsername: revoked.mqttUsername });
    } catch (err) {
      throw new DomainError('revocation_incomplete', 502, `spoke "${name}" is revoked in the database but the broker did not confirm: ${(err as Error).message}`);
    }
  }
}
