import { randomBytes } from 'node:crypto';
import mqtt from 'mqtt';
import { startFleet, basePolicy, usDeployment, type Fleet } from '../support/fleet-kit.js';
import { freeTcpPort } from '../support/hub-replicas.js';
import { type TestHub, startTestHub } from '../support/hub.js';
import { type RunningRabbit, findRabbitMq, newRabbitCluster, startRabbit } from '../support/rabbitmq.js';
import { waitFor } from '../support/wait.js';

/**
 * A real RabbitMQ node (Debian's rabbitmq-server, MQTT plugin, on free ports,
 * its own node name and data directory owned by `rabbitmq`) whose only
 * source of users and grants is the hub (rabbitmq_auth_backend_http ->
 * FLOTILLA_BROKER_AUTH=http). Agents enrol (nothing is written to the broker)
 * and converge; a spoke's subscription to another spoke's topic is refused;
 * a revoked spoke is cut off and cannot log in again.
 */

const rabbit = findRabbitMq();
// A RabbitMQ node takes a minute or more to boot on a busy machine: `npm run ha` runs this suite, `npm test` the hooks' contract test.
const full = process.env.FLOTILLA_HA_FULL === '1';
if (full && !rabbit.ok) console.warn(`skipping the RabbitMQ suite: ${rabbit.reason}`);

(rabbit.ok && full ? describe : describe.skip)('RabbitMQ with the hub as its HTTP auth backend', () => {
  let node: RunningRabbit;
  let t: TestHub;
  let fleet: Fleet;
  const secret = randomBytes(24).toString('base64url');

  beforeAll(async () => {
    const hookPort = await freeTcpPort();
    node = await startRabbit({ cluster: newRabbitCluster(1), index: 0, hooks: { baseUrl: `http://127.0.0.1:${hookPort}`, secret } });
    t = await startTestHub({
      MQTT_URL: node.mqttUrl,
      FLOTILLA_BROKER_AUTH: 'http',
      FLOTILLA_BROKER_KIND: 'rabbitmq',
      FLOTILLA_AMQP_URL: node.amqpUrl,
      FLOTILLA_BROKER_ADMIN_URL: node.adminUrl,
      FLOTILLA_MQTT_USERNAME: 'flotilla-hub',
      FLOTILLA_MQTT_PASSWORD: randomBytes(18).toString('base64url'),
      FLOTILLA_BROKER_HOOK_SECRET: secret,
      FLOTILLA_BROKER_HOOK_PORT: String(hookPort),
    });
    fleet = await startFleet(t, [
      { name: 'rmq-eu-1', labels: { region: 'eu' } },
      { name: 'rmq-us-1', labels: { region: 'us' } },
    ]);
  }, 180_000);

  afterAll(async () => {
    await fleet?.stop();
    await t?.stop();
    await node?.stop();
    await node?.remove();
  }, 60_000);

  test('agents enrolled through the hub connect with Postgres-only credentials and converge', async () => {
    expect((await t.api('POST', '/api/v1/apply', basePolicy() + usDeployment())).status).toBe(200);
    await fleet.converged();
    expect(fleet.agents.get('rmq-eu-1')!.runtime.deployments()).toEqual(['bridge-defects-eu@1.0.0']);
    expect(fleet.agents.get('rmq-us-1')!.runtime.deployments()).toEqual(['bridge-defects-us@1.0.0']);
  }, 60_000);

  test("a spoke cannot subscribe to another spoke's topic, nor with a wildcard; a wrong password cannot log in", async () => {
    const tok = await t.api('POST', '/api/v1/enrollment-tokens', { uses: 1 });
    const spy = (await t.api('POST', '/api/v1/enroll', { token: tok.body.token, name: 'rmq-spy' }, null)).body.mqtt;
    const connect = (password: string) =>
      new Promise<mqtt.MqttClient>((resolve, reject) => {
        const c = mqtt.connect(node.mqttUrl, { clientId: spy.clientId, username: spy.username, password, reconnectPeriod: 0, connectTimeout: 10_000 });
        c.once('connect', () => resolve(c));
        c.once('error', (err) => {
          c.end(true);
          reject(err);
        });
      });
    await expect(connect('wrong')).rejects.toThrow();
    for (const filter of ['flotilla/v1/spokes/rmq-eu-1/desired', 'flotilla/v1/spokes/+/desired']) {
      const c = await connect(spy.password);
      const got: string[] = [];
      c.on('message', (topic) => got.push(topic));
      // RabbitMQ answers a refused SUBSCRIBE by closing the connection (MQTT 3.1.1 has no per-filter refusal it uses).
      const outcome = await new Promise<string>((resolve) => {
        c.once('close', () => resolve('closed'));
        c.subscribe(filter, { qos: 1 }, (err, granted) => resolve(err ? `error: ${err.message}` : granted?.[0]?.qos === 128 ? 'refused' : `granted ${granted?.[0]?.qos}`));
      });
      await new Promise((r) => setTimeout(r, 500));
      c.end(true);
      expect({ filter, refused: outcome === 'closed' || outcome === 'refused' || outcome.startsWith('error'), messages: got }).toEqual({ filter, refused: true, messages: [] });
    }
    // Its own topic works.
    const own = await connect(spy.password);
    const granted = await own.subscribeAsync(`flotilla/v1/spokes/rmq-spy/desired`, { qos: 1 });
    expect(granted[0]?.qos).toBe(1);
    own.end(true);
  }, 60_000);

  test('a revoked spoke is cut off: its session ends and it cannot log in again', async () => {
    const users = async () => {
      const res = await fetch(`http://127.0.0.1:${node.managementPort}/api/connections?columns=name,user`, { headers: { authorization: `Basic ${Buffer.from('guest:guest').toString('base64')}` } });
      return ((await res.json()) as { user: string }[]).map((c) => c.user);
    };
    // The management API lists connections from statistics collected every second (collect_statistics_interval).
    await waitFor('the spoke listed as connected', async () => (await users()).some((u) => u.startsWith('rmq-us-1.')), 15_000, 200);
    expect((await t.api('DELETE', '/api/v1/spokes/rmq-us-1')).status).toBe(204);
    // No connection of it remains, and none comes back while the agent keeps trying.
    await waitFor('the revoked spoke has no broker connection', async () => !(await users()).some((u) => u.startsWith('rmq-us-1.')), 15_000, 200);
    await new Promise((r) => setTimeout(r, 5_000));
    expect((await users()).some((u) => u.startsWith('rmq-us-1.'))).toBe(false);
    // The other spoke is untouched.
    expect((await users()).some((u) => u.startsWith('rmq-eu-1.'))).toBe(true);
  }, 60_000);
});
