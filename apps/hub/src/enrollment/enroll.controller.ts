import { Controller, Inject, Post, Req } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { EnrollRequestSchema, type EnrollRequest, type EnrollResponse } from '@flotilla/contracts';
import type { Request } from 'express';
import { FailedAuthLimiter } from '../auth/failed-auth-limiter.js';
import { Public } from '../auth/principal.js';
import { ZodBody } from '../common/zod.js';
import { type HubSigningKey } from '../desired/signing-key.js';
import { DomainError } from '../errors/domain-error.js';
import { type EnrolledSpoke, EnrollSpoke } from './enroll-spoke.js';

export const SIGNING_KEY = Symbol('SIGNING_KEY');
/** How agents reach the broker, given the host they used to reach the API. */
export const AGENT_MQTT_URL = Symbol('AGENT_MQTT_URL');
export type AgentMqttUrl = (apiHostname: string) => string;

@ApiTags('enrollment')
@Controller('api/v1/enroll')
@Public()
export class EnrollController {
  constructor(
    private readonly enrollSpoke: EnrollSpoke,
    @Inject(FailedAuthLimiter) private readonly limiter: FailedAuthLimiter,
    @Inject(SIGNING_KEY) private readonly key: HubSigningKey,
    @Inject(AGENT_MQTT_URL) private readonly mqttUrl: AgentMqttUrl,
  ) {}

  @Post()
  @ApiOperation({ summary: 'Agent enrolment with an enrolment token: returns MQTT credentials (shown once) and the hub signing key' })
  async enroll(@ZodBody(EnrollRequestSchema) body: EnrollRequest, @Req() req: Request): Promise<EnrollResponse> {
    let enrolled: EnrolledSpoke;
    try {
      enrolled = await this.enrollSpoke.execute(body, String(req.id ?? '') || null);
    } catch (err) {
      // Only failed tokens are limited: a valid enrolment token is never refused because of others' failures.
      if (err instanceof DomainError && err.status === 401) this.limiter.fail({ address: req.ip ?? 'unknown', credential: body.token }, err);
      throw err;
    }
    return {
      spoke: { name: enrolled.name, labels: enrolled.labels },
      mqtt: { url: this.mqttUrl(req.hostname), clientId: enrolled.name, username: enrolled.mqttUsername, password: enrolled.mqttPassword },
      hubPublicKey: this.key.publicKeyPem,
    };
  }
}
