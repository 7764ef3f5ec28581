import { type DesiredPayload, type Envelope, PROTOCOL_VERSION, desiredTopic, signEnvelope } from '@flotilla/contracts';
import type { Logger } from 'pino';
import type { DataSource } from 'typeorm';
import type { HubMetrics } from '../metrics/hub-metrics.js';
import type { HubPublisher } from '../mqtt/hub-publisher.js';
import type { HubSigningKey } from './signing-key.js';

/** Envelopes signed, or handed to the broker connection, per event-loop turn. */
export const PUBLISH_CHUNK = 200;

export type PublishCause = 'changed' | 'online' | 'behind' | 'resync' | 'start';

/** Whether this hub may publish now (it leads), and where spokes go when it may not. */
export interface PublishGate {
  mayPublish(): boolean;
  deferred(spokes: string[]): void;
  /** A revoked spoke whose retained topics the leader must clear. */
  deferredRevocation(spoke: string): void;
}

/** One spoke's envelope, signed lazily so signing interleaves with sending. */
export interface OutgoingEnvelope {
  spoke: string;
  generation: number;
  text: () => string;
}

/**
 * Signs desired states and publishes them retained on each spoke's `desired`
 * topic. Remembers which generation it published to which spoke in this
 * process, so the spoke-sync controller can tell what the broker may lack
 * (the embedded broker's retained store lives in this process's memory).
 */
export class EnvelopePublisher {
  private readonly published = new Map<string, { generation: number; at: number }>();
  /** Told which spokes' desired state a render changed (the route table re-reads them). */
  private readonly changeListeners: Array<(spokes: string[]) => void> = [];
  private gate: PublishGate | null = null;

  constructor(
    private readonly ds: DataSource,
    private readonly publisher: HubPublisher,
    private readonly key: HubSigningKey,
    private readonly metrics: HubMetrics,
    private readonly log: Logger,
  ) {}

  /**
   * Among hub replicas only the leader publishes: elsewhere `publish` sends
   * nothing and hands the spokes to `deferred` (the leader's spoke sync).
   */
  gateOn(gate: PublishGate): void {
    this.gate = gate;
  }

  sign(spoke: string, generation: number, issuedAt: Date, payload: DesiredPayload, canonicalPayload?: string): Envelope {
    const envelope = signEnvelope({ v: PROTOCOL_VERSION, spoke, generation, issuedAt: issuedAt.toISOString(), payload }, this.key.privateKey, canonicalPayload);
    // After a rotation: the announcements that lead agents from the key they pinned to this one.
    return this.key.chain.length ? { ...envelope, keys: this.key.chain } : envelope;
  }

  /**
   * Forgets what this process published, so spoke sync publishes every spoke's envelope again: the signing
   * key changed, or this hub leads again (the broker may hold another hub's newer sends, or lost them).
   */
  forgetPublished(): void {
    this.published.clear();
  }

  /** What this process last published to `spoke`, if anything. */
  lastPublished(spoke: string): { generation: number; at: number } | undefined {
    return this.published.get(spoke);
  }

  /** Calls `listener` with the spokes of every committed change of desired state, before it is published. */
  onChanged(listener: (spokes: string[]) => void): void {
    this.changeListeners.push(listener);
  }

  /** Publishes in chunks, letting the socket drain between them; a failure is logged and left to spoke sync. */
  async publish(items: readonly OutgoingEnvelope[], cause: PublishCause): Promise<string[]> {
    if (items.length === 0) return [];
    if (cause === 'changed') for (const l of this.changeListeners) l(items.map((i) => i.spoke));
    if (this.gate && !this.gate.mayPublish()) {
      this.gate.deferred(items.map((i) => i.spoke));
      return [];
    }
    const done: string[] = [];
    const sends: Promise<void>[] = [];
    for (let i = 0; i < items.length; i += PUBLISH_CHUNK) {
      if (i > 0) await new Promise<void>((resolve) => setImmediate(resolve));
      for (const item of items.slice(i, i + PUBLISH_CHUNK)) {
        let text: string;
        try {
          text = item.text();
        } catch (err) {
          this.log.error({ spoke: item.spoke, err: (err as Error).message }, 'desired state not signed');
          continue;
        }
        sends.push(
          this.publisher.publish(desiredTopic(item.spoke), text, { retain: true }).then(
            () => {
              this.published.set(item.spoke, { generation: item.generation, at: Date.now() });
              this.metrics.desiredPublished.inc({ cause });
              done.push(item.spoke);
            },
            (err: Error) => this.log.warn({ spoke: item.spoke, err: err.message }, 'desired state not published; spoke sync will try again'),
          ),
        );
      }
    }
    await Promise.all(sends);
    if (done.length) {
      await this.ds.query(`UPDATE desired_states d SET published_at = now() FROM spokes s WHERE s.id = d.spoke_id AND s.name = ANY($1)`, [done]);
    }
    return done;
  }

  /**
   * Clears a revoked spoke's retained desired state so nothing lingers on the
   * broker. False when this hub does not lead: the leader was told to.
   */
  async clear(spoke: string): Promise<boolean> {
    if (this.gate && !this.gate.mayPublish()) {
      this.gate.deferredRevocation(spoke);
      return false;
    }
    await this.publisher.publish(desiredTopic(spoke), '', { retain: true });
    this.published.delete(spoke);
    return true;
  }
}
