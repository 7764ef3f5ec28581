/** What a download asks a source for: the artifact from `offset` on. */
export interface OpenRequest {
  uri: string;
  /** Expected digest, for error messages. */
  digest: string;
  /** Bytes already in the partial file; 0 for a fresh download. */
  offset: number;
  /**
   * The validator (ETag or Last-Modified) recorded when the partial file was
   * started, so the server can refuse to resume from a different object.
   */
  validator: string | null;
  signal: AbortSignal;
}

export type OpenResult =
  | {
      kind: 'body';
      /** True when the body starts at `offset`; false when the source sent the whole artifact. */
      resumed: boolean;
      /** Size of the whole artifact when the source tells it. */
      totalBytes: number | null;
      /** Validator of what is being sent, kept beside the partial file. */
      validator: string | null;
      /**
       * The bytes. Iterated chunk by chunk so that every chunk read is on
       * disk before the next is asked for: a cut connection loses nothing
       * that was already received. Ending the iteration early releases it.
       */
      body: AsyncIterable<Uint8Array>;
    }
  /** The partial file is no prefix the source can continue (416, changed object). */
  | { kind: 'restart' };

/**
 * One way of reading artifact bytes (`file:`, `http(s):`, `s3:`). Sources
 * throw `ArtifactError` with reason `ArtifactUnavailable` (transient or not);
 * size limits, hashing and resume bookkeeping are the downloader's.
 */
export interface ArtifactSource {
  open(req: OpenRequest): Promise<OpenResult>;
}

/** Parses an HTTP `Content-Range: bytes start-end/total` header. */
export function parseContentRange(value: string | null | undefined): { start: number; end: number; total: number | null } | null {
  if (!value) return null;
  const m = /^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/i.exec(value.trim());
  if (!m) return null;
  const start = Number(m[1]);
  const end = Number(m[2]);
  const total = m[3] === '*' ? null : Number(m[3]);
  if (end < start || (total !== null && end >= total)) return null;
  return { start, end, total };
}

/** Releases a body that will not be read (closes the stream or connection). */
export async function discardBody(body: AsyncIterable<Uint8Array>): Promise<void> {
  await body[Symbol.asyncIterator]().return?.()?.catch?.(() => undefined);
}
