import type { Readable } from 'node:stream';
import { hubArtifactUri, type DesiredFineTuneJob } from '@flotilla/contracts';
import type { DataSource } from 'typeorm';
import type { AuditService } from '../audit/audit.service.js';
import { DomainError, forbidden } from '../errors/domain-error.js';
import { expectedProducedVersion } from '../finetune/register-produced-versions.js';
import type { ArtifactStore } from './artifact-store.js';
import { payloadTooLarge, receiveArtifact } from './receive-artifact.js';

export interface UploadRequest {
  spoke: string;
  job: string;
  version: string;
  /** `sha256:<hex>` the uploader declares (X-Flotilla-Digest). */
  digest: string;
  /** Content-Length, when sent. */
  length: number | null;
  body: Readable;
  requestId: string | null;
}

export interface UploadResult {
  job: string;
  spoke: string;
  version: string;
  digest: string;
  sizeBytes: number;
  uri: string;
  created: boolean;
}

/**
 * A spoke hands the hub the model its fine-tuning run produced
 * (output.artifact: upload). Least privilege: only for a job in the spoke's
 * own desired state whose output is `upload`, only under the version name
 * the naming rule gives that spoke and that digest (so a spoke can neither
 * upload for another spoke's job nor plant a version it did not produce),
 * only up to the size limit; the bytes are streamed to a staging file,
 * hashed on the way, and stored content-addressed only when they have the
 * declared digest. Audited.
 */
export class UploadProducedArtifact {
  constructor(
    private readonly ds: DataSource,
    private readonly store: ArtifactStore,
    private readonly audit: AuditService,
    private readonly limit: number,
  ) {}

  async execute(r: UploadRequest): Promise<UploadResult> {
    const m = /^sha256:([a-f0-9]{64})$/.exec(r.digest);
    if (!m) throw new DomainError('validation_failed', 400, 'invalid request: X-Flotilla-Digest must be "sha256:" followed by 64 lower-case hex digits', { problems: [{ field: 'X-Flotilla-Digest', message: 'must be sha256:<64 hex>' }] });
    const hex = m[1] as string;
    if (r.length !== null && r.length > this.limit) throw payloadTooLarge(this.limit);
    const rows: { job: DesiredFineTuneJob }[] = await this.ds.query(
      `SELECT x AS job FROM desired_states d JOIN spokes s ON s.id = d.spoke_id, jsonb_array_elements(d.payload->'fineTuneJobs') x
       WHERE s.name = $1 AND s.revoked_at IS NULL AND x->>'name' = $2`,
      [r.spoke, r.job],
    );
    const job = rows[0]?.job;
    if (!job) throw forbidden(`fine-tuning job "${r.job}" is not placed on spoke ${r.spoke}: a spoke uploads only for its own jobs`, { spoke: r.spoke, job: r.job });
    if (job.output.artifact !== 'upload') {
      throw new DomainError('artifact_keep_local', 409, `fine-tuning job "${r.job}" keeps its artifact on the spoke (output.artifact: ${job.output.artifact}); nothing is uploaded`, { job: r.job, artifact: job.output.artifact });
    }
    const expected = expectedProducedVersion(job.baseModel.version, r.spoke, r.digest);
    if (r.version !== expected) {
      throw forbidden(`spoke ${r.spoke} may upload for job "${r.job}" only the version its run produced: ${expected} for digest ${r.digest}, not "${r.version}"`, { expected, version: r.version });
    }
    const received = await receiveArtifact(r.body, { stagingDir: this.store.stagingDir, limit: this.limit, declaredHex: hex, declaredLength: r.length });
    const { created } = await this.store.put({ hex, sizeBytes: received.sizeBytes }, received.file);
    const result: UploadResult = { job: r.job, spoke: r.spoke, version: r.version, digest: r.digest, sizeBytes: received.sizeBytes, uri: hubArtifactUri(r.digest), created };
    await this.ds.transaction((em) =>
      this.audit.record(em, {
        actor: `spoke:${r.spoke}`,
        action: 'artifact.upload',
        target: `artifact/sha256/${hex}`,
        after: result,
        details: { job: r.job, version: r.version, sizeBytes: received.sizeBytes, created, store: this.store.location },
        requestId: r.requestId,
      }),
    );
    return result;
  }
}
