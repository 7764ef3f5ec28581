import type { DataSource } from 'typeorm';
import type { AuditService } from '../audit/audit.service.js';
import { hashSecret, newSecret, secretPrefix } from '../common/secrets.js';
import { EnrollmentTokenEntity } from '../database/entities/enrollment-token.entity.js';
import { checkTokenLabelRules } from './label-claims.js';

export interface EnrollmentTokenRequest {
  labels: Record<string, string>;
  /** Label keys agents enrolling with it may ask for (`*`: any outside flotilla.dev/); none by default. */
  allowedLabelKeys?: string[];
  /** Only the hub's own local-agent bootstrap: may stamp `flotilla.dev/` labels. */
  reservedLabels?: boolean;
  /** Stamped on the spokes it enrols. */
  location?: { lat: number; lon: number };
  uses: number;
  expiresInSeconds: number;
  actor: string;
  requestId?: string | null;
  /** Recorded in the audit event (e.g. who the token is for). */
  note?: string;
}

/**
 * Mints an N-use, expiring enrolment token: stored as a hash, audited, the
 * secret returned once. Used by the API and by the hub's own local-agent
 * bootstrap, so both leave the same rows and audit trail.
 */
export class IssueEnrollmentToken {
  constructor(
    private readonly ds: DataSource,
    private readonly audit: AuditService,
  ) {}

  async execute(req: EnrollmentTokenRequest): Promise<{ row: EnrollmentTokenEntity; token: string }> {
    const allowedLabelKeys = [...new Set(req.allowedLabelKeys ?? [])];
    checkTokenLabelRules(req.labels, allowedLabelKeys, req.reservedLabels === true);
    const token = newSecret('fle');
    const row = await this.ds.transaction(async (em) => {
      const r = em.create(EnrollmentTokenEntity, {
        tokenHash: hashSecret(token),
        tokenPrefix: secretPrefix(token),
        labels: req.labels,
        allowedLabelKeys,
        location: req.location ?? null,
        usesTotal: req.uses,
        usesLeft: req.uses,
        expiresAt: new Date(Date.now() + req.expiresInSeconds * 1000),
        createdBy: req.actor,
      });
      await em.save(r);
      await this.audit.record(em, {
        actor: req.actor,
        action: 'enrollment-token.create',
        target: `enrollment-token/${r.id}`,
        after: { labels: r.labels, allowedLabelKeys, ...(r.location ? { location: r.location } : {}), uses: r.usesTotal, expiresAt: r.expiresAt.toISOString() },
        ...(req.note ? { details: { for: req.note } } : {}),
        requestId: req.requestId ?? null,
      });
      return r;
    });
    return { row, token };
  }
}
