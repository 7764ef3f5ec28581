import { randomBytes } from 'node:crypto';
import type { EnrollRequest } from '@flotilla/contracts';
import { type DataSource, IsNull, QueryFailedError } from 'typeorm';
import type { AuditService } from '../audit/audit.service.js';
import type { BrokerProvisioner } from '../broker/broker-provisioner.js';
import { LabelsSchema } from '../common/labels.js';
import { hashSecret, newSecret } from '../common/secrets.js';
import type { FleetTriggers } from '../controllers/fleet-triggers.js';
import { EnrollmentTokenEntity } from '../database/entities/enrollment-token.entity.js';
import { requestRender } from '../desired/fleet-renderer.js';
import { checkLabelClaims } from './label-claims.js';
import { SpokeEntity } from '../database/entities/spoke.entity.js';
import { DomainError, conflict, validationFailed } from '../errors/domain-error.js';

/** Facts are informative (shown, never matched by selectors); a bound keeps a spoke row small. */
const MAX_FACTS_BYTES = 16_384;

export interface EnrolledSpoke {
  name: string;
  labels: Record<string, string>;
  mqttUsername: string;
  /** Shown once; only its hash is stored. */
  mqttPassword: string;
}

/**
 * Enrols a spoke with an enrolment token: spends one use of the token, creates
 * the spoke with the token's labels (which win over the agent's), issues MQTT
 * credentials, and teaches an external broker those credentials before the
 * transaction commits, so a broker that refuses leaves no half-enrolled spoke.
 */
export class EnrollSpoke {
  constructor(
    private readonly ds: DataSource,
    private readonly audit: AuditService,
    private readonly provisioner: BrokerProvisioner,
    private readonly triggers: FleetTriggers,
  ) {}

  async execute(body: EnrollRequest, requestId: string | null): Promise<EnrolledSpoke> {
    const password = newSecret('flm');
    const username = `${body.name}.${randomBytes(4).toString('hex')}`;
    const labels = await conflictOnSameName(body.name, this.ds.transaction(async (em) => {
      const token = await em.findOne(EnrollmentTokenEntity, { where: { tokenHash: hashSecret(body.token) }, lock: { mode: 'pessimistic_write' } });
      if (!token) throw new DomainError('enrollment_token_invalid', 401, 'unknown or revoked enrolment token');
      if (token.expiresAt.getTime() <= Date.now()) {
        throw new DomainError('enrollment_token_expired', 401, `enrolment token expired at ${token.expiresAt.toISOString()}`);
      }
      if (token.usesLeft <= 0) throw new DomainError('enrollment_token_used', 401, 'enrolment token has no uses left');
      if (await em.exists(SpokeEntity, { where: { name: body.name, revokedAt: IsNull() } })) {
        throw conflict('spoke_exists', `a spoke named "${body.name}" is enrolled; delete it first to enrol a replacement`, { name: body.name });
      }
      checkLabelClaims(body.labels ?? {}, token);
      if (body.facts && JSON.stringify(body.facts).length > MAX_FACTS_BYTES) {
        throw validationFailed([{ field: 'facts', message: `at most ${MAX_FACTS_BYTES} bytes of JSON` }]);
      }
      const merged = { ...(body.labels ?? {}), ...token.labels };
      const check = LabelsSchema.safeParse(merged);
      if (!check.success) throw validationFailed(check.error.issues.map((i) => ({ field: ['labels', ...i.path.map(String)].join('.'), message: i.message })));
      await em.update(EnrollmentTokenEntity, { id: token.id }, { usesLeft: token.usesLeft - 1 });
      const location = token.location ?? body.location ?? null;
      await em.save(
        em.create(SpokeEntity, {
          name: body.name,
          labels: merged,
          location,
          facts: body.facts ?? {},
          mqttUsername: username,
          credentialHash: hashSecret(password),
          enrollmentTokenId: token.id,
        }),
      );
      await this.audit.record(em, {
        actor: `enrollment-token:${token.tokenPrefix}`,
        action: 'spoke.enroll',
        target: `spoke/${body.name}`,
        after: { name: body.name, labels: merged, ...(location ? { location } : {}) },
        requestId,
      });
      // Durable: the desired-state controller renders this spoke (and only the spokes it can displace).
      await requestRender(em, [body.name]);
      await this.provisioner.provisionSpoke(body.name, username, password);
      return merged;
    }));
    this.triggers.renderSpokes();
    return { name: body.name, labels, mqttUsername: username, mqttPassword: password };
  }
}

/**
 * Two enrolments of one name at once both pass the existence check; the
 * unique index stops the second, which is the same conflict as a name
 * already taken (409), not a server error.
 */
async function conflictOnSameName<T>(name: string, work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    if (err instanceof QueryFailedError && (err.driverError as { code?: string })?.code === '23505') {
      throw conflict('spoke_exists', `a spoke named "${name}" is enrolled; delete it first to enrol a replacement`, { name });
    }
    throw err;
  }
}
