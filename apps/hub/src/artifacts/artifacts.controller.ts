import { Controller, Get, Inject, Param, Put, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { pipeline } from 'node:stream/promises';
import type { Request, Response } from 'express';
import { DataSource } from 'typeorm';
import { Ctx, RequireRole, SpokeAccess, type RequestContext } from '../auth/principal.js';
import { DomainError, forbidden, notFound } from '../errors/domain-error.js';
import { ARTIFACT_STORE } from './artifacts.tokens.js';
import type { ArtifactStore } from './artifact-store.js';
import { UploadProducedArtifact } from './upload-produced-artifact.js';

const HEX = /^[a-f0-9]{64}$/;

/** `bytes=N-` (what the agent's resume sends); any other range is answered whole. */
function rangeStart(header: string | undefined, ifRange: string | undefined, etag: string): number {
  if (!header) return 0;
  if (ifRange !== undefined && ifRange !== etag) return 0;
  const m = /^bytes=(\d+)-$/.exec(header.trim());
  return m ? Number(m[1]) : 0;
}

@ApiTags('artifacts')
@ApiBearerAuth()
@Controller('api/v1')
export class ArtifactsController {
  constructor(
    private readonly ds: DataSource,
    private readonly upload: UploadProducedArtifact,
    @Inject(ARTIFACT_STORE) private readonly store: ArtifactStore,
  ) {}

  @Put('finetune-jobs/:name/artifacts/:version')
  @SpokeAccess('only')
  @ApiOperation({ summary: "Upload the model a spoke's fine-tuning run produced to the hub's artifact store (the spoke's own credentials)" })
  async put(@Param('name') name: string, @Param('version') version: string, @Req() req: Request, @Ctx() ctx: RequestContext) {
    const spoke = ctx.principal.spoke;
    if (!spoke) throw forbidden('only a spoke may upload', { required: 'spoke' });
    const digest = req.headers['x-flotilla-digest'];
    const length = req.headers['content-length'];
    try {
      return await this.upload.execute({
        spoke,
        job: name,
        version,
        digest: typeof digest === 'string' ? digest.trim() : '',
        length: length !== undefined && /^\d+$/.test(length) ? Number(length) : null,
        body: req,
        requestId: ctx.requestId || null,
      });
    } catch (err) {
      // Refused before (or while) reading: the rest of the body is not wanted, nor is the connection.
      if (!req.readableEnded) req.res?.setHeader('Connection', 'close');
      throw err;
    }
  }

  @Get('artifacts/sha256/:hex')
  @SpokeAccess('also')
  @RequireRole('admin')
  @ApiOperation({ summary: "Download an artifact from the hub's store (spokes whose desired state uses it, or admins)" })
  async get(@Param('hex') hex: string, @Req() req: Request, @Res() res: Response, @Ctx() ctx: RequestContext): Promise<void> {
    if (!HEX.test(hex)) throw notFound('artifact', `sha256:${hex}`);
    const spoke = ctx.principal.spoke;
    if (spoke && !(await this.spokeUses(spoke, `sha256:${hex}`))) {
      throw forbidden(`spoke ${spoke} is given no model version with digest sha256:${hex}; a spoke downloads only what its desired state uses`, { spoke });
    }
    const found = await this.store.stat(hex);
    if (!found) throw notFound('artifact', `sha256:${hex}`);
    const etag = `"sha256:${hex}"`;
    const ifRange = req.headers['if-range'];
    const start = rangeStart(req.headers.range, typeof ifRange === 'string' ? ifRange : undefined, etag);
    if (start >= found.sizeBytes && start > 0) throw new DomainError('range_not_satisfiable', 416, `the artifact has ${found.sizeBytes} bytes`);
    const body = await this.store.read(hex, start);
    res.status(start > 0 ? 206 : 200);
    res.setHeader('Content-Type', 'application/octet-stream');
    res.setHeader('Content-Length', String(found.sizeBytes - start));
    res.setHeader('ETag', etag);
    res.setHeader('X-Flotilla-Digest', `sha256:${hex}`);
    res.setHeader('Accept-Ranges', 'bytes');
    if (start > 0) res.setHeader('Content-Range', `bytes ${start}-${found.sizeBytes - 1}/${found.sizeBytes}`);
    await pipeline(body, res).catch(() => res.destroy());
  }

  /** Whether a deployment or a job base model in the spoke's desired state has this digest. */
  private async spokeUses(spoke: string, digest: string): Promise<boolean> {
    const rows: unknown[] = await this.ds.query(
      `SELECT 1 FROM desired_states d JOIN spokes s ON s.id = d.spoke_id
       WHERE s.name = $1 AND s.revoked_at IS NULL AND (
         EXISTS (SELECT 1 FROM jsonb_array_elements(d.payload->'deployments') x WHERE x->'model'->>'digest' = $2)
         OR EXISTS (SELECT 1 FROM jsonb_array_elements(d.payload->'fineTuneJobs') x WHERE x->'baseModel'->>'digest' = $2))`,
      [spoke, digest],
    );
    return rows.length > 0;
  }
}
