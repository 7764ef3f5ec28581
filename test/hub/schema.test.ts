import 'reflect-metadata';
import { createDataSource, runMigrations } from '../../apps/hub/src/database/data-source.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

describe('database schema', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db.drop();
  });

  test('entities and migrations agree: generating a migration after running them yields nothing', async () => {
    const ds = createDataSource(db.url);
    await ds.initialize();
    try {
      const ran = await runMigrations(ds);
      expect(ran.length).toBeGreaterThan(0);
      const pending = await ds.driver.createSchemaBuilder().log();
      expect(pending.upQueries.map((q) => q.query)).toEqual([]);
      // The GIN index the label selector relies on exists (TypeORM cannot declare it).
      const idx = await ds.query(`SELECT indexdef FROM pg_indexes WHERE indexname = 'IDX_spokes_labels'`);
      expect(idx[0].indexdef).toMatch(/USING gin \(labels\)/);
    } finally {
      await ds.destroy();
    }
  });

  test('every migration has a working down: reverting all leaves no tables', async () => {
    const ds = createDataSource(db.url);
    await ds.initialize();
    try {
      await runMigrations(ds);
      for (let i = 0; i < 50 && (await ds.query(`SELECT count(*)::int AS n FROM flotilla_migrations`))[0].n > 0; i++) {
        await ds.undoLastMigration({ transaction: 'each' });
      }
      const tables = await ds.query(
        `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_name <> 'flotilla_migrations'`,
      );
      expect(tables).toEqual([]);
      await runMigrations(ds);
    } finally {
      await ds.destroy();
    }
  });
});
