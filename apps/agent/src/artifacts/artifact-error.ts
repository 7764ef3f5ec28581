/**
 * Why a model version could not be made available. The first three are the
 * reasons the ArtifactProvider contract names; `ArtifactInvalid` covers a
 * ModelRef the cache can never serve as given (malformed digest or URI, a
 * format with no single-file layout such as `savedmodel`), so that the caller
 * reports it instead of requeueing it forever; `SourceRefused` a URI the
 * agent's source policy does not let it read (nothing was read).
 */
export type ArtifactErrorReason =
  | 'ArtifactDigestMismatch'
  | 'ArtifactUnavailable'
  | 'ArtifactTooLarge'
  | 'ArtifactInvalid'
  | 'SourceRefused';

export interface ArtifactErrorOptions {
  uri: string;
  digest: string;
  cause?: unknown;
  /**
   * Worth another attempt inside the same `ensure` call (connection reset,
   * 5xx, timeout). A 404 or 403 is not: it will not change in a few seconds,
   * so the caller's requeue with backoff handles it.
   */
  transient?: boolean;
}

export class ArtifactError extends Error {
  override readonly name = 'ArtifactError';
  readonly reason: ArtifactErrorReason;
  readonly uri: string;
  readonly digest: string;
  /** The caller should requeue and try again later (only `ArtifactUnavailable`). */
  readonly retryable: boolean;
  /** Retried by the cache itself within one `ensure` call, with backoff. */
  readonly transient: boolean;

  constructor(reason: ArtifactErrorReason, message: string, opts: ArtifactErrorOptions) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.reason = reason;
    this.uri = opts.uri;
    this.digest = opts.digest;
    this.retryable = reason === 'ArtifactUnavailable';
    this.transient = this.retryable && opts.transient === true;
  }
}

export function isArtifactError(err: unknown): err is ArtifactError {
  return err instanceof ArtifactError;
}

/**
 * A short description of any thrown value, for messages and logs.
 * Duck-typed, since errors from another realm (fetch inside a VM context)
 * are not `instanceof Error` here.
 */
export function describeError(err: unknown): string {
  if (typeof err !== 'object' || err === null || !('message' in err)) return String(err);
  const e = err as { message: unknown; code?: unknown; cause?: unknown };
  const code = typeof e.code === 'string' ? `${e.code} ` : '';
  const cause = typeof e.cause === 'object' && e.cause !== null && 'message' in e.cause ? `: ${String((e.cause as { message: unknown }).message)}` : '';
  return `${code}${String(e.message)}${cause}`;
}
