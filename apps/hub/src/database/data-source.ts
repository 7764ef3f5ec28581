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
    extra: { max: opts.poolSize ?? 10 },
  });
}

/** Applies pending migrations; returns the names of those it ran. */
export async function runMigrations(ds: DataSource): Promise<string[]> {
  const ran = await ds.runMigrations({ transaction: 'each' });
  return ran.map((m) => m.name);
}
