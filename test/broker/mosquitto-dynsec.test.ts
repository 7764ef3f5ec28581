import { randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import {
  MAX_MESSAGE_BYTES,
  SPOKE_PUBLISH_CHANNELS,
  SPOKE_SUBSCRIBE_CHANNELS,
  desiredTopic,
  hubSharedFilter,
  spokeTopic,
  statusTopic,
} from '@flotilla/contracts';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import {
  DynsecCommandError,
  DynsecUnavailableError,
  HUB_ROLE,
  MosquittoDynsecProvisioner,
  SPOKE_BASE_ROLE,
  spokeBaseRoleAcls,
  spokeClientRoles,
  spokeRole,
  spokeRoleAcls,
} from '../../apps/hub/src/broker/mosquitto-dynsec.js';
import { findMosquitto, type RunningMosquitto, startMosquitto } from '../support/mosquitto.js';

/**
 * The Mosquitto half of per-spoke credentials, against a real mosquitto with
 * the dynamic security plugin: what a provisioned spoke may and may not do,
 * revocation, the hub's role, the size of the plugin's config per spoke and
 * the 256 KiB message limit. All clients speak MQTT 3.1.1, as the agent and
 * the hub do.
 */

const available = findMosquitto();
if (!available.ok) console.warn(`SKIPPED test/broker/mosquitto-dynsec.test.ts: ${available.reason}`);
const describeWithMosquitto = available.ok ? describe : describe.skip;

/** SUBACK return code for a refused filter in MQTT 3.1.1. */
const SUBACK_FAILURE = 0x80;
/** CONNACK return code 5, "not authorised", in MQTT 3.1.1. */
const CONNACK_NOT_AUTHORIZED = 5;

// Fails a wait instead of hanging the run; never asserted on.
const deadline = () => AbortSignal.timeout(15_000);

function until<T>(signal: AbortSignal, what: string, register: (done: (value: T) => void) => () => void): Promise<T> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      unregister();
      reject(new Error(`gave up waiting for ${what}`));
    };
    const unregister = register((value) => {
      signal.removeEventListener('abort', onAbort);
      unregister();
      resolve(value);
    });
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

interface Received {
  topic: string;
  payload: Buffer;
  retain: boolean;
}

/** The next message the client receives (on `onTopic` only, when given). */
function nextMessage(client: MqttClient, onTopic?: string, signal = deadline()): Promise<Received> {
  return until(signal, `a message${onTopic ? ` on ${onTopic}` : ''}`, (done) => {
    const on = (topic: string, payload: Buffer, packet: { retain?: boolean }) => {
      if (onTopic === undefined || topic === onTopic) done({ topic, payload, retain: packet.retain === true });
    };
    client.on('message', on);
    return () => client.off('message', on);
  });
}

function closed(client: MqttClient, signal = deadline()): Promise<void> {
  if (!client.connected) return Promise.resolve();
  return until(signal, 'the connection to close', (done) => {
    const on = () => done(undefined);
    client.on('close', on);
    return () => client.off('close', on);
  });
}

async function grantedCode(client: MqttClient, filter: string): Promise<number> {
  try {
    const granted = await client.subscribeAsync(filter, { qos: 1 });
    return granted[0]!.qos;
  } catch (err) {
    // mqtt.js rejects a SUBACK failure and keeps the packet.
    const codes = (err as { packet?: { granted?: number[] } }).packet?.granted;
    if (!codes) throw err;
    return codes[0]!;
  }
}

/** A raw dynsec command through an admin connection, for set-ups the provisioner does not offer. */
async function adminCommand(admin: MqttClient, command: Record<string, unknown>): Promise<void> {
  const answer = until<string>(deadline(), 'the dynsec answer', (done) => {
    const on = (topic: string, payload: Buffer) => {
      if (topic === '$CONTROL/dynamic-security/v1/response') done(payload.toString('utf8'));
    };
    admin.on('message', on);
    return () => admin.off('message', on);
  });
  await admin.subscribeAsync('$CONTROL/dynamic-security/v1/response');
  await admin.publishAsync('$CONTROL/dynamic-security/v1', JSON.stringify({ commands: [command] }));
  expect(JSON.parse(await answer)).toEqual({ responses: [{ command: command.command }] });
}

