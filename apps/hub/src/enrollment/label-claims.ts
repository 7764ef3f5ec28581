import { labelKeyProblem } from '@flotilla/policy';
import { DomainError, validationFailed } from '../errors/domain-error.js';

/** Label keys under this prefix are the hub's: no agent may claim them, no API token may stamp them. */
export const RESERVED_LABEL_PREFIX = 'flotilla.dev/';

/** In allowedLabelKeys: any key outside the reserved prefix. */
export const ANY_LABEL_KEY = '*';

export const isReservedLabelKey = (key: string): boolean => key.startsWith(RESERVED_LABEL_PREFIX);

/**
 * Checks what an enrolment token is created with: label keys well formed and
 * outside the reserved prefix (unless the hub mints it for its own local
 * agent), and allowed keys that are label keys or `*`. Throws a 400 naming
 * every bad entry.
 */
export function checkTokenLabelRules(labels: Record<string, string>, allowedLabelKeys: readonly string[], mayUseReserved: boolean): void {
  const problems: { field: string; message: string }[] = [];
  if (!mayUseReserved) {
    for (const key of Object.keys(labels)) {
      if (isReservedLabelKey(key)) problems.push({ field: `labels.${key}`, message: `the "${RESERVED_LABEL_PREFIX}" prefix is reserved for the hub` });
    }
  }
  allowedLabelKeys.forEach((key, i) => {
    if (key === ANY_LABEL_KEY) return;
    const problem = labelKeyProblem(key);
    if (problem) problems.push({ field: `allowedLabelKeys.${i}`, message: `"${key}": ${problem}` });
    else if (isReservedLabelKey(key)) problems.push({ field: `allowedLabelKeys.${i}`, message: `"${key}": the "${RESERVED_LABEL_PREFIX}" prefix is reserved for the hub; agents can never claim it` });
  });
  if (problems.length) throw validationFailed(problems);
}

/**
 * The labels an enrolling agent asked for, checked against its token: a key
 * the token sets is fine (the token's value wins), others only when the token
 * allows them; reserved keys never. Throws a 403 naming the first refused key.
 */
export function checkLabelClaims(requested: Record<string, string>, token: { labels: Record<string, string>; allowedLabelKeys: readonly string[] }): void {
  for (const key of Object.keys(requested).sort()) {
    if (isReservedLabelKey(key)) {
      throw new DomainError('label_not_allowed', 403, `label "${key}" refused: the "${RESERVED_LABEL_PREFIX}" prefix is reserved for the hub`, { key });
    }
    if (key in token.labels) continue;
    if (token.allowedLabelKeys.includes(ANY_LABEL_KEY) || token.allowedLabelKeys.includes(key)) continue;
    const allowed = token.allowedLabelKeys.length ? `it allows ${token.allowedLabelKeys.map((k) => `"${k}"`).join(', ')}` : 'it allows none';
    throw new DomainError('label_not_allowed', 403, `label "${key}" refused: the enrolment token does not let agents claim that key (${allowed}; an admin sets allowedLabelKeys when creating it)`, {
      key,
      allowedLabelKeys: token.allowedLabelKeys,
    });
  }
}
