import { type CanActivate, type ExecutionContext, Inject, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { DataSource, IsNull } from 'typeorm';
import { hashSecret, secretMatches } from '../common/secrets.js';
import { ApiTokenEntity, type Role } from '../database/entities/api-token.entity.js';
import { SpokeEntity } from '../database/entities/spoke.entity.js';
import { forbidden, unauthenticated } from '../errors/domain-error.js';
import { FailedAuthLimiter } from './failed-auth-limiter.js';
import { PUBLIC_ROUTE, REQUIRED_ROLE, ROLE_RANK, SPOKE_ACCESS, type Principal, type SpokeAccessMode } from './principal.js';

/** Compared when the username is unknown, so both refusals cost the same. */
const NO_SUCH_SPOKE_HASH = hashSecret('no such spoke');

/** Bearer-token authentication and role check for every route not marked @Public. */
@Injectable()
export class AuthGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly ds: DataSource,
    @Inject(FailedAuthLimiter) private readonly limiter: FailedAuthLimiter,
  ) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const targets = [ctx.getHandler(), ctx.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC_ROUTE, targets)) return true;
    const req = ctx.switchToHttp().getRequest<Request & { principal?: Principal }>();
    const address = req.ip ?? req.socket.remoteAddress ?? 'unknown';
    const header = req.headers.authorization;
    const spokeAccess = this.reflector.getAllAndOverride<SpokeAccessMode | undefined>(SPOKE_ACCESS, targets);
    const basic = typeof header === 'string' ? /^Basic\s+(\S+)$/i.exec(header) : null;
    if (basic?.[1] && spokeAccess) {
      req.principal = await this.spoke(basic[1], address);
      return true;
    }
    if (spokeAccess === 'only') {
      if (typeof header === 'string' && /^Bearer\s+\S+$/i.test(header)) throw forbidden('only a spoke, with its own credentials (HTTP Basic), may call this; API tokens may not', { required: 'spoke' });
      this.limiter.fail({ address }, unauthenticated('missing spoke credentials: send "Authorization: Basic <base64 of mqtt-username:password>" as issued at enrolment'));
    }
    const match = typeof header === 'string' ? /^Bearer\s+(\S+)$/i.exec(header) : null;
    if (!match?.[1]) {
      this.limiter.fail({ address }, unauthenticated('missing bearer token: send "Authorization: Bearer <token>"'));
    }
    // The token is checked before any limit: only failures are limited, so a valid token always gets through.
    const repo = this.ds.getRepository(ApiTokenEntity);
    const token = await repo.findOne({ where: { tokenHash: hashSecret(match[1]) } });
    if (!token || (token.expiresAt && token.expiresAt.getTime() <= Date.now())) {
      this.limiter.fail({ address, credential: match[1] }, unauthenticated(token ? 'token expired' : 'unknown or revoked token'));
    }
    const required = this.reflector.getAllAndOverride<Role>(REQUIRED_ROLE, targets) ?? 'viewer';
    req.principal = { actor: `token:${token.name}`, tokenId: token.id, tokenName: token.name, role: token.role };
    if (ROLE_RANK[token.role] < ROLE_RANK[required]) {
      throw forbidden(`role ${token.role} may not do this; it needs ${required}`, { role: token.role, required });
    }
    // Recorded at most once a minute per token so reads stay cheap.
    if (!token.lastUsedAt || Date.now() - token.lastUsedAt.getTime() > 60_000) {
      void repo.update({ id: token.id }, { lastUsedAt: new Date() }).catch(() => undefined);
    }
    return true;
  }

  /** A spoke's MQTT username and password, as the broker checks them: enrolled, not revoked, matching hash. */
  private async spoke(encoded: string, address: string): Promise<Principal> {
    const decoded = Buffer.from(encoded, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const username = colon > 0 ? decoded.slice(0, colon) : '';
    const password = colon > 0 ? decoded.slice(colon + 1) : '';
    const row = username
      ? await this.ds.getRepository(SpokeEntity).findOne({ where: { mqttUsername: username, revokedAt: IsNull() }, select: { name: true, credentialHash: true } })
      : null;
    const ok = secretMatches(password, row?.credentialHash ?? NO_SUCH_SPOKE_HASH) && row !== null && row.credentialHash !== null;
    if (!ok || !row) this.limiter.fail({ address, credential: encoded }, unauthenticated('unknown spoke credentials, or the spoke was revoked'));
    return { actor: `spoke:${row.name}`, tokenId: '', tokenName: '', role: 'viewer', spoke: row.name };
  }
}
