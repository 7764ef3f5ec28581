/** Distinct exit codes so scripts can tell what went wrong. */
export const EXIT = {
  ok: 0,
  /** The hub or a dependency failed (5xx, unreachable, start failure). */
  failure: 1,
  /** Wrong flags or arguments. */
  usage: 2,
  /** Input (YAML, flags' values) is invalid. */
  invalid: 3,
  /** The server refused the request (4xx other than validation). */
  refused: 4,
} as const;

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
    this.name = 'CliError';
  }
}
