import SwaggerParser from '@apidevtools/swagger-parser';
import { createConfig, lintFromString } from '@redocly/openapi-core';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { NoneRuntime, enroll, runAgent } from '../../apps/agent/src/index.js';
import { buildOpenApiDocument } from '../../apps/hub/src/openapi/openapi-document.js';
import { createRepo, type TestRepo } from '../git/repo-kit.js';
import { DIGEST_1, type Fleet, basePolicy, startFleet, usDeployment } from '../support/fleet-kit.js';
import { startTestHub, type TestHub } from '../support/hub.js';
import { waitFor } from '../support/wait.js';

/**
 * The OpenAPI document is valid for two independent validators, covers every
 * route the hub serves, and tells the truth: every real answer of every route,
 * good requests and bad, has a documented status and matches its schema.
 */

type Json = Record<string, any>;
type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

const JOB = `---
apiVersion: flotilla.dev/v1
kind: FineTuneJob
metadata: { name: eu-tuning }
spec:
  baseModel: { name: bridge-defects, version: "1.0.0" }
  placement: eu-sites
  dataset: { path: /data/labelled, format: csv }
  trainer: { builtin: linear-probe }
  evaluation: { metric: accuracy, holdoutFraction: 0.2, threshold: 0.9 }
  output: { model: bridge-defects, artifact: upload }
`;

const GIT_PLACEMENT = `apiVersion: flotilla.dev/v1
kind: Placement
metadata: { name: git-sites }
spec:
  selector: { matchLabels: { region: us } }
`;

const TELEMETRY = (spoke: string) => ({
  v: 1 as const,
  spoke,
  at: new Date().toISOString(),
  host: { cpuUtilisation: 0.25, memoryUsedBytes: 8e9, memoryTotalBytes: 64e9, diskUsedBytes: 1e11, diskTotalBytes: 1e12 },
  gpus: [{ index: 0, uuid: 'GPU-1', product: 'NVIDIA L40S', utilisation: 0.5, memoryUsedBytes: 20e9, memoryTotalBytes: 48e9, temperatureC: 61, powerW: null }],
  inference: [{ deployment: 'bridge-defects-eu', requestsPerSecond: 12.5, errorRatio: 0.01, latencyP50Ms: 8, latencyP99Ms: null }],
  agent: { reconcileSeconds: 0.05, reconcileErrors: 0, queuedReports: 0 },
  errors: [],
});

