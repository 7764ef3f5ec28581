import { startTestHub, type TestHub } from '../support/hub.js';

const digest = (c: string) => 'sha256:' + c.repeat(64);

describe('admin API', () => {
  let t: TestHub;
  beforeAll(async () => {
    t = await startTestHub();
  });
  afterAll(async () => {
    await t.stop();
  });

  test('a call without a token gets 401 with the error shape', async () => {
    const r = await t.api('GET', '/api/v1/spokes', undefined, null);
    expect(r.status).toBe(401);
    expect(r.body).toEqual({ error: { code: 'unauthenticated', message: expect.stringContaining('bearer'), details: {} } });
  });

  test('an unknown token gets 401', async () => {
    const r = await t.api('GET', '/api/v1/spokes', undefined, 'flt_not-a-real-token');
    expect(r.status).toBe(401);
  });

  test('a viewer may read but not create tokens (403), an operator may register models but not delete spokes', async () => {
    const v = await t.api('POST', '/api/v1/api-tokens', { name: 'viewer-1', role: 'viewer' });
    expect(v.status).toBe(201);
    expect(v.body.token).toMatch(/^flt_/);
    expect((await t.api('GET', '/api/v1/spokes', undefined, v.body.token)).status).toBe(200);
    const denied = await t.api('POST', '/api/v1/api-tokens', { name: 'sneaky', role: 'admin' }, v.body.token);
    expect(denied.status).toBe(403);
    expect(denied.body.error).toMatchObject({ code: 'forbidden', details: { role: 'viewer', required: 'admin' } });

    const o = await t.api('POST', '/api/v1/api-tokens', { name: 'operator-1', role: 'operator' });
    expect((await t.api('POST', '/api/v1/models', { name: 'op-model' }, o.body.token)).status).toBe(201);
    expect((await t.api('DELETE', '/api/v1/spokes/whatever', undefined, o.body.token)).status).toBe(403);
  });

  test('a token secret is shown once and stored only as a hash', async () => {
    const c = await t.api('POST', '/api/v1/api-tokens', { name: 'ci-bot', role: 'operator' });
    const list = await t.api('GET', '/api/v1/api-tokens');
    const row = list.body.items.find((i: { name: string }) => i.name === 'ci-bot');
    expect(row).toBeDefined();
    expect(JSON.stringify(list.body)).not.toContain(c.body.token);
    const stored = await t.hub.dataSource.query(`SELECT token_hash FROM api_tokens WHERE name = 'ci-bot'`);
    expect(stored[0].token_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(stored[0].token_hash).not.toContain(c.body.token);
  });

  test('a deleted API token stops working at once', async () => {
    const c = await t.api('POST', '/api/v1/api-tokens', { name: 'short-lived', role: 'viewer' });
    expect((await t.api('GET', '/api/v1/models', undefined, c.body.token)).status).toBe(200);
    expect((await t.api('DELETE', '/api/v1/api-tokens/short-lived')).status).toBe(204);
    expect((await t.api('GET', '/api/v1/models', undefined, c.body.token)).status).toBe(401);
  });

  test('unknown body fields are rejected naming the field', async () => {
    const r = await t.api('POST', '/api/v1/api-tokens', { name: 'x', role: 'viewer', colour: 'red' });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('validation_failed');
    expect(r.body.error.message).toContain('colour');
  });

  test('malformed JSON is a 400 invalid_json', async () => {
    const res = await fetch(t.hub.apiUrl + '/api/v1/models', {
      method: 'POST',
      headers: { authorization: `Bearer ${t.adminToken}`, 'content-type': 'application/json' },
      body: '{"name": ',
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as any).error.code).toBe('invalid_json');
  });

  test('model versions: malformed digest is a 400 naming the field, the same version twice is a 409, versions are listed', async () => {
    expect((await t.api('POST', '/api/v1/models', { name: 'bridge-defects', task: 'image-classification' })).status).toBe(201);
    const bad = await t.api('POST', '/api/v1/models/bridge-defects/versions', {
      version: '1.0.0',
      digest: 'sha256:xyz',
      uri: 'file:///models/m.onnx',
      format: 'onnx',
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error.details.problems).toEqual([expect.objectContaining({ field: 'digest' })]);
    const v = { version: '1.0.0', digest: digest('a'), uri: 's3://models/bridge-defects/1.0.0/model.onnx', format: 'onnx', sizeBytes: 48213770 };
    const ok = await t.api('POST', '/api/v1/models/bridge-defects/versions', v);
    expect(ok.status).toBe(201);
    expect(ok.body).toMatchObject({ model: 'bridge-defects', version: '1.0.0', digest: digest('a'), sizeBytes: 48213770 });
    const again = await t.api('POST', '/api/v1/models/bridge-defects/versions', { ...v, digest: digest('b') });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('model_version_exists');
    const dup = await t.api('POST', '/api/v1/models', { name: 'bridge-defects' });
    expect(dup.status).toBe(409);
    const model = await t.api('GET', '/api/v1/models/bridge-defects');
    expect(model.body.versions.map((x: { version: string }) => x.version)).toEqual(['1.0.0']);
    expect((await t.api('GET', '/api/v1/models/nope')).status).toBe(404);
    expect((await t.api('POST', '/api/v1/models/nope/versions', v)).status).toBe(404);
  });

  test('enrolment tokens: created with labels and uses, secret shown once, listed without it, deletable', async () => {
    const c = await t.api('POST', '/api/v1/enrollment-tokens', { labels: { region: 'eu' }, uses: 3, expiresInSeconds: 600 });
    expect(c.status).toBe(201);
    expect(c.body).toMatchObject({ usesLeft: 3, labels: { region: 'eu' }, token: expect.stringMatching(/^fle_/) });
    const list = await t.api('GET', '/api/v1/enrollment-tokens');
    expect(JSON.stringify(list.body)).not.toContain(c.body.token);
    expect((await t.api('DELETE', `/api/v1/enrollment-tokens/${c.body.id}`)).status).toBe(204);
    expect((await t.api('DELETE', `/api/v1/enrollment-tokens/${c.body.id}`)).status).toBe(404);
    const badLabels = await t.api('POST', '/api/v1/enrollment-tokens', { labels: { 'bad key!': 'x' } });
    expect(badLabels.status).toBe(400);
  });

  test('lists are paged with an opaque cursor and limit <= 500', async () => {
    for (let i = 0; i < 5; i++) await t.api('POST', '/api/v1/models', { name: `paged-${i}` });
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const r: { body: { items: { name: string }[]; nextCursor: string | null } } = await t.api(
        'GET',
        `/api/v1/models?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
      );
      expect(r.body.items.length).toBeLessThanOrEqual(2);
      seen.push(...r.body.items.map((i) => i.name));
      cursor = r.body.nextCursor;
    } while (cursor);
    expect(seen).toEqual([...seen].sort());
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.filter((n) => n.startsWith('paged-'))).toHaveLength(5);
    expect((await t.api('GET', '/api/v1/models?limit=501')).status).toBe(400);
    expect((await t.api('GET', '/api/v1/models?cursor=garbage')).status).toBe(400);
  });

  test('every mutation leaves an audit event with actor, action, target and time', async () => {
    await t.api('POST', '/api/v1/api-tokens', { name: 'audited', role: 'viewer' });
    await t.api('DELETE', '/api/v1/api-tokens/audited');
    await t.api('POST', '/api/v1/models', { name: 'audited-model' });
    const r = await t.api('GET', '/api/v1/audit-events?limit=10');
    const actions = r.body.items.map((e: { action: string; target: string }) => `${e.action} ${e.target}`);
    expect(actions).toEqual(
      expect.arrayContaining(['api-token.create api-token/audited', 'api-token.delete api-token/audited', 'model.create model/audited-model']),
    );
    for (const e of r.body.items) {
      expect(e.actor).toBe('token:bootstrap-admin');
      expect(Date.parse(e.at)).not.toBeNaN();
    }
    const filtered = await t.api('GET', '/api/v1/audit-events?target=api-token/');
    expect(filtered.body.items.every((e: { target: string }) => e.target.startsWith('api-token/'))).toBe(true);
  });

  test('the OpenAPI document describes every route the hub serves', async () => {
    const doc = await t.api('GET', '/api/openapi.json', undefined, null);
    expect(doc.status).toBe(200);
    const documented = new Set<string>();
    for (const [p, ops] of Object.entries(doc.body.paths as Record<string, Record<string, unknown>>)) {
      for (const m of Object.keys(ops)) documented.add(`${m.toUpperCase()} ${p.replace(/\{[^}]+\}/g, ':param')}`);
    }
    // Every route registered in Express must be in the document.
    const router = (t.hub.app.getHttpAdapter().getInstance() as { router: { stack: any[] } }).router;
    const served = router.stack
      .filter((l) => l.route)
      .flatMap((l) => Object.keys(l.route.methods).map((m) => `${m.toUpperCase()} ${String(l.route.path).replace(/:[^/]+/g, ':param')}`))
      .filter((r: string) => !r.includes('/api/docs') && !r.includes('/api/openapi'));
    expect(served.length).toBeGreaterThan(15);
    expect(served.filter((r: string) => !documented.has(r))).toEqual([]);
    const ui = await fetch(t.hub.apiUrl + '/api/docs');
    expect(ui.status).toBe(200);
  });

  test('healthz and readyz answer without a token', async () => {
    expect((await t.api('GET', '/healthz', undefined, null)).status).toBe(200);
    const ready = await t.api('GET', '/readyz', undefined, null);
    expect(ready.status).toBe(200);
    expect(ready.body.checks).toEqual({ database: true, broker: true });
  });

  test('repeated failed authentications are rate limited with 429 and Retry-After', async () => {
    let last = 0;
    let retryAfter: string | null = null;
    for (let i = 0; i < 15; i++) {
      const r = await t.api('GET', '/api/v1/models', undefined, `flt_wrong-${i}`);
      last = r.status;
      retryAfter = r.headers.get('retry-after');
    }
    expect(last).toBe(429);
    expect(Number(retryAfter)).toBeGreaterThan(0);
  });
});
