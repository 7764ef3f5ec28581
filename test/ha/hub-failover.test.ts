import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import pino from 'pino';
import { enroll, runAgent, type AgentHandle } from '../../apps/agent/src/index.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { RecordingRuntime, basePolicy, usDeployment } from '../support/fleet-kit.js';
import { type HubReplica, leaderOf, sharedSigningKey, startHubReplica } from '../support/hub-replicas.js';
import { type RunningMosquitto, findMosquitto, startMosquitto } from '../support/mosquitto.js';
import { waitFor } from '../support/wait.js';

/**
 * Hub high availability, for real: three `flotilla hub` processes on one
 * Postgres and one Mosquitto, ten agents. The leader is SIGKILLed while an
 * apply it received is in flight; another hub leads within the bound, every
 * spoke converges on the new policy, no spoke applies a change twice and the
 * audit log holds each change once.
 */

const mosquitto = findMosquitto();
// About a minute (three hub processes start): `npm run ha` runs it; `npm test` runs test/ha/leader-elector.test.ts.
const full = process.env.FLOTILLA_HA_FULL === '1';
const ADMIN = 'ha-test-admin-token-0123456789abcdef';
const TAKEOVER_BOUND_MS = 10_000;
const SPOKES = Array.from({ length: 10 }, (_, i) => ({ name: `ha-${i}`, labels: { region: i % 2 === 0 ? 'eu' : 'us' } }));