describeWithMosquitto('Mosquitto dynamic security provisioning', () => {
  let broker: RunningMosquitto;
  let provisioner: MosquittoDynsecProvisioner;
  let hub: MqttClient;
  const clients: MqttClient[] = [];

  const connect = async (opts: IClientOptions): Promise<MqttClient> => {
    const client = await mqtt.connectAsync(broker.url, { protocolVersion: 4, clean: true, reconnectPeriod: 0, connectTimeout: 10_000, ...opts });
    clients.push(client);
    return client;
  };
  const connectSpoke = (spoke: string, username: string, password: string) => connect({ clientId: spoke, username, password });
  const refusal = (opts: IClientOptions) =>
    connect(opts).then(
      () => null,
      (err: Error & { code?: number }) => err.code ?? err.message,
    );
  const dynsecPath = () => path.join(broker.dir, 'dynamic-security.json');
  const dynsecFile = async () =>
    JSON.parse(await readFile(dynsecPath(), 'utf8')) as {
      clients: Array<{ username: string; clientid?: string; roles?: Array<{ rolename: string; priority?: number }> }>;
      roles: Array<{ rolename: string; acls?: Array<{ acltype: string; topic: string; priority?: number; allow: boolean }> }>;
    };
  const roleIn = async (rolename: string) => (await dynsecFile()).roles.find((r) => r.rolename === rolename);

  beforeAll(async () => {
    broker = await startMosquitto({ dynsec: true, messageSizeLimit: MAX_MESSAGE_BYTES });
    provisioner = new MosquittoDynsecProvisioner({ url: broker.url, username: broker.adminUsername, password: broker.adminPassword });
    // As in production, the hub's user is the dynsec admin itself.
    await provisioner.ensureHubRole(broker.adminUsername);
    hub = await mqtt.connectAsync(broker.url, {
      protocolVersion: 4,
      clientId: 'flotilla-hub-test',
      username: broker.adminUsername,
      password: broker.adminPassword,
      reconnectPeriod: 0,
    });
  });

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
  });

  afterAll(async () => {
    await hub?.endAsync(true);
    await provisioner?.close();
    await broker?.stop();
  });

  test('a provisioned spoke connects with its own client id and password, and with nothing else', async () => {
    await provisioner.provisionSpoke('conn-a', 'conn-a.1', 'pw-a');
    await provisioner.provisionSpoke('conn-b', 'conn-b.1', 'pw-b');

    const a = await connectSpoke('conn-a', 'conn-a.1', 'pw-a');
    expect(a.connected).toBe(true);
    expect(await refusal({ clientId: 'conn-b', username: 'conn-a.1', password: 'pw-a' })).toBe(CONNACK_NOT_AUTHORIZED);
    expect(await refusal({ clientId: 'conn-a-2', username: 'conn-a.1', password: 'pw-a' })).toBe(CONNACK_NOT_AUTHORIZED);
    expect(await refusal({ clientId: 'conn-a', username: 'conn-a.1', password: 'pw-b' })).toBe(CONNACK_NOT_AUTHORIZED);
    expect(await refusal({ clientId: 'conn-a', username: 'conn-b.1', password: 'pw-b' })).toBe(CONNACK_NOT_AUTHORIZED);
  });

  test('a spoke subscribes to its own desired topic and receives the retained desired state there', async () => {
    await provisioner.provisionSpoke('desired-a', 'desired-a.1', 'pw');
    await hub.publishAsync(desiredTopic('desired-a'), '{"generation":1}', { qos: 1, retain: true });

    const a = await connectSpoke('desired-a', 'desired-a.1', 'pw');
    const message = nextMessage(a);
    expect(await grantedCode(a, desiredTopic('desired-a'))).toBe(1);
    expect(await message).toEqual({ topic: desiredTopic('desired-a'), payload: Buffer.from('{"generation":1}'), retain: true });
  });

  test('every grant of its own role wins over the shared denies: a spoke subscribes to and receives on desired and commands, and publishes on each of its channels', async () => {
    await provisioner.provisionSpoke('grant-a', 'grant-a.1', 'pw');
    const watcher = await connect({ clientId: 'flotilla-hub-watch-grants', username: broker.adminUsername, password: broker.adminPassword });
    await watcher.subscribeAsync('flotilla/v1/spokes/grant-a/#', { qos: 1 });
    const a = await connectSpoke('grant-a', 'grant-a.1', 'pw');

    for (const channel of SPOKE_SUBSCRIBE_CHANNELS) {
      const topic = spokeTopic('grant-a', channel);
      expect({ topic, code: await grantedCode(a, topic) }).toEqual({ topic, code: 1 });
      const received = nextMessage(a, topic);
      await hub.publishAsync(topic, `to-${channel}`, { qos: 1 });
      expect((await received).payload.toString()).toBe(`to-${channel}`);
    }
    for (const channel of SPOKE_PUBLISH_CHANNELS) {
      const topic = spokeTopic('grant-a', channel);
      const received = nextMessage(watcher, topic);
      await a.publishAsync(topic, `from-${channel}`, { qos: 1 });
      expect((await received).payload.toString()).toBe(`from-${channel}`);
    }
  });

  test("a spoke's subscription to another spoke's desired topic, a wildcard or a shared filter is refused with SUBACK 0x80", async () => {
    await provisioner.provisionSpoke('sub-a', 'sub-a.1', 'pw');
    await provisioner.provisionSpoke('sub-b', 'sub-b.1', 'pw');
    const a = await connectSpoke('sub-a', 'sub-a.1', 'pw');

    for (const filter of [
      desiredTopic('sub-b'),
      'flotilla/v1/spokes/+/desired',
      'flotilla/v1/spokes/#',
      '#',
      '$SYS/#',
      `$share/g/${desiredTopic('sub-a')}`,
      statusTopic('sub-a'),
      hubSharedFilter('status'),
    ]) {
      expect({ filter, code: await grantedCode(a, filter) }).toEqual({ filter, code: SUBACK_FAILURE });
    }
  });

  test("a spoke's publish to another spoke's status never reaches the hub", async () => {
    await provisioner.provisionSpoke('pub-a', 'pub-a.1', 'pw');
    await provisioner.provisionSpoke('pub-b', 'pub-b.1', 'pw');
    const watcher = await connect({ clientId: 'flotilla-hub-watch-status', username: broker.adminUsername, password: broker.adminPassword });
    await watcher.subscribeAsync(statusTopic('pub-b'), { qos: 1 });
    await watcher.subscribeAsync(statusTopic('pub-a'), { qos: 1 });
    const a = await connectSpoke('pub-a', 'pub-a.1', 'pw');

    const first = nextMessage(watcher);
    // MQTT 3.1.1 has no refusal in PUBACK: the broker acknowledges and drops.
    await a.publishAsync(statusTopic('pub-b'), 'forged', { qos: 1 });
    // One client's messages arrive in order, so A's own status after the forgery marks that nothing came before it.
    await a.publishAsync(statusTopic('pub-a'), 'own', { qos: 1 });
    expect(await first).toMatchObject({ topic: statusTopic('pub-a'), payload: Buffer.from('own') });
  });

  test("a spoke's publish to another spoke's desired topic never reaches that spoke", async () => {
    await provisioner.provisionSpoke('forge-a', 'forge-a.1', 'pw');
    await provisioner.provisionSpoke('forge-b', 'forge-b.1', 'pw');
    const a = await connectSpoke('forge-a', 'forge-a.1', 'pw');
    const b = await connectSpoke('forge-b', 'forge-b.1', 'pw');
    expect(await grantedCode(b, desiredTopic('forge-b'))).toBe(1);

    const first = nextMessage(b);
    await a.publishAsync(desiredTopic('forge-b'), 'forged', { qos: 1, retain: true });
    // A's PUBACK means the broker is done with the forgery; the hub's message comes after it.
    await hub.publishAsync(desiredTopic('forge-b'), 'from-hub', { qos: 1 });
    expect(await first).toMatchObject({ topic: desiredTopic('forge-b'), payload: Buffer.from('from-hub') });
  });

  test('revoking a spoke ends its live session, refuses its reconnect and removes its client and role', async () => {
    await provisioner.provisionSpoke('revoke-a', 'revoke-a.1', 'pw');
    const a = await connectSpoke('revoke-a', 'revoke-a.1', 'pw');
    const ended = closed(a);

    await provisioner.revokeSpoke('revoke-a', 'revoke-a.1');
    await ended;
    expect(await refusal({ clientId: 'revoke-a', username: 'revoke-a.1', password: 'pw' })).toBe(CONNACK_NOT_AUTHORIZED);
    const file = await dynsecFile();
    expect(file.clients.map((c) => c.username)).not.toContain('revoke-a.1');
    expect(file.roles.map((r) => r.rolename)).not.toContain(spokeRole('revoke-a'));
    expect(file.roles.map((r) => r.rolename)).toContain(SPOKE_BASE_ROLE);
  });

  test('revoking a spoke leaves the shared role, and the other spokes, connected or not, still connect, subscribe and publish', async () => {
    await provisioner.provisionSpoke('keep-a', 'keep-a.1', 'pw');
    await provisioner.provisionSpoke('keep-b', 'keep-b.1', 'pw');
    await provisioner.provisionSpoke('keep-c', 'keep-c.1', 'pw');
    const watcher = await connect({ clientId: 'flotilla-hub-watch-keep', username: broker.adminUsername, password: broker.adminPassword });
    await watcher.subscribeAsync('flotilla/v1/spokes/+/status', { qos: 1 });
    const b = await connectSpoke('keep-b', 'keep-b.1', 'pw');

    await provisioner.revokeSpoke('keep-a', 'keep-a.1');
    expect((await roleIn(SPOKE_BASE_ROLE))?.acls).toHaveLength(spokeBaseRoleAcls().length);
    const c = await connectSpoke('keep-c', 'keep-c.1', 'pw');
    for (const [spoke, client] of [['keep-b', b], ['keep-c', c]] as const) {
      expect(client.connected).toBe(true);
      expect(await grantedCode(client, desiredTopic(spoke))).toBe(1);
      // Still denied by the shared role.
      expect(await grantedCode(client, '#')).toBe(SUBACK_FAILURE);
      const status = nextMessage(watcher, statusTopic(spoke));
      await client.publishAsync(statusTopic(spoke), `alive-${spoke}`, { qos: 1 });
      expect((await status).payload.toString()).toBe(`alive-${spoke}`);
    }
    // And a spoke provisioned afterwards gets the shared role as it is.
    await provisioner.provisionSpoke('keep-d', 'keep-d.1', 'pw');
    const d = await connectSpoke('keep-d', 'keep-d.1', 'pw');
    expect(await grantedCode(d, desiredTopic('keep-d'))).toBe(1);
    expect(await grantedCode(d, desiredTopic('keep-b'))).toBe(SUBACK_FAILURE);
  });

  test('revoking a spoke that was never provisioned, or twice, succeeds', async () => {
    await expect(provisioner.revokeSpoke('never-a', 'never-a.1')).resolves.toBeUndefined();
    await provisioner.provisionSpoke('twice-a', 'twice-a.1', 'pw');
    await provisioner.revokeSpoke('twice-a', 'twice-a.1');
    await expect(provisioner.revokeSpoke('twice-a', 'twice-a.1')).resolves.toBeUndefined();
  });

  test('provisioning an existing spoke again replaces its password and ends the session that used the old one', async () => {
    await provisioner.provisionSpoke('again-a', 'again-a.1', 'old-pw');
    const a = await connectSpoke('again-a', 'again-a.1', 'old-pw');
    const ended = closed(a);

    await provisioner.provisionSpoke('again-a', 'again-a.1', 'new-pw');
    await ended;
    expect(await refusal({ clientId: 'again-a', username: 'again-a.1', password: 'old-pw' })).toBe(CONNACK_NOT_AUTHORIZED);
    const b = await connectSpoke('again-a', 'again-a.1', 'new-pw');
    expect(await grantedCode(b, desiredTopic('again-a'))).toBe(1);
    const file = await dynsecFile();
    expect(file.clients.filter((c) => c.username === 'again-a.1')).toEqual([
      expect.objectContaining({ clientid: 'again-a', roles: spokeClientRoles('again-a') }),
    ]);
  });

  test('provisioning again a spoke made before the shared role gives its client both roles and slims its own role, and it stays fenced in', async () => {
    // The layout of earlier releases: one role holding the grants and the catch-all denies, with unsubscribe ACLs and textnames.
    const fat = [
      ...spokeRoleAcls('old-a'),
      ...['desired', 'commands'].map((c) => ({ acltype: 'unsubscribeLiteral', topic: `flotilla/v1/spokes/old-a/${c}`, priority: 10, allow: true })),
      ...spokeBaseRoleAcls(),
      ...['#', '$SYS/#', '$CONTROL/#', '$share/#'].map((topic) => ({ acltype: 'unsubscribePattern', topic, priority: 0, allow: false })),
    ];
    await adminCommand(hub, { command: 'createRole', rolename: spokeRole('old-a'), textname: 'Flotilla spoke old-a', acls: fat });
    await adminCommand(hub, {
      command: 'createClient',
      username: 'old-a.1',
      password: 'old-pw',
      clientid: 'old-a',
      textname: 'Flotilla spoke old-a',
      roles: [{ rolename: spokeRole('old-a'), priority: 0 }],
    });
    await provisioner.provisionSpoke('old-b', 'old-b.1', 'pw');
    const old = await connectSpoke('old-a', 'old-a.1', 'old-pw');
    expect(await grantedCode(old, desiredTopic('old-a'))).toBe(1);
    const ended = closed(old);

    await provisioner.provisionSpoke('old-a', 'old-a.1', 'new-pw');
    await ended;
    const file = await dynsecFile();
    expect(file.clients.find((c) => c.username === 'old-a.1')).toMatchObject({ clientid: 'old-a', roles: spokeClientRoles('old-a') });
    expect((await roleIn(spokeRole('old-a')))?.acls).toEqual(expect.arrayContaining(spokeRoleAcls('old-a')));
    expect((await roleIn(spokeRole('old-a')))?.acls).toHaveLength(spokeRoleAcls('old-a').length);

    const watcher = await connect({ clientId: 'flotilla-hub-watch-old', username: broker.adminUsername, password: broker.adminPassword });
    await watcher.subscribeAsync('flotilla/v1/spokes/+/status', { qos: 1 });
    const a = await connectSpoke('old-a', 'old-a.1', 'new-pw');
    expect(await grantedCode(a, desiredTopic('old-a'))).toBe(1);
    for (const filter of [desiredTopic('old-b'), '#', '$SYS/#', `$share/g/${desiredTopic('old-a')}`]) {
      expect({ filter, code: await grantedCode(a, filter) }).toEqual({ filter, code: SUBACK_FAILURE });
    }
    const first = nextMessage(watcher);
    await a.publishAsync(statusTopic('old-b'), 'forged', { qos: 1 });
    await a.publishAsync(statusTopic('old-a'), 'own', { qos: 1 });
    expect(await first).toMatchObject({ topic: statusTopic('old-a'), payload: Buffer.from('own') });
  });

  test('each spoke adds less than 1.6 KB to the config the plugin rewrites on every command', async () => {
    // The shared role exists by now; what follows is what each enrolment adds.
    await provisioner.provisionSpoke('grow-warm', 'grow-warm.1', 'pw');
    const before = (await stat(dynsecPath())).size;
    const spokes = Array.from({ length: 20 }, (_, i) => `grow-${String(i).padStart(4, '0')}`);
    // Usernames shaped as enrolment makes them: `<spoke>.<8 hex>`.
    for (const spoke of spokes) await provisioner.provisionSpoke(spoke, `${spoke}.${randomBytes(4).toString('hex')}`, randomBytes(24).toString('base64url'));
    const bytesPerSpoke = ((await stat(dynsecPath())).size - before) / spokes.length;

    // The layout with 28 ACLs in every spoke's role took about 4 KB per spoke.
    expect(bytesPerSpoke).toBeLessThan(1600);
    const file = await dynsecFile();
    expect(file.roles.filter((r) => r.rolename === SPOKE_BASE_ROLE)).toHaveLength(1);
    for (const spoke of spokes) expect((await roleIn(spokeRole(spoke)))?.acls).toHaveLength(spokeRoleAcls(spoke).length);
  });

  test("revoking a spoke also removes an earlier enrolment's credentials, and the broker lives on", async () => {
    await provisioner.provisionSpoke('stale-a', 'stale-a.old', 'pw-old');
    await provisioner.provisionSpoke('stale-a', 'stale-a.new', 'pw-new');

    await provisioner.revokeSpoke('stale-a', 'stale-a.new');
    expect(await refusal({ clientId: 'stale-a', username: 'stale-a.old', password: 'pw-old' })).toBe(CONNACK_NOT_AUTHORIZED);
    // Deleting a role a client still held would have crashed Mosquitto 2.0 on the next look-up of that client.
    await provisioner.provisionSpoke('stale-b', 'stale-b.1', 'pw');
    expect((await connectSpoke('stale-b', 'stale-b.1', 'pw')).connected).toBe(true);
  });

  test('a message over 256 KiB is dropped by the broker while one of exactly 256 KiB is delivered', async () => {
    await provisioner.provisionSpoke('big-a', 'big-a.1', 'pw');
    const watcher = await connect({ clientId: 'flotilla-hub-watch-big', username: broker.adminUsername, password: broker.adminPassword });
    await watcher.subscribeAsync(statusTopic('big-a'), { qos: 1 });
    const a = await connectSpoke('big-a', 'big-a.1', 'pw');

    const first = nextMessage(watcher);
    await a.publishAsync(statusTopic('big-a'), Buffer.alloc(MAX_MESSAGE_BYTES + 1, 0x61), { qos: 1 });
    await a.publishAsync(statusTopic('big-a'), Buffer.alloc(MAX_MESSAGE_BYTES, 0x62), { qos: 1 });
    const got = await first;
    expect(got.payload.length).toBe(MAX_MESSAGE_BYTES);
    expect(got.payload[0]).toBe(0x62);
    expect(a.connected).toBe(true);
  });

  test('a hub user holding only the hub role receives a spoke status through the shared subscription and publishes desired state', async () => {
    // Not the admin: its own role grants subscribePattern '#' and would hide a gap in the hub role.
    await adminCommand(hub, { command: 'createClient', username: 'hub-only', password: 'hub-pw' });
    await provisioner.ensureHubRole('hub-only');
    await provisioner.provisionSpoke('share-a', 'share-a.1', 'pw');
    const replica = await connect({ clientId: 'flotilla-hub-replica', username: 'hub-only', password: 'hub-pw' });
    expect(await grantedCode(replica, hubSharedFilter('status'))).toBe(1);
    expect(await grantedCode(replica, '$share/other/flotilla/v1/spokes/+/status')).toBe(SUBACK_FAILURE);
    const a = await connectSpoke('share-a', 'share-a.1', 'pw');
    expect(await grantedCode(a, desiredTopic('share-a'))).toBe(1);

    const status = nextMessage(replica);
    await a.publishAsync(statusTopic('share-a'), '{"observedGeneration":1}', { qos: 1 });
    expect(await status).toMatchObject({ topic: statusTopic('share-a'), payload: Buffer.from('{"observedGeneration":1}') });
    const desired = nextMessage(a);
    await replica.publishAsync(desiredTopic('share-a'), '{"generation":2}', { qos: 1, retain: true });
    expect(await desired).toMatchObject({ topic: desiredTopic('share-a'), payload: Buffer.from('{"generation":2}') });
  });

  test('granting the hub role again leaves the hub user as it is', async () => {
    await provisioner.ensureHubRole(broker.adminUsername);
    const file = await dynsecFile();
    const admin = file.clients.find((c) => c.username === broker.adminUsername);
    expect(admin?.roles?.filter((r) => r.rolename === HUB_ROLE)).toHaveLength(1);
    expect(hub.connected).toBe(true);
  });

  test("a broker error surfaces with the command and the broker's text", async () => {
    const err = await provisioner.ensureHubRole('no-such-user').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DynsecCommandError);
    expect(err).toMatchObject({ command: 'getClient' });
    expect((err as Error).message).toMatch(/^mosquitto dynsec getClient failed: Client not found: the hub's MQTT user "no-such-user"/);
  });

  test('a provisioner with a wrong admin password fails with the refusal', async () => {
    const wrong = new MosquittoDynsecProvisioner({ url: broker.url, username: broker.adminUsername, password: 'wrong' });
    try {
      const err = await wrong.provisionSpoke('wrong-a', 'wrong-a.1', 'pw').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DynsecUnavailableError);
      expect((err as Error).message).toBe(`mosquitto dynsec createRole: ${broker.url} refused "${broker.adminUsername}": Connection refused: Not authorized`);
    } finally {
      await wrong.close();
    }
  });

  test('a provisioner whose user is no dynsec admin fails with the reason, not a timeout', async () => {
    await adminCommand(hub, { command: 'createClient', username: 'plain-user', password: 'pw' });
    const notAdmin = new MosquittoDynsecProvisioner({ url: broker.url, username: 'plain-user', password: 'pw' });
    try {
      const err = await notAdmin.revokeSpoke('other-a', 'other-a.1').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DynsecUnavailableError);
      expect((err as Error).message).toMatch(
        /^mosquitto dynsec listClients: "plain-user" may not subscribe to \$CONTROL\/dynamic-security\/v1\/response: /,
      );
    } finally {
      await notAdmin.close();
    }
  });
});

