import { Readable } from 'node:stream';
import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import { ArtifactError, describeError } from './artifact-error.js';
import { parseContentRange, type ArtifactSource, type OpenRequest, type OpenResult } from './source.js';

/**
 * Settings for the default S3 client. Anything left out comes from the AWS
 * SDK's own chain (AWS_REGION, AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID,
 * ~/.aws/config, instance metadata...), so a plain AWS host needs none.
 */
export interface S3Settings {
  region?: string;
  /** e.g. `http://minio.local:9000` for an S3-compatible server. */
  endpoint?: string;
  /** `bucket` in the path instead of the host name; MinIO-like servers need it. */
  forcePathStyle?: boolean;
  credentials?: S3ClientConfig['credentials'];
}

export type S3ClientFactory = () => S3Client | Promise<S3Client>;

/**
 * The AWS SDK, loaded on the first s3:// artifact: it costs about 30 MB and a
 * second of start-up, and most appliances never read from S3.
 */
let sdk: Promise<typeof import('@aws-sdk/client-s3')> | null = null;
const loadSdk = (): Promise<typeof import('@aws-sdk/client-s3')> => (sdk ??= import('@aws-sdk/client-s3'));

export function defaultS3ClientFactory(settings: S3Settings = {}): S3ClientFactory {
  return async () =>
    new (await loadSdk()).S3Client({
      ...(settings.region ? { region: settings.region } : {}),
      ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
      ...(settings.forcePathStyle !== undefined ? { forcePathStyle: settings.forcePathStyle } : {}),
      ...(settings.credentials ? { credentials: settings.credentials } : {}),
      // The cache retries with its own bounded, abortable backoff and resumes
      // from the partial file; SDK retries inside that would multiply.
      maxAttempts: 1,
    });
}

/** Splits `s3://bucket/key/with/slashes` into bucket and (decoded) key. */
export function parseS3Uri(uri: string): { bucket: string; key: string } | null {
  const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(uri);
  if (!m || !m[1] || !m[2]) return null;
  try {
    return { bucket: m[1], key: decodeURIComponent(m[2]) };
  } catch {
    return null;
  }
}

/** Reads `s3://bucket/key` with GetObject, resuming with `Range` guarded by `If-Match`. */
export class S3Source implements ArtifactSource {
  private client: S3Client | null = null;

  constructor(private readonly factory: S3ClientFactory) {}

  /** Closes the client's pooled connections. */
  close(): void {
    this.client?.destroy();
    this.client = null;
  }

  async open(req: OpenRequest): Promise<OpenResult> {
    const loc = parseS3Uri(req.uri);
    if (!loc) {
      throw new ArtifactError('ArtifactInvalid', `${req.uri} is not an s3://bucket/key URI`, { uri: req.uri, digest: req.digest });
    }
    const { GetObjectCommand, S3ServiceException } = await loadSdk();
    this.client ??= await this.factory();
    const resuming = req.offset > 0;
    try {
      const out = await this.client.send(
        new GetObjectCommand({
          Bucket: loc.bucket,
          Key: loc.key,
          ...(resuming ? { Range: `bytes=${req.offset}-` } : {}),
          ...(resuming && req.validator ? { IfMatch: req.validator } : {}),
        }),
        { abortSignal: req.signal },
      );
      const body = out.Body;
      if (!(body instanceof Readable)) {
        throw new ArtifactError('ArtifactUnavailable', `GetObject ${req.uri} returned no readable body`, {
          uri: req.uri,
          digest: req.digest,
          transient: true,
        });
      }
      const validator = out.ETag ?? null;
      if (out.$metadata.httpStatusCode === 206) {
        const range = parseContentRange(out.ContentRange);
        if (!range || range.start !== req.offset) {
          body.destroy();
          return { kind: 'restart' };
        }
        return { kind: 'body', resumed: true, totalBytes: range.total, validator: validator ?? req.validator, body };
      }
      return { kind: 'body', resumed: false, totalBytes: out.ContentLength ?? null, validator, body };
    } catch (err) {
      if (err instanceof ArtifactError) throw err;
      if (req.signal.aborted) throw err;
      const status = err instanceof S3ServiceException ? err.$metadata.httpStatusCode : undefined;
      const name = err instanceof Error ? err.name : '';
      // 416: the partial already covers the object; 412: the object changed since.
      if (resuming && (status === 416 || status === 412 || name === 'InvalidRange' || name === 'PreconditionFailed')) {
        return { kind: 'restart' };
      }
      // No status: the request never got an answer (refused, reset, timed
      // out), except for missing credentials or region, which stay missing.
      const transient =
        status === undefined
          ? !/credential|region is missing/i.test(`${name} ${describeError(err)}`)
          : status === 408 || status === 429 || status >= 500;
      throw new ArtifactError(
        'ArtifactUnavailable',
        `GetObject ${req.uri} failed${status ? ` with ${status}` : ''}: ${name ? `${name}: ` : ''}${describeError(err)}`,
        { uri: req.uri, digest: req.digest, cause: err, transient },
      );
    }
  }
}
