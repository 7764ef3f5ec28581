import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { loadConfig, type HubConfig } from '../../apps/hub/src/config/config.js';
import { startHub, type HubHandle } from '../../apps/hub/src/hub.js';
import { createTestDatabase, type TestDatabase } from './database.js';

export interface TestHub {
  /** The running hub; replaced by restart(). */
  hub: HubHandle;
  /** Stops the hub (and its embedded broker) but keeps the database and home. */
  stopHub(): Promise<void>;
  /** Starts the hub again on the same ports, database and home. */
  startHub(): Promise<void>;
  config: HubConfig;
  adminToken: string;
  db: TestDatabase;
  home: string;
  /** fetch against the API with the admin token unless another is given (null: none). */
  api(method: string, route: string, body?: unknown, token?: string | null): Promise<{ status: number; body: any; headers: Headers }>;
  stop(): Promise<void>;
}

/** A real hub on free ports over a fresh database (and the embedded broker unless env says otherwise). */
export async function startTestHub(env: Record<string, string> = {}): Promise<TestHub> {
  const db = await createTestDatabase();
  const home = await mkdtemp(path.join(os.tmpdir(), 'flotilla-hub-'));
  const adminToken = 'test-admin-token-0123456789abcdef';
  const config = loadConfig({
    FLOTILLA_HOME: home,
    DATABASE_URL: db.url,
    FLOTILLA_API_PORT: '0',
    FLOTILLA_API_HOST: '127.0.0.1',
    FLOTILLA_MQTT_PORT: '0',
    FLOTILLA_MQTT_HOST: '127.0.0.1',
    // TLS listeners (HTTPS, MQTT over TLS) on free ports: many test hubs run side by side.
    FLOTILLA_HTTPS_PORT: '0',
    FLOTILLA_MQTTS_PORT: '0',
    FLOTILLA_ADMIN_TOKEN: adminToken,
    ...env,
  });
  const log = pino({ level: process.env.FLOTILLA_TEST_LOG ?? 'silent' });
  const first = await startHub(config, log);
  await settled(first);
  // Later starts reuse the ports the first one got, as a restarted hub would.
  const fixed = { ...config, apiPort: Number(new URL(first.apiUrl).port), mqttPort: first.mqttPort ?? config.mqttPort };
  let running: HubHandle | null = first;
  const t: TestHub = {
    hub: first,
    async stopHub() {
      await running?.stop();
      running = null;
    },
    async startHub() {
      running = await startHub(fixed, log);
      await settled(running);
      t.hub = running;
    },
    config,
    adminToken,
    db,
    home,
    async api(method, route, body, token = adminToken) {
      const headers: Record<string, string> = {};
      if (token !== null) headers.authorization = `Bearer ${token}`;
      let payload: string | undefined;
      if (typeof body === 'string') {
        payload = body;
        headers['content-type'] = 'application/yaml';
      } else if (body !== undefined) {
        payload = JSON.stringify(body);
        headers['content-type'] = 'application/json';
      }
      const res = await fetch(t.hub.apiUrl + route, { method, headers, body: payload });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : null;
      } catch {
        /* keep text */
      }
      return { status: res.status, body: parsed, headers: res.headers };
    },
    async stop() {
      await running?.stop();
      await db.drop();
      await rm(home, { recursive: true, force: true });
    },
  };
  return t;
}

/**
 * A lone hub leads within one poll of its elector and then runs its
 * controllers' first pass (the initial render, spoke sync). Tests start from
 * that settled hub, as they did when the controllers started with the hub:
 * rows a test writes afterwards are not raced by the first render.
 */
async function settled(hub: HubHandle): Promise<void> {
  const until = Date.now() + 30_000;
  for (;;) {
    const r = await fetch(`${hub.apiUrl}/readyz`).then((res) => res.json() as Promise<{ leader?: { self?: boolean } }>, () => null);
    if (r?.leader?.self) break;
    if (Date.now() > until) throw new Error('the test hub did not become leader within 30 s');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await new Promise((resolve) => setTimeout(resolve, 100));
  for (const c of hub.controllers) await c.idle();
}
