import type { DataSource } from 'typeorm';
import type { Reconciler } from '../controllers/controller.js';
import type { EnvelopePublisher } from './envelope-publisher.js';
import type { FleetRenderer } from './fleet-renderer.js';

/** The one key of the desired-state controller: rendering is fleet-wide. */
export const FLEET_KEY = 'fleet';

/**
 * Keeps every spoke's stored desired state equal to what the policy objects,
 * the registry and the fleet say now: renders, stores the generations that
 * changed, and publishes them after the commit. Runs at start, on every change
 * that can move a placement (enrolment, labels, capacity, revocation), and at
 * each resync; applies render in their own transaction with the same renderer.
 */
export class DesiredStateReconciler implements Reconciler {
  readonly name = 'desired-state';

  constructor(
    private readonly ds: DataSource,
    private readonly renderer: FleetRenderer,
    private readonly envelopes: EnvelopePublisher,
  ) {}

  async listKeys(): Promise<string[]> {
    return [FLEET_KEY];
  }

  async reconcile(): Promise<void> {
    const stored = await this.ds.transaction((em) => this.renderer.renderAndStore(em));
    await this.envelopes.publish(stored.changed, 'changed');
  }
}
