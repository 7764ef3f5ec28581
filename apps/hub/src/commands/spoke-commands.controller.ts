import { Controller, Get, HttpCode, Inject, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import { DataSource } from 'typeorm';
import { Ctx, RequireRole, type RequestContext } from '../auth/principal.js';
import { ZodBody } from '../common/zod.js';
import { notFound } from '../errors/domain-error.js';
import { SendSpokeCommand, SpokeCommandStore, toSpokeCommandDto } from './spoke-commands.js';

const DEPLOYMENT_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export const CreateSpokeCommand = z
  .object({
    type: z.enum(['resync', 'diagnostics', 'restart']).describe('resync: reconcile and report now; diagnostics: a bounded bundle of state and recent workload logs; restart: restart one deployment'),
    target: z.string().max(63).regex(DEPLOYMENT_NAME, 'must be a deployment name').optional().describe('the deployment to restart (restart only)'),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.type === 'restart' && c.target === undefined) ctx.addIssue({ code: 'custom', path: ['target'], message: 'restart needs the deployment to restart' });
    if (c.type !== 'restart' && c.target !== undefined) ctx.addIssue({ code: 'custom', path: ['target'], message: `${c.type} takes no target` });
  });

/** One-shot commands to an agent, delivered on its commands topic; results arrive as events. */
@ApiTags('spokes')
@ApiBearerAuth()
@Controller('api/v1/spokes/:name/commands')
export class SpokeCommandsController {
  constructor(
    @Inject(DataSource) private readonly ds: DataSource,
    @Inject(SpokeCommandStore) private readonly store: SpokeCommandStore,
    @Inject(SendSpokeCommand) private readonly send: SendSpokeCommand,
  ) {}

  @Post()
  @HttpCode(202)
  @RequireRole('operator')
  @ApiOperation({ summary: 'Send the agent a command (resync, diagnostics, restart of one deployment); its result is shown by GET …/commands/{id}' })
  async create(@Param('name') name: string, @ZodBody(CreateSpokeCommand) body: z.infer<typeof CreateSpokeCommand>, @Ctx() ctx: RequestContext) {
    return this.send.execute(name, body.type, body.target, ctx.principal.actor, ctx.requestId || null);
  }

  @Get(':id')
  @ApiOperation({ summary: 'A command and its outcome: Queued, Sent, Succeeded or Failed, with the result the agent sent' })
  async get(@Param('name') name: string, @Param('id') id: string) {
    const c = await this.store.one(this.ds.manager, name, id);
    if (!c) throw notFound('command', id);
    return toSpokeCommandDto(c);
  }
}
