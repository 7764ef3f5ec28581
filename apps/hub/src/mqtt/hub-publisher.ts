import { randomBytes } from 'node:crypto';
import tls from 'node:tls';
import { mqttConnectTarget } from '@flotilla/contracts';
import mqtt, { type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import type { HubMetrics } from '../metrics/hub-metrics.js';

export interface MqttEndpoint {
  /** One broker URL, or several comma-separated (a cluster's nodes, tried in turn). */
  url: string;
  username: string;
  password: string;
  /** CA certificate (PEM) an mqtts:// broker may chain to, besides the system's: the one the hub hands to agents. */
  ca?: string;
}

/** mqtt.js TLS options for an endpoint: the system's CAs plus the endpoint's own; always verified. */
export const tlsOptionsFor = (ca: string | undefined) => (ca ? { ca: [...tls.rootCertificates, ca], rejectUnauthorized: true } : {});

/** Publishing without a client connection: the embedded broker's in-process publish. */
export type DirectPublish = (topic: string, payload: string, opts: { qos: 0 | 1; retain: boolean }) => Promise<void>;

/**
 * The hub's publishing connection. Publishes are QoS 1; mqtt.js queues them
 * while disconnected, and Postgres stays the source of truth, so anything
 * lost here is published again when the spoke reports it is behind.
 */
export class HubPublisher {
  private readonly client: MqttClient;
  private connects = 0;
  private readonly reconnectListeners: Array<() => void> = [];

  constructor(
    endpoint: MqttEndpoint,
    private readonly log: Logger,
    metrics: HubMetrics,
    /** With the embedded broker: publish in process (the connection still tells readiness). */
    private readonly direct?: DirectPublish,
  ) {
    const target = mqttConnectTarget(endpoint.url);
    this.client = mqtt.connect(target.url, {
      ...(target.servers ? { servers: target.servers } : {}),
      clientId: `flotilla-hub-pub-${randomBytes(4).toString('hex')}`,
      username: endpoint.username,
      password: endpoint.password,
      ...tlsOptionsFor(endpoint.ca),
      protocolVersion: 4,
      clean: true,
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
    });
    this.client.on('connect', () => {
      metrics.mqttConnected.set(1);
      log.info('hub publisher connected to the broker');
      if (++this.connects > 1) for (const l of this.reconnectListeners) l();
    });
    this.client.on('close', () => metrics.mqttConnected.set(0));
    this.client.on('error', (err) => log.warn({ err: err.message }, 'hub publisher mqtt error'));
  }

  /**
   * Called on every connection after the first: the broker (or the cluster
   * node now reached) may lack retained messages this hub published before
   * (RabbitMQ keeps them per node, a restarted Mosquitto without persistence
   * has none), so the leader publishes them again.
   */
  onReconnect(listener: () => void): void {
    this.reconnectListeners.push(listener);
  }

  get connected(): boolean {
    return this.client.connected;
  }

  waitConnected(timeoutMs = 10_000): Promise<void> {
    if (this.client.connected) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`hub could not connect to the broker within ${timeoutMs} ms`)), timeoutMs);
      this.client.once('connect', () => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  publish(topic: string, payload: string, opts: { retain?: boolean; qos?: 0 | 1 } = {}): Promise<void> {
    if (this.direct) return this.direct(topic, payload, { qos: opts.qos ?? 1, retain: opts.retain ?? false });
    return new Promise((resolve, reject) => {
      this.client.publish(topic, payload, { qos: opts.qos ?? 1, retain: opts.retain ?? false }, (err) => (err ? reject(err) : resolve()));
    });
  }

  async close(): Promise<void> {
    await this.client.endAsync(false).catch((err: Error) => this.log.warn({ err: err.message }, 'closing publisher'));
  }
}
