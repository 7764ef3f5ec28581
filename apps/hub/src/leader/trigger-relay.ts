import pg from 'pg';
import type { Logger } from 'pino';
import type { DataSource } from 'typeorm';
import { z } from 'zod';
import type { Controller } from '../controllers/controller.js';
import { FleetTriggers } from '../controllers/fleet-triggers.js';
import type { LeaderElector } from './leader-elector.js';

/** The Postgres notification channel that carries controller hints from any hub to the leader. */
export const TRIGGER_CHANNEL = 'flotilla_hub_triggers';

/** pg_notify payloads must stay under 8000 bytes. */
const MAX_PAYLOAD = 7_000;

const HintSchema = z.object({
  render: z.boolean().optional(),
  pending: z.boolean().optional(),
  sync: z.array(z.string().max(253)).max(1_000).optional(),
  revoked: z.array(z.string().max(253)).max(1_000).optional(),
});
type Hint = z.infer<typeof HintSchema>;

/**
 * FleetTriggers for a hub among replicas. Use cases and ingest run on every
 * hub; the controllers they poke run only in the leader. On the leader a hint
 * goes to the local controllers as before; elsewhere it is sent with
 * pg_notify (batched for a few milliseconds) and the leader, listening on its
 * own connection, enqueues it. Hints stay hints: a notification lost while
 * leadership moves costs a delay, since a new leader's controllers resync
 * everything at start.
 */
export class RelayingFleetTriggers extends FleetTriggers {
  private pending: { render: boolean; renderSpokes: boolean; sync: Set<string>; revoked: Set<string> } = { render: false, renderSpokes: false, sync: new Set(), revoked: new Set() };
  private timer: NodeJS.Timeout | null = null;
  private listener: pg.Client | null = null;
  private stopped = false;
  private retry: NodeJS.Timeout | null = null;

  constructor(
    desired: Controller,
    spokeSync: Controller,
    brokerCredentials: Controller,
    private readonly elector: LeaderElector,
    private readonly ds: DataSource,
    private readonly databaseUrl: string,
    private readonly log: Logger,
    private readonly batchMs = 20,
  ) {
    super(desired, spokeSync, brokerCredentials);
  }

  override renderFleet(): void {
    if (this.elector.isLeader) return super.renderFleet();
    this.pending.render = true;
    this.schedule();
  }

  override renderSpokes(): void {
    if (this.elector.isLeader) return super.renderSpokes();
    this.pending.renderSpokes = true;
    this.schedule();
  }

  override syncSpoke(spoke: string): void {
    if (this.elector.isLeader) return super.syncSpoke(spoke);
    this.pending.sync.add(spoke);
    this.schedule();
  }

  override spokeRevoked(spoke: string): void {
    if (this.elector.isLeader) return super.spokeRevoked(spoke);
    this.pending.revoked.add(spoke);
    this.pending.renderSpokes = true;
    this.schedule();
  }

  /** Listens for hints from the other hubs (acted on only while leading). */
  async start(): Promise<void> {
    try {
      const client = new pg.Client({ connectionString: this.databaseUrl, keepAlive: true, application_name: 'flotilla-hub-triggers' });
      client.on('notification', (n) => {
        if (n.channel === TRIGGER_CHANNEL && n.payload) this.receive(n.payload);
      });
      client.on('error', (err) => {
        this.log.warn({ err: err.message }, 'trigger relay: listening connection lost; reconnecting');
        if (this.listener === client) this.listener = null;
        client.end().catch(() => undefined);
        this.reconnectSoon();
      });
      await client.connect();
      await client.query(`LISTEN ${TRIGGER_CHANNEL}`);
      this.listener = client;
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'trigger relay: could not listen; retrying');
      this.reconnectSoon();
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    await this.send();
    const c = this.listener;
    this.listener = null;
    if (c) await c.end().catch(() => undefined);
  }

  private reconnectSoon(): void {
    if (this.stopped || this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = null;
      void this.start();
    }, 1_000);
    this.retry.unref();
  }

  private receive(payload: string): void {
    if (!this.elector.isLeader) return;
    let hint: Hint;
    try {
      hint = HintSchema.parse(JSON.parse(payload));
    } catch {
      this.log.warn({ payload: payload.slice(0, 200) }, 'trigger relay: ignored a malformed hint');
      return;
    }
    for (const s of hint.revoked ?? []) super.spokeRevoked(s);
    for (const s of hint.sync ?? []) super.syncSpoke(s);
    if (hint.render) super.renderFleet();
    if (hint.pending) super.renderSpokes();
  }

  private schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.send();
    }, this.batchMs);
  }

  private async send(): Promise<void> {
    const p = this.pending;
    this.pending = { render: false, renderSpokes: false, sync: new Set(), revoked: new Set() };
    const hints: Hint[] = [];
    let cur: Hint = { ...(p.render ? { render: true } : {}), ...(p.renderSpokes ? { pending: true } : {}) };
    const push = (field: 'sync' | 'revoked', name: string) => {
      if (JSON.stringify(cur).length + name.length + 4 > MAX_PAYLOAD) {
        hints.push(cur);
        cur = {};
      }
      (cur[field] ??= []).push(name);
    };
    for (const s of p.revoked) push('revoked', s);
    for (const s of p.sync) push('sync', s);
    if (Object.keys(cur).length > 0) hints.push(cur);
    for (const h of hints) {
      await this.ds.query('SELECT pg_notify($1, $2)', [TRIGGER_CHANNEL, JSON.stringify(h)]).catch((err: Error) =>
        this.log.warn({ err: err.message }, 'trigger relay: hint not sent; the leader finds the work at its next resync'),
      );
    }
  }
}
