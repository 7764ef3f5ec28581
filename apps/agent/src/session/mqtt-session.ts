import { mqttConnectTarget, splitBrokerUrls } from '@flotilla/contracts';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { fullJitterDelay } from '../support/backoff.js';
import { brokerStreamBuilder, tcpBrokerNodes } from './broker-stream.js';
import { errorMessage, settleWithin } from '../support/abort.js';

/**
 * One MQTT session to the broker, kept up for as long as the agent runs.
 * Reconnects are ours rather than mqtt.js's fixed-period timer: exponential
 * from `initialMs` to `maxMs` with full jitter, so a fleet that lost its
 * broker does not reconnect in lockstep. The outgoing store survives
 * reconnects, so QoS 1 messages in flight are sent again.
 */

export interface MqttSessionOptions {
  /** One broker URL, or several comma-separated (a cluster's nodes): each reconnect tries the next. */
  url: string;
  clientId: string;
  username: string;
  password: string;
  /** CA certificate(s) (PEM) the broker's TLS certificate must chain to (mqtts://); the system store when absent. */
  ca?: string;
  /** Exact topics to subscribe to (QoS 1) on every connection. */
  subscriptions: string[];
  /** Last will, computed afresh for each connection attempt. */
  will: () => { topic: string; payload: string; qos: 1; retain: true };
  reconnect?: { initialMs?: number; maxMs?: number };
  /** A connection must stay up this long before the backoff starts over (default 10 s). */
  stableAfterMs?: number;
  connectTimeoutMs?: number;
  keepaliveSeconds?: number;
  random?: () => number;
  logger: Logger;
  /** Connected and subscribed. */
  onConnect: () => void;
  onDisconnect: () => void;
  onMessage: (topic: string, payload: Buffer) => void;
}

export interface ConnectionFacts {
  /** Broker URL without credentials. */
  url: string;
  connected: boolean;
  connects: number;
  disconnects: number;
  lastConnectedAt: string | null;
  lastDisconnectedAt: string | null;
  lastError: string | null;
  reconnectAttempt: number;
  nextReconnectAt: string | null;
}

export class MqttSession {
  private client: MqttClient | null = null;
  private stopping = false;
  private attempt = 0;
  private connectedSince = 0;
  private epoch = 0;
  private subscribed = false;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private readonly facts: ConnectionFacts;
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly random: () => number;

  constructor(private readonly opts: MqttSessionOptions) {
    this.initialMs = opts.reconnect?.initialMs ?? 500;
    this.maxMs = opts.reconnect?.maxMs ?? 30_000;
    this.random = opts.random ?? Math.random;
    this.facts = {
      url: splitBrokerUrls(opts.url).map(redact).join(','),
      connected: false,
      connects: 0,
      disconnects: 0,
      lastConnectedAt: null,
      lastDisconnectedAt: null,
      lastError: null,
      reconnectAttempt: 0,
      nextReconnectAt: null,
    };
  }

  /** Connected and subscribed: publishing now reaches the broker (or its outgoing store). */
  get connected(): boolean {
    return this.subscribed && this.client?.connected === true;
  }

  connection(): ConnectionFacts {
    return { ...this.facts, connected: this.connected, reconnectAttempt: this.attempt };
  }

  start(): void {
    if (this.client !== null) return;
    const options: IClientOptions = {
      clientId: this.opts.clientId,
      username: this.opts.username,
      password: this.opts.password,
      protocolVersion: 4,
      clean: true,
      reconnectPeriod: 0, // reconnects are scheduled by us, with backoff and jitter
      resubscribe: false, // we subscribe on every connect
      queueQoSZero: false,
      connectTimeout: this.opts.connectTimeoutMs ?? 30_000,
      keepalive: this.opts.keepaliveSeconds ?? 30,
      will: this.opts.will(),
      // Certificates are always verified; a pinned CA replaces the system store.
      rejectUnauthorized: true,
      ...(this.opts.ca ? { ca: this.opts.ca } : {}),
    };
    const nodes = tcpBrokerNodes(this.opts.url);
    let client: MqttClient;
    if (nodes) {
      client = new mqtt.MqttClient(brokerStreamBuilder(nodes, this.opts.ca), options);
    } else {
      const target = mqttConnectTarget(this.opts.url);
      if (target.servers) options.servers = target.servers;
      client = mqtt.connect(target.url, options);
    }
    this.client = client;
    client.on('connect', () => void this.handleConnect(client));
    client.on('close', () => this.handleClose(client));
    client.on('error', (err) => {
      if (this.stopping) return;
      this.facts.lastError = errorMessage(err);
      // Repeated refusals while the broker is down would flood the log; the first one is enough.
      const level = this.attempt <= 1 ? 'warn' : 'debug';
      this.opts.logger[level]({ err: this.facts.lastError, url: this.facts.url }, 'MQTT connection error');
    });
    client.on('message', (topic, payload) => {
      if (!this.stopping) this.opts.onMessage(topic, payload);
    });
  }

