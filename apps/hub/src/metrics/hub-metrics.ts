import { type DecodeErrorCode, SPOKE_PUBLISH_CHANNELS } from '@flotilla/contracts';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { BROKER_REFUSALS } from '../broker/broker-refusals.js';

/** Why ingest drops an agent message: the decoder's codes, then the hub's own topic checks. */
const DECODE_FAILURES = ['TooLarge', 'InvalidJson', 'SchemaViolation'] as const satisfies readonly DecodeErrorCode[];
// Fails to compile when libs/contracts adds a decode error code this list lacks.
const _everyDecodeFailure: [Exclude<DecodeErrorCode, (typeof DECODE_FAILURES)[number]>] extends [never] ? true : never = true;
export const DROP_REASONS = [...DECODE_FAILURES, 'ForeignSpoke', 'UnknownTopic'] as const;

/** Why the hub publishes a desired state again. */
export const PUBLISH_CAUSES = ['changed', 'online', 'behind', 'resync', 'start'] as const;

/** The hub's Prometheus registry (its own, never the global one). */
export class HubMetrics {
  readonly registry = new Registry();

  readonly messagesReceived = new Counter({
    name: 'flotilla_hub_mqtt_messages_received_total',
    help: 'Agent messages received by the hub, by channel',
    labelNames: ['channel'] as const,
    registers: [this.registry],
  });

  readonly messagesDropped = new Counter({
    name: 'flotilla_hub_mqtt_messages_dropped_total',
    help: 'Agent messages dropped by the hub, by channel and reason (TooLarge, InvalidJson, SchemaViolation, ForeignSpoke, UnknownTopic)',
    labelNames: ['channel', 'reason'] as const,
    registers: [this.registry],
  });

  readonly desiredPublished = new Counter({
    name: 'flotilla_hub_desired_published_total',
    help: 'Signed desired-state envelopes published, by cause (changed, online, behind, resync)',
    labelNames: ['cause'] as const,
    registers: [this.registry],
  });

  readonly stateFlushes = new Histogram({
    name: 'flotilla_hub_spoke_state_flush_seconds',
    help: 'Time to write one batch of spoke state to Postgres',
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });

  readonly stateFlushRows = new Counter({
    name: 'flotilla_hub_spoke_state_rows_written_total',
    help: 'Spoke rows updated by batched ingest',
    registers: [this.registry],
  });

  readonly renderSeconds = new Histogram({
    name: 'flotilla_hub_render_seconds',
    help: 'Time to render and persist the desired state of the fleet',
    buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });

  readonly mqttConnected = new Gauge({
    name: 'flotilla_hub_mqtt_connected',
    help: '1 while the hub is connected to the broker',
    registers: [this.registry],
  });

  readonly reconciles = new Counter({
    name: 'flotilla_hub_reconciles_total',
    help: 'Reconciles run by the hub controllers, by controller and outcome',
    labelNames: ['controller', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly reconcileSeconds = new Histogram({
    name: 'flotilla_hub_reconcile_seconds',
    help: 'Time one reconcile of a hub controller took',
    labelNames: ['controller'] as const,
    buckets: [0.001, 0.005, 0.02, 0.1, 0.5, 2, 10],
    registers: [this.registry],
  });

  readonly policyObjectStalled = new Gauge({
    name: 'flotilla_policy_object_stalled',
    help: '1 while a policy object cannot be rendered (a missing placement or model version); its spokes keep what they had',
    labelNames: ['kind', 'name'] as const,
    registers: [this.registry],
  });

  readonly brokerRefused = new Counter({
    name: 'flotilla_hub_mqtt_refused_total',
    help: 'Connections cut and messages refused by the embedded broker, by reason (exact; the log lines about them are rate-limited)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  constructor() {
    for (const reason of BROKER_REFUSALS) this.brokerRefused.inc({ reason }, 0);
    for (const controller of ['desired-state', 'spoke-sync', 'broker-credentials']) {
      for (const outcome of ['success', 'error']) this.reconciles.inc({ controller, outcome }, 0);
    }
    // Counters start at 0 for every label pair known in advance: a series that
    // appears only at its first increment hides that first burst from rate().
    for (const channel of SPOKE_PUBLISH_CHANNELS) {
      this.messagesReceived.inc({ channel }, 0);
      for (const reason of DROP_REASONS) this.messagesDropped.inc({ channel, reason }, 0);
    }
    for (const cause of PUBLISH_CAUSES) this.desiredPublished.inc({ cause }, 0);
    collectDefaultMetrics({ register: this.registry, prefix: 'flotilla_hub_' });
    // These default gauges end in _total, which Prometheus reserves for counters (promtool check metrics).
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
      this.registry.removeSingleMetric(`flotilla_hub_${name}`);
    }
  }

  observeReconcile(controller: string, outcome: 'success' | 'error', seconds: number): void {
    this.reconciles.inc({ controller, outcome });
    this.reconcileSeconds.observe({ controller }, seconds);
  }
}
