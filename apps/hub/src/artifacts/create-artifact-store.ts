import path from 'node:path';
import type { HubConfig } from '../config/config.js';
import { FilesystemArtifactStore, prepareStaging, type ArtifactStore } from './artifact-store.js';
import { S3ArtifactStore } from './s3-artifact-store.js';

/** The store the configuration names, with its staging directory ready (uploads are staged under $FLOTILLA_HOME either way). */
export async function createArtifactStore(config: Pick<HubConfig, 'home' | 'artifactStore'>): Promise<ArtifactStore> {
  const s = config.artifactStore;
  const store =
    s.kind === 'filesystem'
      ? new FilesystemArtifactStore(s.directory)
      : new S3ArtifactStore({ bucket: s.bucket, prefix: s.prefix, endpoint: s.endpoint, stagingDir: path.join(config.home, 'artifacts-store', 'tmp') });
  await prepareStaging(store);
  return store;
}