(mosquitto.ok && full ? describe : describe.skip)('three hubs on one Postgres and one Mosquitto', () => {
  let broker: RunningMosquitto;
  let db: TestDatabase;
  let dir: string;
  const hubs: HubReplica[] = [];
  const agents = new Map<string, { handle: AgentHandle; runtime: RecordingRuntime }>();

  const api = async (hub: HubReplica, method: string, route: string, body?: unknown) => {
    const headers: Record<string, string> = { authorization: `Bearer ${ADMIN}` };
    let payload: string | undefined;
    if (typeof body === 'string') {
      payload = body;
      headers['content-type'] = 'application/yaml';
    } else if (body !== undefined) {
      payload = JSON.stringify(body);
      headers['content-type'] = 'application/json';
    }
    const res = await fetch(hub.apiUrl + route, { method, headers, body: payload, signal: AbortSignal.timeout(30_000) });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };

  const leaders = async () => {
    const out: string[] = [];
    for (const h of hubs) if (h.alive() && (await leaderOf(h))?.self) out.push(h.name);
    return out;
  };

  beforeAll(async () => {
    broker = await startMosquitto({ dynsec: true });
    db = await createTestDatabase();
    dir = await mkdtemp(path.join(os.tmpdir(), 'flotilla-ha-'));
    const key = await sharedSigningKey(dir);
    const env = (name: string) => ({
      DATABASE_URL: db.url,
      MQTT_URL: broker.url,
      FLOTILLA_BROKER_AUTH: 'mosquitto-dynsec',
      FLOTILLA_MQTT_USERNAME: broker.adminUsername,
      FLOTILLA_MQTT_PASSWORD: broker.adminPassword,
      FLOTILLA_ADMIN_TOKEN: ADMIN,
      FLOTILLA_SIGNING_KEY: key,
      FLOTILLA_HOME: path.join(dir, name),
      FLOTILLA_TELEMETRY_INTERVAL: '5',
    });
    for (const n of ['hub-a', 'hub-b', 'hub-c']) await mkdir(path.join(dir, n));
    // The first runs the migrations; the others join it.
    hubs.push(await startHubReplica('hub-a', env('hub-a')));
    hubs.push(...(await Promise.all(['hub-b', 'hub-c'].map((n) => startHubReplica(n, env(n))))));

    const tok = await api(hubs[1]!, 'POST', '/api/v1/enrollment-tokens', { uses: SPOKES.length });
    expect(tok.status).toBe(201);
    const log = pino({ level: 'silent' });
    const timing = { statusIntervalMs: 500, reconcileIntervalMs: 2_000, reconnect: { initialMs: 100, maxMs: 500 }, stopTimeoutMs: 500 };
    await Promise.all(
      SPOKES.map(async (s, i) => {
        const stateDir = path.join(dir, 'agents', s.name);
        // Spread over the replicas: any hub enrols.
        await enroll({ hubUrl: hubs[i % 3]!.apiUrl, token: tok.body.token, name: s.name, labels: s.labels, stateDir });
        const runtime = new RecordingRuntime();
        agents.set(s.name, { handle: await runAgent({ stateDir, runtime, logger: log, timing }), runtime });
      }),
    );
  }, 180_000);

  afterAll(async () => {
    for (const a of agents.values()) await a.handle.stop().catch(() => undefined);
    await Promise.all(hubs.map((h) => h.stop().catch(() => undefined)));
    await broker?.stop();
    await db?.drop();
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 60_000);

  const converged = (hub: () => HubReplica, expectDeployments: (name: string) => string[], timeoutMs = 60_000) =>
    convergedOrExplain(hub, expectDeployments, timeoutMs).catch(async (err: Error) => {
      const list = await api(hub(), 'GET', '/api/v1/spokes?limit=100').catch(() => null);
      const state = (list?.body?.items ?? []).map((s: { name: string; connection: string; desiredGeneration: number; acceptedGeneration: number; observedGeneration: number }) => `${s.name} ${s.connection} d${s.desiredGeneration} a${s.acceptedGeneration} o${s.observedGeneration} runs ${agents.get(s.name)?.runtime.deployments().join(',')}`);
      const logs = hubs.map((h) => `--- ${h.name}\n${h.output().split('\n').filter((l) => /"level":(40|50|60)/.test(l)).slice(-10).join('\n')}`);
      for (const h of hubs.filter((x) => x.alive())) {
        const m = await (await fetch(`${h.apiUrl}/metrics`)).text();
        logs.push(`--- ${h.name} ${m.split('\n').filter((l) => l.startsWith('flotilla_hub_mqtt_messages_received_total') || l.startsWith('flotilla_hub_mqtt_connected')).join(' ')}`);
      }
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      const rows = (await c.query(`SELECT name, presence, session_id, presence_at, last_seen_at FROM spokes ORDER BY name`)).rows;
      await c.end();
      logs.push(rows.map((r) => JSON.stringify(r)).join('\n'));
      logs.push(broker.log().split('\n').filter((l) => /ha-1|disconnect|flotilla-hub/i.test(l)).slice(-30).join('\n'));
      throw new Error(`${err.message}\n${state.join('\n')}\n${logs.join('\n')}`);
    });
  const convergedOrExplain = (hub: () => HubReplica, expectDeployments: (name: string) => string[], timeoutMs: number) =>
    waitFor(
      'every spoke online, in sync and running what the policy says',
      async () => {
        const list = await api(hub(), 'GET', '/api/v1/spokes?limit=100');
        const items = list.body.items as { name: string; connection: string; desiredGeneration: number; observedGeneration: number }[];
        if (items.length !== SPOKES.length) return null;
        const inSync = items.every((s) => s.connection === 'online' && s.desiredGeneration > 0 && s.observedGeneration === s.desiredGeneration);
        const running = SPOKES.every((s) => JSON.stringify(agents.get(s.name)!.runtime.deployments()) === JSON.stringify(expectDeployments(s.name)));
        return inSync && running ? items : null;
      },
      timeoutMs,
      250,
    );

  test('one leader; SIGKILLed during an apply, another leads within 10 s; the fleet converges; nothing applied or audited twice', async () => {
    // Exactly one leader, and every replica names the same one.
    const first = await waitFor('exactly one leader', async () => ((await leaders()).length === 1 ? (await leaders())[0] : null));
    for (const h of hubs) expect((await leaderOf(h))?.leaderHubId).toBe(first);
    const metrics = await (await fetch(`${hubs.find((h) => h.name === first)!.apiUrl}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`flotilla_hub_leader\\{hub="${first}"\\} 1`));

    // v1 through a follower: it renders and stores; the leader publishes.
    const follower = hubs.find((h) => h.name !== first)!;
    expect((await api(follower, 'POST', '/api/v1/apply', basePolicy() + usDeployment())).status).toBe(200);
    const eu1 = ['bridge-defects-eu@1.0.0'];
    const us1 = ['bridge-defects-us@1.0.0'];
    const byRegion = (eu: string[], us: string[]) => (name: string) => (SPOKES.find((s) => s.name === name)!.labels.region === 'eu' ? eu : us);
    const before = await converged(() => follower, byRegion(eu1, us1));
    const generationBefore = new Map(before.map((s) => [s.name, s.desiredGeneration]));

    // v2 sent to the leader, which is SIGKILLed while the request is in flight.
    const leader = hubs.find((h) => h.name === first)!;
    const v2 = basePolicy({ version: '1.1.0' }) + usDeployment('1.1.0');
    const inFlight = api(leader, 'POST', '/api/v1/apply', v2).catch((err: Error) => ({ status: 0, body: err.message }));
    await new Promise((r) => setTimeout(r, 30));
    const killedAt = Date.now();
    await leader.kill();
    const answered = await inFlight;

    // Another replica leads within the bound.
    const survivors = hubs.filter((h) => h.alive());
    const next = await waitFor('a new leader', async () => {
      const l = await leaders();
      return l.length === 1 ? l[0] : null;
    }, TAKEOVER_BOUND_MS + 5_000, 100);
    const tookOverMs = Date.now() - killedAt;
    expect(next).not.toBe(first);
    expect(tookOverMs).toBeLessThan(TAKEOVER_BOUND_MS);
    console.log(`HA: ${first} SIGKILLed (its apply answered ${answered.status || 'nothing'}); ${next} leads ${tookOverMs} ms later`);
    const epochs = await Promise.all(survivors.map(async (h) => (await leaderOf(h))?.epoch));
    expect(new Set(epochs).size).toBe(1);

    // The client did not get its answer: it applies again through a survivor (idempotent).
    expect((await api(survivors[0]!, 'POST', '/api/v1/apply', v2)).status).toBe(200);
    const after = await converged(() => survivors[0]!, byRegion(['bridge-defects-eu@1.1.0'], ['bridge-defects-us@1.1.0']));

    // Each spoke's change is one generation, and each agent went v1 -> v2 once, never back.
    for (const s of after) expect({ spoke: s.name, generation: s.desiredGeneration }).toEqual({ spoke: s.name, generation: generationBefore.get(s.name)! + 1 });
    for (const [name, a] of agents) {
      const transitions = a.runtime.seen.map((p) => JSON.stringify(p.deployments)).filter((d, i, all) => i === 0 || d !== all[i - 1]);
      expect({ name, distinct: new Set(transitions).size }).toEqual({ name, distinct: transitions.length });
    }

    // The audit log: each object changed once (the retried apply found it unchanged), no duplicate rows.
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    try {
      const updates = await c.query(`SELECT target, count(*)::int AS n FROM audit_events WHERE action = 'policy.update' GROUP BY target ORDER BY target`);
      expect(updates.rows).toEqual([
        { target: 'ModelDeployment/bridge-defects-eu', n: 1 },
        { target: 'ModelDeployment/bridge-defects-us', n: 1 },
      ]);
      const dupes = await c.query(`SELECT action, target, request_id, count(*)::int AS n FROM audit_events GROUP BY action, target, request_id, before_digest, after_digest HAVING count(*) > 1`);
      expect(dupes.rows).toEqual([]);
      const enrolments = await c.query(`SELECT count(*)::int AS n FROM audit_events WHERE action = 'spoke.enroll'`);
      expect(enrolments.rows[0].n).toBe(SPOKES.length);
    } finally {
      await c.end();
    }
  }, 180_000);
});
