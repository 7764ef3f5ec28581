import type { DesiredFineTuneJob, JobRunStatus, ModelRef } from '@flotilla/contracts';
import type { UploadedArtifact } from '@flotilla/contracts';
import type { ArtifactUploader, ArtifactUploaderOptions, ProducedUpload } from '../../finetune/artifact-uploader.js';
import type { FineTuneRunner, FineTuneRunnerOptions } from '../../finetune/finetune-runner.js';

/**
 * The fine-tuning runner, loaded on the first desired state that holds a
 * FineTuneJob: trainers, dataset readers, the ONNX protobuf codec and what
 * they pull in stay out of the memory of the many appliances that only serve.
 * Until then there is nothing to reconcile (no run can be live) and nothing to close.
 * Keep every import of ../../finetune here, type-only above, so it stays lazy.
 */
export class LazyFineTuneRunner {
  private runner: Promise<FineTuneRunner> | null = null;

  constructor(private readonly opts: FineTuneRunnerOptions) {}

  /** The runner, loading it first if needed. */
  load(): Promise<FineTuneRunner> {
    return (this.runner ??= import('../../finetune/finetune-runner.js').then(({ FineTuneRunner }) => new FineTuneRunner(this.opts)));
  }

  /** Whether the runner was loaded (some desired state held a job). */
  get loaded(): boolean {
    return this.runner !== null;
  }

  async reconcile(jobs: DesiredFineTuneJob[], served: readonly ModelRef[] = []): Promise<JobRunStatus[]> {
    if (jobs.length === 0 && this.runner === null) return [];
    return (await this.load()).reconcile(jobs, served);
  }

  async close(): Promise<void> {
    if (this.runner !== null) await (await this.runner).close();
  }
}

/** The uploader of produced models (output.artifact: upload), loaded with the first upload, for the same reason. */
export class LazyArtifactUploader implements Pick<ArtifactUploader, 'upload'> {
  private uploader: Promise<ArtifactUploader> | null = null;

  constructor(private readonly opts: ArtifactUploaderOptions) {}

  async upload(u: ProducedUpload, signal: AbortSignal): Promise<UploadedArtifact> {
    const uploader = await (this.uploader ??= import('../../finetune/artifact-uploader.js').then(({ ArtifactUploader }) => new ArtifactUploader(this.opts)));
    return uploader.upload(u, signal);
  }
}
