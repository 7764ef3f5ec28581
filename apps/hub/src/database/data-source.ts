import { DataSource } from 'typeorm';
import { MIGRATIONS } from '../../../../migrations/index.js';
import { ENTITIES } from './entities/index.js';

/** The hub's TypeORM data source: schema only through migrations, never synchronize. */
export function createDataSource(url: string, opts: { applicationName?: string; poolSize?: number } = {}): DataSource {
  return new DataSource({
    type: 'postgres',
    url,
    entities: ENTITIES,
    migrations: MIGRATIONS,
    migrationsTableName: 'flotilla_migrations',
    migrationsTransactionMode: 'each',
    synchronize: false,
    uuidExtension: 'pgcrypto',
    migrationsRun: false,
    logging: false,
    applicationName: opts.applicationName ?? 'flotilla-hub',
    extra: {
      max: opts.poolSize ?? 10,
      // A Postgres that went away must fail queries (and /readyz) quickly instead of queueing them forever;
      // connections broken by a restart are dropped by the pool and new ones made when the server is back.
      connectionTimeoutMillis: 5_000,
      keepAlive: true,
    },
  });
}

/** Applies pending migrations; returns the names of those it ran. */
export async function runMigrations(ds: DataSource): Promise<string[]> {
  const ran = await ds.runMigrations({ transaction: 'each' });
  return ran.map((m) => m.name);
}
