import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import pino from 'pino';
import { desiredTopic, statusTopic } from '@flotilla/contracts';
import { readCredentials, runAgent, type AgentHandle } from '../../apps/agent/src/index.js';
import { RecordingRuntime, basePolicy } from '../support/fleet-kit.js';
import { runCli } from '../support/cli.js';
import { startTestHub, type TestHub } from '../support/hub.js';
import { findMosquitto, startMosquitto, type RunningMosquitto } from '../support/mosquitto.js';
import { issueFromHubCa } from '../../apps/hub/src/tls/hub-tls.js';
import { findFreePort } from '../../apps/hub/src/common/ports.js';
import { waitFor } from '../support/wait.js';

const SITES = ['mq-a', 'mq-b', 'mq-c'];
const timing = { statusIntervalMs: 500, reconcileIntervalMs: 2_000, reconnect: { initialMs: 100, maxMs: 500 }, stopTimeoutMs: 500 };
const found = findMosquitto();
const available = found.ok;
const maybe = available ? describe : describe.skip;
if (!found.ok) console.warn(`SKIPPED: ${found.reason} (.ci/run installs the Debian package mosquitto)`);

maybe('hub and three agents over a real Mosquitto with dynamic security, over TLS', () => {
  let broker: RunningMosquitto;
  let t: TestHub;
  let dir: string;
  let home: string;
  const agents = new Map<string, { handle: AgentHandle; runtime: RecordingRuntime }>();
  const log = pino({ level: 'silent' });
  const startAgent = async (name: string) => {
    const runtime = new RecordingRuntime();
    const handle = await runAgent({ stateDir: path.join(dir, name), runtime, logger: log, timing });
    agents.set(name, { handle, runtime });
  };
  const converged = async () => {
    const r = await t.api('GET', '/api/v1/spokes?selector=region%3Deu');
    const items = r.body.items as { connection: string; desiredGeneration: number; observedGeneration: number }[];
    return items.length === SITES.length && items.every((s) => s.connection === 'online' && s.desiredGeneration > 0 && s.observedGeneration === s.desiredGeneration) && items;
  };

  beforeAll(async () => {
    // Mosquitto's TLS listener gets a certificate from the hub's CA (as docs/operations.md shows with openssl), which agents pin at enrolment.
    home = await mkdtemp(path.join(os.tmpdir(), 'flotilla-mq-home-'));
    const issued = await issueFromHubCa(home, ['localhost', '127.0.0.1']);
    await writeFile(path.join(home, 'broker.crt'), issued.certPem);
    await writeFile(path.join(home, 'broker.key'), issued.keyPem, { mode: 0o600 });
    const tlsPort = await findFreePort();
    broker = await startMosquitto({
      dynsec: true,
      messageSizeLimit: 256 * 1024,
      extraConfig: [`listener ${tlsPort} 127.0.0.1`, `certfile ${path.join(home, 'broker.crt')}`, `keyfile ${path.join(home, 'broker.key')}`],
    });
    t = await startTestHub({
      FLOTILLA_HOME: home,
      MQTT_URL: `mqtts://localhost:${tlsPort}`,
      FLOTILLA_BROKER_AUTH: 'mosquitto-dynsec',
      FLOTILLA_MQTT_USERNAME: broker.adminUsername,
      FLOTILLA_MQTT_PASSWORD: broker.adminPassword,
    });
    dir = await mkdtemp(path.join(os.tmpdir(), 'flotilla-mq-'));
    const tok = await t.api('POST', '/api/v1/enrollment-tokens', { uses: 3, labels: { region: 'eu' } });
    for (const name of SITES) {
      const r = await runCli(['agent', 'enroll', '--hub', t.hub.apiUrl, '--token', tok.body.token, '--name', name, '--state-dir', path.join(dir, name)]);
      expect({ name, code: r.code, stderr: r.stderr }).toEqual({ name, code: 0, stderr: '' });
      const creds = await readCredentials(path.join(dir, name));
      expect({ url: creds.mqtt.url, ca: creds.caCertificate?.trim() }).toEqual({ url: `mqtts://localhost:${tlsPort}`, ca: issued.caPem.trim() });
    }
    for (const name of SITES) await startAgent(name);
  }, 90_000);

  afterAll(async () => {
    for (const a of agents.values()) await a.handle.stop();
    await t?.stop();
    await broker?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
    if (home) await rm(home, { recursive: true, force: true });
  });

  test('all three come online through Mosquitto and a change reaches them', async () => {
    await waitFor('online and in sync', converged);
    const before = (await t.api('GET', '/api/v1/spokes/mq-a')).body.desiredGeneration;
    expect((await t.api('POST', '/api/v1/apply', basePolicy({ replicas: 1 }))).status).toBe(200);
    await waitFor('change acknowledged', async () => {
      const items = await converged();
      return items && items.every((s) => s.desiredGeneration === before + 1);
    });
    for (const n of SITES) expect(agents.get(n)!.runtime.seen.at(-1)!.deployments).toHaveLength(1);
  });

  test('Mosquitto killed and restarted: agents and hub reconnect and converge, nothing applied twice', async () => {
    const applied = new Map(SITES.map((n) => [n, agents.get(n)!.handle.snapshot().envelopes.applied]));
    await broker.kill();
    await waitFor('agents see the broker gone', () => SITES.every((n) => !agents.get(n)!.handle.snapshot().connection.connected));
    await broker.restart();
    await waitFor('agents back', () => SITES.every((n) => agents.get(n)!.handle.snapshot().connection.connected), 30_000);
    await waitFor('converged', converged, 30_000);
    for (const n of SITES) expect(agents.get(n)!.handle.snapshot().envelopes.applied).toBe(applied.get(n));
    // The hub still publishes: a new change gets through.
    expect((await t.api('POST', '/api/v1/apply', basePolicy({ replicas: 2 }))).status).toBe(200);
    await waitFor('new change everywhere', () => SITES.every((n) => agents.get(n)!.runtime.seen.at(-1)?.deployments[0]?.replicas.min === 2), 30_000);
  });

  test('an agent restarted while Mosquitto is down keeps its last state', async () => {
    await broker.kill();
    await agents.get('mq-c')!.handle.stop();
    await startAgent('mq-c');
    const rt = agents.get('mq-c')!.runtime;
    await waitFor('reconciled from disk', () => rt.seen.length > 0);
    expect(rt.seen[0]!.deployments[0]!.replicas.min).toBe(2);
    await broker.restart();
    await waitFor('converged', converged, 30_000);
  });

  test('spoke A cannot subscribe to B’s topics nor publish to them', async () => {
    const a = await readCredentials(path.join(dir, 'mq-a'));
    const before = (await t.api('GET', '/api/v1/spokes/mq-b')).body.observedGeneration;
    const c = await mqtt.connectAsync(broker.url, { clientId: 'mq-a', username: a.mqtt.username, password: a.mqtt.password, reconnectPeriod: 0 });
    try {
      const refused = await c.subscribeAsync([desiredTopic('mq-b'), 'flotilla/v1/spokes/+/desired', '#'], { qos: 1 }).then(
        () => null,
        (err: { packet?: { granted?: number[] } }) => err.packet?.granted,
      );
      expect(refused).toEqual([128, 128, 128]);
      await c.publishAsync(statusTopic('mq-b'), JSON.stringify({ v: 1, spoke: 'mq-b', sentAt: new Date().toISOString(), observedGeneration: 999, conditions: [], deployments: [], jobs: [] }), { qos: 1 });
    } finally {
      await c.endAsync(true);
    }
    await new Promise((r) => setTimeout(r, 300));
    await t.hub.flushIngest();
    expect((await t.api('GET', '/api/v1/spokes/mq-b')).body.observedGeneration).toBe(before);
    await waitFor('mq-a back online', () => agents.get('mq-a')!.handle.snapshot().connection.connected, 30_000);
  });

  test('a second client with a spoke’s client id but wrong credentials cannot take its session', async () => {
    const b = agents.get('mq-b')!;
    const disconnects = b.handle.snapshot().connection.disconnects;
    await expect(mqtt.connectAsync(broker.url, { clientId: 'mq-b', username: 'mq-b.00000000', password: 'guess', reconnectPeriod: 0, connectTimeout: 3000 })).rejects.toThrow();
    await new Promise((r) => setTimeout(r, 200));
    expect(b.handle.snapshot().connection.connected).toBe(true);
    expect(b.handle.snapshot().connection.disconnects).toBe(disconnects);
  });

  test('a deleted spoke is removed from Mosquitto: its session ends and it cannot reconnect', async () => {
    const creds = await readCredentials(path.join(dir, 'mq-c'));
    expect((await t.api('DELETE', '/api/v1/spokes/mq-c')).status).toBe(204);
    await waitFor('mq-c disconnected', () => !agents.get('mq-c')!.handle.snapshot().connection.connected);
    await expect(
      mqtt.connectAsync(broker.url, { clientId: 'mq-c', username: creds.mqtt.username, password: creds.mqtt.password, reconnectPeriod: 0, connectTimeout: 3000 }),
    ).rejects.toThrow();
  });
});
