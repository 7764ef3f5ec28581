import { type DesiredPayload, type Envelope, PROTOCOL_VERSION, canonicalHash, canonicalJson, desiredTopic, signEnvelope } from '@flotilla/contracts';
import { RenderError, renderDesired } from '@flotilla/policy';
import type { Logger } from 'pino';
import type { DataSource, EntityManager } from 'typeorm';
import { DesiredStateEntity } from '../database/entities/desired-state.entity.js';
import type { HubMetrics } from '../metrics/hub-metrics.js';
import type { HubPublisher } from '../mqtt/hub-publisher.js';
import type { HubSigningKey } from './signing-key.js';
import { loadPolicyObjects, loadRegistry, loadSpokes } from './fleet-snapshot.js';

/** Serialises renders across hub replicas: a transaction-scoped advisory lock. */
export const RENDER_LOCK = 0x666c6f74; // "flot"

/** Envelopes signed, or handed to the broker connection, per event-loop turn. */
const PUBLISH_CHUNK = 200;

export interface RefreshResult {
  /** Spokes whose payload changed (their generation rose). */
  changed: string[];
  spokes: number;
}

/**
 * Keeps each spoke's desired state: renders the fleet from the policy objects
 * and the registry, persists a new generation only for spokes whose payload
 * hash changed, and publishes those envelopes signed and retained. Postgres is
 * the source of truth; the broker only carries it.
 */
export class DesiredStateService {
  private running: Promise<RefreshResult> | null = null;
  private again = false;
  private readonly lastPublish = new Map<string, number>();

  constructor(
    private readonly ds: DataSource,
    private readonly publisher: HubPublisher,
    private readonly key: HubSigningKey,
    private readonly metrics: HubMetrics,
    private readonly log: Logger,
    private readonly telemetryIntervalSeconds: number,
  ) {}

