import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Secrets (API tokens, enrolment tokens, MQTT passwords) are 256-bit random
 * strings, shown once and stored as sha256: with that much entropy a fast
 * hash is enough, and lookups by hash stay indexed.
 */
export function newSecret(prefix: string): string {
  return `${prefix}_${randomBytes(32).toString('base64url')}`;
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

export function secretMatches(secret: string, hash: string | null): boolean {
  if (!hash) return false;
  const a = Buffer.from(hashSecret(secret), 'hex');
  const b = Buffer.from(hash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Enough of a secret to tell tokens apart in lists, never enough to use. */
export function secretPrefix(secret: string): string {
  return secret.slice(0, 12);
}
