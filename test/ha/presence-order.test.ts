import pino from 'pino';
import type { DataSource } from 'typeorm';
import { createDataSource, runMigrations } from '../../apps/hub/src/database/data-source.js';
import { SpokeStateWriter } from '../../apps/hub/src/ingest/spoke-state-writer.js';
import { HubMetrics } from '../../apps/hub/src/metrics/hub-metrics.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

/**
 * Hub replicas share agent messages, so a spoke's presence messages can be
 * stored out of order (two writers, two batches): the will of a connection
 * that dropped (`offline`, same agent session) must not overwrite the
 * `online` of the connection that replaced it when it is written later.
 */
describe('presence written by several replicas', () => {
  let db: TestDatabase;
  let ds: DataSource;
  const writer = () => new SpokeStateWriter(ds, new HubMetrics(), pino({ level: 'silent' }), async () => undefined, 10_000);
  const presence = async () => (await ds.query(`SELECT presence FROM spokes WHERE name = 'po-1'`))[0].presence as string;

  beforeAll(async () => {
    db = await createTestDatabase();
    ds = createDataSource(db.url);
    await ds.initialize();
    await runMigrations(ds);
    await ds.query(`INSERT INTO spokes (name, labels, facts, mqtt_username, credential_hash) VALUES ('po-1', '{}', '{}', 'po-1.x', 'h')`);
  });

  afterAll(async () => {
    await ds.destroy();
    await db.drop();
  });

  const t = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();

  test('a late, older offline (the dropped connection\'s will) does not undo the newer online', async () => {
    const a = writer();
    const b = writer();
    a.add({ name: 'po-1', lastSeenAt: t(10), presence: 'online', sessionId: 'S', presenceAt: t(10) });
    await a.flush();
    b.add({ name: 'po-1', lastSeenAt: t(11), presence: 'offline', sessionId: 'S', presenceAt: t(5) });
    await b.flush();
    expect(await presence()).toBe('online');
    // A newer offline (the agent really left) does apply.
    b.add({ name: 'po-1', lastSeenAt: t(20), presence: 'offline', sessionId: 'S', presenceAt: t(20) });
    await b.flush();
    expect(await presence()).toBe('offline');
  });

  test("the will of the current connection (the same time as its online) marks the spoke offline", async () => {
    const a = writer();
    a.add({ name: 'po-1', lastSeenAt: t(40), presence: 'online', sessionId: 'S', presenceAt: t(40) });
    await a.flush();
    expect(await presence()).toBe('online');
    const b = writer();
    b.add({ name: 'po-1', lastSeenAt: t(45), presence: 'offline', sessionId: 'S', presenceAt: t(40) });
    await b.flush();
    expect(await presence()).toBe('offline');
  });

  test('two replicas writing the same spoke at once lose neither write', async () => {
    for (let i = 0; i < 20; i++) {
      await ds.query(`UPDATE spokes SET presence = 'offline', presence_at = NULL, session_id = NULL, accepted_generation = 0 WHERE name = 'po-1'`);
      const a = writer();
      const b = writer();
      a.add({ name: 'po-1', lastSeenAt: t(60), presence: 'online', sessionId: `S${i}`, presenceAt: t(60) });
      b.add({ name: 'po-1', lastSeenAt: t(60), acceptedGeneration: 7, observedGeneration: 7 });
      await Promise.all([a.flush(), b.flush()]);
      const row = (await ds.query(`SELECT presence, accepted_generation FROM spokes WHERE name = 'po-1'`))[0];
      expect({ i, ...row }).toEqual({ i, presence: 'online', accepted_generation: 7 });
    }
  });

  test('within one batch, the newer presence wins whatever the arrival order', async () => {
    const a = writer();
    a.add({ name: 'po-1', lastSeenAt: t(50), presence: 'online', sessionId: 'S', presenceAt: t(50) });
    a.add({ name: 'po-1', lastSeenAt: t(51), presence: 'offline', sessionId: 'S', presenceAt: t(45) });
    await a.flush();
    expect(await presence()).toBe('online');
  });
});
