import { DomainError } from '../errors/domain-error.js';

/**
 * Slows down token guessing: after `maxFailures` failed authentications from
 * one client address within `windowMs`, further attempts from it are refused
 * with 429 until the window passes. Successful calls are never counted.
 */
export class FailedAuthLimiter {
  private readonly failures = new Map<string, number[]>();

  constructor(
    private readonly maxFailures = 10,
    private readonly windowMs = 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  check(client: string): void {
    const recent = this.recent(client);
    if (recent.length >= this.maxFailures) {
      const oldest = recent[0] ?? this.now();
      const retryAfterSeconds = Math.max(1, Math.ceil((oldest + this.windowMs - this.now()) / 1000));
      throw new DomainError('rate_limited', 429, `too many failed authentications from ${client}; retry in ${retryAfterSeconds} s`, {
        retryAfterSeconds,
      });
    }
  }

  fail(client: string): void {
    const recent = this.recent(client);
    recent.push(this.now());
    this.failures.set(client, recent);
    if (this.failures.size > 10_000) this.sweep();
  }

  private recent(client: string): number[] {
    const cutoff = this.now() - this.windowMs;
    return (this.failures.get(client) ?? []).filter((t) => t > cutoff);
  }

  private sweep(): void {
    for (const key of this.failures.keys()) if (this.recent(key).length === 0) this.failures.delete(key);
  }
}
