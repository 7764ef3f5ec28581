import { randomBytes } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import {
  type AgentEvent,
  type HubInboundChannel,
  type Presence,
  type StatusReport,
  type Telemetry,
  SPOKE_PUBLISH_CHANNELS,
  decodeMessage,
  hubFilter,
  hubSharedFilter,
  mqttConnectTarget,
  parseSpokeTopic,
} from '@flotilla/contracts';
import type { Logger } from 'pino';
import type { HubMetrics } from '../metrics/hub-metrics.js';
import { type MqttEndpoint, tlsOptionsFor } from '../mqtt/hub-publisher.js';
import type { SpokeStateWriter } from './spoke-state-writer.js';
import { LogThrottle } from '../common/log-throttle.js';

export interface IngestOptions {
  endpoint: MqttEndpoint;
  /** `$share/flotilla-hub/...` where the broker has shared subscriptions (Mosquitto, EMQX); plain filters otherwise. */
  sharedSubscriptions: boolean;
  writer: SpokeStateWriter;
  metrics: HubMetrics;
  log: Logger;
  onEvent?: (spoke: string, event: AgentEvent) => void;
  /** Called with each valid status report (fine-tuning registration reads its jobs). */
  onStatus?: (report: StatusReport) => void;
}

/**
 * Agent-to-hub ingest: one mqtt.js session subscribed to every spoke's
 * status, telemetry, events and presence (QoS 1, resubscribed on reconnect).
 * Every message is size-checked, parsed and validated with the contracts
 * schemas at this boundary; a message whose body names another spoke than its
 * topic is dropped and counted. Nothing here throws back into the client.
 */
export class IngestSubscriber {
  private client: MqttClient | null = null;
  /** One line per spoke and reason every 10 s at most; flotilla_hub_mqtt_messages_dropped_total keeps the exact count. */
  private readonly dropLog = new LogThrottle(10_000, 1_000);

  constructor(private readonly o: IngestOptions) {}

  /** Connects and subscribes; resolves once the first subscription is acknowledged. */
  async start(timeoutMs = 15_000): Promise<void> {
    const o = this.o;
    const target = mqttConnectTarget(o.endpoint.url);
    const client = mqtt.connect(target.url, {
      ...(target.servers ? { servers: target.servers } : {}),
      clientId: `flotilla-hub-ingest-${randomBytes(4).toString('hex')}`,
      username: o.endpoint.username,
      password: o.endpoint.password,
      ...tlsOptionsFor(o.endpoint.ca),
      protocolVersion: 4,
      clean: true,
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
      resubscribe: true,
    });
    this.client = client;
    const filters = Object.fromEntries(
      SPOKE_PUBLISH_CHANNELS.map((channel) => [o.sharedSubscriptions ? hubSharedFilter(channel) : hubFilter(channel), { qos: 1 as const }]),
    );
    client.on('message', (topic, payload) => handle(o, this.dropLog, topic, payload));
    client.on('error', (err) => o.log.warn({ err: err.message }, 'ingest mqtt error'));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`hub ingest could not subscribe on ${o.endpoint.url} within ${timeoutMs} ms`)), timeoutMs);
      client.once('connect', () => {
        client.subscribe(filters, (err, granted) => {
          clearTimeout(timer);
          const refused = (granted ?? []).filter((g) => g.qos === 128).map((g) => g.topic);
          if (err || refused.length > 0) reject(new Error(`hub ingest subscription refused: ${err?.message ?? refused.join(', ')}`));
          else resolve();
        });
      });
    });
    o.log.info({ filters: Object.keys(filters) }, 'hub ingest subscribed');
  }

  async close(): Promise<void> {
    const client = this.client;
    this.client = null;
    if (client) await client.endAsync(true);
  }
}

/** Validates one agent message and hands it to the writer (shared by the MQTT and the AMQP ingest). */
export function ingestMessage(o: Pick<IngestOptions, 'writer' | 'metrics' | 'log' | 'onEvent' | 'onStatus'>, dropLog: LogThrottle, topic: string, payload: Buffer): void {
  handle(o, dropLog, topic, payload);
}

/** One agent message: decoded and validated, then handed to the writer, or dropped and counted. Never throws. */
export function handle(o: Pick<IngestOptions, 'writer' | 'metrics' | 'log' | 'onEvent' | 'onStatus'>, dropLog: LogThrottle, topic: string, payload: Buffer): void {
  const parsed = parseSpokeTopic(topic);
  if (!parsed || !(SPOKE_PUBLISH_CHANNELS as readonly string[]).includes(parsed.channel)) {
    o.metrics.messagesDropped.inc({ channel: parsed?.channel ?? 'unknown', reason: 'UnknownTopic' });
    return;
  }
  const channel = parsed.channel as HubInboundChannel;
  // A retained presence is cleared with an empty payload (spoke revoked): nothing to do.
  if (payload.length === 0) return;
  const result = decodeMessage(channel, payload);
  if (!result.ok) {
    o.metrics.messagesDropped.inc({ channel, reason: result.code });
    const { log, suppressed } = dropLog.admit(`${parsed.spoke}\0${result.code}`);
    if (log) {
      const extra = suppressed ? { suppressedSinceLast: suppressed } : {};
      o.log.warn({ spoke: parsed.spoke, channel, reason: result.code, problem: result.message.slice(0, 500), ...extra }, 'agent message dropped');
    }
    return;
  }
  const msg = result.value as { spoke: string };
  if (msg.spoke !== parsed.spoke) {
    o.metrics.messagesDropped.inc({ channel, reason: 'ForeignSpoke' });
    const { log, suppressed } = dropLog.admit(`${parsed.spoke}\0ForeignSpoke`);
    if (log) {
      const extra = suppressed ? { suppressedSinceLast: suppressed } : {};
      o.log.warn({ topicSpoke: parsed.spoke, bodySpoke: msg.spoke, channel, ...extra }, 'agent message names another spoke than its topic; dropped');
    }
    return;
  }
  o.metrics.messagesReceived.inc({ channel });
  const now = new Date().toISOString();
  switch (channel) {
    case 'status': {
      const s = result.value as StatusReport;
      o.writer.add({
        name: s.spoke,
        lastSeenAt: now,
        acceptedGeneration: s.acceptedGeneration,
        observedGeneration: s.observedGeneration,
        conditions: s.conditions,
        deployments: s.deployments,
        jobs: s.jobs,
        ...(s.capacity ? { capacity: s.capacity } : {}),
      });
      o.onStatus?.(s);
      return;
    }
    case 'telemetry': {
      const t = result.value as Telemetry;
      o.writer.add({ name: t.spoke, lastSeenAt: now, telemetry: t, telemetryAt: t.at });
      return;
    }
    case 'presence': {
      const p = result.value as Presence;
      o.writer.add({ name: p.spoke, lastSeenAt: now, presence: p.state, sessionId: p.sessionId, presenceAt: p.at });
      return;
    }
    case 'events': {
      const e = result.value as AgentEvent;
      o.writer.add({ name: e.spoke, lastSeenAt: now });
      const level = e.type === 'EnvelopeRejected' || e.type === 'WorkloadError' ? 'warn' : 'info';
      o.log[level]({ spoke: e.spoke, type: e.type, reason: e.reason, message: e.message }, 'agent event');
      o.onEvent?.(e.spoke, e);
      return;
    }
  }
}
