import type { FetchLike } from '../security/guarded-fetch.js';
import { isSourceRefused, type SourceRefusedError, type SourcePolicy } from '../security/source-policy.js';
import { ArtifactError, describeError } from './artifact-error.js';
import { parseContentRange, type ArtifactSource, type OpenRequest, type OpenResult } from './source.js';

export type { FetchLike } from '../security/guarded-fetch.js';

/** Redirects followed for one request, each hop checked against the source policy. */
const MAX_REDIRECTS = 5;

/** The SourceRefusedError behind a fetch failure (thrown by the guarded connection), if that is what it was. */
function refusalIn(err: unknown): SourceRefusedError | null {
  for (let e: unknown = err, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth += 1) {
    if (isSourceRefused(e)) return e;
  }
  return null;
}

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
  constructor(
    private readonly fetchFn: FetchLike,
    private readonly policy: SourcePolicy,
  ) {}

  /**
   * GET with redirects followed here, not by fetch, so every hop's URL and
   * resolved address is checked against the source policy before it is asked.
   */
  private async get(req: OpenRequest, headers: Record<string, string>): Promise<Response> {
    let url = req.uri;
    for (let hop = 0; ; hop += 1) {
      await this.policy.checkArtifactUrl(url);
      const res = await this.fetchFn(url, { headers, signal: req.signal, redirect: 'manual' });
      const location = res.status >= 300 && res.status < 400 ? res.headers.get('location') : null;
      if (!location) return res;
      await res.body?.cancel().catch(() => undefined);
      if (hop >= MAX_REDIRECTS) throw Object.assign(new Error(`more than ${MAX_REDIRECTS} redirects`), { code: 'ETOOMANYREDIRECTS' });
      url = new URL(location, url).toString();
    }
  }

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
      res = await this.get(req, headers);
    } catch (err) {
      if (req.signal.aborted) throw err;
      const refused = refusalIn(err);
      if (refused) throw new ArtifactError('SourceRefused', refused.message, { uri: req.uri, digest: req.digest, cause: refused });
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
