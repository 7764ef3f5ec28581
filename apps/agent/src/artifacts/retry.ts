import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Backoff inside one `ensure` call. It is deliberately short: after the last
 * attempt the caller's reconcile loop requeues with its own, longer backoff.
 */
export interface RetryPolicy {
  /** Total attempts including the first (>= 1). */
  attempts: number;
  initialDelayMs: number;
  maxDelayMs: number;
  /** Multiplier between consecutive delays. */
  factor: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { attempts: 4, initialDelayMs: 500, maxDelayMs: 8_000, factor: 2 };

/**
 * Delay before attempt `attempt + 1` (attempt counts from 1), with "equal
 * jitter": half fixed, half random, so synchronized spokes spread out but a
 * retry never comes immediately.
 */
export function backoffDelay(policy: RetryPolicy, attempt: number, random: () => number): number {
  const base = Math.min(policy.maxDelayMs, policy.initialDelayMs * policy.factor ** (attempt - 1));
  return base / 2 + (base / 2) * random();
}

/** Waits `ms`, rejecting with the signal's reason as soon as it aborts. */
export async function abortableDelay(ms: number, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted();
  try {
    await sleep(ms, undefined, { signal });
  } catch (err) {
    if (signal.aborted) throw signal.reason;
    throw err;
  }
}

export function validateRetryPolicy(policy: RetryPolicy): RetryPolicy {
  const problems: string[] = [];
  if (!Number.isInteger(policy.attempts) || policy.attempts < 1 || policy.attempts > 20) problems.push('attempts must be an integer in 1..20');
  if (!(policy.initialDelayMs >= 0)) problems.push('initialDelayMs must be >= 0');
  if (!(policy.maxDelayMs >= policy.initialDelayMs)) problems.push('maxDelayMs must be >= initialDelayMs');
  if (!(policy.factor >= 1)) problems.push('factor must be >= 1');
  if (problems.length > 0) throw new RangeError(`invalid retry policy: ${problems.join('; ')}`);
  return policy;
}
