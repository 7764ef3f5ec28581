/** Injection token of the hub's ArtifactStore (filesystem or S3, chosen by the configuration). */
export const ARTIFACT_STORE = Symbol('ARTIFACT_STORE');
