import { Controller, Delete, Get, HttpCode, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { DataSource, MoreThan } from 'typeorm';
import { z } from 'zod';
import { AuditService } from '../audit/audit.service.js';
import { Ctx, RequireRole, type RequestContext } from '../auth/principal.js';
import { PageQuerySchema, decodeCursor, toPage } from '../common/pagination.js';
import { hashSecret, newSecret, secretPrefix } from '../common/secrets.js';
import { ZodBody, ZodQuery } from '../common/zod.js';
import { ApiTokenEntity } from '../database/entities/api-token.entity.js';
import { conflict, notFound } from '../errors/domain-error.js';

export const CreateApiToken = z
  .object({
    name: z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'lower-case letters, digits, "-" and "."').max(63),
    role: z.enum(['viewer', 'operator', 'admin']),
    expiresInSeconds: z.number().int().min(60).max(10 * 365 * 86400).optional(),
  })
  .strict();

const toDto = (t: ApiTokenEntity) => ({
  id: t.id,
  name: t.name,
  role: t.role,
  tokenPrefix: t.tokenPrefix,
  createdBy: t.createdBy,
  createdAt: t.createdAt.toISOString(),
  lastUsedAt: t.lastUsedAt?.toISOString() ?? null,
  expiresAt: t.expiresAt?.toISOString() ?? null,
});

@ApiTags('api-tokens')
@ApiBearerAuth()
@Controller('api/v1/api-tokens')
@RequireRole('admin')
export class ApiTokensController {
  constructor(
    private readonly ds: DataSource,
    private readonly audit: AuditService,
  ) {}

  @Post()
  @ApiOperation({ summary: 'Create an API token; its secret is in this response only' })
  async create(@ZodBody(CreateApiToken) body: z.infer<typeof CreateApiToken>, @Ctx() ctx: RequestContext) {
    const token = newSecret('flt');
    const saved = await this.ds.transaction(async (em) => {
      if (await em.exists(ApiTokenEntity, { where: { name: body.name } })) {
        throw conflict('api_token_exists', `an API token named "${body.name}" exists`, { name: body.name });
      }
      const row = em.create(ApiTokenEntity, {
        name: body.name,
        role: body.role,
        tokenHash: hashSecret(token),
        tokenPrefix: secretPrefix(token),
        createdBy: ctx.principal.actor,
        expiresAt: body.expiresInSeconds ? new Date(Date.now() + body.expiresInSeconds * 1000) : null,
      });
      await em.save(row);
      await this.audit.record(em, {
        actor: ctx.principal.actor,
        action: 'api-token.create',
        target: `api-token/${body.name}`,
        after: { name: body.name, role: body.role },
        requestId: ctx.requestId,
      });
      return row;
    });
    return { ...toDto(saved), token };
  }

  @Get()
  @ApiOperation({ summary: 'List API tokens (never their secrets)' })
  async list(@ZodQuery(PageQuerySchema) q: z.infer<typeof PageQuerySchema>) {
    const after = decodeCursor(q.cursor);
    const rows = await this.ds.getRepository(ApiTokenEntity).find({
      where: after ? { name: MoreThan(after) } : {},
      order: { name: 'ASC' },
      take: q.limit + 1,
    });
    return toPage(rows, q.limit, (r) => r.name, toDto);
  }

  @Delete(':name')
  @HttpCode(204)
  @ApiOperation({ summary: 'Revoke an API token at once' })
  async remove(@Param('name') name: string, @Ctx() ctx: RequestContext) {
    await this.ds.transaction(async (em) => {
      const row = await em.findOne(ApiTokenEntity, { where: { name } });
      if (!row) throw notFound('API token', name);
      await em.delete(ApiTokenEntity, { id: row.id });
      await this.audit.record(em, {
        actor: ctx.principal.actor,
        action: 'api-token.delete',
        target: `api-token/${name}`,
        before: { name: row.name, role: row.role },
        requestId: ctx.requestId,
      });
    });
  }
}
