import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import pino from 'pino';
import { enroll, runAgent, type AgentHandle } from '../../apps/agent/src/index.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { RecordingRuntime, basePolicy, usDeployment } from '../support/fleet-kit.js';
import { type HubReplica, freeTcpPort, leaderOf, sharedSigningKey, startHubReplica } from '../support/hub-replicas.js';
import { type RunningRabbit, findRabbitMq, newRabbitCluster, startRabbit } from '../support/rabbitmq.js';
import { waitFor } from '../support/wait.js';

/**
 * A real two-node RabbitMQ cluster on this machine, two hub processes (HTTP
 * auth, AMQP shared-queue ingest) and six agents, half on each node (each
 * given both nodes' URLs, in a different order). During an apply the node
 * under the leading hub is stopped and that hub SIGKILLed: the other hub
 * takes the lead, publishes every current generation again on its node (the
 * retained store is per node), and the agents of the dead node fail over to
 * the live one; every spoke converges within the bound. `npm run ha`.
 */

const rabbit = findRabbitMq();
const full = process.env.FLOTILLA_HA_FULL === '1';
const ADMIN = 'cluster-admin-token-0123456789abcdef';
const CONVERGE_BOUND_MS = 90_000;
const SPOKES = Array.from({ length: 6 }, (_, i) => ({ name: `rc-${i}`, labels: { region: i % 2 === 0 ? 'eu' : 'us' } }));

