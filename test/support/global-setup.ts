import { existsSync } from 'node:fs';
import path from 'node:path';

/**
 * One real Postgres for the whole run: the server named by
 * FLOTILLA_TEST_DATABASE_URL, or a scratch one started here the way the hub
 * starts its embedded Postgres (so it works as root in a 0700 checkout too).
 * Each test file then creates its own database (test/support/database.ts).
 */
export default async function globalSetup(): Promise<void> {
  if (process.env.FLOTILLA_TEST_DATABASE_URL) return;
  // Global setup runs outside Jest's module mapping, so it loads the compiled code (`npm test` builds first).
  const compiled = path.resolve('dist/test/support/scratch-postgres.js');
  if (!existsSync(compiled)) throw new Error(`${compiled} is missing: run \`npm run build\` first (\`npm test\` does), or set FLOTILLA_TEST_DATABASE_URL`);
  const { startScratchPostgres } = (await import(compiled)) as typeof import('./scratch-postgres.js');
  const pg = await startScratchPostgres();
  (globalThis as { __flotillaPg?: { stop(): Promise<void> } }).__flotillaPg = pg;
  process.env.FLOTILLA_TEST_DATABASE_URL = pg.url;
}
