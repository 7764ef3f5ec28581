import { randomUUID } from 'node:crypto';
import { type AgentEvent, type Command, PROTOCOL_VERSION, commandsTopic } from '@flotilla/contracts';
import type { Logger } from 'pino';
import type { DataSource, EntityManager } from 'typeorm';
import type { AuditService } from '../audit/audit.service.js';
import type { Controller, ReconcileOutcome, Reconciler } from '../controllers/controller.js';
import { notFound } from '../errors/domain-error.js';
import type { HubPublisher } from '../mqtt/hub-publisher.js';
import { connectionOf } from '../spokes/spoke.dto.js';

/** A one-shot command to one agent (DESIGN.md section 4), as stored in `spoke_commands`. */
export interface SpokeCommandRow {
  id: string;
  spoke: string;
  type: Command['type'];
  target: string | null;
  /** Queued (not sent yet: the spoke is offline), Sent, then Succeeded or Failed (by the agent, or Expired). */
  state: 'Queued' | 'Sent' | 'Succeeded' | 'Failed';
  actor: string;
  result: Record<string, unknown> | null;
  message: string;
  createdAt: Date;
  sentAt: Date | null;
  finishedAt: Date | null;
}

/** A command nobody answered within this long fails as Expired. */
export const COMMAND_EXPIRES_MS = 10 * 60_000;
/** A sent command without an answer is sent again (same id: the agent runs it once) after this long. */
export const COMMAND_RESEND_MS = 15_000;

const COLUMNS = `id, spoke, type, target, state, actor, result, message, created_at AS "createdAt", sent_at AS "sentAt", finished_at AS "finishedAt"`;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export class SpokeCommandStore {
  async one(em: EntityManager, spoke: string, id: string): Promise<SpokeCommandRow | null> {
    if (!UUID.test(id)) return null;
    const rows: SpokeCommandRow[] = await em.query(`SELECT ${COLUMNS} FROM spoke_commands WHERE id = $1 AND spoke = $2`, [id, spoke]);
    return rows[0] ?? null;
  }

  async open(em: EntityManager): Promise<string[]> {
    const rows: { id: string }[] = await em.query(`SELECT id FROM spoke_commands WHERE state IN ('Queued', 'Sent') ORDER BY created_at`);
    return rows.map((r) => r.id);
  }

  async byId(em: EntityManager, id: string): Promise<SpokeCommandRow | null> {
    if (!UUID.test(id)) return null;
    const rows: SpokeCommandRow[] = await em.query(`SELECT ${COLUMNS} FROM spoke_commands WHERE id = $1`, [id]);
    return rows[0] ?? null;
  }
}

/**
 * POST /api/v1/spokes/{name}/commands: records the command (audited, in one
 * transaction) and hands it to the delivery controller, which sends it on the
 * spoke's commands topic; the agent's CommandResult event settles it.
 */
export class SendSpokeCommand {
  constructor(
    private readonly ds: DataSource,
    private readonly audit: AuditService,
    private readonly delivery: Controller,
  ) {}

  async execute(spoke: string, type: Command['type'], target: string | undefined, actor: string, requestId: string | null): Promise<{ id: string }> {
    const id = randomUUID();
    await this.ds.transaction(async (em) => {
      const found: { name: string }[] = await em.query(`SELECT name FROM spokes WHERE name = $1 AND revoked_at IS NULL`, [spoke]);
      if (found.length === 0) throw notFound('spoke', spoke);
      await em.query(`INSERT INTO spoke_commands (id, spoke, type, target, state, actor) VALUES ($1, $2, $3, $4, 'Queued', $5)`, [id, spoke, type, target ?? null, actor]);
      await this.audit.record(em, { actor, action: 'spoke.command', target: `Spoke/${spoke}`, after: { id, type, target }, details: { command: id, type, target: target ?? null }, requestId });
    });
    this.delivery.enqueue(id);
    return { id };
  }
}

/**
 * Delivers open commands, level-based over command ids: a queued command is
 * sent once its spoke is online, a sent one without an answer is sent again
 * every COMMAND_RESEND_MS (the agent skips an id it already ran), and one
 * still open after COMMAND_EXPIRES_MS fails as Expired. Nothing but Postgres
 * says what is still to send.
 */
