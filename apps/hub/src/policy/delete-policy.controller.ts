import { Controller, Delete, HttpCode, Inject, Param, Post, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { POLICY_KINDS, type PolicyKind, readPolicyIdentities } from '@flotilla/policy';
import type { Request } from 'express';
import { z } from 'zod';
import { Ctx, RequireRole, type RequestContext } from '../auth/principal.js';
import { ZodPipe, ZodQuery } from '../common/zod.js';
import { DomainError, validationFailed } from '../errors/domain-error.js';
import { type BoundedSpokes, ApplyReports } from './apply-reports.js';
import { DeletePolicy, type DeletePolicyCommand, type DeletePolicyResult } from './delete-policy.js';
import { policyErrorDetails, shownOf } from './apply-policy.js';

export const DeleteQuery = z
  .object({
    dryRun: z.enum(['true', 'false']).optional().describe('true: answer what would be deleted and what each spoke would lose; change nothing'),
    ignoreNotFound: z.enum(['true', 'false']).optional().describe('true: objects that do not exist are listed in notFound instead of failing the request'),
    force: z.enum(['true', 'false']).optional().describe('true: also delete objects a git source owns (audited; its next commit writes them again)'),
  })
  .strict();
type DeleteQueryT = z.infer<typeof DeleteQuery>;

/** `{files: [{file, text}]}`, as apply takes it, so errors name each file. */
const FilesBody = z
  .object({
    files: z
      .array(z.object({ file: z.string().min(1).max(1024).regex(/^[^\0\n\r]+$/, 'a file name on one line'), text: z.string() }).strict())
      .max(5000),
  })
  .strict();

const isFilesBody = (body: unknown): boolean =>
  typeof body === 'object' && body !== null && !Array.isArray(body) && 'files' in body && !('apiVersion' in body) && !('kind' in body);

/** The same body shapes as POST /api/v1/apply, as files of text. */
function bodyFiles(body: unknown): { file: string; text: string }[] {
  if (typeof body === 'string') return [{ file: 'request', text: body }];
  if (Array.isArray(body)) return [{ file: 'request', text: JSON.stringify(body) }];
  if (isFilesBody(body)) return new ZodPipe(FilesBody, 'request body').transform(body).files;
  if (body && typeof body === 'object' && Object.keys(body).length > 0) return [{ file: 'request', text: JSON.stringify(body) }];
  throw validationFailed([{ field: '', message: 'empty body: send the policy documents (YAML or JSON) naming the objects to delete' }]);
}

/** `modeldeployment` and `ModelDeployment` alike, as kubectl takes kinds. */
function kindOf(text: string): PolicyKind {
  const kind = POLICY_KINDS.find((k) => k.toLowerCase() === text.toLowerCase());
  if (!kind) throw validationFailed([{ field: 'kind', message: `unknown kind "${text}"; one of ${POLICY_KINDS.join(', ')}` }], 'path');
  return kind;
}

@ApiTags('policy')
@ApiBearerAuth()
@Controller('api/v1')
@RequireRole('admin')
export class DeletePolicyController {
  constructor(
    @Inject(DeletePolicy) private readonly deleter: DeletePolicy,
    @Inject(ApplyReports) private readonly reports: ApplyReports,
  ) {}

  @Delete('policy-objects/:kind/:name')
  @HttpCode(200)
  @ApiOperation({ summary: 'Delete one policy object; 409 names the objects that still refer to it' })
  async deleteOne(@Param('kind') kind: string, @Param('name') name: string, @ZodQuery(DeleteQuery) q: DeleteQueryT, @Ctx() ctx: RequestContext) {
    return this.run({ targets: [{ kind: kindOf(kind), name }], ...this.flags(q), actor: ctx.principal.actor, requestId: ctx.requestId });
  }

  @Post('delete')
  @HttpCode(200)
  @ApiOperation({ summary: 'Delete the policy objects the documents name (kind and metadata.name; specs are not checked), all or nothing' })
  async deleteMany(@Req() req: Request, @ZodQuery(DeleteQuery) q: DeleteQueryT, @Ctx() ctx: RequestContext) {
    const files = bodyFiles(req.body);
    const { identities, errors, errorCount } = readPolicyIdentities(files);
    if (errorCount > 0) {
      const problems = policyErrorDetails(errors);
      throw new DomainError('invalid_policy', 400, `cannot tell which objects to delete: ${errorCount} problem(s)${shownOf(errorCount)}`, { problems, problemCount: errorCount });
    }
    return this.run({ targets: identities.map(({ kind, name }) => ({ kind, name })), ...this.flags(q), actor: ctx.principal.actor, requestId: ctx.requestId });
  }

  private flags(q: DeleteQueryT) {
    return { dryRun: q.dryRun === 'true', ignoreNotFound: q.ignoreNotFound === 'true', force: q.force === 'true' };
  }

  private async run(cmd: DeletePolicyCommand): Promise<Omit<DeletePolicyResult, 'spokes'> & BoundedSpokes> {
    const { spokes, ...result } = await this.deleter.execute(cmd);
    return { ...result, ...(await this.reports.bound(spokes, { dryRun: result.dryRun, actor: cmd.actor })) };
  }
}
