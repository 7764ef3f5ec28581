import { ArtifactError, describeError } from './artifact-error.js';
import { parseContentRange, type ArtifactSource, type OpenRequest, type OpenResult } from './source.js';

export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

/** Statuses that may well succeed on the next attempt. */
function isTransientStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/**
 * Reads `http:` and `https:` artifacts with `fetch`, asking for the rest of a
 * partial file with `Range` (guarded by `If-Range`, so a changed object is
 * sent whole instead of being spliced onto the old prefix). When a
 * connection drops, fetch discards chunks it had queued but not yet handed
 * over; those few are simply fetched again by the resume.
 */
export class HttpSource implements ArtifactSource {
  constructor(private readonly fetchFn: FetchLike) {}

  async open(req: OpenRequest): Promise<OpenResult> {
    const headers: Record<string, string> = {
      // The digest is over the stored bytes: no transparent decompression.
      'accept-encoding': 'identity',
    };
    if (req.offset > 0) {
      headers.range = `bytes=${req.offset}-`;
      if (req.validator) headers['if-range'] = req.validator;
    }
    let res: Response;
    try {
      res = await this.fetchFn(req.uri, { headers, signal: req.signal, redirect: 'follow' });
    } catch (err) {
      if (req.signal.aborted) throw err;
      throw new ArtifactError('ArtifactUnavailable', `cannot reach ${req.uri}: ${describeError(err)}`, {
        uri: req.uri,
        digest: req.digest,
        cause: err,
        transient: true,
      });
    }

    if (res.status === 416 && req.offset > 0) {
      await res.body?.cancel().catch(() => undefined);
      return { kind: 'restart' };
    }
    if (res.status !== 200 && res.status !== 206) {
      await res.body?.cancel().catch(() => undefined);
      throw new ArtifactError('ArtifactUnavailable', `GET ${req.uri} answered ${res.status} ${res.statusText}`.trim(), {
        uri: req.uri,
        digest: req.digest,
        transient: isTransientStatus(res.status),
      });
    }
    if (!res.body) {
      throw new ArtifactError('ArtifactUnavailable', `GET ${req.uri} answered ${res.status} without a body`, {
        uri: req.uri,
        digest: req.digest,
        transient: true,
      });
    }

    const validator = strongValidator(res.headers);
    const body = res.body;
    if (res.status === 206) {
      const range = parseContentRange(res.headers.get('content-range'));
      if (!range || range.start !== req.offset) {
        // A range we did not ask for cannot be appended to the partial file.
        await body.cancel().catch(() => undefined);
        return { kind: 'restart' };
      }
      return { kind: 'body', resumed: true, totalBytes: range.total, validator: validator ?? req.validator, body };
    }
    return { kind: 'body', resumed: false, totalBytes: contentLength(res.headers), validator, body };
  }
}

function contentLength(headers: Headers): number | null {
  if (headers.get('content-encoding') && headers.get('content-encoding') !== 'identity') return null;
  const raw = headers.get('content-length');
  if (raw === null || !/^\d+$/.test(raw)) return null;
  return Number(raw);
}

/** `If-Range` accepts only a strong ETag or a Last-Modified date. */
function strongValidator(headers: Headers): string | null {
  const etag = headers.get('etag');
  if (etag && !etag.startsWith('W/')) return etag;
  return headers.get('last-modified');
}