export class SpokeCommandReconciler implements Reconciler {
  readonly name = 'spoke-commands';

  constructor(
    private readonly ds: DataSource,
    private readonly store: SpokeCommandStore,
    private readonly publisher: HubPublisher,
    private readonly telemetryIntervalSeconds: number,
    private readonly now: () => number = Date.now,
  ) {}

  listKeys(): Promise<string[]> {
    return this.store.open(this.ds.manager);
  }

  async reconcile(id: string): Promise<ReconcileOutcome | void> {
    const c = await this.store.byId(this.ds.manager, id);
    if (!c || (c.state !== 'Queued' && c.state !== 'Sent')) return;
    const now = this.now();
    if (now - new Date(c.createdAt).getTime() > COMMAND_EXPIRES_MS) {
      await this.ds.query(`UPDATE spoke_commands SET state = 'Failed', message = $2, finished_at = now() WHERE id = $1 AND state IN ('Queued', 'Sent')`, [
        id,
        `Expired: no answer from ${c.spoke} within ${COMMAND_EXPIRES_MS / 60_000} minutes`,
      ]);
      return;
    }
    const spokes: { presence: 'online' | 'offline'; last_seen_at: Date | null }[] = await this.ds.query(
      `SELECT presence, last_seen_at FROM spokes WHERE name = $1 AND revoked_at IS NULL`,
      [c.spoke],
    );
    const s = spokes[0];
    if (!s) {
      await this.ds.query(`UPDATE spoke_commands SET state = 'Failed', message = 'the spoke was revoked', finished_at = now() WHERE id = $1`, [id]);
      return;
    }
    const online = connectionOf({ presence: s.presence, lastSeenAt: s.last_seen_at }, now, this.telemetryIntervalSeconds) === 'online';
    const due = c.state === 'Queued' || now - new Date(c.sentAt ?? 0).getTime() >= COMMAND_RESEND_MS;
    if (online && due) {
      const message: Command = { v: PROTOCOL_VERSION, id: c.id, type: c.type, ...(c.target ? { target: c.target } : {}), issuedAt: new Date(c.createdAt).toISOString() };
      await this.publisher.publish(commandsTopic(c.spoke), JSON.stringify(message), { qos: 1, retain: false });
      await this.ds.query(`UPDATE spoke_commands SET state = 'Sent', sent_at = now() WHERE id = $1 AND state IN ('Queued', 'Sent')`, [id]);
    }
    return { requeueAfterMs: online ? COMMAND_RESEND_MS : 2_000 };
  }
}

/**
 * Files an agent's CommandResult event under its command: only the spoke the
 * command was sent to can settle it (ingest has checked that the event came
 * on that spoke's own topic), and only once.
 */
export class CommandResultWriter {
  constructor(
    private readonly ds: DataSource,
    private readonly log: Logger,
  ) {}

  async record(spoke: string, e: AgentEvent): Promise<void> {
    if (e.type !== 'CommandResult') return;
    const id = e.data['commandId'];
    if (typeof id !== 'string' || !UUID.test(id)) return;
    const ok = e.data['ok'] === true;
    try {
      await this.ds.query(
        `UPDATE spoke_commands SET state = $3, result = $4, message = $5, finished_at = now() WHERE id = $1 AND spoke = $2 AND state IN ('Queued', 'Sent')`,
        [id, spoke, ok ? 'Succeeded' : 'Failed', JSON.stringify(e.data), `${e.reason}: ${e.message}`.slice(0, 4096)],
      );
    } catch (err) {
      this.log.warn({ spoke, command: id, err: (err as Error).message }, 'could not store a command result');
    }
  }
}

export function toSpokeCommandDto(c: SpokeCommandRow) {
  return {
    id: c.id,
    spoke: c.spoke,
    type: c.type,
    target: c.target,
    state: c.state,
    actor: c.actor,
    createdAt: new Date(c.createdAt).toISOString(),
    sentAt: c.sentAt ? new Date(c.sentAt).toISOString() : null,
    finishedAt: c.finishedAt ? new Date(c.finishedAt).toISOString() : null,
    message: c.message,
    result: c.result,
  };
}
