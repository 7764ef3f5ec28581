/**
 * Domain errors carry a stable code; one filter per transport maps them
 * (HTTP: errors/http-exception.filter.ts). Domain code never builds HTTP
 * responses itself.
 */
export class DomainError extends Error {
  constructor(
    readonly code: string,
    readonly status: number,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'DomainError';
  }
}

export interface FieldProblem {
  /** Dotted path of the offending field, e.g. `spec.replicas.max`. */
  field: string;
  message: string;
}

export const validationFailed = (problems: FieldProblem[], what = 'request body') =>
  new DomainError(
    'validation_failed',
    400,
    `invalid ${what}: ${problems.map((p) => (p.field ? `${p.field}: ${p.message}` : p.message)).join('; ')}`,
    { problems },
  );

export const notFound = (kind: string, name: string) =>
  new DomainError('not_found', 404, `${kind} "${name}" not found`, { kind, name });

export const conflict = (code: string, message: string, details: Record<string, unknown> = {}) =>
  new DomainError(code, 409, message, details);

export const unauthenticated = (message: string) => new DomainError('unauthenticated', 401, message);

export const forbidden = (message: string, details: Record<string, unknown> = {}) =>
  new DomainError('forbidden', 403, message, details);
