import { Controller, Delete, Get, HttpCode, Inject, Param, Patch } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { LocationSchema } from '@flotilla/contracts';
import { z } from 'zod';
import { Ctx, RequireRole, type RequestContext } from '../auth/principal.js';
import { PageQuerySchema, toPage } from '../common/pagination.js';
import { ZodBody, ZodQuery } from '../common/zod.js';
import { HUB_CONFIG, type HubConfig } from '../config/config.js';
import { notFound } from '../errors/domain-error.js';
import { LabelSpoke } from './label-spoke.js';
import { LocateSpoke } from './locate-spoke.js';
import { RevokeSpoke } from './revoke-spoke.js';
import { SpokesRepository } from './spokes.repository.js';
import { toSpokeDetailDto, toSpokeDto } from './spoke.dto.js';

export const ListSpokesQuery = PageQuerySchema.extend({
  selector: z.string().max(4096).optional().describe('Kubernetes label selector, e.g. region=eu,gpu.product in (L40S,H100),!quarantined'),
}).strict();

/** JSON merge patch of labels (a null value removes the label) and/or the spoke's location (null clears it). */
export const PatchSpoke = z
  .object({
    labels: z.record(z.string(), z.string().nullable()).optional(),
    location: LocationSchema.nullable().optional().describe('where the spoke is, for routing: {lat, lon} in decimal degrees; null clears it'),
  })
  .strict()
  .refine((b) => b.labels !== undefined || b.location !== undefined, { message: 'give labels, location or both' });

@ApiTags('spokes')
@ApiBearerAuth()
@Controller('api/v1/spokes')
export class SpokesController {
  constructor(
    private readonly spokes: SpokesRepository,
    private readonly labelSpoke: LabelSpoke,
    private readonly revokeSpoke: RevokeSpoke,
    private readonly locateSpoke: LocateSpoke,
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
  @ApiOperation({ summary: 'Merge-patch labels (null removes a label; re-places affected workloads) and set or clear the location used by routing' })
  async patch(@Param('name') name: string, @ZodBody(PatchSpoke) body: z.infer<typeof PatchSpoke>, @Ctx() ctx: RequestContext) {
    // Labels first: they are the part that can still be refused (merged label validation); a location is already valid.
    let updated = body.labels ? await this.labelSpoke.execute(name, body.labels, ctx.principal.actor, ctx.requestId) : null;
    if (body.location !== undefined) updated = await this.locateSpoke.execute(name, body.location, ctx.principal.actor, ctx.requestId);
    return toSpokeDetailDto(updated as NonNullable<typeof updated>, Date.now(), this.config.telemetryIntervalSeconds);
  }

  @Delete(':name')
  @HttpCode(204)
  @RequireRole('admin')
  @ApiOperation({ summary: 'Delete a spoke: revokes its credentials and ends its MQTT session at once' })
  async remove(@Param('name') name: string, @Ctx() ctx: RequestContext) {
    await this.revokeSpoke.execute(name, ctx.principal.actor, ctx.requestId);
  }
}
