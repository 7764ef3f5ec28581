import { Injectable } from '@nestjs/common';

export type FleetChange =
  | { type: 'spokes-changed'; spokes: string[] }
  | { type: 'spoke-enrolled'; spoke: string; mqttUsername: string; mqttPassword: string }
  | { type: 'spoke-revoked'; spoke: string; mqttUsername: string }
  | { type: 'policy-changed' };

/**
 * In-process notifications between feature modules (labels patched, spoke
 * revoked, policy applied), so that the API does not import the broker or
 * the desired-state publisher. Listeners run after the transaction commits.
 */
@Injectable()
export class FleetEvents {
  private readonly listeners: Array<(c: FleetChange) => void | Promise<void>> = [];

  on(listener: (c: FleetChange) => void | Promise<void>): void {
    this.listeners.push(listener);
  }

  async emit(change: FleetChange): Promise<void> {
    for (const l of this.listeners) await l(change);
  }
}
