import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';

/**
 * RFC 8785 (JSON Canonicalization Scheme) serialisation: object keys sorted by
 * UTF-16 code units, no whitespace, ECMAScript number formatting. Signatures
 * and payload hashes are computed over this form so that the same value always
 * hashes the same, whatever order its keys were written in.
 *
 * Throws `CanonicalJsonError` for values JSON cannot represent faithfully
 * (undefined at the top, NaN, Infinity, lone surrogates, cycles).
 */
export class CanonicalJsonError extends Error {
  override readonly name = 'CanonicalJsonError';
}

export function canonicalJson(value: unknown): string {
  let text: string | undefined;
  try {
    text = canonicalize(value);
  } catch (err) {
    throw new CanonicalJsonError(`cannot canonicalise value: ${(err as Error).message}`);
  }
  if (text === undefined) {
    throw new CanonicalJsonError(`cannot canonicalise value of type ${typeof value}`);
  }
  return text;
}

/** `sha256:` + hex digest of the canonical JSON of `payload`. */
export function payloadHash(payload: unknown): string {
  return canonicalHash(canonicalJson(payload));
}

/** `payloadHash` of a payload whose canonical JSON is already at hand. */
export function canonicalHash(canonical: string): string {
  return `sha256:${createHash('sha256').update(canonical, 'utf8').digest('hex')}`;
}
