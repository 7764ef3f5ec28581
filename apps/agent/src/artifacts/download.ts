import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ArtifactError, describeError } from './artifact-error.js';
import { discardBody, type ArtifactSource, type OpenResult } from './source.js';
import { fsyncDir, writeFileAtomic } from './fs-atomic.js';

export interface DownloadRequest {
  source: ArtifactSource;
  uri: string;
  /** `sha256:<hex>` as in the ModelRef. */
  digest: string;
  /** The bare hex digest. */
  hex: string;
  /** Where the bytes accumulate; kept across attempts and restarts for resume. */
  partialPath: string;
  /** Final, content-addressed location; the file appears there only once verified. */
  blobPath: string;
  /** Byte limit, and what it came from for the message. */
  limit: number;
  limitSource: string;
  /** Abort an attempt that received nothing for this long (connect included). */
  idleTimeoutMs: number;
  signal: AbortSignal;
}

export interface DownloadResult {
  size: number;
  /** Bytes that were already in the partial file and not fetched again. */
  resumedFrom: number;
  /** Bytes fetched by this attempt. */
  fetchedBytes: number;
}

interface PartialMeta {
  uri: string;
  validator: string | null;
}

/** Local failures (disk full, permissions) say nothing about the source. */
const LOCAL_FS_CODES = new Set(['ENOSPC', 'EDQUOT', 'EACCES', 'EPERM', 'EROFS', 'EIO', 'EMFILE', 'ENFILE']);

class IdleTimeout extends Error {
  constructor(ms: number) {
    super(`no data for ${ms} ms`);
    this.name = 'TimeoutError';
  }
}

/**
 * One attempt at bringing an artifact into the store: continue the partial
 * file if the source can resume it, hash everything while it streams, and
 * rename it into place only when the digest matches. Throws `ArtifactError`
 * for source and size problems; the caller decides about retrying.
 */
export async function downloadOnce(req: DownloadRequest): Promise<DownloadResult> {
  const attempt = new AbortController();
  const signal = AbortSignal.any([req.signal, attempt.signal]);
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    clearTimeout(timer);
    timer = setTimeout(() => attempt.abort(new IdleTimeout(req.idleTimeoutMs)), req.idleTimeoutMs);
  };
  const metaPath = `${req.partialPath}.json`;
  const discardPartial = async (): Promise<void> => {
    await rm(req.partialPath, { force: true });
    await rm(metaPath, { force: true });
  };
  const tooLarge = (size: number | string): ArtifactError =>
    new ArtifactError(
      'ArtifactTooLarge',
      `${req.uri} is ${size} bytes, over the limit of ${req.limit} bytes (${req.limitSource})`,
      { uri: req.uri, digest: req.digest },
    );

  try {
    let offset = await sizeOf(req.partialPath);
    let meta = offset > 0 ? await readPartialMeta(metaPath) : null;
    if (offset > req.limit || (meta && meta.uri !== req.uri)) {
      // Over the limit, or begun from another URI whose validator means nothing here.
      await discardPartial();
      offset = 0;
      meta = null;
    }
    // Hash state is not persisted: feed the bytes already on disk to the hash
    // before asking the source, so a large prefix neither trips the idle
    // timeout nor keeps a server's response waiting.
    let hash = createHash('sha256');
    if (offset > 0) await hashPrefix(req.partialPath, offset, hash, req.signal);

    arm();
    let opened: OpenResult = await req.source.open({ uri: req.uri, digest: req.digest, offset, validator: meta?.validator ?? null, signal });
    if (opened.kind === 'restart') {
      await discardPartial();
      offset = 0;
      opened = await req.source.open({ uri: req.uri, digest: req.digest, offset: 0, validator: null, signal });
      if (opened.kind === 'restart') {
        throw new ArtifactError('ArtifactUnavailable', `${req.uri} refused a download from the start`, {
          uri: req.uri,
          digest: req.digest,
          transient: true,
        });
      }
    }
    const { body } = opened;
    if (!opened.resumed) offset = 0;
    // Restarted from scratch: the prefix hashed above is not part of it.
    if (offset === 0) hash = createHash('sha256');
    if (opened.totalBytes !== null && opened.totalBytes > req.limit) {
      await discardBody(body);
      await discardPartial();
      throw tooLarge(opened.totalBytes);
    }

    if (offset === 0) {
      await writeFileAtomic(metaPath, JSON.stringify({ uri: req.uri, validator: opened.validator } satisfies PartialMeta));
    }

    let received = 0;
    const out = await open(req.partialPath, offset > 0 ? 'a' : 'w', 0o600);
    try {
      const chunks = body[Symbol.asyncIterator]();
      try {
        for (;;) {
          const next = await nextOrAbort(chunks, signal);
          if (next.done) break;
          arm();
          received += next.value.length;
          if (offset + received > req.limit) throw tooLarge(`more than ${offset + received}`);
          hash.update(next.value);
          // Written before the next read, so a cut connection keeps every byte received.
          await out.write(next.value);
        }
      } catch (err) {
        // Not awaited: a web stream's return() waits for a read that may never end.
        void chunks.return?.()?.catch(() => undefined);
        throw err;
      }
      await out.sync();
    } catch (err) {
      await out.close().catch(() => undefined);
      if (err instanceof ArtifactError && err.reason === 'ArtifactTooLarge') await discardPartial();
      throw err;
    }
    await out.close();

    const size = offset + received;
    if (opened.totalBytes !== null && size !== opened.totalBytes) {
      throw new ArtifactError('ArtifactUnavailable', `${req.uri} ended after ${size} of ${opened.totalBytes} bytes`, {
        uri: req.uri,
        digest: req.digest,
        transient: true,
      });
    }
    const actual = hash.digest('hex');
    if (actual !== req.hex) {
      await discardPartial();
      throw new ArtifactError(
        'ArtifactDigestMismatch',
        `digest mismatch for ${req.uri}: expected sha256:${req.hex}, got sha256:${actual} (${size} bytes); nothing was stored`,
        { uri: req.uri, digest: req.digest },
      );
    }
    // Verified: only now does the blob get its content-addressed name.
    await chmod(req.partialPath, 0o444);
    await rename(req.partialPath, req.blobPath);
    await fsyncDir(dirname(req.blobPath));
    await rm(metaPath, { force: true });
    return { size, resumedFrom: offset, fetchedBytes: received };
  } catch (err) {
    throw classify(err, req, attempt.signal);
  } finally {
    clearTimeout(timer);
  }
}

