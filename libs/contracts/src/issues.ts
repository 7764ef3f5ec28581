import type { z } from 'zod';

const MAX_LISTED = 10;

/** `path.to.field: message; ...` for error messages (at most ten issues, then a count). */
export function formatIssues(issues: readonly z.core.$ZodIssue[]): string {
  const listed = issues.slice(0, MAX_LISTED).map((i) => `${i.path.length > 0 ? i.path.map(String).join('.') : '(root)'}: ${i.message}`);
  const more = issues.length > MAX_LISTED ? `; and ${issues.length - MAX_LISTED} more` : '';
  return listed.join('; ') + more;
}