(rabbit.ok && full ? describe : describe.skip)('a two-node RabbitMQ cluster, two hubs, agents on both nodes', () => {
  let db: TestDatabase;
  let dir: string;
  const nodes: RunningRabbit[] = [];
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

  beforeAll(async () => {
    db = await createTestDatabase();
    dir = await mkdtemp(path.join(os.tmpdir(), 'flotilla-rabbit-cluster-'));
    const key = await sharedSigningKey(dir);
    const secret = randomBytes(24).toString('base64url');
    const hookPorts = [await freeTcpPort(), await freeTcpPort()];
    const cluster = newRabbitCluster(2);
    // Node i asks hub i (in production: a load balancer over every hub; each answers the hooks).
    for (let i = 0; i < 2; i++) nodes.push(await startRabbit({ cluster, index: i, hooks: { baseUrl: `http://127.0.0.1:${hookPorts[i]}`, secret }, readyTimeoutMs: 240_000 }));
    const [n1, n2] = nodes as [RunningRabbit, RunningRabbit];
    const hubPassword = randomBytes(18).toString('base64url');
    const env = (name: string, i: number, order: RunningRabbit[]) => ({
      DATABASE_URL: db.url,
      MQTT_URL: order.map((n) => n.mqttUrl).join(','),
      FLOTILLA_AMQP_URL: order.map((n) => n.amqpUrl).join(','),
      FLOTILLA_BROKER_KIND: 'rabbitmq',
      FLOTILLA_BROKER_AUTH: 'http',
      FLOTILLA_BROKER_ADMIN_URL: order[0]!.adminUrl,
      FLOTILLA_BROKER_HOOK_SECRET: secret,
      FLOTILLA_BROKER_HOOK_PORT: String(hookPorts[i]),
      FLOTILLA_MQTT_USERNAME: 'flotilla-hub',
      FLOTILLA_MQTT_PASSWORD: hubPassword,
      FLOTILLA_ADMIN_TOKEN: ADMIN,
      FLOTILLA_SIGNING_KEY: key,
      FLOTILLA_HOME: path.join(dir, name),
      FLOTILLA_TELEMETRY_INTERVAL: '5',
    });
    for (const n of ['hub-1', 'hub-2']) await mkdir(path.join(dir, n));
    hubs.push(await startHubReplica('hub-1', env('hub-1', 0, [n1, n2])));
    hubs.push(await startHubReplica('hub-2', env('hub-2', 1, [n2, n1])));
    await waitFor('hub-1 leads', async () => (await leaderOf(hubs[0]!))?.self === true, 20_000, 200);

    const tok = await api(hubs[1]!, 'POST', '/api/v1/enrollment-tokens', { uses: SPOKES.length });
    const log = pino({ level: 'silent' });
    const timing = { statusIntervalMs: 1_000, reconcileIntervalMs: 2_000, reconnect: { initialMs: 200, maxMs: 1_000 }, stopTimeoutMs: 500 };
    for (const [i, s] of SPOKES.entries()) {
      const stateDir = path.join(dir, 'agents', s.name);
      await enroll({ hubUrl: hubs[i % 2]!.apiUrl, token: tok.body.token, name: s.name, labels: s.labels, stateDir });
      const order = i % 2 === 0 ? [n1, n2] : [n2, n1];
      const runtime = new RecordingRuntime();
      const handle = await runAgent({ stateDir, runtime, logger: log, timing, mqttUrlOverride: order.map((n) => n.mqttUrl).join(',') });
      agents.set(s.name, { handle, runtime });
    }
  }, 600_000);

  afterAll(async () => {
    for (const a of agents.values()) await a.handle.stop().catch(() => undefined);
    await Promise.all(hubs.map((h) => h.stop().catch(() => undefined)));
    for (const n of nodes) await n.stop().catch(() => undefined);
    for (const n of nodes) await n.remove().catch(() => undefined);
    await db?.drop();
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 120_000);

  const converged = (hub: () => HubReplica, version: string, timeoutMs: number) =>
    convergedOrExplain(hub, version, timeoutMs).catch(async (err: Error) => {
      const list = await api(hub(), 'GET', '/api/v1/spokes?limit=100').catch(() => null);
      const state = (list?.body?.items ?? []).map((s: { name: string; connection: string; desiredGeneration: number; acceptedGeneration: number; observedGeneration: number }) => `${s.name} ${s.connection} d${s.desiredGeneration} a${s.acceptedGeneration} o${s.observedGeneration} runs ${agents.get(s.name)?.runtime.deployments().join(',')}`);
      const logs = hubs.map((h) => `--- ${h.name}\n${h.output().split('\n').filter((l) => /"level":(40|50|60)/.test(l)).slice(-15).join('\n')}`);
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      const rows = (await c.query(`SELECT name, presence, session_id, presence_at, last_seen_at FROM spokes ORDER BY name`)).rows;
      await c.end();
      logs.push(`--- rows\n${rows.map((r) => JSON.stringify(r)).join('\n')}`);
      for (const h of hubs.filter((x) => x.alive())) {
        const m = await (await fetch(`${h.apiUrl}/metrics`)).text();
        logs.push(`--- ${h.name} ${m.split('\n').filter((l) => l.startsWith('flotilla_hub_mqtt_messages_received_total')).join(' ')}`);
      }
      throw new Error(`${err.message}\n${state.join('\n')}\n${logs.join('\n')}\n--- cluster: ${nodes[1]?.log().split('\n').filter((l) => /cluster|error/i.test(l)).slice(-10).join('\n')}`);
    });
  const convergedOrExplain = (hub: () => HubReplica, version: string, timeoutMs: number) =>
    waitFor(
      `every spoke online, in sync and on ${version}`,
      async () => {
        const list = await api(hub(), 'GET', '/api/v1/spokes?limit=100');
        const items = list.body.items as { name: string; connection: string; desiredGeneration: number; observedGeneration: number }[];
        const inSync = items.length === SPOKES.length && items.every((s) => s.connection === 'online' && s.observedGeneration === s.desiredGeneration && s.desiredGeneration > 0);
        const running = SPOKES.every((s) => (agents.get(s.name)!.runtime.deployments()[0] ?? '').endsWith(`@${version}`));
        return inSync && running ? items : null;
      },
      timeoutMs,
      250,
    );

  test('stopping a broker node and the leading hub mid-apply leaves every spoke converged within the bound', async () => {
    const [hub1, hub2] = hubs as [HubReplica, HubReplica];
    expect((await api(hub2, 'POST', '/api/v1/apply', basePolicy() + usDeployment())).status).toBe(200);
    const firstMs = Date.now();
    await converged(() => hub2, '1.0.0', 60_000);
    console.log(`cluster: v1 converged on ${SPOKES.length} spokes over 2 nodes in ${Date.now() - firstMs} ms`);

    // v2 to the leader; then its broker node stops and it is SIGKILLed.
    const v2 = basePolicy({ version: '1.1.0' }) + usDeployment('1.1.0');
    const inFlight = api(hub1, 'POST', '/api/v1/apply', v2).catch(() => ({ status: 0, body: null }));
    await new Promise((r) => setTimeout(r, 30));
    const t0 = Date.now();
    await Promise.all([hub1.kill(), nodes[0]!.stop()]);
    const answered = await inFlight;
    // Whether or not the dying hub committed it, the client applies again through the survivor.
    await waitFor('hub-2 leads', async () => (await leaderOf(hub2))?.self === true, 15_000, 100);
    const tookOverMs = Date.now() - t0;
    expect((await api(hub2, 'POST', '/api/v1/apply', v2)).status).toBe(200);
    await converged(() => hub2, '1.1.0', CONVERGE_BOUND_MS);
    const convergedMs = Date.now() - t0;
    console.log(`cluster: node 1 stopped and hub-1 SIGKILLed (its apply answered ${answered.status || 'nothing'}); hub-2 led after ${tookOverMs} ms; all ${SPOKES.length} spokes on v2 ${convergedMs} ms after the failure`);
    expect(convergedMs).toBeLessThan(CONVERGE_BOUND_MS);
  }, 300_000);
});
