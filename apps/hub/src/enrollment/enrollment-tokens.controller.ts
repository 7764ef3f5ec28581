import { Controller, Delete, Get, HttpCode, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { DataSource, LessThan } from 'typeorm';
import { z } from 'zod';
import { AuditService } from '../audit/audit.service.js';
import { Ctx, RequireRole, type RequestContext } from '../auth/principal.js';
import { LabelsSchema } from '../common/labels.js';
import { PageQuerySchema, decodeCursor, toPage } from '../common/pagination.js';
import { ZodBody, ZodQuery } from '../common/zod.js';
import { EnrollmentTokenEntity } from '../database/entities/enrollment-token.entity.js';
import { notFound } from '../errors/domain-error.js';
import { IssueEnrollmentToken } from './issue-enrollment-token.js';

export const CreateEnrollmentToken = z
  .object({
    labels: LabelsSchema.optional(),
    uses: z.number().int().min(1).max(100_000).default(1),
    expiresInSeconds: z.number().int().min(60).max(30 * 86400).default(3600),
  })
  .strict();

const toDto = (t: EnrollmentTokenEntity) => ({
  id: t.id,
  tokenPrefix: t.tokenPrefix,
  labels: t.labels,
  usesTotal: t.usesTotal,
  usesLeft: t.usesLeft,
  expiresAt: t.expiresAt.toISOString(),
  createdBy: t.createdBy,
  createdAt: t.createdAt.toISOString(),
});

@ApiTags('enrollment-tokens')
@ApiBearerAuth()
@Controller('api/v1/enrollment-tokens')
@RequireRole('admin')
export class EnrollmentTokensController {
  constructor(
    private readonly ds: DataSource,
    private readonly audit: AuditService,
    private readonly issueToken: IssueEnrollmentToken,
  ) {}

  @Post()
  @ApiOperation({ summary: 'Create an N-use, expiring enrolment token; its secret is in this response only' })
  async create(@ZodBody(CreateEnrollmentToken) body: z.infer<typeof CreateEnrollmentToken>, @Ctx() ctx: RequestContext) {
    const { row, token } = await this.issueToken.execute({
      labels: body.labels ?? {},
      uses: body.uses,
      expiresInSeconds: body.expiresInSeconds,
      actor: ctx.principal.actor,
      requestId: ctx.requestId,
    });
    return { ...toDto(row), token };
  }

  @Get()
  @ApiOperation({ summary: 'List enrolment tokens, newest first (never their secrets)' })
  async list(@ZodQuery(PageQuerySchema) q: z.infer<typeof PageQuerySchema>) {
    const after = decodeCursor(q.cursor, 'timestamp');
    const rows = await this.ds.getRepository(EnrollmentTokenEntity).find({
      where: after ? { createdAt: LessThan(new Date(after)) } : {},
      order: { createdAt: 'DESC' },
      take: q.limit + 1,
    });
    return toPage(rows, q.limit, (r) => r.createdAt.toISOString(), toDto);
  }

  @Delete(':id')
  @HttpCode(204)
  @ApiOperation({ summary: 'Revoke an enrolment token' })
  async remove(@Param('id') id: string, @Ctx() ctx: RequestContext) {
    if (!/^[0-9a-f-]{36}$/.test(id)) throw notFound('enrolment token', id);
    await this.ds.transaction(async (em) => {
      const row = await em.findOne(EnrollmentTokenEntity, { where: { id } });
      if (!row) throw notFound('enrolment token', id);
      await em.delete(EnrollmentTokenEntity, { id });
      await this.audit.record(em, {
        actor: ctx.principal.actor,
        action: 'enrollment-token.delete',
        target: `enrollment-token/${id}`,
        before: toDto(row),
        requestId: ctx.requestId,
      });
    });
  }
}
