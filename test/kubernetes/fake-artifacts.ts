import type { ModelRef } from '@flotilla/contracts';
import { ArtifactError, type ArtifactErrorReason } from '../../apps/agent/src/artifacts/artifact-error.js';
import type { ArtifactProvider, PreparedArtifact } from '../../apps/agent/src/runtime/runtime.js';

/**
 * An ArtifactProvider that "verifies" by table: digests listed in `failures`
 * reject with that ArtifactError reason, everything else is laid out under
 * `root`. It records what the runtime declared in use.
 */
export class FakeArtifacts implements ArtifactProvider {
  readonly failures = new Map<string, ArtifactErrorReason>();
  readonly ensured: ModelRef[] = [];
  retained: ModelRef[] = [];

  constructor(private readonly root = '/var/lib/flotilla-agent/artifacts') {}

  async ensure(model: ModelRef, signal: AbortSignal): Promise<PreparedArtifact> {
    signal.throwIfAborted();
    const reason = this.failures.get(model.digest);
    if (reason) {
      throw new ArtifactError(reason, `sha256 of the downloaded file is not ${model.digest}`, { uri: model.uri, digest: model.digest });
    }
    this.ensured.push(model);
    const repositoryPath = `${this.root}/repos/${model.digest.slice(7, 19)}`;
    return { repositoryPath, modelPath: `${repositoryPath}/${model.name}/1/model.onnx`, digest: model.digest };
  }

  async retain(models: ModelRef[]): Promise<void> {
    this.retained = [...models];
  }
}
