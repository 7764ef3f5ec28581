import { createParamDecorator, type ExecutionContext, SetMetadata } from '@nestjs/common';
import type { Role } from '../database/entities/api-token.entity.js';

export interface Principal {
  /** Audit actor, e.g. `token:ci-bot`. */
  actor: string;
  tokenId: string;
  tokenName: string;
  role: Role;
  /** Set when a spoke authenticated with its own credentials (routes marked SpokeAccess). */
  spoke?: string;
}

export const ROLE_RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

export const REQUIRED_ROLE = 'flotilla:required-role';
export const PUBLIC_ROUTE = 'flotilla:public';
export const SPOKE_ACCESS = 'flotilla:spoke-access';

/**
 * Routes spokes call with their own credentials (HTTP Basic: the MQTT
 * username and password issued at enrolment). `only`: spokes alone, API
 * tokens are refused (403); `also`: spokes, or tokens with the route's role.
 */
export type SpokeAccessMode = 'only' | 'also';
export const SpokeAccess = (mode: SpokeAccessMode) => SetMetadata(SPOKE_ACCESS, mode);

/** Minimum role for a route; routes without it need `viewer`. */
export const RequireRole = (role: Role) => SetMetadata(REQUIRED_ROLE, role);
/** Routes anyone may call (health, enrolment with its own token). */
export const Public = () => SetMetadata(PUBLIC_ROUTE, true);

export interface RequestContext {
  principal: Principal;
  requestId: string;
}

/** The authenticated caller and the request id, for audit. */
export const Ctx = createParamDecorator((_: unknown, ctx: ExecutionContext): RequestContext => {
  const req = ctx.switchToHttp().getRequest<{ principal?: Principal; id?: unknown }>();
  if (!req.principal) throw new Error('Ctx used on a public route');
  return { principal: req.principal, requestId: String(req.id ?? '') };
});
