import { Controller, Delete, Get, HttpCode, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import { Ctx, RequireRole, type RequestContext } from '../auth/principal.js';
import { PageQuerySchema, toPage } from '../common/pagination.js';
import { ZodBody, ZodQuery } from '../common/zod.js';
import type { ApiTokenEntity } from '../database/entities/api-token.entity.js';
import { ApiTokens } from './api-tokens.js';
import { RotateApiToken } from './rotate-api-token.js';

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
    private readonly tokens: ApiTokens,
    private readonly rotation: RotateApiToken,
  ) {}

  @Post()
  @ApiOperation({ summary: 'Create an API token; its secret is in this response only' })
  async create(@ZodBody(CreateApiToken) body: z.infer<typeof CreateApiToken>, @Ctx() ctx: RequestContext) {
    const { row: saved, token } = await this.tokens.issue({ ...body, actor: ctx.principal.actor, requestId: ctx.requestId });
    return { ...toDto(saved), token };
  }

  @Get()
  @ApiOperation({ summary: 'List API tokens (never their secrets)' })
  async list(@ZodQuery(PageQuerySchema) q: z.infer<typeof PageQuerySchema>) {
    const rows = await this.tokens.page(q);
    return toPage(rows, q.limit, (r) => r.name, toDto);
  }

  @Post(':name/rotate')
  @HttpCode(200)
  @ApiOperation({ summary: 'Replace an API token\'s secret (bootstrap-admin included); the new secret is in this response only' })
  async rotate(@Param('name') name: string, @Ctx() ctx: RequestContext) {
    const { row, token } = await this.rotation.execute(name, ctx.principal.actor, ctx.requestId);
    return { ...toDto(row), token };
  }

  @Delete(':name')
  @HttpCode(204)
  @ApiOperation({ summary: 'Revoke an API token at once' })
  async remove(@Param('name') name: string, @Ctx() ctx: RequestContext) {
    await this.tokens.revoke(name, ctx.principal.actor, ctx.requestId);
  }
}