describe('OpenAPI document', () => {
  let t: TestHub;
  let fleet: Fleet;
  let repo: TestRepo;
  let doc: Json;
  let ajv: Ajv2020;
  let viewerToken: string;
  /** operationId → statuses seen in real answers that matched the document. */
  const seen = new Map<string, Set<number>>();

  beforeAll(async () => {
    // One spoke per answer, so that a change touching both lists one and pages the other from a report;
    // each call names its client address in X-Forwarded-For.
    t = await startTestHub({ FLOTILLA_APPLY_SPOKES_IN_ANSWER: '1', FLOTILLA_TRUST_PROXY: 'loopback' });
    fleet = await startFleet(t, [
      { name: 'eu-1', labels: { region: 'eu' } },
      { name: 'us-1', labels: { region: 'us' } },
    ]);
    expect((await t.api('POST', '/api/v1/apply', basePolicy() + JOB)).status).toBe(200);
    await fleet.converged();
    repo = await createRepo();
    await repo.commit({ 'placement.yaml': GIT_PLACEMENT });
    const res = await fetch(`${t.hub.apiUrl}/api/openapi.json`);
    expect(res.status).toBe(200);
    doc = (await res.json()) as Json;
    // Component refs point into the OpenAPI document; for ajv they live under $defs of one schema resource.
    const defs = JSON.parse(JSON.stringify(doc.components.schemas).replaceAll('#/components/schemas/', '#/$defs/'));
    ajv = new Ajv2020({ strict: true, allowUnionTypes: true, allErrors: true });
    // ajv-formats is CommonJS: its default export is the plugin, under `.default` as TypeScript sees it.
    addFormats.default(ajv);
    ajv.addSchema({ $id: 'https://hub.test/components', $defs: defs });
  }, 120_000);

  afterAll(async () => {
    await fleet?.stop();
    await repo?.remove();
    await t?.stop();
  });

  /* ------------------------------------------------------------- helpers */

  const operation = (method: Method, template: string): Json => {
    const op = doc.paths[template]?.[method.toLowerCase()];
    if (!op) throw new Error(`${method} ${template} is not in the document`);
    return op;
  };

  const deref = (node: Json): Json => {
    if (typeof node.$ref !== 'string') return node;
    const target = (node.$ref as string)
      .slice(2)
      .split('/')
      .reduce<Json>((n, part) => n[part.replaceAll('~1', '/').replaceAll('~0', '~')], doc);
    return deref(target);
  };

  const validatorFor = (schema: Json): ValidateFunction => {
    if (typeof schema.$ref === 'string') {
      const v = ajv.getSchema(`https://hub.test/components${(schema.$ref as string).replace('#/components/schemas/', '#/$defs/')}`);
      if (!v) throw new Error(`no schema ${schema.$ref}`);
      return v;
    }
    return ajv.compile(schema);
  };

  /** Sends a request and checks the answer against the document; returns the answer. */
  async function call(
    method: Method,
    template: string,
    opts: { params?: Record<string, string>; query?: Record<string, string>; body?: unknown; token?: string | null; from?: string; rawBody?: string | Buffer; contentType?: string; headers?: Record<string, string> } = {},
  ): Promise<{ status: number; body: any }> {
    let route = template;
    for (const [k, v] of Object.entries(opts.params ?? {})) route = route.replace(`{${k}}`, encodeURIComponent(v));
    expect(route).not.toMatch(/\{/);
    const url = new URL(t.hub.apiUrl + route);
    for (const [k, v] of Object.entries(opts.query ?? {})) url.searchParams.set(k, v);
    const headers: Record<string, string> = {};
    const token = opts.token === undefined ? t.adminToken : opts.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    // The hub trusts X-Forwarded-For from loopback: each caller of the auth tests is its own client for the limiter.
    if (opts.from) headers['x-forwarded-for'] = opts.from;
    Object.assign(headers, opts.headers ?? {});
    let payload: string | Buffer | undefined;
    if (opts.rawBody !== undefined) {
      payload = opts.rawBody;
      headers['content-type'] = opts.contentType ?? 'application/json';
    } else if (typeof opts.body === 'string') {
      payload = opts.body;
      headers['content-type'] = 'application/yaml';
    } else if (opts.body !== undefined) {
      payload = JSON.stringify(opts.body);
      headers['content-type'] = 'application/json';
    }
    // Long checks (validators) run between requests: a keep-alive socket the hub closed while idle
    // resets before the request reaches it, so that one case is sent again on a fresh connection.
    const send = () => fetch(url, { method, headers, body: payload });
    const res = await send().catch((err: Error & { cause?: { code?: string } }) => {
      if (err.cause?.code === 'ECONNRESET') return send();
      throw err;
    });
    const text = await res.text();
    const op = operation(method, template);
    const where = `${method} ${route} → ${res.status}`;
    const documented = op.responses[String(res.status)];
    if (!documented) throw new Error(`${where}: status not documented (documented: ${Object.keys(op.responses).join(', ')}); body ${text.slice(0, 300)}`);
    const response = deref(documented);
    const contentType = res.headers.get('content-type') ?? '';
    let body: any = text;
    if (!response.content) {
      if (text !== '') throw new Error(`${where}: documented without a body, got ${text.slice(0, 200)}`);
    } else if (response.content['application/json']) {
      if (!contentType.startsWith('application/json')) throw new Error(`${where}: documented as JSON, sent ${contentType}`);
      body = JSON.parse(text);
      const validate = validatorFor(response.content['application/json'].schema);
      if (!validate(body)) throw new Error(`${where}: body does not match the document: ${ajv.errorsText(validate.errors)}\n${text.slice(0, 1500)}`);
    } else {
      const [type, media] = Object.entries(response.content)[0] as [string, Json];
      if (!contentType.startsWith(type)) throw new Error(`${where}: documented as ${type}, sent ${contentType}`);
      const validate = validatorFor(media.schema);
      if (!validate(text)) throw new Error(`${where}: ${ajv.errorsText(validate.errors)}`);
    }
    const ids = seen.get(op.operationId) ?? new Set<number>();
    ids.add(res.status);
    seen.set(op.operationId, ids);
    return { status: res.status, body };
  }

  const operations = (): { method: Method; template: string; op: Json }[] =>
    Object.entries(doc.paths).flatMap(([template, item]) =>
      Object.entries(item as Json).map(([m, op]) => ({ method: m.toUpperCase() as Method, template, op: op as Json })),
    );

  /* ------------------------------------------------------------- validity */

  test('swagger-parser validates the document, and rejects it when a response loses its description', async () => {
    await expect(SwaggerParser.validate(structuredClone(doc) as never)).resolves.toBeTruthy();
    const broken = structuredClone(doc);
    delete broken.paths['/api/v1/spokes'].get.responses['200'].description;
    await expect(SwaggerParser.validate(broken as never)).rejects.toThrow(/description/);
  });

  test('Redocly (recommended rules) finds no error, and finds the ones the issue reported when they come back', async () => {
    const config = await createConfig({ extends: ['recommended'] });
    const lint = async (d: Json) => (await lintFromString({ source: JSON.stringify(d), absoluteRef: 'openapi.json', config })).filter((p) => p.severity === 'error');
    const errors = await lint(doc);
    expect(errors.map((e) => `${e.ruleId}: ${e.message} at ${e.location[0]?.pointer}`)).toEqual([]);
    const broken = structuredClone(doc);
    broken.servers = [];
    delete broken.paths['/api/v1/spokes'].get.summary;
    const found = (await lint(broken)).map((e) => e.ruleId);
    expect(found).toEqual(expect.arrayContaining(['no-empty-servers', 'operation-summary']));
  });

  test('OpenAPI 3.1 with a real server, opaque bearer tokens, and security [] exactly on the public routes', () => {
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.servers).toEqual([expect.objectContaining({ url: '/' })]);
    expect(doc.components.securitySchemes.bearerAuth).toEqual(expect.objectContaining({ type: 'http', scheme: 'bearer' }));
    expect(doc.components.securitySchemes.bearerAuth.bearerFormat).toBeUndefined();
    expect(doc.security).toEqual([{ bearerAuth: [] }]);
    const open = operations()
      .filter((o) => Array.isArray(o.op.security) && o.op.security.length === 0)
      .map((o) => `${o.method} ${o.template}`)
      .sort();
    expect(open).toEqual(['GET /api/v1/version', 'GET /healthz', 'GET /metrics', 'GET /readyz', 'POST /api/v1/enroll']);
  });

  test('every route the hub serves is in the document, and nothing else', () => {
    expect(buildOpenApiDocument(t.hub.app).problems).toEqual([]);
    // Express's own route table, independent of Nest's scanner.
    const express = t.hub.app.getHttpAdapter().getInstance() as { router: { stack: { route?: { path: string; methods: Record<string, boolean> } }[] } };
    const served = express.router.stack
      .flatMap((layer) => (layer.route ? Object.keys(layer.route.methods).map((m) => `${m.toUpperCase()} ${layer.route?.path}`) : []))
      .filter((r) => !r.includes('/api/docs') && !r.includes('/api/openapi'))
      .map((r) => r.replace(/:(\w+)/g, '{$1}'))
      .sort();
    expect(served).toEqual(operations().map((o) => `${o.method} ${o.template}`).sort());
    expect(served.length).toBeGreaterThanOrEqual(33);
  });

  test('every operation documents its request body, its success body and its errors with the shared Error schema', () => {
    for (const { method, template, op } of operations()) {
      const where = `${method} ${template}`;
      expect({ where, summary: typeof op.summary }).toEqual({ where, summary: 'string' });
      const statuses = Object.keys(op.responses).map(Number);
      const ok = statuses.filter((s) => s >= 200 && s < 300);
      expect({ where, ok: ok.length }).toEqual({ where, ok: 1 });
      const success = deref(op.responses[String(ok[0])]);
      if (ok[0] !== 204) expect({ where, content: Object.keys(success.content ?? {}).length > 0 }).toEqual({ where, content: true });
      // Readiness answers 503 with its own body: not ready is an answer, not an error.
      for (const s of statuses.filter((x) => x >= 400 && !(template === '/readyz' && x === 503))) {
        const r = deref(op.responses[String(s)]);
        expect({ where, s, schema: r.content?.['application/json']?.schema }).toEqual({ where, s, schema: { $ref: '#/components/schemas/Error' } });
      }
      if (op.security?.length !== 0) expect({ where, has401: statuses.includes(401), has429: statuses.includes(429) }).toEqual({ where, has401: true, has429: true });
      if (method === 'POST' || method === 'PATCH') {
        const bodyless = ['/api/v1/git-sources/{name}/sync', '/api/v1/api-tokens/{name}/rotate', '/api/v1/signing-key/rotate', ...['pause', 'resume', 'abort', 'undo'].map((a) => `/api/v1/rollouts/{deployment}/${a}`)];
        if (!bodyless.includes(template)) expect({ where, body: Object.keys(op.requestBody?.content ?? {}).length > 0 }).toEqual({ where, body: true });
      }
      if (op.requestBody) expect({ where, has400: statuses.includes(400) }).toEqual({ where, has400: true });
    }
    expect(Object.keys(doc.components.schemas)).toEqual(expect.arrayContaining(['Error', 'Spoke', 'SpokeDetail', 'ModelVersion', 'ApplyResult', 'Placement', 'ModelDeployment', 'FineTuneJob', 'GitSource']));
  });

  /* ------------------------------------------------- real answers, good and bad */

  test('every secured route refuses a missing token with the documented 401, and a too-weak role with 403', async () => {
    const viewer = await call('POST', '/api/v1/api-tokens', { body: { name: 'viewer', role: 'viewer' } });
    expect(viewer.status).toBe(201);
    viewerToken = viewer.body.token;
    let i = 0;
    for (const { method, template, op } of operations()) {
      if (op.security?.length === 0) continue;
      const from = `10.1.0.${++i}`;
      expect((await call(method, template, { token: null, from, ...paramsOf(template) })).status).toBe(401);
      const needsMore = /role (operator|admin)|API tokens are refused/.test(op.description);
      const r = await call(method, template, { token: viewerToken, ...paramsOf(template), body: method === 'GET' || method === 'DELETE' || method === 'PUT' ? undefined : {} });
      if (needsMore) expect({ route: `${method} ${template}`, status: r.status }).toEqual({ route: `${method} ${template}`, status: 403 });
      else expect(r.status).not.toBe(403);
    }
  });

  const paramsOf = (template: string) => ({ params: Object.fromEntries([...template.matchAll(/\{([^}]+)\}/g)].map((m) => [m[1] as string, 'no-such-thing'])) });

  test('health, readiness and metrics', async () => {
    expect((await call('GET', '/healthz', { token: null })).body).toEqual({ status: 'ok' });
    // The checker can fail: a body of the wrong shape does not pass for a documented one.
    expect(validatorFor({ $ref: '#/components/schemas/Health' })({ status: 'ok', extra: 1 })).toBe(false);
    expect(validatorFor({ $ref: '#/components/schemas/Spoke' })({ status: 'ok' })).toBe(false);
    expect((await call('GET', '/readyz', { token: null })).body.status).toBe('ready');
    expect((await call('GET', '/metrics', { token: null })).body).toContain('# TYPE');
    expect((await call('GET', '/api/v1/version', { token: null })).body).toMatchObject({ api: 'v1', protocol: 1 });
  });

  test('API tokens: create, conflict, bad body, list, bad cursor, revoke, unknown', async () => {
    expect((await call('POST', '/api/v1/api-tokens', { body: { name: 'ci-bot', role: 'operator', expiresInSeconds: 3600 } })).status).toBe(201);
    expect((await call('POST', '/api/v1/api-tokens', { body: { name: 'ci-bot', role: 'operator' } })).status).toBe(409);
    const bad = await call('POST', '/api/v1/api-tokens', { body: { name: 'Bad Name!', role: 'root' } });
    expect(bad.status).toBe(400);
    expect(bad.body.error.details.problems.map((p: { field: string }) => p.field).sort()).toEqual(['name', 'role']);
    expect((await call('POST', '/api/v1/api-tokens', { rawBody: '{"name": ' })).body.error.code).toBe('invalid_json');
    expect((await call('POST', '/api/v1/api-tokens', { rawBody: JSON.stringify({ name: 'x'.repeat(1_100_000) }) })).status).toBe(413);
    expect((await call('GET', '/api/v1/api-tokens', { query: { limit: '2' } })).body.nextCursor).not.toBeNull();
    expect((await call('GET', '/api/v1/api-tokens', { query: { cursor: 'not-ours' } })).status).toBe(400);
    expect((await call('GET', '/api/v1/api-tokens', { query: { limit: '0' } })).status).toBe(400);
    expect((await call('DELETE', '/api/v1/api-tokens/{name}', { params: { name: 'ci-bot' } })).status).toBe(204);
    expect((await call('DELETE', '/api/v1/api-tokens/{name}', { params: { name: 'ci-bot' } })).status).toBe(404);
  });

  test('enrolment tokens and enrolment: create, list, enrol, refuse, revoke', async () => {
    const tok = await call('POST', '/api/v1/enrollment-tokens', { body: { uses: 2, labels: { region: 'eu' }, allowedLabelKeys: ['site'] } });
    expect(tok.status).toBe(201);
    expect((await call('POST', '/api/v1/enrollment-tokens', { body: { uses: 0, labels: { 'bad key!': 'x' } } })).status).toBe(400);
    expect((await call('GET', '/api/v1/enrollment-tokens')).body.items.length).toBeGreaterThan(0);
    const enrolled = await call('POST', '/api/v1/enroll', { token: null, body: { token: tok.body.token, name: 'extra-1', labels: { site: 'a' }, facts: { os: 'linux' } } });
    expect(enrolled.status).toBe(201);
    expect(enrolled.body.spoke).toEqual({ name: 'extra-1', labels: { site: 'a', region: 'eu' } });
    expect((await call('POST', '/api/v1/enroll', { token: null, body: { token: tok.body.token, name: 'extra-1' } })).status).toBe(409);
    expect((await call('POST', '/api/v1/enroll', { token: null, body: { token: 'fle_wrong', name: 'extra-2' }, from: '10.2.0.1' })).status).toBe(401);
    expect((await call('POST', '/api/v1/enroll', { token: null, body: { name: 'Not A Name' } })).status).toBe(400);
    expect((await call('DELETE', '/api/v1/enrollment-tokens/{id}', { params: { id: tok.body.id } })).status).toBe(204);
    expect((await call('DELETE', '/api/v1/enrollment-tokens/{id}', { params: { id: tok.body.id } })).status).toBe(404);
    expect((await call('DELETE', '/api/v1/enrollment-tokens/{id}', { params: { id: 'not-a-uuid' } })).status).toBe(404);
  });

  test('spokes: list (with selector), one online spoke in full, labels patched, bad patches, delete', async () => {
    const all = await call('GET', '/api/v1/spokes', { query: { selector: 'region in (eu,us)' } });
    expect(all.body.items.map((s: { name: string }) => s.name)).toEqual(['eu-1', 'extra-1', 'us-1']);
    expect((await call('GET', '/api/v1/spokes', { query: { selector: 'region in (eu' } })).status).toBe(400);
    expect((await call('GET', '/api/v1/spokes', { query: { frobnicate: '1' } })).status).toBe(400);
    // An agent with a GPU that reports capacity and health: the richest answer a spoke has.
    const dir = await mkdtemp(path.join(os.tmpdir(), 'flotilla-openapi-agent-'));
    const tok = await call('POST', '/api/v1/enrollment-tokens', { body: { allowedLabelKeys: ['region'] } });
    await enroll({ hubUrl: t.hub.apiUrl, token: tok.body.token, name: 'gpu-1', labels: { region: 'ap' }, stateDir: dir });
    const agent = await runAgent({
      stateDir: dir,
      runtime: new NoneRuntime(),
      logger: pino({ level: 'silent' }),
      capacity: async () => ({ cpuCores: 16, memoryGiB: 64, gpus: [{ index: 0, uuid: 'GPU-1', product: 'NVIDIA L40S', memoryGiB: 48, mig: false }] }),
      telemetry: async () => TELEMETRY('gpu-1'),
      timing: { statusIntervalMs: 500, telemetryIntervalMs: 300, stopTimeoutMs: 500 },
    });
    try {
      const one = await waitFor('gpu-1 with capacity and telemetry', async () => {
        const r = await call('GET', '/api/v1/spokes/{name}', { params: { name: 'gpu-1' } });
        return r.body.telemetry && r.body.capacity && r.body.conditions.length ? r : null;
      });
      expect(one.body.connection).toBe('online');
      expect(one.body.capacity.gpus[0].product).toBe('NVIDIA L40S');
      expect((await call('GET', '/api/v1/spokes', { query: { selector: 'region=ap' } })).body.items[0].telemetry).toBeUndefined();
    } finally {
      await agent.stop();
      await rm(dir, { recursive: true, force: true });
    }
    expect((await call('DELETE', '/api/v1/spokes/{name}', { params: { name: 'gpu-1' } })).status).toBe(204);
    expect((await call('GET', '/api/v1/spokes/{name}', { params: { name: 'nope' } })).status).toBe(404);
    const patched = await call('PATCH', '/api/v1/spokes/{name}', { params: { name: 'extra-1' }, body: { labels: { tier: 'gold', site: null } } });
    expect(patched.body.labels).toEqual({ region: 'eu', tier: 'gold' });
    expect((await call('PATCH', '/api/v1/spokes/{name}', { params: { name: 'extra-1' }, body: { labels: { 'bad key!': 'x' } } })).status).toBe(400);
    expect((await call('PATCH', '/api/v1/spokes/{name}', { params: { name: 'nope' }, body: { labels: {} } })).status).toBe(404);
    expect((await call('DELETE', '/api/v1/spokes/{name}', { params: { name: 'extra-1' } })).status).toBe(204);
    expect((await call('DELETE', '/api/v1/spokes/{name}', { params: { name: 'extra-1' } })).status).toBe(404);
  });

  test('routing: a location patched and cleared, the route table read, bad coordinates refused', async () => {
    const located = await call('PATCH', '/api/v1/spokes/{name}', { params: { name: 'eu-1' }, body: { location: { lat: 45.76, lon: 4.84 } } });
    expect(located.body.location).toEqual({ lat: 45.76, lon: 4.84 });
    const both = await call('PATCH', '/api/v1/spokes/{name}', { params: { name: 'eu-1' }, body: { labels: {}, location: null } });
    expect([both.body.location, both.body.labels]).toEqual([null, { region: 'eu' }]);
    const bad = await call('PATCH', '/api/v1/spokes/{name}', { params: { name: 'eu-1' }, body: { location: { lat: 91, lon: 0 } } });
    expect([bad.status, bad.body.error.message]).toEqual([400, expect.stringMatching(/location\.lat: lat must be between -90 and 90/)]);
    expect((await call('PATCH', '/api/v1/spokes/{name}', { params: { name: 'eu-1' }, body: {} })).status).toBe(400);
    const r = await call('GET', '/api/v1/route', { query: { model: 'bridge-defects', lat: '48.85', lon: '2.35', limit: '5' } });
    expect(r.body).toMatchObject({ model: 'bridge-defects', near: { lat: 48.85, lon: 2.35 }, items: [] });
    const noLon = await call('GET', '/api/v1/route', { query: { model: 'bridge-defects', lat: '48.85' } });
    expect([noLon.status, noLon.body.error.message]).toEqual([400, expect.stringMatching(/give lat and lon together/)]);
    expect((await call('GET', '/api/v1/route', { query: { model: 'bridge-defects', lat: '1', lon: '200' } })).status).toBe(400);
    expect((await call('GET', '/api/v1/route', { query: {} })).status).toBe(400);
  });

  test('model registry: models and versions, conflicts, bad bodies, unknown models', async () => {
    expect((await call('POST', '/api/v1/models', { body: { name: 'detector', task: 'detection', labels: { team: 'vision' } } })).status).toBe(201);
    expect((await call('POST', '/api/v1/models', { body: { name: 'detector' } })).status).toBe(409);
    expect((await call('POST', '/api/v1/models', { body: { name: 'Detector', extra: 1 } })).status).toBe(400);
    expect((await call('GET', '/api/v1/models')).body.items.map((m: { name: string }) => m.name)).toContain('detector');
    const version = { version: '1.0.0', digest: DIGEST_1, uri: 'file:///models/detector.onnx', format: 'onnx', sizeBytes: 1234, lineage: { baseVersion: '0.9.0', metrics: { accuracy: 0.93 } } };
    expect((await call('POST', '/api/v1/models/{name}/versions', { params: { name: 'detector' }, body: version })).status).toBe(201);
    expect((await call('POST', '/api/v1/models/{name}/versions', { params: { name: 'detector' }, body: { ...version, lineage: undefined } })).status).toBe(409);
    expect((await call('POST', '/api/v1/models/{name}/versions', { params: { name: 'detector' }, body: { ...version, version: '2', digest: 'md5:x' } })).status).toBe(400);
    expect((await call('POST', '/api/v1/models/{name}/versions', { params: { name: 'nope' }, body: version })).status).toBe(404);
    expect((await call('GET', '/api/v1/models/{name}', { params: { name: 'detector' } })).body.versions).toHaveLength(1);
    expect((await call('GET', '/api/v1/models/{name}', { params: { name: 'nope' } })).status).toBe(404);
    expect((await call('GET', '/api/v1/models/{name}/versions', { params: { name: 'detector' } })).body.items).toHaveLength(1);
    expect((await call('GET', '/api/v1/models/{name}/versions', { params: { name: 'nope' } })).status).toBe(404);
    const one = await call('GET', '/api/v1/models/{name}/versions/{version}', { params: { name: 'detector', version: '1.0.0' } });
    expect(one.body).toMatchObject({ version: '1.0.0', digest: DIGEST_1, lineage: { baseVersion: '0.9.0' } });
    expect((await call('GET', '/api/v1/models/{name}/versions/{version}', { params: { name: 'detector', version: '9.9.9' } })).status).toBe(404);
  });

  test('apply touching more spokes than an answer lists: counts, the first page, the rest from its report', async () => {
    const dry = await call('POST', '/api/v1/apply', { query: { dryRun: 'true' }, body: basePolicy({ version: '1.1.0' }) + usDeployment('1.1.0') + JOB });
    expect(dry.body.spokes).toEqual([{ spoke: 'eu-1', added: [], removed: [], changed: ['deployment/bridge-defects-eu'] }]);
    expect(dry.body.spokeSummary).toEqual({ spokes: 2, added: 1, removed: 0, changed: 1 });
    expect(dry.body.reportId).toEqual(expect.any(String));
    const all: unknown[] = [];
    let cursor: string | null = null;
    do {
      const page: { status: number; body: { items: unknown[]; nextCursor: string | null; summary: unknown; dryRun: boolean } } = await call('GET', '/api/v1/apply-reports/{id}', {
        params: { id: dry.body.reportId },
        query: { limit: '1', ...(cursor ? { cursor } : {}) },
      });
      expect(page.status).toBe(200);
      expect(page.body).toMatchObject({ dryRun: true, summary: dry.body.spokeSummary });
      all.push(...page.body.items);
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(all).toEqual([
      { spoke: 'eu-1', added: [], removed: [], changed: ['deployment/bridge-defects-eu'] },
      { spoke: 'us-1', added: ['deployment/bridge-defects-us'], removed: [], changed: [] },
    ]);
    // The answer's own cursor continues after the page it listed.
    const rest = await call('GET', '/api/v1/apply-reports/{id}', { params: { id: dry.body.reportId }, query: { cursor: dry.body.spokesNextCursor } });
    expect(rest.body.items).toEqual([all[1]]);
    expect((await call('GET', '/api/v1/apply-reports/{id}', { params: { id: dry.body.reportId }, query: { cursor: 'forged' } })).status).toBe(400);
    expect((await call('GET', '/api/v1/apply-reports/{id}', { params: { id: '00000000-0000-4000-8000-000000000000' } })).status).toBe(404);
    expect((await call('GET', '/api/v1/apply-reports/{id}', { params: { id: 'not-a-uuid' } })).status).toBe(404);
  });

  test('apply: YAML, dry run, JSON list, files, invalid policy, prune without source, empty body', async () => {
    const dry = await call('POST', '/api/v1/apply', { query: { dryRun: 'true' }, body: basePolicy({ version: '1.1.0' }) + JOB });
    expect(dry.body.dryRun).toBe(true);
    expect(dry.body.spokes).toEqual([{ spoke: 'eu-1', added: [], removed: [], changed: ['deployment/bridge-defects-eu'] }]);
    expect(dry.body).toMatchObject({ spokeSummary: { spokes: 1, added: 0, removed: 0, changed: 1 }, reportId: null, spokesNextCursor: null });
    const placement = { apiVersion: 'flotilla.dev/v1', kind: 'Placement', metadata: { name: 'api-sites' }, spec: { selector: { matchLabels: { region: 'eu' } } } };
    expect((await call('POST', '/api/v1/apply', { body: [placement] })).body.objects).toEqual([{ kind: 'Placement', name: 'api-sites', action: 'created' }]);
    expect((await call('POST', '/api/v1/apply', { body: placement })).body.objects[0].action).toBe('unchanged');
    expect((await call('POST', '/api/v1/apply', { body: { files: [{ file: 'p.yaml', text: JSON.stringify(placement) }] } })).status).toBe(200);
    const invalid = await call('POST', '/api/v1/apply', { body: 'apiVersion: flotilla.dev/v1\nkind: Placement\nmetadata: { name: Bad }\nspec: {}\n' });
    expect(invalid.status).toBe(400);
    expect(invalid.body.error.code).toBe('invalid_policy');
    expect((await call('POST', '/api/v1/apply', { query: { prune: 'true' }, body: [placement] })).status).toBe(400);
    expect((await call('POST', '/api/v1/apply', { body: {} })).status).toBe(400);
    expect((await call('POST', '/api/v1/apply', { query: { dryRun: 'maybe' }, body: [placement] })).status).toBe(400);
  });

  test('delete: one object, several by documents, dry run, a referenced object, unknown kind', async () => {
    const placement = (name: string) => ({ apiVersion: 'flotilla.dev/v1', kind: 'Placement', metadata: { name }, spec: { selector: { matchLabels: { region: 'eu' } } } });
    expect((await call('POST', '/api/v1/apply', { body: [placement('gone-1'), placement('gone-2'), placement('gone-3')] })).status).toBe(200);
    const dry = await call('DELETE', '/api/v1/policy-objects/{kind}/{name}', { params: { kind: 'placement', name: 'gone-1' }, query: { dryRun: 'true' } });
    expect(dry.body).toMatchObject({ dryRun: true, objects: [{ kind: 'Placement', name: 'gone-1', action: 'deleted' }] });
    expect((await call('DELETE', '/api/v1/policy-objects/{kind}/{name}', { params: { kind: 'Placement', name: 'gone-1' } })).body.dryRun).toBe(false);
    expect((await call('POST', '/api/v1/delete', { body: [placement('gone-2'), placement('gone-3')] })).body.objects).toHaveLength(2);
    expect((await call('POST', '/api/v1/delete', { body: [placement('gone-2')] })).status).toBe(404);
    expect((await call('POST', '/api/v1/delete', { query: { ignoreNotFound: 'true' }, body: [placement('gone-2')] })).body.notFound).toEqual([{ kind: 'Placement', name: 'gone-2' }]);
    const used = await call('DELETE', '/api/v1/policy-objects/{kind}/{name}', { params: { kind: 'Placement', name: 'eu-sites' } });
    expect(used.status).toBe(409);
    expect(used.body.error.code).toBe('still_referenced');
    expect((await call('DELETE', '/api/v1/policy-objects/{kind}/{name}', { params: { kind: 'Widget', name: 'x' } })).status).toBe(400);
  });

  test('policy views: objects, placements, deployments and jobs, listed and one by one', async () => {
    expect((await call('GET', '/api/v1/policy-objects', { query: { kind: 'Placement' } })).body.items.length).toBeGreaterThan(0);
    expect((await call('GET', '/api/v1/policy-objects', { query: { kind: 'Nope' } })).status).toBe(400);
    expect((await call('GET', '/api/v1/placements', { query: { selector: 'team=vision' } })).status).toBe(200);
    expect((await call('GET', '/api/v1/placements')).body.items.length).toBeGreaterThan(0);
    const p = await call('GET', '/api/v1/placements/{name}', { params: { name: 'eu-sites' } });
    expect(p.body.decision.selected).toEqual(['eu-1']);
    expect(p.body.decision.excluded).toEqual([expect.objectContaining({ spoke: 'us-1' })]);
    expect((await call('GET', '/api/v1/placements/{name}', { params: { name: 'nope' } })).status).toBe(404);
    expect((await call('GET', '/api/v1/deployments')).body.items).toHaveLength(1);
    const d = await call('GET', '/api/v1/deployments/{name}', { params: { name: 'bridge-defects-eu' } });
    expect(d.body.compliance.spokes).toHaveLength(1);
    expect((await call('GET', '/api/v1/deployments/{name}', { params: { name: 'nope' } })).status).toBe(404);
    expect((await call('GET', '/api/v1/deployments', { query: { limit: 'many' } })).status).toBe(400);
    expect((await call('GET', '/api/v1/finetune-jobs')).body.items).toHaveLength(1);
    const j = await call('GET', '/api/v1/finetune-jobs/{name}', { params: { name: 'eu-tuning' } });
    expect(j.body.runs.spokes).toHaveLength(1);
    expect((await call('GET', '/api/v1/finetune-jobs/{name}', { params: { name: 'nope' } })).status).toBe(404);
    expect((await call('GET', '/api/v1/finetune-jobs', { query: { cursor: '%%%' } })).status).toBe(400);
    // Promotion: the job has not run on its spoke (no agent reports it), an unknown job or spoke, a bad body.
    const promote = (name: string, body: unknown) => call('POST', '/api/v1/finetune-jobs/{name}/promote', { params: { name }, body });
    const spoke = j.body.runs.spokes[0].spoke;
    const notRun = await promote('eu-tuning', { spoke });
    expect([notRun.status, notRun.body.error.code]).toEqual([409, 'no_produced_version']);
    expect((await promote('nope', { spoke })).status).toBe(404);
    expect((await promote('eu-tuning', { spoke: 'no-such-spoke' })).status).toBe(404);
    expect((await promote('eu-tuning', { spoke: 'Bad Name' })).status).toBe(400);
    expect(j.body.runs.spokes[0].promoted).toBe(false);
    expect(d.body.promotions).toEqual([]);
  });

  test('artifacts: a spoke uploads for its job (digest checked), admins download it', async () => {
    const { createHash } = await import('node:crypto');
    const { readCredentials } = await import('../../apps/agent/src/state/state-dir.js');
    const { expectedProducedVersion } = await import('../../apps/hub/src/finetune/register-produced-versions.js');
    const creds = await readCredentials(fleet.agents.get('eu-1')!.stateDir);
    const spoke = { authorization: `Basic ${Buffer.from(`${creds.mqtt.username}:${creds.mqtt.password}`).toString('base64')}` };
    const bytes = Buffer.from('not really a model, but bytes all the same');
    const hex = createHash('sha256').update(bytes).digest('hex');
    const version = expectedProducedVersion('1.0.0', 'eu-1', `sha256:${hex}`);
    // The version named as the spoke's run on these (declared) bytes would be named.
    const upload = (digest: string, headers: Record<string, string> = spoke) =>
      call('PUT', '/api/v1/finetune-jobs/{name}/artifacts/{version}', { params: { name: 'eu-tuning', version: /^sha256:[0-9a-f]{64}$/.test(digest) ? expectedProducedVersion('1.0.0', 'eu-1', digest) : version }, token: null, rawBody: bytes, contentType: 'application/octet-stream', headers: { ...headers, 'x-flotilla-digest': digest } });
    const stored = await upload(`sha256:${hex}`);
    expect(stored.body).toEqual({ job: 'eu-tuning', spoke: 'eu-1', version, digest: `sha256:${hex}`, sizeBytes: bytes.length, uri: `flotilla:artifacts/sha256/${hex}`, created: true });
    expect((await upload(`sha256:${'0'.repeat(64)}`)).body.error.code).toBe('digest_mismatch');
    expect((await upload('md5:abc')).status).toBe(400);
    expect((await call('PUT', '/api/v1/finetune-jobs/{name}/artifacts/{version}', { params: { name: 'nope', version }, token: null, rawBody: bytes, contentType: 'application/octet-stream', headers: { ...spoke, 'x-flotilla-digest': `sha256:${hex}` } })).status).toBe(403);
    const got = await call('GET', '/api/v1/artifacts/sha256/{hex}', { params: { hex } });
    expect(got.status).toBe(200);
    expect(got.body).toBe(bytes.toString());
    expect((await call('GET', '/api/v1/artifacts/sha256/{hex}', { params: { hex: 'f'.repeat(64) } })).status).toBe(404);
  });

  test('git sources: create, conflict, bad URL, sync applied then failed, list, one, delete', async () => {
    expect((await call('POST', '/api/v1/git-sources', { body: { name: 'policies', url: repo.url, intervalSeconds: 3600 } })).status).toBe(201);
    expect((await call('POST', '/api/v1/git-sources', { body: { name: 'policies', url: repo.url } })).status).toBe(409);
    expect((await call('POST', '/api/v1/git-sources', { body: { name: 'other', url: 'ftp://example.com/x.git', path: '/abs' } })).status).toBe(400);
    const synced = await call('POST', '/api/v1/git-sources/{name}/sync', { params: { name: 'policies' } });
    expect(['applied', 'unchanged']).toContain(synced.body.outcome);
    await repo.commit({ 'broken.yaml': 'apiVersion: flotilla.dev/v1\nkind: Placement\nmetadata: { name: broken }\nspec: { selector: { matchLabels: { "bad key!": x } } }\n' });
    const failed = await call('POST', '/api/v1/git-sources/{name}/sync', { params: { name: 'policies' } });
    expect(failed.body.outcome).toBe('failed');
    expect(failed.body.gitSource.lastError.problems[0]).toEqual(expect.objectContaining({ file: 'broken.yaml', line: 4 }));
    expect((await call('POST', '/api/v1/git-sources/{name}/sync', { params: { name: 'nope' } })).status).toBe(404);
    expect((await call('GET', '/api/v1/git-sources')).body.items).toHaveLength(1);
    expect((await call('GET', '/api/v1/git-sources/{name}', { params: { name: 'policies' } })).body.objectCount).toBe(1);
    expect((await call('GET', '/api/v1/git-sources/{name}', { params: { name: 'nope' } })).status).toBe(404);
    expect((await call('DELETE', '/api/v1/git-sources/{name}', { params: { name: 'policies' }, query: { keepObjects: 'perhaps' } })).status).toBe(400);
    const deleted = await call('DELETE', '/api/v1/git-sources/{name}', { params: { name: 'policies' } });
    expect(deleted.body.objects).toEqual([{ kind: 'Placement', name: 'git-sites', action: 'deleted' }]);
    expect((await call('DELETE', '/api/v1/git-sources/{name}', { params: { name: 'policies' } })).status).toBe(404);
  });

  test('token and signing-key rotation: new secret shown once, old one refused; the key changes, agents follow', async () => {
    const created = await call('POST', '/api/v1/api-tokens', { body: { name: 'rotate-me', role: 'viewer' } });
    const rotated = await call('POST', '/api/v1/api-tokens/{name}/rotate', { params: { name: 'rotate-me' } });
    expect(rotated.status).toBe(200);
    expect(rotated.body.token).not.toBe(created.body.token);
    expect((await call('GET', '/api/v1/spokes', { token: created.body.token, from: '10.4.0.1' })).status).toBe(401);
    expect((await call('GET', '/api/v1/spokes', { token: rotated.body.token })).status).toBe(200);
    expect((await call('POST', '/api/v1/api-tokens/{name}/rotate', { params: { name: 'nope' } })).status).toBe(404);
    // The bootstrap token of this hub comes from FLOTILLA_ADMIN_TOKEN: changed there, not here.
    expect((await call('POST', '/api/v1/api-tokens/{name}/rotate', { params: { name: 'bootstrap-admin' } })).status).toBe(409);
    const before = await call('GET', '/api/v1/signing-key');
    const key = await call('POST', '/api/v1/signing-key/rotate');
    expect(key.body.fingerprint).not.toBe(before.body.fingerprint);
    expect((await call('POST', '/api/v1/signing-key/rotate', { token: viewerToken })).status).toBe(403);
    await fleet.converged();
  });

  test('rollouts: none yet, one started, pause, resume, undo, abort, and refusals', async () => {
    const demo = (version: string) => `apiVersion: flotilla.dev/v1
kind: ModelDeployment
metadata: { name: rollout-demo }
spec:
  model: { name: bridge-defects, version: "${version}" }
  placement: eu-sites
  runtime: builtin
  rollout: { maxConcurrency: 1, minSuccessTime: 0s, progressDeadline: 10m }
`;
    expect((await call('GET', '/api/v1/rollouts/{deployment}', { params: { deployment: 'bridge-defects-eu' } })).status).toBe(404);
    expect((await call('POST', '/api/v1/rollouts/{deployment}/pause', { params: { deployment: 'nope' } })).status).toBe(404);
    expect((await call('POST', '/api/v1/apply', { body: demo('1.0.0') })).status).toBe(200);
    await fleet.converged();
    expect((await call('POST', '/api/v1/apply', { body: demo('1.1.0') })).status).toBe(200);
    const started = await waitFor('the rollout to start its first wave', async () => {
      const r = await call('GET', '/api/v1/rollouts/{deployment}', { params: { deployment: 'rollout-demo' } });
      return r.body.spokes?.[0]?.state === 'Progressing' ? r.body : null;
    });
    expect(started).toMatchObject({ phase: 'Progressing', fromVersion: '1.0.0', toVersion: '1.1.0', waves: 1 });
    const d = await call('GET', '/api/v1/deployments/{name}', { params: { name: 'rollout-demo' } });
    expect(d.body.rollout.toVersion).toBe('1.1.0');
    const at = { params: { deployment: 'rollout-demo' } };
    expect((await call('POST', '/api/v1/rollouts/{deployment}/pause', at)).body.phase).toBe('Paused');
    expect((await call('POST', '/api/v1/rollouts/{deployment}/pause', at)).status).toBe(409);
    expect((await call('POST', '/api/v1/rollouts/{deployment}/resume', at)).body.phase).toBe('Progressing');
    expect((await call('POST', '/api/v1/rollouts/{deployment}/resume', at)).status).toBe(409);
    const undone = await call('POST', '/api/v1/rollouts/{deployment}/undo', at);
    expect(undone.body).toMatchObject({ phase: 'RolledBack', rollingBack: true });
    expect((await call('POST', '/api/v1/rollouts/{deployment}/abort', at)).status).toBe(409);
    // Back to 1.0.0 everywhere: that change moves nothing, and the next one starts a new rollout.
    expect((await call('POST', '/api/v1/apply', { body: demo('1.0.0') })).status).toBe(200);
    expect((await call('GET', '/api/v1/rollouts/{deployment}', at)).status).toBe(404);
    expect((await call('POST', '/api/v1/apply', { body: demo('1.1.0') })).status).toBe(200);
    expect((await call('POST', '/api/v1/rollouts/{deployment}/abort', at)).body).toMatchObject({ phase: 'Aborted', rollingBack: true });
    const actions = (await call('GET', '/api/v1/audit-events', { query: { limit: '100' } })).body.items.map((e: { action: string }) => e.action);
    expect(actions).toEqual(expect.arrayContaining(['rollout.started', 'rollout.pause', 'rollout.resume', 'rollout.undo', 'rollout.abort', 'rollout.superseded']));
    expect((await call('DELETE', '/api/v1/policy-objects/{kind}/{name}', { params: { kind: 'ModelDeployment', name: 'rollout-demo' } })).status).toBe(200);
  });

  test('spoke commands: sent, answered by the agent, unknown spoke and id, bad bodies', async () => {
    const at = { params: { name: 'eu-1' } };
    const sent = await call('POST', '/api/v1/spokes/{name}/commands', { ...at, body: { type: 'resync' } });
    expect(sent.status).toBe(202);
    const done = await waitFor('the resync result', async () => {
      const r = await call('GET', '/api/v1/spokes/{name}/commands/{id}', { params: { name: 'eu-1', id: sent.body.id } });
      return r.body.state === 'Succeeded' ? r.body : null;
    });
    expect(done).toMatchObject({ type: 'resync', state: 'Succeeded', result: { commandId: sent.body.id, ok: true } });
    // The NoneRuntime cannot restart anything: the agent says so, and the command fails with its words.
    const restart = await call('POST', '/api/v1/spokes/{name}/commands', { ...at, body: { type: 'restart', target: 'bridge-defects-eu' } });
    const failed = await waitFor('the restart result', async () => {
      const r = await call('GET', '/api/v1/spokes/{name}/commands/{id}', { params: { name: 'eu-1', id: restart.body.id } });
      return r.body.state === 'Failed' ? r.body : null;
    });
    expect(failed.message).toContain('cannot restart');
    expect((await call('POST', '/api/v1/spokes/{name}/commands', { ...at, body: { type: 'restart' } })).status).toBe(400);
    expect((await call('POST', '/api/v1/spokes/{name}/commands', { ...at, body: { type: 'format-disk' } })).status).toBe(400);
    expect((await call('POST', '/api/v1/spokes/{name}/commands', { params: { name: 'nope' }, body: { type: 'resync' } })).status).toBe(404);
    expect((await call('GET', '/api/v1/spokes/{name}/commands/{id}', { params: { name: 'us-1', id: sent.body.id } })).status).toBe(404);
    expect((await call('GET', '/api/v1/spokes/{name}/commands/{id}', { params: { name: 'eu-1', id: 'not-a-uuid' } })).status).toBe(404);
  });

  test('promotion: a version a spoke reports it produced (and the hub registered) is promoted there, and only there', async () => {
    // The spoke's report is made up here (the NoneRuntime trains nothing); test/finetune/promotion.test.ts trains for real.
    // The job uploads (output.artifact: upload), so the hub registers the version once its bytes are in the store: put them there as the spoke.
    const { createHash } = await import('node:crypto');
    const { readCredentials } = await import('../../apps/agent/src/state/state-dir.js');
    const { expectedProducedVersion } = await import('../../apps/hub/src/finetune/register-produced-versions.js');
    const creds = await readCredentials(fleet.agents.get('eu-1')!.stateDir);
    const bytes = Buffer.from('a produced model, as far as this test is concerned');
    const hex = createHash('sha256').update(bytes).digest('hex');
    const digest = `sha256:${hex}`;
    const version = expectedProducedVersion('1.0.0', 'eu-1', digest);
    const uploaded = await call('PUT', '/api/v1/finetune-jobs/{name}/artifacts/{version}', {
      params: { name: 'eu-tuning', version },
      token: null,
      rawBody: bytes,
      contentType: 'application/octet-stream',
      headers: { authorization: `Basic ${Buffer.from(`${creds.mqtt.username}:${creds.mqtt.password}`).toString('base64')}`, 'x-flotilla-digest': digest },
    });
    expect(uploaded.status).toBe(200);
    fleet.agents.get('eu-1')!.runtime.jobReports = (jobs) =>
      jobs.map((j) => ({
        name: j.name,
        phase: 'Succeeded',
        progress: 1,
        metrics: { accuracy: 0.95 },
        producedVersion: version,
        produced: { version, digest, sizeBytes: bytes.length, format: 'onnx', uri: `flotilla:artifacts/sha256/${hex}`, datasetFingerprint: `sha256:${'12'.repeat(32)}` },
        message: 'passed',
      }));
    await waitFor('the produced version registered', async () => (await call('GET', '/api/v1/models/{name}/versions/{version}', { params: { name: 'bridge-defects', version } })).status === 200, 20_000, 100);
    // Registration and the stored run are written by different steps of the ingest: promote once the hub also shows the run Succeeded there.
    await waitFor('the run Succeeded on eu-1', async () => {
      const runs = (await call('GET', '/api/v1/finetune-jobs/{name}', { params: { name: 'eu-tuning' } })).body.runs?.spokes ?? [];
      return runs.some((r: { spoke: string; state: string; producedVersion: string | null }) => r.spoke === 'eu-1' && r.state === 'Succeeded' && r.producedVersion === version);
    }, 20_000, 100);
    const promoted = await call('POST', '/api/v1/finetune-jobs/{name}/promote', { params: { name: 'eu-tuning' }, body: { spoke: 'eu-1' } });
    expect(promoted.status).toBe(200);
    expect(promoted.body).toMatchObject({ job: 'eu-tuning', spoke: 'eu-1', version, started: ['bridge-defects-eu'] });
    expect(promoted.body.promotions[0]).toMatchObject({ deployment: 'bridge-defects-eu', state: 'Progressing', reason: 'ManuallyPromoted' });
    // Idempotent: promoting the same version again starts nothing.
    expect((await call('POST', '/api/v1/finetune-jobs/{name}/promote', { params: { name: 'eu-tuning' }, body: { spoke: 'eu-1' } })).body.started).toEqual([]);
    await waitFor('eu-1 sent the produced version', () => fleet.agents.get('eu-1')!.runtime.deployments().includes(`bridge-defects-eu@${version}`), 20_000, 100);
    const d = await call('GET', '/api/v1/deployments/{name}', { params: { name: 'bridge-defects-eu' } });
    expect(d.body.promotions).toEqual([expect.objectContaining({ spoke: 'eu-1', version, previousVersion: '1.0.0', active: true })]);
    expect(d.body.compliance.spokes.find((s: { spoke: string }) => s.spoke === 'eu-1').promotedVersion).toBe(version);
    const j = await call('GET', '/api/v1/finetune-jobs/{name}', { params: { name: 'eu-tuning' } });
    expect(j.body.runs.spokes[0]).toMatchObject({ spoke: 'eu-1', producedVersion: version, promoted: true });
    fleet.agents.get('eu-1')!.runtime.jobReports = null;
  });

  test('audit events, filtered, and an unknown filter', async () => {
    const r = await call('GET', '/api/v1/audit-events', { query: { target: 'spoke/' } });
    expect(r.body.items.map((e: { action: string }) => e.action)).toEqual(expect.arrayContaining(['spoke.enroll', 'spoke.delete']));
    expect((await call('GET', '/api/v1/audit-events', { query: { since: 'yesterday' } })).status).toBe(400);
  });

  test('repeated failed authentication is refused with the documented 429 and Retry-After', async () => {
    let last = { status: 0, body: null as any };
    for (let i = 0; i < 11; i++) last = await call('GET', '/api/v1/spokes', { token: 'flt_guess', from: '10.3.0.1' });
    expect(last.status).toBe(429);
    expect(last.body.error.code).toBe('rate_limited');
    expect((await call('POST', '/api/v1/enroll', { token: null, body: { token: 'fle_guess', name: 'x' }, from: '10.3.0.1' })).status).toBe(429);
  });

  test('every operation was called, and each answered with a documented success', () => {
    for (const { op } of operations()) {
      const statuses = [...(seen.get(op.operationId) ?? [])];
      expect({ op: op.operationId, ok: statuses.some((s) => s < 300) }).toEqual({ op: op.operationId, ok: true });
    }
  });
});
