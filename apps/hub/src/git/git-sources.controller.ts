import { Controller, Delete, Get, HttpCode, Inject, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { DataSource, type EntityManager, MoreThan, QueryFailedError } from 'typeorm';
import { z } from 'zod';
import { AuditService } from '../audit/audit.service.js';
import { Ctx, RequireRole, type RequestContext } from '../auth/principal.js';
import { PageQuerySchema, decodeCursor, toPage } from '../common/pagination.js';
import { ZodBody, ZodQuery } from '../common/zod.js';
import { GitSourceEntity } from '../database/entities/git-source.entity.js';
import { DomainError, conflict, notFound } from '../errors/domain-error.js';
import { ApplyPolicy } from '../policy/apply-policy.js';
import { type CreateGitSource, CreateGitSourceSchema, toGitSourceDto } from './git-source.dto.js';
import { GitSyncer } from './git-syncer.js';
import { redactUrl } from './policy-repository.js';

export const DeleteQuery = z
  .object({
    keepObjects: z.enum(['true', 'false']).optional().describe('true: leave the source’s policy objects in place (default: delete them with the source)'),
  })
  .strict();

const isUniqueViolation = (err: unknown) => err instanceof QueryFailedError && (err.driverError as { code?: string })?.code === '23505';
const sourceOf = (name: string) => `git:${name}`;

@ApiTags('git-sources')
@ApiBearerAuth()
@Controller('api/v1/git-sources')
export class GitSourcesController {
  constructor(
    @Inject(DataSource) private readonly ds: DataSource,
    @Inject(AuditService) private readonly audit: AuditService,
    @Inject(ApplyPolicy) private readonly applier: ApplyPolicy,
    @Inject(GitSyncer) private readonly syncer: GitSyncer,
  ) {}

  private async objectCounts(names: string[]): Promise<Map<string, number>> {
    if (names.length === 0) return new Map();
    const rows: { source: string; n: string }[] = await this.ds.query(
      'SELECT source, count(*) AS n FROM policy_objects WHERE source = ANY($1) GROUP BY source',
      [names.map(sourceOf)],
    );
    return new Map(rows.map((r) => [r.source.slice('git:'.length), Number(r.n)]));
  }

  private async dto(row: GitSourceEntity) {
    return toGitSourceDto(row, (await this.objectCounts([row.name])).get(row.name) ?? 0);
  }

  @Post()
  @RequireRole('admin')
  @ApiOperation({
    summary:
      'Follow a policy repository: the hub fetches the branch every intervalSeconds and applies the files under path (prune, all or nothing). Admin only, since it makes the hub read a URL.',
  })
  async create(@ZodBody(CreateGitSourceSchema) body: CreateGitSource, @Ctx() ctx: RequestContext) {
    let row: GitSourceEntity;
    try {
      row = await this.ds.transaction(async (em) => {
        const r = em.create(GitSourceEntity, { name: body.name, url: body.url, branch: body.branch, path: body.path, intervalSeconds: body.intervalSeconds });
        await em.save(r);
        await this.audit.record(em, {
          actor: ctx.principal.actor,
          action: 'git-source.create',
          target: `git-source/${body.name}`,
          after: { ...body, url: redactUrl(body.url) },
          requestId: ctx.requestId,
        });
        return r;
      });
    } catch (err) {
      if (isUniqueViolation(err)) throw conflict('git_source_exists', `git source "${body.name}" exists`, { name: body.name });
      throw err;
    }
    this.syncer.follow(row.name);
    return this.dto(row);
  }

  @Get()
  @ApiOperation({ summary: 'Git sources with their last applied commit, last sync and last error' })
  async list(@ZodQuery(PageQuerySchema) q: z.infer<typeof PageQuerySchema>) {
    const after = decodeCursor(q.cursor);
    const rows = await this.ds.getRepository(GitSourceEntity).find({ where: after ? { name: MoreThan(after) } : {}, order: { name: 'ASC' }, take: q.limit + 1 });
    const counts = await this.objectCounts(rows.map((r) => r.name));
    return toPage(rows, q.limit, (r) => r.name, (r) => toGitSourceDto(r, counts.get(r.name) ?? 0));
  }

  @Get(':name')
  @ApiOperation({ summary: 'One git source: last applied commit, last sync, and the last error with each problem’s file and line' })
  async get(@Param('name') name: string) {
    const row = await this.ds.getRepository(GitSourceEntity).findOne({ where: { name } });
    if (!row) throw notFound('git source', name);
    return this.dto(row);
  }

  @Post(':name/sync')
  @HttpCode(200)
  @RequireRole('operator')
  @ApiOperation({
    summary: 'Fetch and apply the source now (even if its head has not moved) and answer with the outcome: applied, unchanged or failed (with the error)',
  })
  async sync(@Param('name') name: string, @Ctx() ctx: RequestContext) {
    await this.ds.transaction(async (em) => {
      const row = await em.findOne(GitSourceEntity, { where: { name } });
      if (!row) throw notFound('git source', name);
      await this.audit.record(em, { actor: ctx.principal.actor, action: 'git-source.sync-request', target: `git-source/${name}`, requestId: ctx.requestId });
    });
    const outcome = await this.syncer.syncNow(name);
    if (outcome.outcome === 'gone') throw notFound('git source', name);
    const row = await this.ds.getRepository(GitSourceEntity).findOne({ where: { name } });
    if (!row) throw notFound('git source', name);
    return { ...outcome, gitSource: await this.dto(row) };
  }

  @Delete(':name')
  @HttpCode(200)
  @RequireRole('admin')
  @ApiOperation({
    summary:
      'Stop following a git source and delete the policy objects it wrote, in one transaction (refused with 409 while other objects refer to them); keepObjects=true leaves the objects',
  })
  async remove(@Param('name') name: string, @ZodQuery(DeleteQuery) q: z.infer<typeof DeleteQuery>, @Ctx() ctx: RequestContext) {
    const existing = await this.ds.getRepository(GitSourceEntity).findOne({ where: { name } });
    if (!existing) throw notFound('git source', name);
    // No sync of it may run (and re-create objects) while it is deleted.
    await this.syncer.forget(name);
    const deleteRow = async (em: EntityManager) => {
      const row = await em.findOne(GitSourceEntity, { where: { name }, lock: { mode: 'pessimistic_write' } });
      if (!row) throw notFound('git source', name);
      await em.delete(GitSourceEntity, { id: row.id });
      await this.audit.record(em, {
        actor: ctx.principal.actor,
        action: 'git-source.delete',
        target: `git-source/${name}`,
        before: { name, url: redactUrl(row.url), branch: row.branch, path: row.path, lastCommit: row.lastCommit },
        details: { keepObjects: q.keepObjects === 'true' },
        requestId: ctx.requestId,
      });
    };
    try {
      if (q.keepObjects === 'true') {
        await this.ds.transaction(deleteRow);
        return { deleted: name, objects: [], spokes: [] };
      }
      const result = await this.applier.apply({
        files: [],
        dryRun: false,
        prune: true,
        source: sourceOf(name),
        commit: null,
        actor: ctx.principal.actor,
        requestId: ctx.requestId,
        onWritten: (em) => deleteRow(em),
      });
      return { deleted: name, objects: result.objects, spokes: result.spokes };
    } catch (err) {
      // Still there: follow it again.
      this.syncer.follow(name, { syncSoon: false });
      if (err instanceof DomainError && err.code === 'invalid_policy') {
        throw conflict('git_source_objects_in_use', `git source "${name}" not deleted: other objects refer to objects it wrote. ${err.message}`, err.details);
      }
      throw err;
    }
  }
}
