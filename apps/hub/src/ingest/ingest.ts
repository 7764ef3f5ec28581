import { randomBytes } from 'node:crypto';
import { MqttContext, ServerMqtt } from '@nestjs/microservices';
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
  parseSpokeTopic,
} from '@flotilla/contracts';
import type { Logger } from 'pino';
import type { HubMetrics } from '../metrics/hub-metrics.js';
import type { MqttEndpoint } from '../mqtt/hub-publisher.js';
import type { SpokeStateWriter } from './spoke-state-writer.js';

/**
 * Nest's MQTT server would JSON-parse payloads and treat an `id` field as a
 * request to answer. Agent messages are events whose bytes we validate
 * ourselves, so every packet is handed over as a bare event.
 */
const rawEvents = { deserialize: (_value: unknown, options?: { channel?: string }) => ({ pattern: options?.channel, data: null }) };

/**
 * Nest's MQTT server, minus two costs per message that the scale benchmark's
 * profile showed at 10,000 spokes: decoding and JSON-parsing every payload
 * before the deserializer (which ignores it here), and JSON-parsing every topic
 * as a possible object pattern (a thrown exception per message). Handlers,
 * wildcard routing and the event path are Nest's own.
 */
class IngestServerMqtt extends ServerMqtt {
  override async handleMessage(channel: string, _buffer: Buffer, _pub: unknown, originalPacket?: Record<string, unknown>): Promise<unknown> {
    return this.handleEvent(channel, { pattern: channel, data: null }, new MqttContext([channel, originalPacket as never]));
  }

  protected override getRouteFromPattern(pattern: string): string {
    return pattern.startsWith('{') ? super.getRouteFromPattern(pattern) : this.normalizePattern(pattern);
  }
}

export interface IngestOptions {
  endpoint: MqttEndpoint;
  /** `$share/flotilla-hub/...` where the broker has shared subscriptions (Mosquitto, EMQX); plain filters otherwise. */
  sharedSubscriptions: boolean;
  writer: SpokeStateWriter;
  metrics: HubMetrics;
  log: Logger;
  onEvent?: (spoke: string, event: AgentEvent) => void;
}

/**
 * Agent-to-hub ingest on the @nestjs/microservices MQTT transport: one event
 * handler per channel. Every message is size-checked, parsed and validated
 * with the contracts schemas; a message whose body names another spoke than
 * its topic is dropped. Nothing here throws back into the transport.
 */
export function createIngestServer(o: IngestOptions): ServerMqtt {
  const server = new IngestServerMqtt({
    url: o.endpoint.url,
    clientId: `flotilla-hub-ingest-${randomBytes(4).toString('hex')}`,
    username: o.endpoint.username,
    password: o.endpoint.password,
    protocolVersion: 4,
    clean: true,
    reconnectPeriod: 1000,
    subscribeOptions: { qos: 1 },
    deserializer: rawEvents,
  } as ConstructorParameters<typeof ServerMqtt>[0]);
  for (const channel of SPOKE_PUBLISH_CHANNELS) {
    const filter = o.sharedSubscriptions ? hubSharedFilter(channel) : hubFilter(channel);
    server.addHandler(filter, async (_data: unknown, ctx: MqttContext) => handle(o, channel, ctx), true);
  }
  return server;
}

function handle(o: IngestOptions, channel: HubInboundChannel, ctx: MqttContext): void {
  const topic = ctx.getTopic();
  const payload = (ctx.getPacket() as { payload: Buffer }).payload;
  const parsed = parseSpokeTopic(topic);
  if (!parsed || parsed.channel !== channel) {
    o.metrics.messagesDropped.inc({ channel, reason: 'UnknownTopic' });
    return;
  }
  // A retained presence is cleared with an empty payload (spoke revoked): nothing to do.
  if (payload.length === 0) return;
  const result = decodeMessage(channel, payload);
  if (!result.ok) {
    o.metrics.messagesDropped.inc({ channel, reason: result.code });
    o.log.warn({ spoke: parsed.spoke, channel, reason: result.code, problem: result.message.slice(0, 500) }, 'agent message dropped');
    return;
  }
  const msg = result.value as { spoke: string };
  if (msg.spoke !== parsed.spoke) {
    o.metrics.messagesDropped.inc({ channel, reason: 'ForeignSpoke' });
    o.log.warn({ topicSpoke: parsed.spoke, bodySpoke: msg.spoke, channel }, 'agent message names another spoke than its topic; dropped');
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
      return;
    }
    case 'telemetry': {
      const t = result.value as Telemetry;
      o.writer.add({ name: t.spoke, lastSeenAt: now, telemetry: t, telemetryAt: t.at });
      return;
    }
    case 'presence': {
      const p = result.value as Presence;
      o.writer.add({ name: p.spoke, lastSeenAt: now, presence: p.state, sessionId: p.sessionId });
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
