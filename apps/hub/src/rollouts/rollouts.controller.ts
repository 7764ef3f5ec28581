import { Controller, Get, HttpCode, Inject, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { RolloutView } from '@flotilla/contracts';
import { DataSource } from 'typeorm';
import { Ctx, RequireRole, type RequestContext } from '../auth/principal.js';
import { notFound } from '../errors/domain-error.js';
import { ControlRollout, type RolloutAction } from './control-rollout.js';
import { RolloutStore } from './rollout-store.js';
import { loadRolloutView } from './rollout-view.js';

/** Rollout state and operator control (DESIGN.md section 11). */
@ApiTags('rollouts')
@ApiBearerAuth()
@Controller('api/v1/rollouts')
export class RolloutsController {
  constructor(
    @Inject(DataSource) private readonly ds: DataSource,
    @Inject(RolloutStore) private readonly store: RolloutStore,
    @Inject(ControlRollout) private readonly control: ControlRollout,
  ) {}

  @Get(':deployment')
  @ApiOperation({ summary: 'A deployment’s current rollout: phase, waves, each spoke’s state with every gate’s measured value against its threshold, and why it stopped' })
  async get(@Param('deployment') deployment: string): Promise<RolloutView> {
    const view = await loadRolloutView(this.ds.manager, this.store, deployment);
    if (!view) throw notFound('rollout', deployment);
    return view;
  }

  @Post(':deployment/pause')
  @HttpCode(200)
  @RequireRole('operator')
  @ApiOperation({ summary: 'Hold the next wave (spokes already in a wave finish it)' })
  pause(@Param('deployment') deployment: string, @Ctx() ctx: RequestContext) {
    return this.act(deployment, 'pause', ctx);
  }

  @Post(':deployment/resume')
  @HttpCode(200)
  @RequireRole('operator')
  @ApiOperation({ summary: 'Let a paused rollout start its next wave' })
  resume(@Param('deployment') deployment: string, @Ctx() ctx: RequestContext) {
    return this.act(deployment, 'resume', ctx);
  }

  @Post(':deployment/abort')
  @HttpCode(200)
  @RequireRole('operator')
  @ApiOperation({ summary: 'Stop the rollout and roll every spoke it moved back to the previous version, gated like the way forward' })
  abort(@Param('deployment') deployment: string, @Ctx() ctx: RequestContext) {
    return this.act(deployment, 'abort', ctx);
  }

  @Post(':deployment/undo')
  @HttpCode(200)
  @RequireRole('operator')
  @ApiOperation({ summary: 'Roll a succeeded (or running) rollout back to the previous version on every spoke it moved' })
  undo(@Param('deployment') deployment: string, @Ctx() ctx: RequestContext) {
    return this.act(deployment, 'undo', ctx);
  }

  private act(deployment: string, action: RolloutAction, ctx: RequestContext): Promise<RolloutView> {
    return this.control.execute(deployment, action, ctx.principal.actor, ctx.requestId || null);
  }
}
