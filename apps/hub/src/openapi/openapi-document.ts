import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, type OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import type { Logger } from 'pino';
import { SchemaComponents, queryParameters } from './components.js';
import { type ErrorStatus, OPERATIONS, type OperationDoc, type ResponseDoc } from './operations.js';

/**
 * The hub's OpenAPI 3.1 document. Nest's scanner (the public
 * `SwaggerModule.createDocument`) says which routes exist and gives their
 * summaries and tags; `operations.ts` says what each takes and answers, with
 * schemas from zod (`components.ts`). Routes on one side only are reported as
 * problems, never silently dropped or invented.
 */

type Json = Record<string, unknown>;
const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;

const ERRORS: Record<ErrorStatus, { name: string; description: string }> = {
  400: {
    name: 'BadRequest',
    description: 'invalid request: `details.problems` names each field and what is wrong with it (validation_failed), or the body is not JSON (invalid_json)',
  },
  401: { name: 'Unauthorized', description: 'no bearer token, or an unknown, revoked or expired one (unauthenticated)' },
  403: { name: 'Forbidden', description: "the token's role may not do this; `details` gives the role and the one required (forbidden)" },
  404: { name: 'NotFound', description: 'no such object; `details` gives its kind and name (not_found)' },
  409: { name: 'Conflict', description: 'the request conflicts with what exists' },
  416: { name: 'RangeNotSatisfiable', description: 'the requested range starts past the end' },
  422: { name: 'UnprocessableContent', description: 'the body is well-formed but wrong (digest_mismatch)' },
  413: { name: 'PayloadTooLarge', description: 'the body is over the limit: 1 MiB of JSON, 4 MiB of YAML (payload_too_large)' },
  429: { name: 'TooManyRequests', description: 'too many failed authentications from this address (rate_limited); retry after `Retry-After` seconds' },
  502: { name: 'BadGateway', description: 'a system the hub depends on did not confirm the change' },
  503: { name: 'ServiceUnavailable', description: 'the hub cannot serve this now' },
};

const TAGS: Record<string, string> = {
  health: 'Liveness, readiness and Prometheus metrics (no token needed)',
  'api-tokens': 'Bearer tokens for people and automation (admin)',
  'enrollment-tokens': 'Tokens agents enrol with (admin)',
  enrollment: 'Agent enrolment (authenticated by the enrolment token in the body)',
  spokes: 'Enrolled edge sites: connection, generations, conditions, labels',
  models: 'Model registry: models and immutable, content-addressed versions',
  policy: 'Policy objects (Model, Placement, ModelDeployment, FineTuneJob): apply, placements, compliance',
  'git-sources': 'Policy repositories the hub follows',
  audit: 'Audit trail of every change',
  artifacts: 'The artifact store of the hub: fine-tuned models spokes upload (output.artifact: upload) and other spokes fetch',
};

const errorBody = { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } };

export interface OpenApiBuild {
  document: OpenAPIObject;
  /** Routes the hub serves that `operations.ts` does not document, and the reverse. */
  problems: string[];
}

interface ScannedOperation {
  summary?: string;
  tags?: string[];
}

/** Errors that follow from the route's shape and access (see operations.ts). */
function errorStatuses(op: OperationDoc): ErrorStatus[] {
  const s = new Set<ErrorStatus>();
  if (op.body || op.query) s.add(400);
  if (op.body) s.add(413);
  if (op.access !== 'public') {
    s.add(401);
    s.add(429);
  }
  if (op.access === 'operator' || op.access === 'admin' || op.access === 'spoke') s.add(403);
  if (/\{[^}]+\}/.test(op.path)) s.add(404);
  for (const k of Object.keys(op.errors ?? {})) s.add(Number(k) as ErrorStatus);
  return [...s].sort((a, b) => a - b);
}

function responseObject(r: ResponseDoc, components: SchemaComponents): Json {
  if (r.text) return { description: r.description, content: { [r.text.contentType.split(';')[0] as string]: { schema: { type: 'string' } } } };
  if (!r.schema) return { description: r.description };
  return { description: r.description, content: { 'application/json': { schema: components.ref(r.schema) } } };
}

