import type { DesiredPayload } from '@flotilla/contracts';
import type { DataSource } from 'typeorm';
import type { ReconcileOutcome, Reconciler } from '../controllers/controller.js';
import { connectionOf } from '../spokes/spoke.dto.js';
import type { EnvelopePublisher } from './envelope-publisher.js';

/** A spoke still behind this long after its last envelope gets it again. */
export const REPUBLISH_AFTER_MS = 10_000;

interface SpokeDesiredRow {
  name: string;
  presence: 'online' | 'offline';
  last_seen_at: Date | null;
  accepted_generation: number;
  generation: number;
  payload: DesiredPayload;
  issued_at: Date;
}

/**
 * Makes sure each spoke can get its current envelope. Postgres is the truth
 * and MQTT only carries it, so the envelope is published again when this
 * process has not published the current generation (a hub start: the embedded
 * broker's retained store is memory), and when an online spoke still has not
 * accepted it REPUBLISH_AFTER_MS after the last send (a lost retained message,
 * a broker restart). Keys are spoke names; ingest enqueues a spoke that comes
 * online or reports a generation behind, and the resync finds the rest.
 */
export class SpokeSyncReconciler implements Reconciler {
  readonly name = 'spoke-sync';

  constructor(
    private readonly ds: DataSource,
    private readonly envelopes: EnvelopePublisher,
    private readonly telemetryIntervalSeconds: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Spokes this process has not published the current generation to, and spokes behind. */
  async listKeys(): Promise<string[]> {
    const rows: { name: string; generation: number; accepted_generation: number }[] = await this.ds.query(
      `SELECT s.name, d.generation, s.accepted_generation FROM spokes s JOIN desired_states d ON d.spoke_id = s.id
       WHERE s.revoked_at IS NULL ORDER BY s.name`,
    );
    return rows.filter((r) => this.envelopes.lastPublished(r.name)?.generation !== r.generation || r.accepted_generation < r.generation).map((r) => r.name);
  }

  async reconcile(spoke: string): Promise<ReconcileOutcome | void> {
    const rows: SpokeDesiredRow[] = await this.ds.query(
      `SELECT s.name, s.presence, s.last_seen_at, s.accepted_generation, d.generation, d.payload, d.issued_at
       FROM spokes s JOIN desired_states d ON d.spoke_id = s.id WHERE s.name = $1 AND s.revoked_at IS NULL`,
      [spoke],
    );
    const row = rows[0];
    if (!row) return; // revoked, or nothing rendered for it yet
    const last = this.envelopes.lastPublished(spoke);
    const online = connectionOf({ presence: row.presence, lastSeenAt: row.last_seen_at }, this.now(), this.telemetryIntervalSeconds) === 'online';
    const behind = row.accepted_generation < row.generation;
    let cause: 'start' | 'behind' | null = null;
    if (last?.generation !== row.generation) cause = 'start';
    else if (online && behind && this.now() - last.at >= REPUBLISH_AFTER_MS) cause = 'behind';
    if (cause) {
      const published = await this.envelopes.publish(
        [{ spoke, generation: row.generation, text: () => JSON.stringify(this.envelopes.sign(spoke, row.generation, new Date(row.issued_at), row.payload)) }],
        cause,
      );
      if (published.length === 0) throw new Error(`could not publish generation ${row.generation} to ${spoke}`);
    }
    // Keep looking while an online spoke is behind: the bound on how long it can stay so.
    if (online && behind) return { requeueAfterMs: REPUBLISH_AFTER_MS };
  }
}
