import type { Logger } from 'pino';
import type { DataSource } from 'typeorm';
import { requestRender } from '../desired/fleet-renderer.js';
import type { HubMetrics } from '../metrics/hub-metrics.js';

/** The fields one agent message sets on its spoke row; absent fields are left alone. */
export interface SpokeStatePatch {
  name: string;
  lastSeenAt: string;
  presence?: 'online' | 'offline';
  sessionId?: string;
  /** The presence message's own time: an older one (another replica ingested it late) is ignored. */
  presenceAt?: string;
  acceptedGeneration?: number;
  observedGeneration?: number;
  conditions?: unknown;
  capacity?: unknown;
  deployments?: unknown;
  jobs?: unknown;
  telemetry?: unknown;
  telemetryAt?: string;
}

export interface FlushedSpoke {
  name: string;
  desiredGeneration: number;
  acceptedGeneration: number;
  observedGeneration: number;
  cameOnline: boolean;
  reportedStatus: boolean;
  capacityChanged: boolean;
}

/**
 * Coalesces agent messages per spoke and writes them in one UPDATE per batch,
 * so ingest cost grows with batches, not messages. A will (`offline`) from an
 * older session never marks a reconnected spoke offline.
 */
export class SpokeStateWriter {
  private pending = new Map<string, SpokeStatePatch & { sawStatus: boolean }>();
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly ds: DataSource,
    private readonly metrics: HubMetrics,
    private readonly log: Logger,
    private readonly onFlushed: (rows: FlushedSpoke[]) => Promise<void>,
    private readonly delayMs = 100,
    private readonly maxBatch = 2000,
  ) {}

  add(patch: SpokeStatePatch): void {
    if (this.closed) return;
    const prev = this.pending.get(patch.name);
    const sawStatus = (prev?.sawStatus ?? false) || patch.observedGeneration !== undefined;
    let fields: Partial<SpokeStatePatch> = stripUndefined(patch);
    // A presence older than the one already pending (messages reach replicas and batches out of order) does not replace it.
    if (prev?.presenceAt && patch.presenceAt && Date.parse(patch.presenceAt) < Date.parse(prev.presenceAt)) {
      const { presence: _p, sessionId: _s, presenceAt: _a, ...rest } = fields;
      fields = rest;
    }
    this.pending.set(patch.name, { ...prev, ...fields, name: patch.name, lastSeenAt: patch.lastSeenAt, sawStatus });
    if (this.pending.size >= this.maxBatch) this.schedule(0);
    else this.schedule(this.delayMs);
  }

  /** Writes whatever is pending now. */
  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const batch = [...this.pending.values()];
    this.pending = new Map();
    if (batch.length === 0) return this.flushing;
    this.flushing = this.flushing.then(() => this.writeRetrying(batch)).catch((err) => this.log.error({ err }, 'spoke state batch failed'));
    return this.flushing;
  }

  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
  }

  private schedule(ms: number): void {
    if (this.timer && ms > 0) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.flush();
    }, ms);
  }

  /**
   * A batch touches many spoke rows at once, as a render does; Postgres may
   * pick one of the two as a deadlock victim. The batch is idempotent (it sets
   * values), so it is written again rather than lost.
   */
  private async writeRetrying(batch: Array<SpokeStatePatch & { sawStatus: boolean }>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.write(batch);
      } catch (err) {
        const code = (err as { driverError?: { code?: string } }).driverError?.code;
        if (attempt >= 5 || (code !== '40P01' && code !== '40001')) throw err;
        this.log.warn({ attempt, code }, 'spoke state batch lost a lock conflict; writing it again');
        await new Promise((r) => setTimeout(r, 20 * attempt));
      }
    }
  }

  private async write(batch: Array<SpokeStatePatch & { sawStatus: boolean }>): Promise<void> {
    const end = this.metrics.stateFlushes.startTimer();
    // For UPDATE ... RETURNING, TypeORM's postgres driver resolves to [rows, affected count].
    const [rows]: [
      Array<{
        name: string;
        desired_generation: number;
        accepted_generation: number;
        observed_generation: number;
        came_online: boolean;
        capacity_changed: boolean;
      }>,
      number,
    ] = await this.ds.transaction(async (em) => {
      // Hub replicas write the same spoke rows concurrently: lock them first (in id order), so the
      // UPDATE's snapshot of the old row (o) is the latest committed one and no replica's write is lost.
      await em.query(`SELECT 1 FROM spokes WHERE name = ANY($1) ORDER BY id FOR UPDATE`, [batch.map((b) => b.name)]);
      const updated = await em.query(
      `UPDATE spokes s SET
         presence = CASE
           WHEN v.presence IS NOT NULL AND v."presenceAt" < o.presence_at THEN o.presence
           WHEN v.presence = 'offline' AND v."sessionId" IS DISTINCT FROM o.session_id THEN o.presence
           ELSE COALESCE(v.presence, o.presence) END,
         session_id = CASE WHEN v.presence = 'online' AND NOT COALESCE(v."presenceAt" < o.presence_at, false) THEN v."sessionId" ELSE o.session_id END,
         presence_at = CASE WHEN v.presence IS NOT NULL THEN GREATEST(o.presence_at, v."presenceAt") ELSE o.presence_at END,
         last_seen_at = GREATEST(o.last_seen_at, v."lastSeenAt"),
         accepted_generation = COALESCE(v."acceptedGeneration", o.accepted_generation),
         observed_generation = COALESCE(v."observedGeneration", o.observed_generation),
         conditions = COALESCE(v.conditions, o.conditions),
         capacity = COALESCE(v.capacity, o.capacity),
         deployment_statuses = COALESCE(v.deployments, o.deployment_statuses),
         job_statuses = COALESCE(v.jobs, o.job_statuses),
         telemetry = COALESCE(v.telemetry, o.telemetry),
         telemetry_at = COALESCE(v."telemetryAt", o.telemetry_at),
         updated_at = now()
       FROM spokes o, jsonb_to_recordset($1::jsonb) AS v(
         name text, "lastSeenAt" timestamptz, presence text, "sessionId" text, "presenceAt" timestamptz, "acceptedGeneration" int, "observedGeneration" int,
         conditions jsonb, capacity jsonb, deployments jsonb, jobs jsonb, telemetry jsonb, "telemetryAt" timestamptz)
       WHERE s.id = o.id AND o.name = v.name AND o.revoked_at IS NULL
       RETURNING s.name, s.desired_generation, s.accepted_generation, s.observed_generation,
         (v.presence = 'online' AND NOT COALESCE(v."presenceAt" < o.presence_at, false) AND (o.presence <> 'online' OR o.session_id IS DISTINCT FROM v."sessionId")) AS came_online,
         (v.capacity IS NOT NULL AND v.capacity IS DISTINCT FROM o.capacity) AS capacity_changed`,
      [JSON.stringify(batch)],
      );
      // A capacity change can move placements: a durable render request for the spoke, in this transaction.
      await requestRender(em, (updated[0] as Array<{ name: string; capacity_changed: boolean }>).filter((r) => r.capacity_changed).map((r) => r.name));
      return updated;
    });
    end();
    this.metrics.stateFlushRows.inc(rows.length);
    const sawStatus = new Set(batch.filter((b) => b.sawStatus).map((b) => b.name));
    await this.onFlushed(
      rows.map((r) => ({
        name: r.name,
        desiredGeneration: r.desired_generation,
        acceptedGeneration: r.accepted_generation,
        observedGeneration: r.observed_generation,
        cameOnline: r.came_online === true,
        reportedStatus: sawStatus.has(r.name),
        capacityChanged: r.capacity_changed === true,
      })),
    );
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
