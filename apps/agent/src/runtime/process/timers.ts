/** setTimeout's longest delay; longer waits are re-armed by whoever owns them. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The runtime's timers (drain deadlines, schedule wake-ups), unref'd so
 * that they never keep the agent alive, and all cleared at close.
 */
export class RuntimeTimers {
  private readonly timers = new Set<NodeJS.Timeout>();

  after(ms: number, fn: () => void): NodeJS.Timeout {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, Math.min(Math.max(0, ms), MAX_TIMER_MS));
    t.unref();
    this.timers.add(t);
    return t;
  }

  cancel(t: NodeJS.Timeout | undefined): void {
    if (!t) return;
    clearTimeout(t);
    this.timers.delete(t);
  }

  clear(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}
