import type { NestExpressApplication } from '@nestjs/platform-express';
import type { NextFunction, Request, Response } from 'express';
import { POLICY_LIMITS } from '@flotilla/policy';
import { DomainError } from '../errors/domain-error.js';

/** Request bodies the API reads; anything else is 415 before a handler sees it. */
export const JSON_TYPES = ['application/json', 'application/merge-patch+json'];
export const YAML_TYPES = ['application/yaml', 'application/x-yaml', 'text/yaml', 'text/plain'];

/** The routes that read policy documents, which may come as YAML (or text); every other body is JSON. */
export const POLICY_BODY_ROUTES = ['/api/v1/apply', '/api/v1/delete'];

/** Routes whose body is bytes, streamed to their handler unparsed (a spoke's produced model upload). */
export const BINARY_BODY_ROUTE = /^\/api\/v1\/finetune-jobs\/[^/]+\/artifacts\/[^/]+$/;
export const BINARY_TYPES = ['application/octet-stream'];

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
  const accepted = POLICY_BODY_ROUTES.includes(req.path) ? [...JSON_TYPES, ...YAML_TYPES] : BINARY_BODY_ROUTE.test(req.path) ? BINARY_TYPES : JSON_TYPES;
  if (accepted.includes(type)) return next();
  next(
    new DomainError('unsupported_media_type', 415, `Content-Type ${type ? `"${type}"` : '(none)'} is not read by ${req.path}; send ${accepted.join(' or ')}`, {
      contentType: type || null,
      accepted,
    }),
  );
}

/**
 * Reads a YAML (or text) policy body, counting its bytes, newlines and
 * commas as the chunks arrive: a body over the byte limit or with more lines
 * and list entries than the policy parser accepts is refused without being
 * decoded or kept (the same limits as libs/policy's scan; this only refuses
 * earlier and cheaper). An over-full body is still read to its end, up to the
 * byte limit, so that the client gets the answer; past that, the connection
 * is closed after answering.
 */
function readPolicyText(req: Request, res: Response, next: NextFunction): void {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (!hasBody(req) || !YAML_TYPES.includes(type)) return next();
  const chunks: Buffer[] = [];
  let bytes = 0;
  let entries = 0;
  let refused: DomainError | null = null;
  let finished = false;
  const finish = (err: unknown) => {
    if (finished) return;
    finished = true;
    next(err);
  };
  req.on('data', (chunk: Buffer) => {
    if (finished) return;
    bytes += chunk.length;
    if (bytes > BODY_LIMITS.textBytes) {
      res.setHeader('Connection', 'close');
      req.pause();
      return finish(new DomainError('payload_too_large', 413, `request body is over the limit of ${BODY_LIMITS.textBytes} bytes for its content type`, { limitBytes: BODY_LIMITS.textBytes }));
    }
    if (refused) return;
    for (let i = 0; i < chunk.length; i++) if (chunk[i] === 0x0a || chunk[i] === 0x2c) entries++;
    if (entries > POLICY_LIMITS.entries) {
      const message = `policy input has more than ${POLICY_LIMITS.entries} lines and list entries (the limit on one apply, diff, delete or git sync)`;
      refused = new DomainError('invalid_policy', 400, `policy has 1 error(s): request: ${message}`, {
        problems: [{ file: 'request', line: 0, column: 0, field: '', message }],
        problemCount: 1,
      });
      chunks.length = 0;
      return;
    }
    chunks.push(chunk);
  });
  req.on('end', () => {
    if (refused) return finish(refused);
    req.body = Buffer.concat(chunks).toString('utf8');
    finish(undefined);
  });
  req.on('error', (err) => finish(err));
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
  app.use(POLICY_BODY_ROUTES, readPolicyText);
}
