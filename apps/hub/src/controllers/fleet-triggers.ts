import type { Controller } from './controller.js';

/** The desired-state controller's keys (see DesiredStateReconciler). */
const FLEET = 'fleet';
const PENDING = 'pending';

/**
 * How use cases tell the hub's controllers that something may be out of date.
 * Only a hint: each controller reads the truth from Postgres and resyncs at
 * start and periodically, so a hint lost in a crash costs a delay, not work.
 */
export class FleetTriggers {
  constructor(
    private readonly desired: Controller,
    private readonly spokeSync: Controller,
    private readonly brokerCredentials: Controller,
  ) {}

  /** Policy objects or the registry changed: render the fleet again. */
  renderFleet(): void {
    this.desired.enqueue(FLEET);
  }

  /** Spokes got a render request (enrolment, capacity change): render those, incrementally. */
  renderSpokes(): void {
    this.desired.enqueue(PENDING);
  }

  /** The spoke came online or reported a generation behind. */
  syncSpoke(spoke: string): void {
    this.spokeSync.enqueue(spoke);
  }

  /** The spoke was revoked: the broker must forget it (retried until it does). */
  spokeRevoked(spoke: string): void {
    this.brokerCredentials.enqueue(spoke);
    this.renderSpokes();
  }
}
