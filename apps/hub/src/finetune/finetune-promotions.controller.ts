import { Controller, HttpCode, Inject, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import { Ctx, RequireRole, type RequestContext } from '../auth/principal.js';
import { ZodBody } from '../common/zod.js';
import { PromoteProducedVersion } from './promote-produced-version.js';

export const PromoteJobBody = z
  .object({
    spoke: z
      .string()
      .min(1)
      .max(63)
      .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a spoke name')
      .describe('the spoke whose produced version is promoted (only there)'),
  })
  .strict();

/** Manual promotion of fine-tuned versions (issue 13, deliverable 7). */
@ApiTags('policy')
@ApiBearerAuth()
@Controller('api/v1/finetune-jobs')
export class FineTunePromotionsController {
  constructor(@Inject(PromoteProducedVersion) private readonly promote: PromoteProducedVersion) {}

  @Post(':name/promote')
  @HttpCode(200)
  @RequireRole('operator')
  @ApiOperation({
    summary:
      'Serve, on one spoke only, the version the job produced there and that passed its evaluation gate, for every deployment of the job’s output model on that spoke (watched, and rolled back if it fails readiness or its error-ratio gate)',
  })
  async create(@Param('name') name: string, @ZodBody(PromoteJobBody) body: z.infer<typeof PromoteJobBody>, @Ctx() ctx: RequestContext) {
    return this.promote.execute(name, body.spoke, ctx.principal.actor, ctx.requestId || null);
  }
}
