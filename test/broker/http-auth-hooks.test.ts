import { randomBytes } from 'node:crypto';
import { type TestHub, startTestHub } from '../support/hub.js';
import { type RunningMosquitto, findMosquitto, startMosquitto } from '../support/mosquitto.js';
import { waitFor } from '../support/wait.js';

/**
 * FLOTILLA_BROKER_AUTH=http, at the HTTP level: the request and response
 * formats of EMQX's HTTP authentication and authorisation (as its
 * documentation gives them: JSON bodies built from `${clientid}`,
 * `${username}`, `${password}`, `${action}`, `${topic}`; answers
 * `{"result": "allow" | "deny"}` with `is_superuser` for authentication) and
 * of RabbitMQ's rabbitmq_auth_backend_http (form fields; `allow` / `deny`),
 * answered from Postgres; the endpoint refuses callers without the secret
 * and throttles them. The broker here is an open Mosquitto, only so the hub
 * has a broker to connect to; test/broker/rabbitmq-http-auth.test.ts runs a
 * real RabbitMQ against these hooks.
 */

const mosquitto = findMosquitto();

(mosquitto.ok ? describe : describe.skip)('broker HTTP auth hooks', () => {
  let broker: RunningMosquitto;
  let t: TestHub;
  let hook: string;
  const secret = randomBytes(24).toString('base64url');
  const hubPassword = randomBytes(18).toString('base64url');
  let spoke: { username: string; password: string };

  const post = async (route: string, body: Record<string, string>, o: { json?: boolean; secret?: string | null } = {}) => {
    const headers: Record<string, string> = {};
    const s = o.secret === undefined ? secret : o.secret;
    if (s !== null) headers.authorization = `Bearer ${s}`;
    headers['content-type'] = o.json ? 'application/json' : 'application/x-www-form-urlencoded';
    const res = await fetch(hook + route, { method: 'POST', headers, body: o.json ? JSON.stringify(body) : new URLSearchParams(body).toString() });
    const text = await res.text();
    return { status: res.status, text, json: res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : null };
  };

  beforeAll(async () => {
    broker = await startMosquitto();
    t = await startTestHub({
      MQTT_URL: broker.url,
      FLOTILLA_BROKER_AUTH: 'http',
      FLOTILLA_MQTT_USERNAME: 'flotilla-hub',
      FLOTILLA_MQTT_PASSWORD: hubPassword,
      FLOTILLA_BROKER_HOOK_SECRET: secret,
      FLOTILLA_BROKER_HOOK_PORT: '0',
    });
    hook = t.hub.brokerHookUrl!;
    const tok = await t.api('POST', '/api/v1/enrollment-tokens', { uses: 1 });
    const enrolled = await t.api('POST', '/api/v1/enroll', { token: tok.body.token, name: 'edge-1' }, null);
    expect(enrolled.status).toBe(201);
    spoke = { username: enrolled.body.mqtt.username, password: enrolled.body.mqtt.password };
  }, 60_000);

  afterAll(async () => {
    await t?.stop();
    await broker?.stop();
  });

  test('EMQX authentication: the spoke with its own client id is allowed and never a superuser; anything else is denied alike', async () => {
    const ok = await post('/emqx/authn', { clientid: 'edge-1', username: spoke.username, password: spoke.password }, { json: true });
    expect(ok).toMatchObject({ status: 200, json: { result: 'allow', is_superuser: false } });
    const hub = await post('/emqx/authn', { clientid: 'flotilla-hub-pub-1', username: 'flotilla-hub', password: hubPassword }, { json: true });
    expect(hub.json).toEqual({ result: 'allow', is_superuser: true });
    // Wrong password, unknown user, another client id: the same answer (no enumeration).
    const refusals = [
      { clientid: 'edge-1', username: spoke.username, password: 'wrong' },
      { clientid: 'edge-1', username: 'nobody.1234', password: spoke.password },
      { clientid: 'edge-2', username: spoke.username, password: spoke.password },
    ];
    for (const r of refusals) expect((await post('/emqx/authn', r, { json: true })).json).toEqual({ result: 'deny', is_superuser: false });
  });

  test('EMQX authorisation: own topics only, no wildcards, always an explicit answer', async () => {
    const ask = (action: string, topic: string, clientid = 'edge-1') => post('/emqx/authz', { clientid, username: spoke.username, action, topic }, { json: true }).then((r) => r.json.result);
    expect(await ask('subscribe', 'flotilla/v1/spokes/edge-1/desired')).toBe('allow');
    expect(await ask('publish', 'flotilla/v1/spokes/edge-1/status')).toBe('allow');
    expect(await ask('subscribe', 'flotilla/v1/spokes/edge-2/desired')).toBe('deny');
    expect(await ask('subscribe', 'flotilla/v1/spokes/+/desired')).toBe('deny');
    expect(await ask('subscribe', '$share/flotilla-hub/flotilla/v1/spokes/+/status')).toBe('deny');
    expect(await ask('publish', 'flotilla/v1/spokes/edge-1/desired')).toBe('deny');
    expect(await ask('publish', 'flotilla/v1/spokes/edge-2/status')).toBe('deny');
    expect(await ask('publish', 'flotilla/v1/spokes/edge-1/status', 'edge-2')).toBe('deny');
  });

  test('RabbitMQ: user, vhost, resource and topic paths (MQTT topics as amq.topic routing keys)', async () => {
    expect((await post('/rabbitmq/user', { username: spoke.username, password: spoke.password })).text).toBe('allow');
    expect((await post('/rabbitmq/user', { username: spoke.username, password: 'wrong' })).text).toBe('deny');
    expect((await post('/rabbitmq/vhost', { username: spoke.username, vhost: '/', ip: '127.0.0.1' })).text).toBe('allow');
    expect((await post('/rabbitmq/vhost', { username: spoke.username, vhost: 'other', ip: '127.0.0.1' })).text).toBe('deny');
    const resource = (resource: string, name: string, permission: string) => post('/rabbitmq/resource', { username: spoke.username, vhost: '/', resource, name, permission }).then((r) => r.text);
    expect(await resource('exchange', 'amq.topic', 'write')).toBe('allow');
    expect(await resource('exchange', 'amq.topic', 'configure')).toBe('deny');
    expect(await resource('queue', 'mqtt-subscription-edge-1qos1', 'configure')).toBe('allow');
    expect(await resource('queue', 'mqtt-subscription-edge-2qos1', 'read')).toBe('deny');
    expect(await resource('queue', 'flotilla-hub-ingest', 'read')).toBe('deny');
    const topic = (permission: string, routing_key: string) => post('/rabbitmq/topic', { username: spoke.username, vhost: '/', resource: 'topic', name: 'amq.topic', permission, routing_key }).then((r) => r.text);
    expect(await topic('write', 'flotilla.v1.spokes.edge-1.status')).toBe('allow');
    expect(await topic('read', 'flotilla.v1.spokes.edge-1.desired')).toBe('allow');
    expect(await topic('read', 'flotilla.v1.spokes.edge-2.desired')).toBe('deny');
    expect(await topic('read', 'flotilla.v1.spokes.*.desired')).toBe('deny');
    expect(await topic('write', 'flotilla.v1.spokes.edge-2.status')).toBe('deny');
  });

  test('revocation is one row: the next login is refused and authorisation answers follow within seconds', async () => {
    expect((await t.api('DELETE', '/api/v1/spokes/edge-1')).status).toBe(204);
    expect((await post('/rabbitmq/user', { username: spoke.username, password: spoke.password })).text).toBe('deny');
    await waitFor('authorisation denied after revocation', async () => (await post('/emqx/authz', { clientid: 'edge-1', username: spoke.username, action: 'publish', topic: 'flotilla/v1/spokes/edge-1/status' }, { json: true })).json.result === 'deny', 10_000, 200);
  });

  test('not an open oracle: a guessed password is soon refused unchecked; no secret, 401; a caller that keeps trying is throttled', async () => {
    // Password guessing through the broker: after 10 failures the right password is refused too, for a while.
    const tok = await t.api('POST', '/api/v1/enrollment-tokens', { uses: 1 });
    const victim = (await t.api('POST', '/api/v1/enroll', { token: tok.body.token, name: 'edge-9' }, null)).body.mqtt;
    expect((await post('/rabbitmq/user', { username: victim.username, password: victim.password })).text).toBe('allow');
    for (let i = 0; i < 10; i++) await post('/rabbitmq/user', { username: victim.username, password: `guess-${i}` });
    expect((await post('/rabbitmq/user', { username: victim.username, password: victim.password })).text).toBe('deny');
    // Last: throttling is per caller address, and this test's address is the broker's too.
    expect((await post('/emqx/authn', { username: spoke.username, password: spoke.password }, { json: true, secret: null })).status).toBe(401);
    let last = 0;
    for (let i = 0; i < 25; i++) last = (await post('/rabbitmq/user', { username: victim.username, password: victim.password }, { secret: 'x'.repeat(32) })).status;
    expect(last).toBe(429);
    expect((await post('/rabbitmq/user', { username: victim.username, password: victim.password })).status).toBe(429);
  });
});