  /**
   * Publishes if connected; rejects otherwise (the caller queues). QoS 1
   * resolves on PUBACK, which may come after a reconnect.
   */
  async publish(topic: string, payload: string, opts: { qos: 0 | 1; retain?: boolean }): Promise<void> {
    const client = this.client;
    if (client === null || !this.connected) throw new Error('not connected to the broker');
    await client.publishAsync(topic, payload, { qos: opts.qos, retain: opts.retain ?? false });
  }

  /**
   * Ends the session. `farewell` (e.g. the offline presence) is published
   * first when connected, waiting at most `timeoutMs` for it and the
   * disconnect; then the socket is dropped regardless.
   */
  async stop(farewell?: { topic: string; payload: string; qos: 1; retain: true }, timeoutMs = 2000): Promise<void> {
    this.stopping = true;
    this.clearReconnect();
    const client = this.client;
    if (client === null) return;
    if (farewell !== undefined && this.connected) {
      await settleWithin(
        client.publishAsync(farewell.topic, farewell.payload, { qos: farewell.qos, retain: farewell.retain }).catch(() => undefined),
        timeoutMs,
        undefined,
      );
    }
    // A clean DISCONNECT suppresses the will; without a connection there is nothing to say goodbye on.
    const ended = client.connected
      ? await settleWithin(client.endAsync(false).then(() => true, () => false), timeoutMs, false)
      : false;
    if (!ended) await client.endAsync(true).catch(() => undefined);
    // Our listeners stay attached (mqtt.js's own ones must not be removed); they do nothing once stopping.
  }

  private async handleConnect(client: MqttClient): Promise<void> {
    const epoch = ++this.epoch;
    this.connectedSince = Date.now();
    this.facts.connects += 1;
    this.facts.lastConnectedAt = new Date().toISOString();
    this.facts.nextReconnectAt = null;
    const log = this.opts.logger;
    try {
      const grants = await client.subscribeAsync(this.opts.subscriptions, { qos: 1 });
      const refused = grants.filter((g) => g.qos === 128).map((g) => g.topic);
      if (refused.length > 0) {
        this.facts.lastError = `broker refused subscriptions: ${refused.join(', ')}`;
        log.error({ refused }, 'broker refused subscriptions: check this spoke\'s ACL on the broker');
      }
    } catch (err) {
      if (epoch !== this.epoch || !client.connected) return; // dropped mid-subscribe; the next connect retries
      this.facts.lastError = `subscribe failed: ${errorMessage(err)}`;
      log.warn({ err: errorMessage(err) }, 'subscribe failed; reconnecting');
      client.stream?.destroy();
      return;
    }
    if (epoch !== this.epoch || !client.connected || this.stopping) return;
    this.subscribed = true;
    log.info({ url: this.facts.url }, 'connected to the broker');
    this.opts.onConnect();
  }

  private handleClose(client: MqttClient): void {
    const wasUp = this.subscribed;
    this.subscribed = false;
    this.epoch += 1;
    if (wasUp) {
      this.facts.disconnects += 1;
      this.facts.lastDisconnectedAt = new Date().toISOString();
      this.opts.logger.warn({ url: this.facts.url }, 'disconnected from the broker');
      this.opts.onDisconnect();
    }
    if (this.stopping) return;
    // Only a connection that held for a while resets the backoff, so a broker
    // that accepts and then drops us (ACL, client-id takeover) is not hammered.
    if (this.connectedSince > 0 && Date.now() - this.connectedSince >= (this.opts.stableAfterMs ?? 10_000)) this.attempt = 0;
    this.connectedSince = 0;
    const delay = fullJitterDelay(this.attempt, { initialMs: this.initialMs, maxMs: this.maxMs }, this.random);
    this.attempt += 1;
    this.facts.nextReconnectAt = new Date(Date.now() + delay).toISOString();
    this.clearReconnect();
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (this.stopping) return;
      client.options.will = this.opts.will();
      client.reconnect({ incomingStore: client.incomingStore, outgoingStore: client.outgoingStore });
    }, delay);
  }

  private clearReconnect(): void {
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
  }
}

/** The URL without user info, for logs and diagnostics. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString().replace(/\/$/, '');
  } catch {
    return '(unparseable URL)';
  }
}
