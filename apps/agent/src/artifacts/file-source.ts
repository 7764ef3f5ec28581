import { constants, createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ArtifactError, describeError } from './artifact-error.js';
import { isSourceRefused, type SourcePolicy } from '../security/source-policy.js';
import type { ArtifactSource, OpenRequest, OpenResult } from './source.js';

/**
 * Resolves a `file:` URI: `file:///abs/path` and `file:/abs/path` are URLs
 * (percent-decoded), while `file:relative/path` is a plain path taken from
 * `baseDir`, which is what people type for a model next to the agent.
 */
export function filePathOf(uri: string, baseDir: string): string {
  const rest = uri.slice('file:'.length);
  if (rest.startsWith('/')) return fileURLToPath(uri);
  return isAbsolute(rest) ? rest : resolve(baseDir, rest);
}

/**
 * Copies a local file under one of the agent's artifact roots; it is
 * streamed and hashed like any download. A path outside them is refused
 * before anything is opened.
 */
export class FileSource implements ArtifactSource {
  constructor(
    private readonly baseDir: string,
    private readonly policy: SourcePolicy,
  ) {}

  async open(req: OpenRequest): Promise<OpenResult> {
    let path: string;
    try {
      path = filePathOf(req.uri, this.baseDir);
    } catch (err) {
      throw new ArtifactError('ArtifactInvalid', `${req.uri} is not a usable file URI: ${describeError(err)}`, {
        uri: req.uri,
        digest: req.digest,
        cause: err,
      });
    }
    let size: number;
    let handle;
    try {
      // The resolved path, opened without following a link swapped in since: what was checked is what is read.
      const real = await this.policy.resolveArtifactFile(path, req.uri);
      handle = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
      const st = await handle.stat();
      if (!st.isFile()) throw Object.assign(new Error(`${path} is not a regular file`), { code: 'EISDIR' });
      size = st.size;
    } catch (err) {
      await handle?.close();
      if (isSourceRefused(err)) throw new ArtifactError('SourceRefused', err.message, { uri: req.uri, digest: req.digest, cause: err });
      // A missing file may appear later (a job still writing it): the caller requeues.
      throw new ArtifactError('ArtifactUnavailable', `cannot read ${req.uri}: ${describeError(err)}`, {
        uri: req.uri,
        digest: req.digest,
        cause: err,
        transient: false,
      });
    }
    if (req.offset > size) {
      await handle.close();
      return { kind: 'restart' };
    }
    const body = createReadStream('', { fd: handle, start: req.offset, signal: req.signal });
    return { kind: 'body', resumed: true, totalBytes: size, validator: null, body };
  }
}