function classify(err: unknown, req: DownloadRequest, attemptSignal: AbortSignal): unknown {
  if (req.signal.aborted) return req.signal.reason;
  if (err instanceof ArtifactError) return err;
  if (attemptSignal.aborted) {
    return new ArtifactError('ArtifactUnavailable', `${req.uri} timed out: ${describeError(attemptSignal.reason)}`, {
      uri: req.uri,
      digest: req.digest,
      cause: attemptSignal.reason,
      transient: true,
    });
  }
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code && LOCAL_FS_CODES.has(code)) {
    return new ArtifactError('ArtifactUnavailable', `cannot write the artifact cache for ${req.uri}: ${describeError(err)}`, {
      uri: req.uri,
      digest: req.digest,
      cause: err,
      transient: false,
    });
  }
  // Connection reset, body cut short, socket errors: resume next attempt.
  return new ArtifactError('ArtifactUnavailable', `download of ${req.uri} failed: ${describeError(err)}`, {
    uri: req.uri,
    digest: req.digest,
    cause: err,
    transient: true,
  });
}

/**
 * The next chunk, or the signal's reason as soon as it aborts: not every
 * source stops a pending read when its request is aborted.
 */
function nextOrAbort(chunks: AsyncIterator<Uint8Array>, signal: AbortSignal): Promise<IteratorResult<Uint8Array>> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    chunks.next().then(
      (r) => {
        signal.removeEventListener('abort', onAbort);
        resolve(r);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err as Error);
      },
    );
  });
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
}

async function readPartialMeta(path: string): Promise<PartialMeta | null> {
  try {
    const parsed = JSON.parse(await readFile(path, 'utf8')) as Partial<PartialMeta>;
    if (typeof parsed.uri !== 'string') return null;
    return { uri: parsed.uri, validator: typeof parsed.validator === 'string' ? parsed.validator : null };
  } catch {
    return null;
  }
}

/** Feeds the first `length` bytes of a file to the hash. */
async function hashPrefix(path: string, length: number, hash: Hash, signal: AbortSignal): Promise<void> {
  const stream = createReadStream(path, { start: 0, end: length - 1, signal });
  for await (const chunk of stream) hash.update(chunk as Buffer);
}

/** Hashes a whole file; used to re-verify a blob whose marker is missing. */
export async function hashFile(path: string, signal: AbortSignal): Promise<{ hex: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path, { signal })) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { hex: hash.digest('hex'), size };
}
