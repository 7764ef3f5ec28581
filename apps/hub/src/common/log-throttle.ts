/**
 * Rate-limits a repeated log line: at most one line per key per interval,
 * carrying how many were suppressed since the last one. The exact counts
 * belong on /metrics; this only keeps a flood of refused or dropped
 * messages from flooding the log. Memory is bounded: past `maxKeys` keys the
 * oldest is forgotten (Map keeps insertion order, so that is O(1)).
 */
export class LogThrottle {
  private readonly keys = new Map<string, { until: number; suppressed: number }>();

  constructor(
    private readonly intervalMs = 10_000,
    private readonly maxKeys = 1_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Whether to log now; `suppressed` is how many lines for this key were skipped before this one. */
  admit(key: string): { log: boolean; suppressed: number } {
    const t = this.now();
    const entry = this.keys.get(key);
    if (entry && t < entry.until) {
      entry.suppressed++;
      return { log: false, suppressed: entry.suppressed };
    }
    const suppressed = entry?.suppressed ?? 0;
    this.keys.delete(key);
    this.keys.set(key, { until: t + this.intervalMs, suppressed: 0 });
    if (this.keys.size > this.maxKeys) {
      const oldest = this.keys.keys().next().value;
      if (oldest !== undefined) this.keys.delete(oldest);
    }
    return { log: true, suppressed };
  }
}
