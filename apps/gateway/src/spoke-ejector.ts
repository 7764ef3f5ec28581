/**
 * Circuit breaking per spoke, as Envoy's outlier detection does: a spoke
 * that failed (no answer, or a 5xx) is passed over for a while, longer each
 * time it fails again in a row; one success restores it.
 */
export class SpokeEjector {
  private readonly state = new Map<string, { failures: number; until: number }>();

  constructor(
    /** First ejection; doubled per consecutive failure up to 8 times that. */
    private readonly baseMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  failed(spoke: string): void {
    const prev = this.state.get(spoke);
    const failures = (prev?.failures ?? 0) + 1;
    this.state.set(spoke, { failures, until: this.now() + this.baseMs * Math.min(8, 2 ** (failures - 1)) });
  }

  succeeded(spoke: string): void {
    this.state.delete(spoke);
  }

  /** Whether any spoke has failed lately (when none has, the rank order stands as is). */
  any(): boolean {
    return this.state.size > 0;
  }

  ejected(spoke: string): boolean {
    const s = this.state.get(spoke);
    return s !== undefined && s.until > this.now();
  }

  /** Spokes passed over right now. */
  ejectedSpokes(): string[] {
    return [...this.state.keys()].filter((s) => this.ejected(s));
  }
}
