import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';

/** sha256 of the RFC 8785 canonical JSON of a value, for audit before/after digests. */
export function digestOf(value: unknown): string | null {
  if (value === undefined || value === null) return null;
  return 'sha256:' + createHash('sha256').update(canonicalize(value) ?? '', 'utf8').digest('hex');
}
