import { SPOKE_PUBLISH_CHANNELS, TOPIC_ROOT, splitBrokerUrls } from '@flotilla/contracts';
import amqp, { type Channel, type ChannelModel, type ConsumeMessage } from 'amqplib';
import type { Logger } from 'pino';
import type { HubMetrics } from '../metrics/hub-metrics.js';
import { LogThrottle } from '../common/log-throttle.js';
import { type IngestOptions, ingestMessage } from './ingest.js';
import type { SpokeStateWriter } from './spoke-state-writer.js';

/** The one queue every hub replica consumes agent messages from, on RabbitMQ. */
export const HUB_INGEST_QUEUE = 'flotilla-hub-ingest';

/** RabbitMQ's MQTT plugin publishes to amq.topic with the topic's `/` as `.`. */
const EXCHANGE = 'amq.topic';

export interface AmqpIngestOptions {
  /** One AMQP URL or several comma-separated (the cluster's nodes, tried in turn). */
  url: string;
  username: string;
  password: string;
  writer: SpokeStateWriter;
  metrics: HubMetrics;
  log: Logger;
  prefetch?: number;
  /** Each valid status report, after it is queued for writing (produced fine-tuned versions are registered from it). */
  onStatus?: IngestOptions['onStatus'];
}

/**
 * Agent-to-hub ingest on RabbitMQ, whose MQTT plugin (3.x) has no shared
 * subscriptions: one queue, bound to amq.topic for every spoke's status,
 * telemetry, events and presence, that all hub replicas consume from, so
 * RabbitMQ hands each message to exactly one hub. Messages are acknowledged
 * only after the state writer has stored them, so a hub that dies mid-batch
 * leaves them to be redelivered to another (writes set values: a redelivery
 * changes nothing).
 *
 * The queue is classic and transient, declared by every hub on every connect:
 * when its node goes down RabbitMQ drops it and the hubs, reconnecting to
 * another node, declare it there. Agents report periodically, so what the
 * dead node held is superseded within a telemetry interval.
 */
export class AmqpIngest {
  private conn: ChannelModel | null = null;
  private channel: Channel | null = null;
  private stopped = false;
  private attempt = 0;
  private unacked: ConsumeMessage | null = null;
  /** Drop lines are rate-limited per spoke and reason; /metrics keeps the exact counts. */
  private readonly dropLog = new LogThrottle(10_000, 1_000);
  private ackTimer: NodeJS.Timeout | null = null;
  private retry: NodeJS.Timeout | null = null;
  private readonly urls: string[];

  constructor(private readonly o: AmqpIngestOptions) {
    this.urls = splitBrokerUrls(o.url);
  }

  /** Connects (trying each URL) and starts consuming; resolves once consuming. */
  async start(timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        await this.connect();
        return;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`hub ingest could not consume from RabbitMQ (${this.urls.length} URL(s)): ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  async close(): Promise<void> {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    await this.ackStored().catch(() => undefined);
    const c = this.conn;
    this.conn = null;
    this.channel = null;
    if (c) await c.close().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    const raw = this.urls[this.attempt++ % this.urls.length]!;
    const url = new URL(raw);
    url.username = encodeURIComponent(this.o.username);
    url.password = encodeURIComponent(this.o.password);
    const conn = await amqp.connect(url.toString(), { clientProperties: { connection_name: 'flotilla-hub-ingest' } });
    conn.on('error', (err: Error) => this.o.log.warn({ err: err.message }, 'ingest AMQP connection error'));
    conn.on('close', () => {
      if (this.conn !== conn) return;
      this.conn = null;
      this.channel = null;
      this.unacked = null; // unacknowledged deliveries go back to the queue with the connection
      if (!this.stopped) {
        this.o.log.warn({ url: redact(raw) }, 'ingest AMQP connection closed; reconnecting');
        this.reconnectSoon();
      }
    });
    const ch = await conn.createChannel();
    await ch.assertQueue(HUB_INGEST_QUEUE, { durable: false, autoDelete: false, arguments: { 'x-queue-type': 'classic' } });
    for (const channel of SPOKE_PUBLISH_CHANNELS) await ch.bindQueue(HUB_INGEST_QUEUE, EXCHANGE, `${TOPIC_ROOT.split('/').join('.')}.*.${channel}`);
    await ch.prefetch(this.o.prefetch ?? 2_000);
    await ch.consume(
      HUB_INGEST_QUEUE,
      (msg) => {
        if (msg) return this.receive(ch, msg);
        // The broker cancelled the consumer (the queue's node went down): start over on a live node.
        this.o.log.warn({ queue: HUB_INGEST_QUEUE }, 'ingest consumer cancelled by the broker; reconnecting');
        void conn.close().catch(() => undefined);
      },
      { noAck: false },
    );
    this.conn = conn;
    this.channel = ch;
    this.o.log.info({ url: redact(raw), queue: HUB_INGEST_QUEUE }, 'hub ingest consuming from RabbitMQ');
  }

  private reconnectSoon(): void {
    if (this.retry || this.stopped) return;
    this.retry = setTimeout(() => {
      this.retry = null;
      this.connect().catch((err: Error) => {
        this.o.log.warn({ err: err.message }, 'ingest AMQP reconnect failed; trying the next URL');
        this.reconnectSoon();
      });
    }, 500);
  }

  private receive(ch: Channel, msg: ConsumeMessage): void {
    const topic = msg.fields.routingKey.split('.').join('/');
    ingestMessage({ writer: this.o.writer, metrics: this.o.metrics, log: this.o.log, onStatus: this.o.onStatus }, this.dropLog, topic, msg.content);
    if (ch !== this.channel) return;
    this.unacked = msg;
    this.ackTimer ??= setTimeout(() => void this.ackStored().catch((err: Error) => this.o.log.warn({ err: err.message }, 'ingest ack failed')), 100);
  }

  /** Stores what was handed to the writer, then acknowledges every delivery up to the last one. */
  private async ackStored(): Promise<void> {
    this.ackTimer = null;
    const last = this.unacked;
    const ch = this.channel;
    this.unacked = null;
    if (!last || !ch) return;
    await this.o.writer.flush();
    if (ch === this.channel) ch.ack(last, true);
  }
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return '(unparseable URL)';
  }
}
