import { createParamDecorator, type ExecutionContext, SetMetadata } from '@nestjs/common';
import type { Role } from '../database/entities/api-token.entity.js';

export interface Principal {
  /** Audit actor, e.g. `token:ci-bot`. */
  actor: string;
  tokenId: string;
  tokenName: string;
  role: Role;
}

export const ROLE_RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

export const REQUIRED_ROLE = 'flotilla:required-role';
export const PUBLIC_ROUTE = 'flotilla:public';

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
