import { payloadHash } from '@flotilla/contracts';

/** sha256 of the RFC 8785 canonical JSON of a value, for audit before/after digests and change detection. */
export function digestOf(value: unknown): string | null {
  if (value === undefined || value === null) return null;
  return payloadHash(value);
}