describeWithMosquitto('Mosquitto dynamic security state across a broker crash', () => {
  let broker: RunningMosquitto;
  let provisioner: MosquittoDynsecProvisioner;
  beforeAll(async () => {
    broker = await startMosquitto({ dynsec: true });
    provisioner = new MosquittoDynsecProvisioner({ url: broker.url, username: broker.adminUsername, password: broker.adminPassword });
  });
  afterAll(async () => {
    await provisioner?.close();
    await broker?.stop();
  });

  test('a provisioned spoke still connects after mosquitto is killed and restarted, and revocation still works', async () => {
    await provisioner.provisionSpoke('crash-a', 'crash-a.1', 'pw');
    await broker.kill();
    await broker.restart();

    const a = await mqtt.connectAsync(broker.url, { protocolVersion: 4, clientId: 'crash-a', username: 'crash-a.1', password: 'pw', reconnectPeriod: 0 });
    try {
      expect(a.connected).toBe(true);
      // The provisioner reconnects on its own.
      const ended = closed(a);
      await provisioner.revokeSpoke('crash-a', 'crash-a.1');
      await ended;
    } finally {
      await a.endAsync(true);
    }
  });
});

describeWithMosquitto('Mosquitto dynamic security after the shared spoke role went missing', () => {
  let broker: RunningMosquitto;
  let provisioner: MosquittoDynsecProvisioner;
  let admin: MqttClient;
  beforeAll(async () => {
    broker = await startMosquitto({ dynsec: true });
    provisioner = new MosquittoDynsecProvisioner({ url: broker.url, username: broker.adminUsername, password: broker.adminPassword });
    admin = await mqtt.connectAsync(broker.url, { protocolVersion: 4, username: broker.adminUsername, password: broker.adminPassword, reconnectPeriod: 0 });
  });
  afterAll(async () => {
    await admin?.endAsync(true);
    await provisioner?.close();
    await broker?.stop();
  });

  test('the provisioner that made the shared role makes it again and the spoke is provisioned', async () => {
    await provisioner.provisionSpoke('lost-a', 'lost-a.1', 'pw');
    await provisioner.revokeSpoke('lost-a', 'lost-a.1');
    // No client holds it any more, so deleting it is safe (eclipse/mosquitto#2660).
    await adminCommand(admin, { command: 'deleteRole', rolename: SPOKE_BASE_ROLE });

    await provisioner.provisionSpoke('lost-b', 'lost-b.1', 'pw');
    const b = await mqtt.connectAsync(broker.url, { protocolVersion: 4, clientId: 'lost-b', username: 'lost-b.1', password: 'pw', reconnectPeriod: 0 });
    try {
      expect(await grantedCode(b, desiredTopic('lost-b'))).toBe(1);
      expect(await grantedCode(b, '#')).toBe(SUBACK_FAILURE);
    } finally {
      await b.endAsync(true);
    }
  });
});

