import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { digestOf } from '../common/digest.js';
import { AuditEventEntity } from '../database/entities/audit-event.entity.js';

export interface AuditRecord {
  actor: string;
  action: string;
  target: string;
  before?: unknown;
  after?: unknown;
  details?: Record<string, unknown>;
  requestId?: string | null;
}

/** Writes audit events inside the caller's transaction, so a mutation and its record land together. */
@Injectable()
export class AuditService {
  async record(em: EntityManager, r: AuditRecord): Promise<void> {
    await em.save(
      em.create(AuditEventEntity, {
      actor: r.actor,
      action: r.action,
      target: r.target,
      beforeDigest: digestOf(r.before),
      afterDigest: digestOf(r.after),
      details: r.details ?? {},
      requestId: r.requestId ?? null,
      }),
    );
  }
}
