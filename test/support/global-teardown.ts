export default async function globalTeardown(): Promise<void> {
  const pg = (globalThis as { __flotillaPg?: { stop(): Promise<void> } }).__flotillaPg;
  if (pg) await pg.stop();
}
