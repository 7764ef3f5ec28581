import pino from 'pino';
import { DEFAULT_ROLLOUT_GATES } from '@flotilla/policy';
import type { DataSource } from 'typeorm';
import { createDataSource, runMigrations } from '../../apps/hub/src/database/data-source.js';
import { RouteTable } from '../../apps/hub/src/routing/route-table.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { insertRouteSpokes } from '../support/route-fixtures.js';

const LYON = { lat: 45.764, lon: 4.8357 };
const PARIS = { lat: 48.8566, lon: 2.3522 };
const MARSEILLE = { lat: 43.2965, lon: 5.3698 };

describe('RouteTable: healthy spokes serving a model, nearest first, from Postgres into memory', () => {
  let db: TestDatabase;
  let ds: DataSource;
  let table: RouteTable;

  beforeAll(async () => {
    db = await createTestDatabase();
    ds = createDataSource(db.url);
    await ds.initialize();
    await runMigrations(ds);
    await insertRouteSpokes(ds, [
      { name: 'lyon', location: LYON, labels: { 'topology.flotilla.dev/region': 'south' }, requestsPerSecond: 3, latencyP99Ms: 12 },
      { name: 'paris', location: PARIS, labels: { 'topology.flotilla.dev/region': 'north' } },
      { name: 'marseille', location: MARSEILLE, labels: { region: 'south' }, version: '2.0.0' },
      { name: 'nowhere', location: null },
      { name: 'broken', location: LYON, status: { phase: 'Degraded', compliance: 'NonCompliant' } },
      { name: 'old-status', location: LYON, status: { observedGeneration: 1 } },
      { name: 'not-accepted', location: LYON, acceptedGeneration: 1, observedGeneration: 1 },
      { name: 'silent', location: LYON, seenAgo: 600 },
      { name: 'no-telemetry', location: LYON, telemetryAgo: 600 },
      { name: 'gone', location: LYON, presence: 'offline' },
      { name: 'erroring', location: LYON, errorRatio: 0.5 },
      { name: 'unreported', location: LYON, status: null },
      { name: 'other-model', location: LYON, model: 'pedestrians', deployment: 'pedestrians-inference' },
    ]);
    table = new RouteTable(ds, 30, pino({ level: 'silent' }));
    await table.rebuild();
  }, 60_000);

  afterAll(async () => {
    await table.stop();
    await ds.destroy();
    await db.drop();
  });

  test('ranks the healthy spokes by distance from the caller, spokes without a location last', () => {
    const r = table.lookup({ model: 'bridge-defects', near: LYON, limit: 10 });
    expect(r.items.map((i) => i.spoke)).toEqual(['lyon', 'marseille', 'paris', 'nowhere']);
    expect(r.items[0]).toMatchObject({ distanceKm: 0, load: 3, latencyP99Ms: 12, errorRatio: 0, maxErrorRatio: DEFAULT_ROLLOUT_GATES.maxErrorRatio, endpoint: 'http://lyon.example:8000/v2/models/bridge-defects' });
    expect(r.items[2]!.distanceKm).toBeCloseTo(392, -1);
    expect(r.items[3]!.distanceKm).toBeNull();
    expect(table.lookup({ model: 'bridge-defects', near: PARIS, limit: 2 }).items.map((i) => i.spoke)).toEqual(['paris', 'lyon']);
  });

  test('never chooses a NonCompliant, stale, offline, erroring or not caught-up spoke, and says why', () => {
    const r = table.lookup({ model: 'bridge-defects', near: LYON, limit: 500 });
    const why = Object.fromEntries(r.excluded.map((e) => [e.spoke, e.reason]));
    expect(why).toEqual({
      broken: 'NonCompliant',
      'old-status': 'Reconciling',
      'not-accepted': 'GenerationBehind',
      silent: 'SpokeStale',
      'no-telemetry': 'TelemetryStale',
      gone: 'SpokeOffline',
      erroring: 'ErrorRatio',
      unreported: 'NotReported',
    });
    expect(r.excludedCount).toBe(8);
  });

  test('filters by version and by region label', () => {
    expect(table.lookup({ model: 'bridge-defects', version: '2.0.0', limit: 10 }).items.map((i) => i.spoke)).toEqual(['marseille']);
    expect(table.lookup({ model: 'bridge-defects', region: 'south', near: PARIS, limit: 10 }).items.map((i) => i.spoke)).toEqual(['lyon', 'marseille']);
    expect(table.lookup({ model: 'pedestrians', limit: 10 }).items.map((i) => i.spoke)).toEqual(['other-model']);
    expect(table.lookup({ model: 'unknown', limit: 10 })).toMatchObject({ items: [], excludedCount: 0 });
  });

  test('a new desired generation stops routing to a spoke until it reports that generation', async () => {
    await ds.query(`UPDATE spokes SET desired_generation = 3 WHERE name = 'lyon'`);
    await table.refreshSpokes(['lyon']);
    const r = table.lookup({ model: 'bridge-defects', near: LYON, limit: 10 });
    expect(r.items.map((i) => i.spoke)).not.toContain('lyon');
    expect(r.excluded).toContainEqual({ spoke: 'lyon', deployment: 'bridge-defects-inference', reason: 'GenerationBehind' });
  });

  test('a deployment’s own error threshold (rollout.gates.maxErrorRatio) applies', async () => {
    await ds.query(
      `INSERT INTO policy_objects (kind, name, spec, source) VALUES ('ModelDeployment', 'bridge-defects-inference', $1, 'test')`,
      [JSON.stringify({ rollout: { gates: { maxErrorRatio: 0.6 } } })],
    );
    await table.rebuild();
    const r = table.lookup({ model: 'bridge-defects', near: LYON, limit: 10 });
    expect(r.items.find((i) => i.spoke === 'erroring')).toMatchObject({ errorRatio: 0.5, maxErrorRatio: 0.6 });

    // A stored value the schema refuses (written behind the API's back) is not trusted: the schema's default applies.
    await ds.query(`UPDATE policy_objects SET spec = $1 WHERE kind = 'ModelDeployment' AND name = 'bridge-defects-inference'`, [JSON.stringify({ rollout: { gates: { maxErrorRatio: 7 } } })]);
    await table.rebuild();
    const bad = table.lookup({ model: 'bridge-defects', near: LYON, limit: 10 });
    expect(bad.items.map((i) => i.spoke)).not.toContain('erroring');
    expect(bad.items[0]).toMatchObject({ maxErrorRatio: DEFAULT_ROLLOUT_GATES.maxErrorRatio });
    expect(bad.excluded).toContainEqual({ spoke: 'erroring', deployment: 'bridge-defects-inference', reason: 'ErrorRatio' });
    await ds.query(`DELETE FROM policy_objects WHERE kind = 'ModelDeployment' AND name = 'bridge-defects-inference'`);
    await table.rebuild();
  });

  test('a revoked spoke leaves the table on its next refresh', async () => {
    await ds.query(`UPDATE spokes SET revoked_at = now() WHERE name = 'paris'`);
    table.noteSpokes(['paris']);
    await table.settled();
    expect(table.lookup({ model: 'bridge-defects', limit: 10 }).items.map((i) => i.spoke)).not.toContain('paris');
  });
});
