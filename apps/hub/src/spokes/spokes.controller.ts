import { Controller, Delete, Get, HttpCode, Inject, Param, Patch } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import { Ctx, RequireRole, type RequestContext } from '../auth/principal.js';
import { PageQuerySchema, toPage } from '../common/pagination.js';
import { ZodBody, ZodQuery } from '../common/zod.js';
import { HUB_CONFIG, type HubConfig } from '../config/config.js';
import { notFound } from '../errors/domain-error.js';
import { LabelSpoke } from './label-spoke.js';
import { RevokeSpoke } from './revoke-spoke.js';
import { SpokesRepository } from './spokes.repository.js';
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
    private readonly spokes: SpokesRepository,
    private readonly labelSpoke: LabelSpoke,
    private readonly revokeSpoke: RevokeSpoke,
    @Inject(HUB_CONFIG) private readonly config: HubConfig,
  ) {}

  @Get()
  @ApiOperation({ summary: 'List spokes, filtered by a label selector, with connection, generations and conditions' })
  async list(@ZodQuery(ListSpokesQuery) q: z.infer<typeof ListSpokesQuery>) {
    const rows = await this.spokes.page(q);
    const now = Date.now();
    return toPage(rows, q.limit, (r) => r.name, (r) => toSpokeDto(r, now, this.config.telemetryIntervalSeconds));
  }

  @Get(':name')
  @ApiOperation({ summary: 'One spoke with conditions, workloads, capacity and latest health snapshot' })
  async get(@Param('name') name: string) {
    const row = await this.spokes.findEnrolled(name);
    if (!row) throw notFound('spoke', name);
    return toSpokeDetailDto(row, Date.now(), this.config.telemetryIntervalSeconds);
  }

  @Patch(':name')
  @RequireRole('operator')
  @ApiOperation({ summary: 'Merge-patch labels (null removes a label); re-places affected workloads' })
  async patch(@Param('name') name: string, @ZodBody(PatchSpoke) body: z.infer<typeof PatchSpoke>, @Ctx() ctx: RequestContext) {
    const updated = await this.labelSpoke.execute(name, body.labels, ctx.principal.actor, ctx.requestId);
    return toSpokeDetailDto(updated, Date.now(), this.config.telemetryIntervalSeconds);
  }

  @Delete(':name')
  @HttpCode(204)
  @RequireRole('admin')
  @ApiOperation({ summary: 'Delete a spoke: revokes its credentials and ends its MQTT session at once' })
  async remove(@Param('name') name: string, @Ctx() ctx: RequestContext) {
    await this.revokeSpoke.execute(name, ctx.principal.actor, ctx.requestId);
  }
}
