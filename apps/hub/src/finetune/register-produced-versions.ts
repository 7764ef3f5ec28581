import type { DataSource } from 'typeorm';
import type { Logger } from 'pino';
import { hubArtifactUri, spokeArtifactUri, type DesiredFineTuneJob, type ReportedJobRunStatus } from '@flotilla/contracts';
import type { ArtifactStore } from '../artifacts/artifact-store.js';
import type { RegisterModelVersion } from '../models/register-model-version.js';

/**
 * The version a fine-tuning run on `spoke` must be named, from its base
 * version and the produced model's digest (the agent's rule, checked here so
 * a spoke cannot claim another spoke's or another content's name).
 */
export function expectedProducedVersion(baseVersion: string, spoke: string, digest: string): string {
  const suffix = `-ft.${spoke}.${digest.replace(/^sha256:/, '').slice(0, 12)}`;
  return `${baseVersion.slice(0, 128 - suffix.length)}${suffix}`;
}

/**
 * report -> registry: registers the versions that spokes' fine-tuning runs
 * produced, read from their status reports (level-based: every report repeats
 * a Succeeded run's `produced`, so a lost message or a hub restart loses
 * nothing). A spoke may register only for a job in its own desired state,
 * into that job's output model, under the name the naming rule gives; the
 * version is immutable (RegisterModelVersion) and carries its lineage.
 */
export class RegisterProducedVersions {
  /** `spoke/job/version` already registered by this hub process: skips the database on repeats. */
  private readonly done = new Set<string>();

  constructor(
    private readonly ds: DataSource,
    private readonly register: RegisterModelVersion,
    private readonly log: Logger,
    /** After a registration: deployments waiting for the version can render. */
    private readonly registered: () => void = () => undefined,
    /** The hub's artifact store: an uploaded version is registered once its bytes are there. */
    private readonly store: ArtifactStore | null = null,
  ) {}

  async fromStatus(spoke: string, jobs: ReportedJobRunStatus[]): Promise<void> {
    for (const run of jobs) {
      if (run.phase !== 'Succeeded' || !run.produced) continue;
      const key = `${spoke}/${run.name}/${run.produced.version}`;
      if (this.done.has(key)) continue;
      try {
        if (await this.registerOne(spoke, run)) this.done.add(key);
      } catch (err) {
        this.log.warn({ spoke, job: run.name, version: run.produced.version, err: (err as Error).message }, 'produced model version not registered');
      }
    }
  }

  private async registerOne(spoke: string, run: ReportedJobRunStatus): Promise<boolean> {
    const produced = run.produced!;
    const rows: { job: DesiredFineTuneJob; generation: number }[] = await this.ds.query(
      `SELECT x AS job, d.generation FROM desired_states d JOIN spokes s ON s.id = d.spoke_id, jsonb_array_elements(d.payload->'fineTuneJobs') x
       WHERE s.name = $1 AND s.revoked_at IS NULL AND x->>'name' = $2`,
      [spoke, run.name],
    );
    const desired = rows[0];
    if (!desired) {
      this.log.warn({ spoke, job: run.name }, 'a spoke reported a produced version for a job it was not given; ignored');
      return true;
    }
    const job = desired.job;
    const expected = expectedProducedVersion(job.baseModel.version, spoke, produced.digest);
    if (produced.version !== expected || run.producedVersion !== expected) {
      this.log.warn({ spoke, job: run.name, version: produced.version, expected }, 'produced version does not follow the naming rule; ignored');
      return true;
    }
    // Where the bytes are: on that spoke only (keep-local), or in the hub's store (upload) once they arrived there.
    const uri = job.output.artifact === 'upload' ? hubArtifactUri(produced.digest) : spokeArtifactUri(spoke, produced.digest);
    if (produced.uri !== uri) {
      this.log.warn({ spoke, job: run.name, uri: produced.uri, expected: uri }, 'produced version does not say where its artifact is as the job asks; ignored');
      return true;
    }
    if (job.output.artifact === 'upload') {
      const stored = await this.store?.stat(produced.digest.slice('sha256:'.length));
      if (!stored || stored.sizeBytes !== produced.sizeBytes) {
        this.log.warn({ spoke, job: run.name, version: produced.version }, 'produced version not registered yet: its artifact is not in the hub store');
        return false;
      }
    }
    await this.ds.transaction((em) =>
      this.register.execute(
        em,
        {
          model: job.output.model,
          version: produced.version,
          digest: produced.digest,
          uri,
          format: produced.format,
          sizeBytes: produced.sizeBytes,
          lineage: {
            baseVersion: `${job.baseModel.name}@${job.baseModel.version} (${job.baseModel.digest})`,
            job: `${job.name}@generation-${desired.generation}`,
            spoke,
            datasetFingerprint: produced.datasetFingerprint,
            metrics: run.metrics,
          },
        },
        { actor: `spoke:${spoke}`, source: `job:${job.name}@${spoke}`, createModel: { task: 'image-classification' } },
      ),
    );
    this.log.info({ spoke, job: run.name, model: job.output.model, version: produced.version }, 'registered a produced model version');
    this.registered();
    return true;
  }
}
