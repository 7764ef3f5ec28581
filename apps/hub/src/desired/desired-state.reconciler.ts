import type { DataSource } from 'typeorm';
import type { ReconcileOutcome, Reconciler } from '../controllers/controller.js';
import type { EnvelopePublisher } from './envelope-publisher.js';
import type { FleetRenderer } from './fleet-renderer.js';

/** The key of a whole-fleet render (policy objects or the registry changed, a leader starts). */
export const FLEET_KEY = 'fleet';
/** The key of an incremental render of the spokes with a render request (enrolments, capacity changes). */
export const PENDING_KEY = 'pending';
/** A whole-fleet render at least this often while leading, besides the one at start. */
export const FULL_RENDER_EVERY_MS = 30 * 60_000;

/**
 * Keeps every spoke's stored desired state equal to what the policy objects,
 * the registry and the fleet say now: renders, stores the generations that
 * changed, and publishes them after the commit. Two keys: `fleet` renders
 * everything (at start, which repairs whatever a crash or a lost hint left,
 * on registry changes, and every FULL_RENDER_EVERY_MS); `pending` renders only
 * the spokes with a durable render request (an enrolment, a capacity change)
 * and the few a capped placement moves because of them, in batches. Applies,
 * label changes and revocations render in their own transaction with the same
 * renderer.
 */
export class DesiredStateReconciler implements Reconciler {
  readonly name = 'desired-state';
  private lastFullAt = 0;

  constructor(
    private readonly ds: DataSource,
    private readonly renderer: FleetRenderer,
    private readonly envelopes: EnvelopePublisher,
    private readonly now: () => number = Date.now,
  ) {}

  /** This hub leads again: its first resync renders the whole fleet. */
  forgetFullRender(): void {
    this.lastFullAt = 0;
  }

  async listKeys(): Promise<string[]> {
    const keys: string[] = [];
    if (this.now() - this.lastFullAt >= FULL_RENDER_EVERY_MS) keys.push(FLEET_KEY);
    const pending: unknown[] = await this.ds.query(`SELECT 1 FROM render_requests LIMIT 1`);
    if (pending.length > 0) keys.push(PENDING_KEY);
    return keys;
  }

  async reconcile(key: string): Promise<ReconcileOutcome | void> {
    if (key === FLEET_KEY) {
      const started = this.now();
      const stored = await this.ds.transaction((em) => this.renderer.renderAndStore(em));
      this.lastFullAt = started;
      await this.envelopes.publish(stored.changed, 'changed');
      return;
    }
    const stored = await this.ds.transaction((em) => this.renderer.renderSpokes(em));
    await this.envelopes.publish(stored.changed, 'changed');
    if (stored.more) return { requeueAfterMs: 0 };
  }
}