function operationObject(op: OperationDoc, scanned: ScannedOperation, components: SchemaComponents): Json {
  const parameters: Json[] = [...op.path.matchAll(/\{([^}]+)\}/g)].map((m) => ({
    name: m[1],
    in: 'path',
    required: true,
    description: op.pathParams?.[m[1] as string] ?? m[1],
    schema: { type: 'string' },
  }));
  if (op.query) parameters.push(...queryParameters(op.query));
  const responses: Json = { [op.response.status]: responseObject(op.response, components) };
  for (const r of op.alsoResponds ?? []) responses[r.status] = responseObject(r, components);
  for (const status of errorStatuses(op)) {
    const why = op.errors?.[status];
    responses[status] = why ? { description: why, content: errorBody } : { $ref: `#/components/responses/${ERRORS[status].name}` };
  }
  const access =
    op.access === 'public'
      ? 'No token needed.'
      : op.access === 'spoke'
        ? "Needs a spoke's own credentials (HTTP Basic: the MQTT username and password it was given at enrolment); API tokens are refused with 403."
        : `Needs a bearer token with role ${op.access} or above${op.spokesToo ? ", or a spoke's own credentials (HTTP Basic)" : ''}.`;
  const security = op.access === 'public' ? [] : op.access === 'spoke' ? [{ spokeBasic: [] }] : op.spokesToo ? [{ bearerAuth: [] }, { spokeBasic: [] }] : null;
  return {
    operationId: op.operationId,
    summary: scanned.summary,
    description: access,
    tags: scanned.tags ?? [],
    ...(security ? { security } : {}),
    ...(parameters.length ? { parameters } : {}),
    ...(op.body
      ? {
          requestBody:
            'content' in op.body
              ? { required: true, description: op.body.description, content: op.body.content }
              : { required: true, content: { 'application/json': { schema: components.ref(op.body) } } },
        }
      : {}),
    responses,
  };
}

/** The error responses operations refer to, each once. */
function sharedResponses(paths: Record<string, Json>): Json {
  const used = new Set(JSON.stringify(paths).match(/#\/components\/responses\/\w+/g) ?? []);
  const out: Json = {};
  for (const { name, description } of Object.values(ERRORS)) {
    if (!used.has(`#/components/responses/${name}`)) continue;
    out[name] = { description, content: errorBody };
    if (name === 'TooManyRequests') {
      out[name] = {
        description,
        headers: { 'Retry-After': { description: 'seconds to wait before trying again', schema: { type: 'integer', minimum: 1 } } },
        content: errorBody,
      };
    }
  }
  return out;
}

/** Builds the document for the running application's routes. */
export function buildOpenApiDocument(app: INestApplication, operations: OperationDoc[] = OPERATIONS): OpenApiBuild {
  const components = new SchemaComponents();
  const scanned = SwaggerModule.createDocument(app, new DocumentBuilder().build());
  const documented = new Map(operations.map((op) => [`${op.method.toUpperCase()} ${op.path}`, op]));
  const problems: string[] = [];
  const paths: Record<string, Json> = {};
  const usedTags = new Set<string>();

  for (const [path, item] of Object.entries(scanned.paths)) {
    for (const method of METHODS) {
      const found = (item as Record<string, ScannedOperation | undefined>)[method];
      if (!found) continue;
      const key = `${method.toUpperCase()} ${path}`;
      const op = documented.get(key);
      documented.delete(key);
      if (!op) {
        problems.push(`${key} is served but not documented in apps/hub/src/openapi/operations.ts`);
        continue;
      }
      if (!found.summary) problems.push(`${key} has no @ApiOperation({ summary }) on its controller method`);
      for (const t of found.tags ?? []) usedTags.add(t);
      paths[path] = { ...paths[path], [method]: operationObject(op, found, components) };
    }
  }
  for (const key of documented.keys()) problems.push(`${key} is documented in operations.ts but the hub serves no such route`);

  const document = {
    openapi: '3.1.0',
    info: {
      title: 'Flotilla hub admin API',
      version: 'v1',
      description:
        'Fleet manager for AI at the edge: spokes, models, policy, rollouts. Authenticate with `Authorization: Bearer <token>` (an API token; opaque, not a JWT). ' +
        'Every error is `{"error": {"code", "message", "details"}}`.',
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    servers: [{ url: '/', description: 'this hub' }],
    security: [{ bearerAuth: [] }],
    tags: [...usedTags].sort().map((name) => ({ name, description: TAGS[name] ?? name })),
    paths,
    components: {
      securitySchemes: {
        bearerAuth: {
          type: 'http',
          scheme: 'bearer',
          description: 'An API token (`flotilla tokens create`, or the bootstrap admin token printed at first start); opaque, sent as is.',
        },
        spokeBasic: {
          type: 'http',
          scheme: 'basic',
          description: "A spoke's own credentials: the MQTT username and password it was given at enrolment (the artifact routes only).",
        },
      },
      schemas: components.schemas(),
      responses: sharedResponses(paths),
    },
  };
  return { document: document as unknown as OpenAPIObject, problems };
}

/** Serves the document at /api/openapi.json and the browsable UI at /api/docs; logs routes missing from it. */
export function serveOpenApi(app: INestApplication, log: Logger): OpenApiBuild {
  const built = buildOpenApiDocument(app);
  for (const problem of built.problems) log.warn(problem);
  SwaggerModule.setup('api/docs', app, built.document, { jsonDocumentUrl: 'api/openapi.json', raw: ['json'] });
  return built;
}
