import pg from 'pg';
import pino from 'pino';
import { Registry } from 'prom-client';
import { createDataSource, runMigrations } from '../../apps/hub/src/database/data-source.js';
import { LeaderElector, type SingletonWork } from '../../apps/hub/src/leader/leader-elector.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { waitFor } from '../support/wait.js';

/**
 * The leader election on its own, on a real Postgres: one of three electors
 * leads and runs the registered singleton work; when the leader's session
 * dies (what a SIGKILL does to it) another leads within the bound; at no
 * sampled instant do two lead; each takeover bumps the fencing epoch; a
 * leader that finds its epoch gone steps down. The full three-process run is
 * test/ha/hub-failover.test.ts (`npm run ha`).
 */

class CountingWork implements SingletonWork {
  running = 0;
  starts = 0;
  constructor(readonly name: string) {}
  start(): void {
    this.running++;
    this.starts++;
  }
  async stop(): Promise<void> {
    this.running--;
  }
}

describe('LeaderElector', () => {
  let db: TestDatabase;
  const electors: LeaderElector[] = [];
  const works = new Map<string, CountingWork>();

  beforeAll(async () => {
    db = await createTestDatabase();
    const ds = createDataSource(db.url);
    await ds.initialize();
    await runMigrations(ds);
    await ds.destroy();
    for (const id of ['hub-a', 'hub-b', 'hub-c']) {
      const e = new LeaderElector({ databaseUrl: db.url, hubId: id, log: pino({ level: 'silent' }), registry: new Registry(), pollMs: 200, heartbeatTimeoutMs: 1_500, idleSessionTimeoutMs: 3_000 });
      const w = new CountingWork(`controllers@${id}`);
      e.register(w);
      works.set(id, w);
      electors.push(e);
    }
    await Promise.all(electors.map((e) => e.start()));
  }, 30_000);

  afterAll(async () => {
    await Promise.all(electors.map((e) => e.stop()));
    await db.drop();
  });

  const leading = () => electors.filter((e) => e.isLeader);
  const admin = async <T>(fn: (c: pg.Client) => Promise<T>): Promise<T> => {
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    try {
      return await fn(c);
    } finally {
      await c.end();
    }
  };

  test('exactly one leads and runs the singleton work; losing its session hands the lead over, never to two at once', async () => {
    const first = (await waitFor('one leader', () => (leading().length === 1 ? leading()[0] : null)))!;
    expect([...works.values()].map((w) => w.running).sort()).toEqual([0, 0, 1]);
    expect(works.get(first.hubId)!.running).toBe(1);
    const epoch = first.epoch!;

    // Sample continuously: never two leaders, never two hubs running the work.
    let overlap = 0;
    const sampler = setInterval(() => {
      if (leading().length > 1 || [...works.values()].filter((w) => w.running > 0).length > 1) overlap++;
    }, 10);
    try {
      // The leader's lock session ends as a killed process's does.
      await admin((c) => c.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, [`flotilla-hub-leader ${first.hubId}`]));
      const next = await waitFor('another leader', () => {
        const l = leading().filter((e) => e !== first);
        return l.length === 1 ? l[0] : null;
      }, 10_000, 20);
      expect(next.epoch).toBeGreaterThan(epoch);
      await waitFor('the old leader stepped down', () => !first.isLeader && works.get(first.hubId)!.running === 0, 10_000, 20);
      expect(works.get(next.hubId)!.running).toBe(1);
      const row = await admin((c) => c.query(`SELECT hub_id, epoch::int AS epoch FROM hub_leader`));
      expect(row.rows).toEqual([{ hub_id: next.hubId, epoch: next.epoch }]);
    } finally {
      clearInterval(sampler);
    }
    expect(overlap).toBe(0);
  }, 30_000);

  test('a leader fenced off (its epoch taken) steps down; a clean stop hands over at once', async () => {
    const current = leading()[0]!;
    // Someone else bumped the epoch (a takeover this leader did not see): its next heartbeat finds out.
    await admin((c) => c.query(`UPDATE hub_leader SET epoch = epoch + 100`));
    await waitFor('the fenced leader stepped down', () => !current.isLeader && works.get(current.hubId)!.running === 0, 10_000, 20);
    const again = await waitFor('a leader again', () => (leading().length === 1 ? leading()[0] : null), 10_000, 20);
    expect(again.epoch).toBeGreaterThan(100);
    await again.stop();
    expect(works.get(again.hubId)!.running).toBe(0);
    const next = await waitFor('a leader after a clean stop', () => (leading().length === 1 ? leading()[0] : null), 10_000, 20);
    expect(next).not.toBe(again);
    expect(works.get(next.hubId)!.running).toBe(1);
  }, 30_000);
});
