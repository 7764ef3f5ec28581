import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DomainError } from '../errors/domain-error.js';

export interface ReceivedArtifact {
  hex: string;
  sizeBytes: number;
  /** The staged file; the caller stores or removes it. */
  file: string;
}

export const payloadTooLarge = (limit: number) =>
  new DomainError('payload_too_large', 413, `the artifact is over the limit of ${limit} bytes (FLOTILLA_ARTIFACT_MAX_BYTES)`, { limitBytes: limit });

/**
 * Streams an upload into a staging file, hashing and counting as the chunks
 * arrive (never the whole body in memory), and checks it against the digest
 * and length the uploader declared. A body over `limit` is cut off at the
 * limit; a digest or length that does not match leaves nothing behind.
 */
export async function receiveArtifact(body: Readable, o: { stagingDir: string; limit: number; declaredHex: string; declaredLength: number | null }): Promise<ReceivedArtifact> {
  const file = path.join(o.stagingDir, `${randomUUID()}.partial`);
  const hash = createHash('sha256');
  let size = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      size += chunk.length;
      if (size > o.limit) return done(payloadTooLarge(o.limit));
      hash.update(chunk);
      done(null, chunk);
    },
  });
  try {
    await pipeline(body, meter, createWriteStream(file, { flags: 'wx' }));
  } catch (err) {
    await rm(file, { force: true });
    if (err instanceof DomainError) throw err;
    throw new DomainError('upload_incomplete', 400, `the upload ended before its end: ${(err as Error).message}`);
  }
  const hex = hash.digest('hex');
  if (o.declaredLength !== null && size !== o.declaredLength) {
    await rm(file, { force: true });
    throw new DomainError('upload_incomplete', 400, `received ${size} bytes, Content-Length said ${o.declaredLength}`, { receivedBytes: size, declaredBytes: o.declaredLength });
  }
  if (hex !== o.declaredHex) {
    await rm(file, { force: true });
    throw new DomainError('digest_mismatch', 422, `the received bytes have digest sha256:${hex}, not the declared sha256:${o.declaredHex}; nothing was kept`, {
      declared: `sha256:${o.declaredHex}`,
      received: `sha256:${hex}`,
      receivedBytes: size,
    });
  }
  return { hex, sizeBytes: size, file };
}
