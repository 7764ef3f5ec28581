import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import type { ArtifactStore, StoredArtifact } from './artifact-store.js';

export interface S3StoreSettings {
  bucket: string;
  /** Key prefix, without leading or trailing slash ('' for the bucket's root). */
  prefix: string;
  /** An S3-compatible endpoint (MinIO...): path-style addressing; null for AWS. */
  endpoint: string | null;
  /** Uploads are received and verified here before they go to S3. */
  stagingDir: string;
  /** Replaces the SDK's client (tests). */
  client?: S3Client;
}

/** Loaded when the store is S3: most hubs keep artifacts on disk and never pay for the SDK. */
const loadSdk = () => import('@aws-sdk/client-s3');

/**
 * The artifact store in an S3 bucket: `<prefix>/sha256/<hex>`, credentials
 * and region from the AWS SDK's usual chain. A verified staged upload is
 * sent with PutObject (streamed from the staging file, with its length);
 * the bucket never holds an object under a digest its bytes do not have.
 */
export class S3ArtifactStore implements ArtifactStore {
  readonly location: string;
  readonly stagingDir: string;
  private client: S3Client | null;

  constructor(private readonly s: S3StoreSettings) {
    this.location = `s3://${s.bucket}/${s.prefix}`;
    this.stagingDir = s.stagingDir;
    this.client = s.client ?? null;
  }

  private key(hex: string): string {
    return path.posix.join(this.s.prefix, 'sha256', hex);
  }

  private async s3(): Promise<S3Client> {
    if (this.client) return this.client;
    const { S3Client } = await loadSdk();
    this.client = new S3Client({
      ...(this.s.endpoint ? { endpoint: this.s.endpoint, forcePathStyle: true } : {}),
      // Plain PutObject with a known length: no aws-chunked body, which not every S3-compatible server reads.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    return this.client;
  }

  async put(artifact: StoredArtifact, stagedFile: string): Promise<{ created: boolean }> {
    try {
      if (await this.stat(artifact.hex)) return { created: false };
      const { PutObjectCommand } = await loadSdk();
      await (await this.s3()).send(
        new PutObjectCommand({
          Bucket: this.s.bucket,
          Key: this.key(artifact.hex),
          Body: createReadStream(stagedFile),
          ContentLength: artifact.sizeBytes,
          ContentType: 'application/octet-stream',
        }),
      );
      return { created: true };
    } finally {
      await rm(stagedFile, { force: true });
    }
  }

  async stat(hex: string): Promise<StoredArtifact | null> {
    const { HeadObjectCommand, S3ServiceException } = await loadSdk();
    try {
      const out = await (await this.s3()).send(new HeadObjectCommand({ Bucket: this.s.bucket, Key: this.key(hex) }));
      return { hex, sizeBytes: Number(out.ContentLength ?? 0) };
    } catch (err) {
      if (err instanceof S3ServiceException && (err.$metadata.httpStatusCode === 404 || err.name === 'NotFound' || err.name === 'NoSuchKey')) return null;
      throw err;
    }
  }

  async read(hex: string, start: number): Promise<Readable> {
    const { GetObjectCommand } = await loadSdk();
    const out = await (await this.s3()).send(new GetObjectCommand({ Bucket: this.s.bucket, Key: this.key(hex), ...(start > 0 ? { Range: `bytes=${start}-` } : {}) }));
    return out.Body as Readable;
  }
}
