import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import pino from 'pino';
import {
  PROTOCOL_VERSION,
  desiredTopic,
  generateSigningKeyPair,
  signEnvelope,
  statusTopic,
} from '@flotilla/contracts';
import { readCredentials, runAgent, type AgentHandle } from '../../apps/agent/src/index.js';
import { RecordingRuntime, basePolicy } from '../support/fleet-kit.js';
import { runCli } from '../support/cli.js';
import { startTestHub, type TestHub } from '../support/hub.js';
import { waitFor } from '../support/wait.js';

const timing = { statusIntervalMs: 500, reconcileIntervalMs: 2_000, reconnect: { initialMs: 100, maxMs: 500 }, stopTimeoutMs: 500 };
const SITES = ['site-a', 'site-b', 'site-c'];

describe('hub and three agents over the embedded broker', () => {
  let t: TestHub;
  let dir: string;
  const agents = new Map<string, { handle: AgentHandle; runtime: RecordingRuntime }>();
  const log = pino({ level: 'silent' });

  const startAgent = async (name: string) => {
    const runtime = new RecordingRuntime();
    const handle = await runAgent({ stateDir: path.join(dir, name), runtime, logger: log, timing });
    agents.set(name, { handle, runtime });
    return handle;
  };
  const spoke = async (name: string) => (await t.api('GET', `/api/v1/spokes/${name}`)).body;

  beforeAll(async () => {
    t = await startTestHub();
    dir = await mkdtemp(path.join(os.tmpdir(), 'flotilla-fleet-'));
    const tok = await t.api('POST', '/api/v1/enrollment-tokens', { uses: 3, labels: { region: 'eu' } });
    for (const name of SITES) {
      const r = await runCli(['agent', 'enroll', '--hub', t.hub.apiUrl, '--token', tok.body.token, '--name', name, '--labels', `site=${name}`, '--state-dir', path.join(dir, name)]);
      expect({ name, code: r.code, stderr: r.stderr }).toEqual({ name, code: 0, stderr: '' });
    }
    for (const name of SITES) await startAgent(name);
  }, 90_000);

  afterAll(async () => {
    for (const a of agents.values()) await a.handle.stop();
    await t.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const converged = async () => {
    const r = await t.api('GET', '/api/v1/spokes?selector=region%3Deu');
    const items = r.body.items as { name: string; connection: string; desiredGeneration: number; observedGeneration: number }[];
    return items.length === 3 && items.every((s) => s.connection === 'online' && s.desiredGeneration > 0 && s.observedGeneration === s.desiredGeneration) ? items : null;
  };

  test('enrolled through the CLI, all three come online and acknowledge their desired generation', async () => {
    const items = await waitFor('three spokes online and in sync', converged);
    expect(items.map((s) => s.name)).toEqual(SITES);
    const creds = await readCredentials(path.join(dir, 'site-a'));
    expect(creds.spoke).toBe('site-a');
    const a = await spoke('site-a');
    expect(a.labels).toEqual({ region: 'eu', site: 'site-a' });
    expect(a.conditions.map((c: { type: string }) => c.type)).toContain('Ready');
  });

  test('a policy change reaches all three: observed == desired, each agent got the deployment', async () => {
    const before = (await spoke('site-a')).desiredGeneration;
    const applied = await t.api('POST', '/api/v1/apply', basePolicy({ version: '1.0.0' }));
    expect(applied.status).toBe(200);
    expect(applied.body.spokes.map((s: { spoke: string }) => s.spoke)).toEqual(SITES);
    await waitFor('the change acknowledged everywhere', async () => {
      const items = await converged();
      return items && items.every((s) => s.desiredGeneration === before + 1);
    });
    for (const name of SITES) {
      const last = agents.get(name)!.runtime.seen.at(-1)!;
      expect(last.deployments.map((d) => `${d.name}@${d.model.version}`)).toEqual(['bridge-defects-eu@1.0.0']);
    }
    // Applying the same thing again changes no generation.
    const again = await t.api('POST', '/api/v1/apply', basePolicy({ version: '1.0.0' }));
    expect(again.body.objects.every((o: { action: string }) => o.action === 'unchanged')).toBe(true);
    expect(again.body.spokes).toEqual([]);
    expect((await spoke('site-b')).desiredGeneration).toBe(before + 1);
  });

  test('the hub restarts (broker and its retained messages gone): agents reconnect, converge, and apply nothing twice', async () => {
    const applied = new Map(SITES.map((n) => [n, agents.get(n)!.handle.snapshot().envelopes.applied]));
    await t.stopHub();
    await waitFor('agents notice the broker is gone', () => SITES.every((n) => !agents.get(n)!.handle.snapshot().connection.connected));
    await t.startHub();
    await waitFor('agents reconnected', () => SITES.every((n) => agents.get(n)!.handle.snapshot().connection.connected));
    await waitFor('converged after restart', converged);
    // The hub published the same generations again; the agents saw duplicates, applied nothing new.
    for (const n of SITES) expect(agents.get(n)!.handle.snapshot().envelopes.applied).toBe(applied.get(n));
  });

  test('an agent restarted while the broker is down keeps its last state, then converges on a change made meanwhile', async () => {
    await t.stopHub();
    await agents.get('site-c')!.handle.stop();
    const restarted = await startAgent('site-c');
    const rt = agents.get('site-c')!.runtime;
    await waitFor('site-c reconciles its last state from disk with no broker', () => rt.seen.length > 0);
    expect(rt.seen[0]!.deployments.map((d) => d.model.version)).toEqual(['1.0.0']);
    expect(restarted.snapshot().connection.connected).toBe(false);
    await t.startHub();
    await t.api('POST', '/api/v1/apply', basePolicy({ version: '1.1.0' }));
    await waitFor('site-c runs 1.1.0', () => rt.seen.at(-1)?.deployments[0]?.model.version === '1.1.0');
    await waitFor('converged', converged);
  });

  test('an envelope with a bad signature, another spoke’s name or an older generation is rejected by the agent and reported', async () => {
    const a = agents.get('site-a')!;
    const gen = a.handle.snapshot().observedGeneration;
    const payload = a.runtime.seen.at(-1)!;
    const forger = generateSigningKeyPair().privateKey;
    const pub = (env: unknown) => t.hub.publisher.publish(desiredTopic('site-a'), JSON.stringify(env), { retain: false });
    const { privateKey } = await import('node:crypto').then(async (c) => ({
      privateKey: c.createPrivateKey(await import('node:fs/promises').then((f) => f.readFile(path.join(t.home, 'signing-key.pem'), 'utf8'))),
    }));
    const base = { v: PROTOCOL_VERSION, spoke: 'site-a', generation: gen + 5, issuedAt: new Date().toISOString(), payload } as const;
    await pub(signEnvelope(base, forger));
    await pub(signEnvelope({ ...base, spoke: 'site-b' }, privateKey));
    await pub(signEnvelope({ ...base, generation: gen - 1 }, privateKey));
    await waitFor('three rejections', () => a.handle.snapshot().envelopes.rejected >= 3);
    expect(a.handle.snapshot().observedGeneration).toBe(gen);
    await waitFor('the rejection visible on the hub', async () => {
      const s = await spoke('site-a');
      return s.conditions.find((c: { type: string; status: string }) => c.type === 'EnvelopeRejected' && c.status === 'True');
    });
    // The hub republishes the real desired state on resync; the agent returns to a clean condition.
  });

  test('spoke A’s credentials cannot subscribe to B’s topics nor publish to them', async () => {
    const credsA = await readCredentials(path.join(dir, 'site-a'));
    const before = await spoke('site-b');
    const intruder = await mqtt.connectAsync(credsA.mqtt.url, {
      clientId: 'site-a',
      username: credsA.mqtt.username,
      password: credsA.mqtt.password,
      reconnectPeriod: 0,
    });
    try {
      // mqtt.js rejects a SUBACK carrying failure codes; the codes are on the packet.
      const refused = await intruder.subscribeAsync([desiredTopic('site-b'), 'flotilla/v1/spokes/+/desired', '#'], { qos: 1 }).then(
        () => null,
        (err: { packet?: { granted?: number[] } }) => err.packet?.granted,
      );
      expect(refused).toEqual([128, 128, 128]);
      const mine = await intruder.subscribeAsync(desiredTopic('site-a'), { qos: 1 });
      expect(mine[0]!.qos).toBe(1);
      const forged = { v: 1, spoke: 'site-b', sentAt: new Date().toISOString(), observedGeneration: 999, conditions: [], deployments: [], jobs: [] };
      intruder.publish(statusTopic('site-b'), JSON.stringify(forged), { qos: 0 });
    } finally {
      await intruder.endAsync(true);
    }
    await t.hub.flushIngest();
    const after = await spoke('site-b');
    expect(after.observedGeneration).toBe(before.observedGeneration);
    // A's own agent was the session the intruder's connection replaced; it comes back by itself.
    await waitFor('site-a back online', () => agents.get('site-a')!.handle.snapshot().connection.connected);
  });

  test('a second client with a spoke’s client id but not its password cannot take its session', async () => {
    const a = agents.get('site-b')!;
    const disconnects = a.handle.snapshot().connection.disconnects;
    const url = (await readCredentials(path.join(dir, 'site-b'))).mqtt.url;
    await expect(
      mqtt.connectAsync(url, { clientId: 'site-b', username: 'site-b.00000000', password: 'guess', reconnectPeriod: 0, connectTimeout: 3000 }),
    ).rejects.toThrow(/Bad username or password|Not authorized/i);
    await expect(mqtt.connectAsync(url, { clientId: 'site-b', reconnectPeriod: 0, connectTimeout: 3000 })).rejects.toThrow();
    expect(a.handle.snapshot().connection.connected).toBe(true);
    expect(a.handle.snapshot().connection.disconnects).toBe(disconnects);
  });

  test('malformed JSON and a wrong schema are counted and dropped by ingest, a 1 MiB payload is refused by the broker unacknowledged; the hub and other spokes carry on', async () => {
    const creds = await readCredentials(path.join(dir, 'site-a'));
    const dropped = async () => {
      const text = await t.hub.metrics.registry.getSingleMetricAsString('flotilla_hub_mqtt_messages_dropped_total');
      const count = (reason: string) => Number(new RegExp(`channel="status",reason="${reason}"} (\\d+)`).exec(text)?.[1] ?? 0);
      return { InvalidJson: count('InvalidJson'), SchemaViolation: count('SchemaViolation') };
    };
    const refused = async () => {
      const text = await t.hub.metrics.registry.getSingleMetricAsString('flotilla_hub_mqtt_refused_total');
      return Number(/reason="PacketTooLarge"} (\d+)/.exec(text)?.[1] ?? 0);
    };
    const before = await dropped();
    const refusedBefore = await refused();
    await agents.get('site-a')!.handle.stop();
    agents.delete('site-a');
    const c = await mqtt.connectAsync(creds.mqtt.url, { clientId: 'site-a', username: creds.mqtt.username, password: creds.mqtt.password, reconnectPeriod: 0 });
    try {
      await c.publishAsync(statusTopic('site-a'), '{"v":1, "spoke": ', { qos: 1 });
      await c.publishAsync(statusTopic('site-a'), JSON.stringify({ v: 1, spoke: 'site-a', observedGeneration: 'lots' }), { qos: 1 });
      // Cut at its fixed header (over MAX_PACKET_BYTES): the connection closes and no PUBACK comes.
      const closed = new Promise<void>((resolve) => c.once('close', () => resolve()));
      let acked = false;
      c.publish(statusTopic('site-a'), Buffer.alloc(1024 * 1024, 0x7b), { qos: 1 }, (err) => {
        if (!err) acked = true;
      });
      await closed;
      expect(acked).toBe(false);
    } finally {
      await c.endAsync(true);
    }
    await waitFor('two drops and one refusal counted', async () => {
      const d = await dropped();
      return d.InvalidJson === before.InvalidJson + 1 && d.SchemaViolation === before.SchemaViolation + 1 && (await refused()) === refusedBefore + 1;
    });
    expect((await t.api('GET', '/readyz', undefined, null)).status).toBe(200);
    const b = await spoke('site-b');
    expect(b.connection).toBe('online');
    await startAgent('site-a');
    await waitFor('converged again', converged);
  });

  test('a deleted spoke is cut off at once and cannot reconnect', async () => {
    const c = agents.get('site-c')!;
    const creds = await readCredentials(path.join(dir, 'site-c'));
    expect((await t.api('DELETE', '/api/v1/spokes/site-c')).status).toBe(204);
    await waitFor('site-c disconnected', () => !c.handle.snapshot().connection.connected);
    await expect(
      mqtt.connectAsync(creds.mqtt.url, { clientId: 'site-c', username: creds.mqtt.username, password: creds.mqtt.password, reconnectPeriod: 0, connectTimeout: 3000 }),
    ).rejects.toThrow(/Bad username or password|Not authorized/i);
    // Its own reconnect attempts keep failing.
    await new Promise((r) => setTimeout(r, 1_000));
    expect(c.handle.snapshot().connection.connected).toBe(false);
  });
});