  /**
   * Re-renders and publishes what changed. Calls that arrive while a refresh
   * runs are coalesced into one more run, so a burst of label patches costs
   * at most two renders.
   */
  refresh(): Promise<RefreshResult> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      let result: RefreshResult;
      do {
        this.again = false;
        result = await this.refreshOnce();
      } while (this.again);
      return result;
    })().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  /** Renders the payloads the fleet would get from `objects` overrides, without writing (dry runs). */
  async renderAll(em: EntityManager, loaded?: Awaited<ReturnType<typeof loadSpokes>>): Promise<Map<string, DesiredPayload>> {
    const objects = await loadPolicyObjects(em);
    const registry = await loadRegistry(em);
    const spokes = loaded ?? (await loadSpokes(em, this.telemetryIntervalSeconds));
    return renderDesired(
      objects,
      spokes.map((s) => s.view),
      { telemetryIntervalSeconds: this.telemetryIntervalSeconds, registry },
    );
  }

  private async refreshOnce(): Promise<RefreshResult> {
    const end = this.metrics.renderSeconds.startTimer();
    const now = new Date();
    const changed = await this.ds.transaction(async (em) => {
      await em.query('SELECT pg_advisory_xact_lock($1)', [RENDER_LOCK]);
      const spokes = await loadSpokes(em, this.telemetryIntervalSeconds);
      let rendered: Map<string, DesiredPayload>;
      try {
        rendered = await this.renderAll(em, spokes);
      } catch (err) {
        // Apply checks references, so this means the registry lost a version in use: keep the last good states.
        if (err instanceof RenderError) {
          this.log.error({ problems: err.problems }, 'desired state not rendered; spokes keep their last desired state');
          return [];
        }
        throw err;
      }
      const existing = new Map(
        (await em.find(DesiredStateEntity, { select: { spokeId: true, generation: true, hash: true } })).map((d) => [d.spokeId, d]),
      );
      const updates: { spokeId: string; name: string; generation: number; hash: string; payload: DesiredPayload; canonical: string; text: string }[] = [];
      for (const s of spokes) {
        const payload = rendered.get(s.view.name);
        if (!payload) continue;
        const canonical = canonicalJson(payload);
        const hash = canonicalHash(canonical);
        const old = existing.get(s.id);
        if (old?.hash === hash) continue;
        updates.push({ spokeId: s.id, name: s.view.name, generation: (old?.generation ?? 0) + 1, hash, payload, canonical, text: '' });
      }
      // One statement per chunk keeps a fleet-wide change cheap. While Postgres
      // writes, this process signs (the two run on different cores); nothing is
      // published before the commit, so no spoke sees a generation Postgres lacks.
      const writing = (async () => {
        for (let i = 0; i < updates.length; i += 1000) {
          const chunk = updates.slice(i, i + 1000);
          await em.query(
            `INSERT INTO desired_states (spoke_id, generation, payload, hash, issued_at, published_at, updated_at)
             SELECT v.spoke_id, v.generation, v.payload, v.hash, $2, NULL, now()
             FROM jsonb_to_recordset($1::jsonb) AS v(spoke_id uuid, generation int, payload jsonb, hash text)
             ON CONFLICT (spoke_id) DO UPDATE SET generation = EXCLUDED.generation, payload = EXCLUDED.payload,
               hash = EXCLUDED.hash, issued_at = EXCLUDED.issued_at, published_at = NULL, updated_at = now()`,
            [JSON.stringify(chunk.map((u) => ({ spoke_id: u.spokeId, generation: u.generation, payload: u.payload, hash: u.hash }))), now],
          );
          await em.query(
            `UPDATE spokes s SET desired_generation = v.generation
             FROM jsonb_to_recordset($1::jsonb) AS v(spoke_id uuid, generation int) WHERE s.id = v.spoke_id`,
            [JSON.stringify(chunk.map((u) => ({ spoke_id: u.spokeId, generation: u.generation })))],
          );
        }
      })();
      writing.catch(() => undefined); // awaited below; signing must not leave it unobserved
      for (let i = 0; i < updates.length; i += PUBLISH_CHUNK) {
        if (i > 0) await new Promise<void>((resolve) => setImmediate(resolve)); // let the database client's I/O run
        for (const u of updates.slice(i, i + PUBLISH_CHUNK)) u.text = JSON.stringify(this.sign(u.name, u.generation, now, u.payload, u.canonical));
      }
      await writing;
      return updates;
    });
    end();
    await this.publishEnvelopes(
      changed.map((u) => ({ name: u.name, text: () => u.text })),
      'changed',
    );
    return { changed: changed.map((c) => c.name), spokes: changed.length };
  }

  /**
   * Publishes the current desired state of `spoke` again (it came online, or
   * reported a generation behind). At most once per `minIntervalMs` per spoke.
   */
  async republish(spoke: string, cause: 'online' | 'behind' | 'resync', minIntervalMs = 5_000): Promise<boolean> {
    const last = this.lastPublish.get(spoke) ?? 0;
    if (Date.now() - last < minIntervalMs) return false;
    const rows: { generation: number; payload: DesiredPayload; issued_at: Date }[] = await this.ds.query(
      `SELECT d.generation, d.payload, d.issued_at FROM desired_states d JOIN spokes s ON s.id = d.spoke_id
       WHERE s.name = $1 AND s.revoked_at IS NULL`,
      [spoke],
    );
    const row = rows[0];
    if (!row) return false;
    await this.publishEnvelopes([{ name: spoke, text: () => JSON.stringify(this.sign(spoke, row.generation, row.issued_at, row.payload)) }], cause);
    return true;
  }

  /** Clears the retained desired state of a revoked spoke so nothing lingers on the broker. */
  async clear(spoke: string): Promise<void> {
    await this.publisher.publish(desiredTopic(spoke), '', { retain: true });
    this.lastPublish.delete(spoke);
  }

  private sign(spoke: string, generation: number, issuedAt: Date, payload: DesiredPayload, canonicalPayload?: string): Envelope {
    return signEnvelope({ v: PROTOCOL_VERSION, spoke, generation, issuedAt: issuedAt.toISOString(), payload }, this.key.privateKey, canonicalPayload);
  }

  private async publishEnvelopes(
    items: { name: string; text: () => string }[],
    cause: 'changed' | 'online' | 'behind' | 'resync',
  ): Promise<void> {
    if (items.length === 0) return;
    const published: string[] = [];
    const sends: Promise<void>[] = [];
    for (let i = 0; i < items.length; i += PUBLISH_CHUNK) {
      if (i > 0) await new Promise<void>((resolve) => setImmediate(resolve)); // let the socket drain the chunk before signing the next
      for (const { name, text: render } of items.slice(i, i + PUBLISH_CHUNK)) {
        let text: string;
        try {
          text = render();
        } catch (err) {
          this.log.error({ spoke: name, err: (err as Error).message }, 'desired state not signed');
          continue;
        }
        sends.push(
          this.publisher.publish(desiredTopic(name), text, { retain: true }).then(
            () => {
              this.lastPublish.set(name, Date.now());
              this.metrics.desiredPublished.inc({ cause });
              published.push(name);
            },
            (err: Error) => this.log.warn({ spoke: name, err: err.message }, 'desired state not published; it will be when the spoke reports'),
          ),
        );
      }
    }
    await Promise.all(sends);
    if (published.length) {
      await this.ds.query(
        `UPDATE desired_states d SET published_at = now() FROM spokes s WHERE s.id = d.spoke_id AND s.name = ANY($1)`,
        [published],
      );
    }
  }
}
