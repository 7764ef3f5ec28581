import type { DesiredDeployment } from '@flotilla/contracts';
import { isArtifactError } from '../../artifacts/artifact-error.js';
import type { ArtifactProvider } from '../runtime.js';
import { findExecutable, type LaunchInfo } from './launch.js';
import type { StartFailures } from './start-failures.js';

/**
 * Everything a start needs before a process exists: the server binary and
 * the verified model. A problem is recorded as the deployment's start
 * failure (and `prepare` answers null); only an abort is thrown.
 */
export class LaunchPreparer {
  constructor(
    private readonly o: {
      artifacts: ArtifactProvider;
      failures: StartFailures;
      tritonServerPath: string | undefined;
      env: NodeJS.ProcessEnv;
    },
  ) {}

  async prepare(spec: DesiredDeployment, key: string, signal: AbortSignal): Promise<LaunchInfo | null> {
    try {
      if (spec.runtime === 'triton') {
        // Checked before fetching the model: no point downloading what cannot be served.
        const binary = await findExecutable(this.o.tritonServerPath ?? 'tritonserver', this.o.env.PATH);
        if (!binary) {
          const where = this.o.tritonServerPath ? `at ${this.o.tritonServerPath}` : `on PATH (${this.o.env.PATH ?? ''})`;
          this.o.failures.record(
            spec.name,
            key,
            'TritonNotInstalled',
            `runtime triton needs the tritonserver binary, which is not installed ${where}; install NVIDIA Triton Inference Server on this appliance or use runtime: builtin`,
            false,
          );
          return null;
        }
        const artifact = await this.o.artifacts.ensure(spec.model, signal);
        if (!this.verified(spec, key, artifact.digest)) return null;
        return { runtime: 'triton', binary, repositoryPath: artifact.repositoryPath };
      }
      if (spec.model.format !== 'onnx') {
        this.o.failures.record(spec.name, key, 'UnsupportedModelFormat', `the builtin server serves ONNX models, not ${spec.model.format}; use runtime: triton`, false);
        return null;
      }
      const artifact = await this.o.artifacts.ensure(spec.model, signal);
      if (!this.verified(spec, key, artifact.digest)) return null;
      return {
        runtime: 'builtin',
        modelName: spec.model.name,
        modelVersion: spec.model.version,
        modelPath: artifact.modelPath,
        executionProvider: spec.resources.gpu > 0 ? 'auto' : 'cpu',
      };
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      if (isArtifactError(err)) {
        this.o.failures.record(spec.name, key, err.reason, err.message, err.retryable);
        return null;
      }
      throw err;
    }
  }

  private verified(spec: DesiredDeployment, key: string, digest: string): boolean {
    if (digest === spec.model.digest) return true;
    this.o.failures.record(spec.name, key, 'ArtifactDigestMismatch', `the cache handed out ${digest} for ${spec.model.digest}; not serving it`, false);
    return false;
  }
}
