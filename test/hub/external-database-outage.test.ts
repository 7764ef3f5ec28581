import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import pino from 'pino';
import { loadConfig } from '../../apps/hub/src/config/config.js';
import { startHub, type HubHandle } from '../../apps/hub/src/hub.js';
import { startScratchPostgres, type ScratchPostgres } from '../support/scratch-postgres.js';
import { waitFor } from '../support/wait.js';

/**
 * A hub on an external Postgres (DATABASE_URL) whose server goes away: its
 * connections are terminated, then the server stops and starts again. The
 * hub keeps running, reports the database down on /readyz meanwhile, and
 * serves again once the server is back, with no restart of its own.
 */
describe('hub on an external Postgres that goes away', () => {
  let server: ScratchPostgres;
  let hub: HubHandle;
  let home: string;
  const token = 'outage-test-admin-token-0123456789';

  const call = async (method: string, route: string, body?: unknown) => {
    const r = await fetch(hub.apiUrl + route, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: r.status, body: (await r.json()) as any };
  };
  const readyz = async () => {
    const r = await fetch(hub.apiUrl + '/readyz');
    return { status: r.status, body: (await r.json()) as { checks: Record<string, boolean>; down?: string[] } };
  };

  beforeAll(async () => {
    server = await startScratchPostgres();
    const admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    await admin.query('CREATE DATABASE flotilla');
    await admin.end();
    const url = new URL(server.url);
    url.pathname = '/flotilla';
    home = await mkdtemp(path.join(os.tmpdir(), 'flotilla-outage-'));
    const config = loadConfig({
      FLOTILLA_HOME: home,
      DATABASE_URL: url.toString(),
      FLOTILLA_API_PORT: '0',
      FLOTILLA_API_HOST: '127.0.0.1',
      FLOTILLA_MQTT_PORT: '0',
      FLOTILLA_MQTT_HOST: '127.0.0.1',
      FLOTILLA_ADMIN_TOKEN: token,
    });
    hub = await startHub(config, pino({ level: 'silent' }));
  });

  afterAll(async () => {
    await hub?.stop();
    await server?.stop();
    await rm(home, { recursive: true, force: true });
  });

  test('its connections terminated by the server (pg_terminate_backend), the hub answers with new ones', async () => {
    expect((await call('POST', '/api/v1/models', { name: 'before-termination' })).status).toBe(201);
    const admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    const killed = await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'flotilla' AND pid <> pg_backend_pid()`);
    await admin.end();
    expect(killed.rowCount).toBeGreaterThan(0);
    await waitFor('/readyz to be green after the termination', async () => (await readyz()).status === 200, 10_000, 100);
    await waitFor('the API to answer after the termination', async () => (await call('GET', '/api/v1/models/before-termination')).status === 200, 10_000, 100);
    expect((await call('POST', '/api/v1/models', { name: 'after-termination' })).status).toBe(201);
  });

  test('the server stops: /readyz is 503 naming the database; it starts again on the same address: the hub serves again by itself', async () => {
    await server.server.stop();
    const down = await waitFor('/readyz to report the database down', async () => {
      const r = await readyz();
      return r.status === 503 ? r.body : null;
    }, 15_000, 100);
    expect(down.checks.database).toBe(false);
    expect(down.down).toContain('database');
    expect((await call('GET', '/api/v1/models')).status).toBeGreaterThanOrEqual(500);

    await server.server.start();
    await waitFor('/readyz to be green again', async () => (await readyz()).status === 200, 20_000, 100);
    await waitFor('the API to answer again', async () => (await call('GET', '/api/v1/models/after-termination')).status === 200, 10_000, 100);
    expect((await call('POST', '/api/v1/models', { name: 'after-the-outage' })).status).toBe(201);
  });
});