describeWithMosquitto('Mosquitto dynamic security with permissive broker-wide defaults', () => {
  let broker: RunningMosquitto;
  let provisioner: MosquittoDynsecProvisioner;
  let admin: MqttClient;
  const clients: MqttClient[] = [];
  beforeAll(async () => {
    broker = await startMosquitto({ dynsec: true });
    provisioner = new MosquittoDynsecProvisioner({ url: broker.url, username: broker.adminUsername, password: broker.adminPassword });
    admin = await mqtt.connectAsync(broker.url, { protocolVersion: 4, username: broker.adminUsername, password: broker.adminPassword, reconnectPeriod: 0 });
    // An operator may open the defaults for other applications on the same broker.
    await adminCommand(admin, {
      command: 'setDefaultACLAccess',
      acls: ['publishClientSend', 'publishClientReceive', 'subscribe', 'unsubscribe'].map((acltype) => ({ acltype, allow: true })),
    });
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true)));
    await admin?.endAsync(true);
    await provisioner?.close();
    await broker?.stop();
  });

  test("a spoke still cannot subscribe to or publish on another spoke's topics: its role denies what it does not grant", async () => {
    await provisioner.provisionSpoke('open-a', 'open-a.1', 'pw');
    await provisioner.provisionSpoke('open-b', 'open-b.1', 'pw');
    const as = async (spoke: string) => {
      const c = await mqtt.connectAsync(broker.url, { protocolVersion: 4, clientId: spoke, username: `${spoke}.1`, password: 'pw', reconnectPeriod: 0 });
      clients.push(c);
      return c;
    };
    const a = await as('open-a');
    const b = await as('open-b');

    for (const filter of [desiredTopic('open-b'), 'flotilla/v1/spokes/+/desired', '#', '$SYS/#', `$share/g/${desiredTopic('open-b')}`]) {
      expect({ filter, code: await grantedCode(a, filter) }).toEqual({ filter, code: SUBACK_FAILURE });
    }
    expect(await grantedCode(b, desiredTopic('open-b'))).toBe(1);
    await admin.subscribeAsync(statusTopic('open-b'), { qos: 1 });

    const toB = nextMessage(b);
    const toHub = nextMessage(admin, statusTopic('open-b'));
    await a.publishAsync(desiredTopic('open-b'), 'forged', { qos: 1 });
    await a.publishAsync(statusTopic('open-b'), 'forged', { qos: 1 });
    // Published after the forgeries were acknowledged, so they would have arrived first.
    await admin.publishAsync(desiredTopic('open-b'), 'from-hub', { qos: 1 });
    await b.publishAsync(statusTopic('open-b'), 'from-b', { qos: 1 });
    expect((await toB).payload.toString()).toBe('from-hub');
    expect((await toHub).payload.toString()).toBe('from-b');
  });
});
