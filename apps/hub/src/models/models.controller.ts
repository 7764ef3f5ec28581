import { Controller, Get, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { ArtifactUriSchema, DigestSchema, LineageSchema, ModelRefSchema, ObjectNameSchema } from '@flotilla/contracts';
import { DataSource, MoreThan, QueryFailedError } from 'typeorm';
import { z } from 'zod';
import { AuditService } from '../audit/audit.service.js';
import { Ctx, RequireRole, type RequestContext } from '../auth/principal.js';
import { LabelsSchema } from '../common/labels.js';
import { PageQuerySchema, decodeCursor, toPage } from '../common/pagination.js';
import { ZodBody, ZodQuery } from '../common/zod.js';
import { ModelVersionEntity } from '../database/entities/model-version.entity.js';
import { ModelEntity } from '../database/entities/model.entity.js';
import { conflict, notFound } from '../errors/domain-error.js';
import { FleetTriggers } from '../controllers/fleet-triggers.js';
import { RegisterModelVersion } from './register-model-version.js';

export const CreateModel = z
  .object({
    name: ObjectNameSchema,
    task: z.string().max(128).optional(),
    description: z.string().max(4096).optional(),
    labels: LabelsSchema.optional(),
  })
  .strict();

export const CreateVersion = z
  .object({
    version: z.string().min(1).max(128).regex(/^[A-Za-z0-9][A-Za-z0-9._+-]*$/, 'letters, digits, ".", "_", "+", "-"'),
    digest: DigestSchema,
    uri: ArtifactUriSchema,
    format: ModelRefSchema.shape.format,
    sizeBytes: z.number().int().nonnegative().optional(),
    lineage: LineageSchema.optional(),
  })
  .strict();

const modelDto = (m: ModelEntity) => ({
  name: m.name,
  task: m.task,
  description: m.description,
  labels: m.labels,
  source: m.source,
  createdAt: m.createdAt.toISOString(),
  updatedAt: m.updatedAt.toISOString(),
});

const versionDto = (model: string, v: ModelVersionEntity) => ({
  model,
  version: v.version,
  digest: v.digest,
  uri: v.uri,
  format: v.format,
  sizeBytes: v.sizeBytes === null ? null : Number(v.sizeBytes),
  lineage: v.lineage,
  source: v.source,
  createdAt: v.createdAt.toISOString(),
});

const isUniqueViolation = (err: unknown) => err instanceof QueryFailedError && (err.driverError as { code?: string })?.code === '23505';

@ApiTags('models')
@ApiBearerAuth()
@Controller('api/v1/models')
export class ModelsController {
  constructor(
    private readonly ds: DataSource,
    private readonly audit: AuditService,
    private readonly fleet: FleetTriggers,
    private readonly register: RegisterModelVersion,
  ) {}

  @Post()
  @RequireRole('operator')
  @ApiOperation({ summary: 'Register a model' })
  async create(@ZodBody(CreateModel) body: z.infer<typeof CreateModel>, @Ctx() ctx: RequestContext) {
    try {
      const row = await this.ds.transaction(async (em) => {
        const r = em.create(ModelEntity, {
          name: body.name,
          task: body.task ?? null,
          description: body.description ?? '',
          labels: body.labels ?? {},
          source: `api:${ctx.principal.tokenName}`,
        });
        await em.insert(ModelEntity, r);
        await this.audit.record(em, { actor: ctx.principal.actor, action: 'model.create', target: `model/${body.name}`, after: body, requestId: ctx.requestId });
        return r;
      });
      return modelDto(row);
    } catch (err) {
      if (isUniqueViolation(err)) throw conflict('model_exists', `model "${body.name}" exists`, { name: body.name });
      throw err;
    }
  }

  @Get()
  @ApiOperation({ summary: 'List models' })
  async list(@ZodQuery(PageQuerySchema) q: z.infer<typeof PageQuerySchema>) {
    const after = decodeCursor(q.cursor);
    const rows = await this.ds.getRepository(ModelEntity).find({ where: after ? { name: MoreThan(after) } : {}, order: { name: 'ASC' }, take: q.limit + 1 });
    return toPage(rows, q.limit, (r) => r.name, modelDto);
  }

  @Get(':name')
  @ApiOperation({ summary: 'One model with its versions (newest first, up to 100)' })
  async get(@Param('name') name: string) {
    const m = await this.ds.getRepository(ModelEntity).findOne({ where: { name } });
    if (!m) throw notFound('model', name);
    const versions = await this.ds.getRepository(ModelVersionEntity).find({ where: { modelId: m.id }, order: { createdAt: 'DESC' }, take: 100 });
    return { ...modelDto(m), versions: versions.map((v) => versionDto(name, v)) };
  }

  @Get(':name/versions')
  @ApiOperation({ summary: 'List the versions of a model' })
  async versions(@Param('name') name: string, @ZodQuery(PageQuerySchema) q: z.infer<typeof PageQuerySchema>) {
    const m = await this.ds.getRepository(ModelEntity).findOne({ where: { name } });
    if (!m) throw notFound('model', name);
    const after = decodeCursor(q.cursor);
    const rows = await this.ds.getRepository(ModelVersionEntity).find({
      where: after ? { modelId: m.id, version: MoreThan(after) } : { modelId: m.id },
      order: { version: 'ASC' },
      take: q.limit + 1,
    });
    return toPage(rows, q.limit, (r) => r.version, (v) => versionDto(name, v));
  }

  @Get(':name/versions/:version')
  @ApiOperation({ summary: 'One model version with its lineage' })
  async version(@Param('name') name: string, @Param('version') version: string) {
    const m = await this.ds.getRepository(ModelEntity).findOne({ where: { name } });
    if (!m) throw notFound('model', name);
    const v = await this.ds.getRepository(ModelVersionEntity).findOne({ where: { modelId: m.id, version } });
    if (!v) throw notFound('model version', `${name} ${version}`);
    return versionDto(name, v);
  }

  @Post(':name/versions')
  @RequireRole('operator')
  @ApiOperation({ summary: 'Register an immutable, content-addressed model version' })
  async addVersion(@Param('name') name: string, @ZodBody(CreateVersion) body: z.infer<typeof CreateVersion>, @Ctx() ctx: RequestContext) {
    const { row, created } = await this.ds.transaction((em) =>
      this.register.execute(em, { model: name, ...body }, { actor: ctx.principal.actor, source: `api:${ctx.principal.tokenName}`, requestId: ctx.requestId }),
    );
    if (!created) {
      throw conflict('model_version_exists', `model "${name}" already has version "${body.version}" (the same artifact); versions are immutable`, {
        model: name,
        version: body.version,
        registeredDigest: row.digest,
      });
    }
    // A deployment stalled on this version can render now.
    this.fleet.renderFleet();
    return versionDto(name, row);
  }
}
