import type { NestExpressApplication } from '@nestjs/platform-express';
import type { NextFunction, Request, Response } from 'express';
import { POLICY_LIMITS } from '@flotilla/policy';
import { DomainError } from '../errors/domain-error.js';

/** Request bodies the API reads; anything else is 415 before a handler sees it. */
export const JSON_TYPES = ['application/json', 'application/merge-patch+json'];
export const YAML_TYPES = ['application/yaml', 'application/x-yaml', 'text/yaml', 'text/plain'];

/** The routes that read policy documents, which may come as YAML (or text); every other body is JSON. */
export const POLICY_BODY_ROUTES = ['/api/v1/apply', '/api/v1/delete'];

/** Bodies: JSON up to 1 MiB nested at most 64 deep; policy YAML up to the policy parser's byte limit. */
export const BODY_LIMITS = { jsonBytes: 1024 * 1024, jsonDepth: 64, textBytes: POLICY_LIMITS.bytes } as const;

/**
 * Whether a parsed JSON value nests deeper than `max`, walked with an
 * explicit stack: JSON.parse copes with any depth, but what handles the
 * value later (validation, JSON.stringify) recurses.
 */
export function nestedDeeperThan(value: unknown, max: number): boolean {
  const stack: Array<{ v: unknown; depth: number }> = [{ v: value, depth: 0 }];
  while (stack.length > 0) {
    const { v, depth } = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (depth >= max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (typeof child === 'object' && child !== null) stack.push({ v: child, depth: depth + 1 });
    }
  }
  return false;
}

const hasBody = (req: Request) => {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
};

/**
 * A body in a type the API does not read is refused with 415 naming the
 * types it does, rather than reaching a handler as an empty body that then
 * reports a missing field.
 */
function requireKnownContentType(req: Request, _res: Response, next: NextFunction): void {
  if (!hasBody(req)) return next();
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  const accepted = POLICY_BODY_ROUTES.includes(req.path) ? [...JSON_TYPES, ...YAML_TYPES] : JSON_TYPES;
  if (accepted.includes(type)) return next();
  next(
    new DomainError('unsupported_media_type', 415, `Content-Type ${type ? `"${type}"` : '(none)'} is not read by ${req.path}; send ${accepted.join(' or ')}`, {
      contentType: type || null,
      accepted,
    }),
  );
}

/** The hub's body parsing: content types, sizes and JSON depth, checked before any handler runs. */
export function installBodyParsers(app: NestExpressApplication): void {
  app.use(requireKnownContentType);
  app.useBodyParser('json', { type: JSON_TYPES, limit: BODY_LIMITS.jsonBytes });
  app.use((req: Request, _res: Response, next: NextFunction) => {
    if (typeof req.body === 'object' && req.body !== null && nestedDeeperThan(req.body, BODY_LIMITS.jsonDepth)) {
      return next(new DomainError('invalid_json', 400, `request body is nested more than ${BODY_LIMITS.jsonDepth} levels deep`, { maxDepth: BODY_LIMITS.jsonDepth }));
    }
    next();
  });
  app.useBodyParser('text', { type: YAML_TYPES, limit: BODY_LIMITS.textBytes });
}
