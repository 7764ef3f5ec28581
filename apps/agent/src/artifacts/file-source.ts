import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ArtifactError, describeError } from './artifact-error.js';
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

/** Copies a local file; it is streamed and hashed like any download. */
export class FileSource implements ArtifactSource {
  constructor(private readonly baseDir: string) {}

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
    try {
      const st = await stat(path);
      if (!st.isFile()) throw Object.assign(new Error(`${path} is not a regular file`), { code: 'EISDIR' });
      size = st.size;
    } catch (err) {
      // A missing file may appear later (a job still writing it): the caller requeues.
      throw new ArtifactError('ArtifactUnavailable', `cannot read ${req.uri}: ${describeError(err)}`, {
        uri: req.uri,
        digest: req.digest,
        cause: err,
        transient: false,
      });
    }
    if (req.offset > size) return { kind: 'restart' };
    const body = createReadStream(path, { start: req.offset, signal: req.signal });
    return { kind: 'body', resumed: true, totalBytes: size, validator: null, body };
  }
}
