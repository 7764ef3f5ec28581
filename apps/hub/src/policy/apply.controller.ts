import { Controller, HttpCode, Inject, Post, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Request } from 'express';
import { z } from 'zod';
import { Ctx, RequireRole, type RequestContext } from '../auth/principal.js';
import { ZodPipe } from '../common/zod.js';
import { DomainError } from '../errors/domain-error.js';
import { ApplyPolicy } from './apply-policy.js';
import { ApplyReports } from './apply-reports.js';
import { checkOwnershipFlags } from './ownership.js';

export const ApplyQuery = z
  .object({
    dryRun: z.enum(['true', 'false']).optional().describe('true: answer with what would change and touch nothing'),
    prune: z.enum(['true', 'false']).optional().describe('true: delete the objects of `source` that the body does not contain'),
    source: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9:._/-]{0,127}$/, 'letters, digits and ":._/-"')
      .optional()
      .describe('source recorded on the objects (default api:<token name>); needed with prune; git:NAME is the git syncer\'s (admin with force only)'),
    force: z.enum(['true', 'false']).optional().describe('admin only: change or prune objects a git source owns (audited)'),
  })
  .strict();

/**
 * Several files in one request (what `flotilla apply -f DIR` sends), so that
 * every error names the file it is in rather than a line of one long body.
 */
export const ApplyFilesBody = z
  .object({
    files: z
      .array(
        z
          .object({
            file: z.string().min(1).max(1024).regex(/^[^\0\n\r]+$/, 'a file name on one line'),
            text: z.string(),
          })
          .strict(),
      )
      .max(5000),
  })
  .strict();

const isFilesBody = (body: unknown): boolean =>
  typeof body === 'object' && body !== null && !Array.isArray(body) && 'files' in body && !('apiVersion' in body) && !('kind' in body);

@ApiTags('policy')
@ApiBearerAuth()
@Controller('api/v1/apply')
export class ApplyController {
  constructor(
    @Inject(ApplyPolicy) private readonly applier: ApplyPolicy,
    @Inject(ApplyReports) private readonly reports: ApplyReports,
  ) {}

  @Post()
  @HttpCode(200)
  @RequireRole('operator')
  @ApiOperation({ summary: 'Apply policy documents (YAML, one or many, or a JSON list) all or nothing; dryRun returns the per-spoke diff and touches nothing' })
  async apply(@Req() req: Request, @Ctx() ctx: RequestContext) {
    const q = new ZodPipe(ApplyQuery, 'query string').transform(req.query);
    const prune = q.prune === 'true';
    const force = q.force === 'true';
    checkOwnershipFlags({ force, source: q.source, role: ctx.principal.role });
    if (prune && !q.source) throw new DomainError('validation_failed', 400, 'prune=true needs source=NAME: prune deletes only that source’s objects', { problems: [{ field: 'source', message: 'required with prune' }] });
    let files: { file: string; text: string }[];
    if (typeof req.body === 'string') files = [{ file: 'request', text: req.body }];
    else if (Array.isArray(req.body)) files = [{ file: 'request', text: req.body.map((d) => JSON.stringify(d)).join('\n---\n') }];
    else if (isFilesBody(req.body)) files = new ZodPipe(ApplyFilesBody, 'request body').transform(req.body).files;
    else if (req.body && typeof req.body === 'object' && Object.keys(req.body).length > 0) files = [{ file: 'request', text: JSON.stringify(req.body) }];
    else throw new DomainError('validation_failed', 400, 'empty body: send YAML (Content-Type: application/yaml) or JSON', { problems: [{ field: '', message: 'empty body' }] });
    const { spokes, ...result } = await this.applier.apply({
      files,
      dryRun: q.dryRun === 'true',
      prune,
      force,
      source: q.source ?? `api:${ctx.principal.tokenName}`,
      actor: ctx.principal.actor,
      requestId: ctx.requestId,
    });
    return { ...result, ...(await this.reports.bound(spokes, { dryRun: result.dryRun, actor: ctx.principal.actor })) };
  }
}
