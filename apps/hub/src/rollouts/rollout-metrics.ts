import { Counter, Gauge, type Registry } from 'prom-client';
import type { DataSource } from 'typeorm';
import { ROLLOUT_PHASES, SPOKE_ROLLOUT_STATES } from './rollout-plan.js';

/**
 * Rollout series on the hub's /metrics: rollouts by phase and spokes by
 * rollout state are read from Postgres at scrape time (so every hub replica
 * answers the same); rollbacks are counted by the process that started them.
 */
export class RolloutMetrics {
  readonly rollbacks: Counter<'deployment' | 'cause'>;

  constructor(ds: DataSource, registry: Registry) {
    new Gauge({
      name: 'flotilla_rollouts',
      help: 'Current rollouts by phase (Progressing, Paused, Succeeded, Failed, RolledBack, Aborted)',
      labelNames: ['phase'] as const,
      registers: [registry],
      async collect() {
        const rows: { phase: string; n: number }[] = await ds.query(
          `SELECT CASE WHEN paused AND phase = 'Progressing' THEN 'Paused' ELSE phase END AS phase, count(*)::int AS n FROM rollouts GROUP BY 1`,
        );
        for (const p of ROLLOUT_PHASES) this.set({ phase: p }, rows.find((r) => r.phase === p)?.n ?? 0);
      },
    });
    new Gauge({
      name: 'flotilla_rollout_spokes',
      help: 'Spokes in current rollouts by rollout state (Pending, Progressing, Verifying, Succeeded, RollingBack, RolledBack, Failed)',
      labelNames: ['state'] as const,
      registers: [registry],
      async collect() {
        const rows: { state: string; n: number }[] = await ds.query(`SELECT state, count(*)::int AS n FROM rollout_spokes GROUP BY state`);
        for (const s of SPOKE_ROLLOUT_STATES) this.set({ state: s }, rows.find((r) => r.state === s)?.n ?? 0);
      },
    });
    this.rollbacks = new Counter({
      name: 'flotilla_rollout_rollbacks_total',
      help: 'Rollouts this hub process sent back to the previous revision, by cause (failed, aborted, undo)',
      labelNames: ['deployment', 'cause'] as const,
      registers: [registry],
    });
  }
}
