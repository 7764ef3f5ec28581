export { ArtifactCache, type ArtifactCacheOptions, type ArtifactLogger, type GcRemoval, type GcResult } from './artifact-cache.js';
export { ArtifactError, isArtifactError, type ArtifactErrorReason } from './artifact-error.js';
export { DEFAULT_RETRY_POLICY, type RetryPolicy } from './retry.js';
export { defaultS3ClientFactory, type S3ClientFactory, type S3Settings } from './s3-source.js';
export type { FetchLike } from './http-source.js';
export { configPbtxt, layoutFor } from './triton-layout.js';
