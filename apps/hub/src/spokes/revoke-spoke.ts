import { type DataSource, IsNull } from 'typeorm';
import type { AuditService } from '../audit/audit.service.js';
import type { BrokerCredentialsReconciler } from '../broker/broker-credentials.reconciler.js';
import type { FleetTriggers } from '../controllers/fleet-triggers.js';
import { SpokeEntity } from '../database/entities/spoke.entity.js';
import type { EnvelopePublisher } from '../desired/envelope-publisher.js';
import { type FleetRenderer, RENDER_LOCK, type StoredRender } from '../desired/fleet-renderer.js';
import { DomainError, notFound } from '../errors/domain-error.js';

/**
 * Deletes a spoke: marks it revoked (kept for the record) and renders the
 * fleet without it in one audited transaction, then has the broker-credentials reconciler end its broker
 * access and session at once. If the broker does not answer, the reconciler
 * keeps trying (and resyncs at every start), and the caller hears 502.
 */
export class RevokeSpoke {
  constructor(
    private readonly ds: DataSource,
    private readonly audit: AuditService,
    private readonly brokerCredentials: BrokerCredentialsReconciler,
    private readonly triggers: FleetTriggers,
    private readonly renderer: FleetRenderer,
    private readonly envelopes: EnvelopePublisher,
  ) {}

  async execute(name: string, actor: string, requestId: string | null): Promise<void> {
    let rendered: StoredRender | null = null;
    await this.ds.transaction(async (em) => {
      // The render lock before any row lock, in the order every renderer takes them (else a render running now deadlocks with us).
      await em.query('SELECT pg_advisory_xact_lock($1)', [RENDER_LOCK]);
      const row = await em.findOne(SpokeEntity, { where: { name, revokedAt: IsNull() }, lock: { mode: 'pessimistic_write' } });
      if (!row) throw notFound('spoke', name);
      await em.update(SpokeEntity, { id: row.id }, { revokedAt: new Date(), credentialHash: null, presence: 'offline' });
      await this.audit.record(em, { actor, action: 'spoke.delete', target: `spoke/${name}`, before: { name, labels: row.labels }, requestId });
      // A placement with maxSpokes may pick another spoke in its place: rendered with the revocation.
      rendered = await this.renderer.renderSpokes(em, { spokes: [name] });
    });
    if (rendered) await this.envelopes.publish((rendered as StoredRender).changed, 'changed');
    try {
      await this.brokerCredentials.reconcile(name);
    } catch (err) {
      this.triggers.spokeRevoked(name); // retried with backoff until the broker confirms
      throw new DomainError('revocation_incomplete', 502, `spoke "${name}" is revoked in the database but the broker did not confirm yet (retrying): ${(err as Error).message}`);
    }
  }
}
