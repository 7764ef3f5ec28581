import fc from 'fast-check';
import { startTestHub, type TestHub } from '../support/hub.js';

/**
 * Independent evaluation of the selectors used below, written from the
 * Kubernetes docs and not from libs/policy: each clause is a predicate.
 */
type Labels = Record<string, string>;
const clause: Record<string, (l: Labels) => boolean> = {
  'region=eu': (l) => l.region === 'eu',
  'region!=eu': (l) => l.region !== 'eu',
  'gpu.product in (L40S,H100)': (l) => l['gpu.product'] === 'L40S' || l['gpu.product'] === 'H100',
  'gpu.product notin (A100)': (l) => l['gpu.product'] !== 'A100',
  '!quarantined': (l) => !('quarantined' in l),
  quarantined: (l) => 'quarantined' in l,
  'tier==edge': (l) => l.tier === 'edge',
  'site in (s1,s2,s3)': (l) => ['s1', 's2', 's3'].includes(l.site ?? '\u0000'),
  'racks>3': (l) => /^-?\d+$/.test(l.racks ?? '') && Number(l.racks) > 3,
  'racks<2': (l) => /^-?\d+$/.test(l.racks ?? '') && Number(l.racks) < 2,
};

describe('spokes API', () => {
  let t: TestHub;
  const fleet: { name: string; labels: Labels }[] = [];

  beforeAll(async () => {
    t = await startTestHub();
    // 1,000 spokes with varied labels, inserted straight into the table.
    const rnd = fc.sample(
      fc.record(
        {
          region: fc.constantFrom('eu', 'us', 'apac'),
          'gpu.product': fc.constantFrom('L40S', 'H100', 'A100', 'T4'),
          quarantined: fc.constant('true'),
          tier: fc.constantFrom('edge', 'core'),
          site: fc.constantFrom('s1', 's2', 's3', 's4', 's5'),
          racks: fc.constantFrom('0', '1', '2', '3', '4', '10', 'x'),
        },
        { requiredKeys: [] },
      ),
      { numRuns: 1000, seed: 42 },
    );
    rnd.forEach((labels, i) => fleet.push({ name: `site-${String(i).padStart(4, '0')}`, labels: labels as Labels }));
    const values = fleet.map((_, i) => `($${i * 3 + 1}, $${i * 3 + 2}::jsonb, $${i * 3 + 3})`).join(',');
    await t.hub.dataSource.query(
      `INSERT INTO spokes (name, labels, mqtt_username) VALUES ${values}`,
      fleet.flatMap((s) => [s.name, JSON.stringify(s.labels), `${s.name}.test`]),
    );
  });
  afterAll(async () => {
    await t.stop();
  });

  async function listAll(selector: string): Promise<string[]> {
    const names: string[] = [];
    let cursor: string | null = null;
    do {
      const q = new URLSearchParams({ selector, limit: '500' });
      if (cursor) q.set('cursor', cursor);
      const r = await t.api('GET', `/api/v1/spokes?${q}`);
      expect(r.status).toBe(200);
      names.push(...r.body.items.map((s: { name: string }) => s.name));
      cursor = r.body.nextCursor;
    } while (cursor);
    return names;
  }

  test('a selector over 1,000 spokes returns exactly the matching set', async () => {
    const keys = Object.keys(clause);
    const selectors = [
      'region=eu,gpu.product in (L40S,H100),!quarantined',
      ...fc.sample(fc.subarray(keys, { minLength: 1, maxLength: 3 }), { numRuns: 25, seed: 7 }).map((s) => s.join(',')),
    ];
    for (const selector of selectors) {
      const preds = selector.split(/,(?![^(]*\))/).map((c) => clause[c]!);
      const expected = fleet.filter((s) => preds.every((p) => p(s.labels))).map((s) => s.name);
      expect({ selector, names: await listAll(selector) }).toEqual({ selector, names: expected });
    }
  });

  test('an invalid selector is a 400 naming the selector', async () => {
    const r = await t.api('GET', `/api/v1/spokes?selector=${encodeURIComponent('region in (eu')}`);
    expect(r.status).toBe(400);
    expect(r.body.error.details.problems[0].field).toBe('selector');
  });

  test('a spoke shows connection, generations, conditions and workloads', async () => {
    const r = await t.api('GET', '/api/v1/spokes/site-0001');
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({
      name: 'site-0001',
      connection: 'offline',
      lastSeenAt: null,
      desiredGeneration: 0,
      observedGeneration: 0,
      conditions: [],
      workloads: { deployments: [], jobs: [] },
    });
    expect((await t.api('GET', '/api/v1/spokes/no-such-site')).status).toBe(404);
  });

  test('labels are merge-patched (null removes), validated, and audited', async () => {
    const before = (await t.api('GET', '/api/v1/spokes/site-0002')).body.labels;
    const r = await t.api('PATCH', '/api/v1/spokes/site-0002', { labels: { rack: 'r7', region: null } });
    expect(r.status).toBe(200);
    const { region: _dropped, ...rest } = before;
    expect(r.body.labels).toEqual({ ...rest, rack: 'r7' });
    const bad = await t.api('PATCH', '/api/v1/spokes/site-0002', { labels: { 'x/y/z': 'a' } });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toContain('labels.x/y/z');
    const extra = await t.api('PATCH', '/api/v1/spokes/site-0002', { labels: {}, name: 'rename' });
    expect(extra.status).toBe(400);
    const audit = await t.api('GET', '/api/v1/audit-events?target=spoke/site-0002');
    expect(audit.body.items[0]).toMatchObject({ action: 'spoke.labels.patch', actor: 'token:bootstrap-admin' });
    expect(audit.body.items[0].beforeDigest).not.toEqual(audit.body.items[0].afterDigest);
  });

  test('enrolment: labels stamped, name taken refused, used and expired tokens refused', async () => {
    const tok = await t.api('POST', '/api/v1/enrollment-tokens', { labels: { region: 'eu', site: 'paris' }, allowedLabelKeys: ['extra'], uses: 1 });
    const enrol = (body: unknown) => t.api('POST', '/api/v1/enroll', body, null);
    const first = await enrol({ token: tok.body.token, name: 'paris-01', labels: { region: 'us', extra: 'yes' } });
    expect(first.status).toBe(201);
    expect(first.body.spoke).toEqual({ name: 'paris-01', labels: { region: 'eu', site: 'paris', extra: 'yes' } });
    expect(first.body.mqtt).toMatchObject({ clientId: 'paris-01', url: expect.stringMatching(/^mqtt:\/\//) });
    expect(first.body.hubPublicKey).toContain('BEGIN PUBLIC KEY');
    const used = await enrol({ token: tok.body.token, name: 'paris-02' });
    expect(used.status).toBe(401);
    expect(used.body.error.code).toBe('enrollment_token_used');

    const tok2 = await t.api('POST', '/api/v1/enrollment-tokens', { uses: 5 });
    const taken = await enrol({ token: tok2.body.token, name: 'paris-01' });
    expect(taken.status).toBe(409);
    expect(taken.body.error.code).toBe('spoke_exists');

    await t.hub.dataSource.query(`UPDATE enrollment_tokens SET expires_at = now() - interval '1 second' WHERE id = $1`, [tok2.body.id]);
    const expired = await enrol({ token: tok2.body.token, name: 'paris-03' });
    expect(expired.status).toBe(401);
    expect(expired.body.error.code).toBe('enrollment_token_expired');
    expect((await enrol({ token: 'fle_bogus', name: 'paris-04' })).status).toBe(401);
    expect((await enrol({ token: tok2.body.token, name: 'Not_A_DNS_Name' })).status).toBe(400);
  });

  test('deleting a spoke revokes it: gone from the API, its name can be enrolled again, audited', async () => {
    const tok = await t.api('POST', '/api/v1/enrollment-tokens', { uses: 2 });
    expect((await t.api('POST', '/api/v1/enroll', { token: tok.body.token, name: 'lyon-01' }, null)).status).toBe(201);
    expect((await t.api('DELETE', '/api/v1/spokes/lyon-01')).status).toBe(204);
    expect((await t.api('GET', '/api/v1/spokes/lyon-01')).status).toBe(404);
    const row = await t.hub.dataSource.query(`SELECT credential_hash, revoked_at FROM spokes WHERE name = 'lyon-01'`);
    expect(row[0]).toMatchObject({ credential_hash: null, revoked_at: expect.any(Date) });
    expect((await t.api('POST', '/api/v1/enroll', { token: tok.body.token, name: 'lyon-01' }, null)).status).toBe(201);
    const audit = await t.api('GET', '/api/v1/audit-events?action=spoke.delete');
    expect(audit.body.items[0]).toMatchObject({ target: 'spoke/lyon-01' });
  });
});
