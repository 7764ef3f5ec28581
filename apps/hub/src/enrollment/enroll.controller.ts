import { randomBytes } from 'node:crypto';
import { Controller, Inject, Post, Req } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { EnrollRequestSchema, type EnrollRequest, type EnrollResponse } from '@flotilla/contracts';
import type { Request } from 'express';
import { DataSource, IsNull } from 'typeorm';
import { AuditService } from '../audit/audit.service.js';
import { FailedAuthLimiter } from '../auth/failed-auth-limiter.js';
import { Public } from '../auth/principal.js';
import { LabelsSchema } from '../common/labels.js';
import { hashSecret, newSecret } from '../common/secrets.js';
import { ZodBody } from '../common/zod.js';
import { EnrollmentTokenEntity } from '../database/entities/enrollment-token.entity.js';
import { SpokeEntity } from '../database/entities/spoke.entity.js';
import { type HubSigningKey } from '../desired/signing-key.js';
import { DomainError, conflict, validationFailed } from '../errors/domain-error.js';
import { FleetEvents } from '../spokes/fleet-events.js';

export const SIGNING_KEY = Symbol('SIGNING_KEY');
/** How agents reach the broker, given the host they used to reach the API. */
export const AGENT_MQTT_URL = Symbol('AGENT_MQTT_URL');
export type AgentMqttUrl = (apiHostname: string) => string;

@ApiTags('enrollment')
@Controller('api/v1/enroll')
@Public()
export class EnrollController {
  constructor(
    private readonly ds: DataSource,
    private readonly audit: AuditService,
    private readonly fleet: FleetEvents,
    @Inject(FailedAuthLimiter) private readonly limiter: FailedAuthLimiter,
    @Inject(SIGNING_KEY) private readonly key: HubSigningKey,
    @Inject(AGENT_MQTT_URL) private readonly mqttUrl: AgentMqttUrl,
  ) {}

  @Post()
  @ApiOperation({ summary: 'Agent enrolment with an enrolment token: returns MQTT credentials (shown once) and the hub signing key' })
  async enroll(@ZodBody(EnrollRequestSchema) body: EnrollRequest, @Req() req: Request): Promise<EnrollResponse> {
    const client = req.ip ?? 'unknown';
    this.limiter.check(client);
    const password = newSecret('flm');
    const username = `${body.name}.${randomBytes(4).toString('hex')}`;
    let result: { labels: Record<string, string> };
    try {
      result = await this.ds.transaction(async (em) => {
        const token = await em.findOne(EnrollmentTokenEntity, {
          where: { tokenHash: hashSecret(body.token) },
          lock: { mode: 'pessimistic_write' },
        });
        if (!token) throw new DomainError('enrollment_token_invalid', 401, 'unknown or revoked enrolment token');
        if (token.expiresAt.getTime() <= Date.now()) {
          throw new DomainError('enrollment_token_expired', 401, `enrolment token expired at ${token.expiresAt.toISOString()}`);
        }
        if (token.usesLeft <= 0) throw new DomainError('enrollment_token_used', 401, 'enrolment token has no uses left');
        if (await em.exists(SpokeEntity, { where: { name: body.name, revokedAt: IsNull() } })) {
          throw conflict('spoke_exists', `a spoke named "${body.name}" is enrolled; delete it first to enrol a replacement`, { name: body.name });
        }
        // The token's labels are the admin's word and win over what the agent asks for.
        const labels = { ...(body.labels ?? {}), ...token.labels };
        const check = LabelsSchema.safeParse(labels);
        if (!check.success) throw validationFailed(check.error.issues.map((i) => ({ field: ['labels', ...i.path.map(String)].join('.'), message: i.message })));
        await em.update(EnrollmentTokenEntity, { id: token.id }, { usesLeft: token.usesLeft - 1 });
        await em.save(
          em.create(SpokeEntity, {
          name: body.name,
          labels,
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
          after: { name: body.name, labels },
          requestId: String(req.id ?? ''),
        });
        // External brokers learn the credentials before the agent can try them; inside the
        // transaction so a broker that refuses leaves no half-enrolled spoke (the token use comes back).
        await this.fleet.emit({ type: 'spoke-enrolled', spoke: body.name, mqttUsername: username, mqttPassword: password });
        return { labels };
      });
    } catch (err) {
      if (err instanceof DomainError && err.status === 401) this.limiter.fail(client);
      throw err;
    }
    await this.fleet.emit({ type: 'spokes-changed', spokes: [body.name] });
    return {
      spoke: { name: body.name, labels: result.labels },
      mqtt: { url: this.mqttUrl(req.hostname), clientId: body.name, username, password },
      hubPublicKey: this.key.publicKeyPem,
    };
  }
}
