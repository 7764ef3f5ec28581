/**
 * Delay before retry number `attempt` (0-based) with "full jitter"
 * (AWS architecture blog, "Exponential Backoff And Jitter"): uniformly random
 * in [0, min(max, initial * 2^attempt)], so a fleet that lost its broker at the
 * same moment does not come back at the same moment.
 */
export function fullJitterDelay(attempt: number, opts: { initialMs: number; maxMs: number }, random: () => number = Math.random): number {
  return Math.floor(random() * cappedExponential(attempt, opts));
}

/**
 * Retry delay that keeps at least half of the exponential step ("equal
 * jitter"): a failing reconcile must not be retried at once by bad luck.
 */
export function equalJitterDelay(attempt: number, opts: { initialMs: number; maxMs: number }, random: () => number = Math.random): number {
  const step = cappedExponential(attempt, opts);
  return Math.floor(step / 2 + random() * (step / 2));
}

/** `base` spread uniformly over ±`fraction` of itself. */
export function spread(baseMs: number, fraction: number, random: () => number = Math.random): number {
  return Math.max(0, Math.floor(baseMs * (1 - fraction + 2 * fraction * random())));
}

function cappedExponential(attempt: number, { initialMs, maxMs }: { initialMs: number; maxMs: number }): number {
  if (!Number.isFinite(attempt) || attempt < 0) attempt = 0;
  // 2^attempt overflows to Infinity for large attempts; min() keeps it at maxMs.
  return Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 1024));
}
