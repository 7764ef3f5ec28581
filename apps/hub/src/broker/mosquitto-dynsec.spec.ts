import net from 'node:net';
import { Aedes } from 'aedes';
import {
  HUB_FILTERS,
  HUB_SHARED_FILTERS,
  TOPIC_ROOT,
  mayPublish,
  maySubscribe,
  spokeTopics,
} from '@flotilla/contracts';
import {
  DYNSEC_CONTROL_TOPIC,
  DYNSEC_RESPONSE_TOPIC,
  type DynsecAcl,
  DynsecCommandError,
  DynsecUnavailableError,
  MosquittoDynsecProvisioner,
  SPOKE_BASE_ROLE,
  hubRoleAcls,
  spokeBaseRoleAcls,
  spokeClientRoles,
  spokeRole,
  spokeRoleAcls,
} from './mosquitto-dynsec.js';

const allowed = (acls: DynsecAcl[], ...types: DynsecAcl['acltype'][]) =>
  acls.filter((a) => a.allow && types.includes(a.acltype)).map((a) => a.topic).sort();

const CATCH_ALL = ['#', '$CONTROL/#', '$SYS/#', '$share/#'];

describe('spokeRoleAcls', () => {
  const acls = spokeRoleAcls('edge-a');
  // Every topic of the protocol for two spokes, and the hub's filters: what a grant could leak onto.
  const candidates = [...Object.values(spokeTopics('edge-a')), ...Object.values(spokeTopics('edge-b')), ...HUB_FILTERS, ...HUB_SHARED_FILTERS];

  it('grants publishing to exactly the topics mayPublish allows the spoke', () => {
    expect(allowed(acls, 'publishClientSend')).toEqual(candidates.filter((t) => mayPublish('edge-a', t)).sort());
    expect(allowed(acls, 'publishClientSend')).toHaveLength(4);
  });

  it('grants subscribing, as literals only, to exactly the filters maySubscribe allows, and receiving on them', () => {
    const subscribable = candidates.filter((t) => maySubscribe('edge-a', t)).sort();
    expect(subscribable).toHaveLength(2);
    expect(allowed(acls, 'subscribeLiteral')).toEqual(subscribable);
    expect(allowed(acls, 'publishClientReceive')).toEqual(subscribable);
  });

  it('holds nothing but those grants: no pattern, no unsubscribe, no deny, no wildcard', () => {
    expect(acls.map((a) => a.acltype).sort()).toEqual([
      'publishClientReceive',
      'publishClientReceive',
      'publishClientSend',
      'publishClientSend',
      'publishClientSend',
      'publishClientSend',
      'subscribeLiteral',
      'subscribeLiteral',
    ]);
    expect(acls.filter((a) => !a.allow)).toEqual([]);
    expect(acls.filter((a) => /[+#]/.test(a.topic) || a.topic.startsWith('$'))).toEqual([]);
  });

  it("grants nothing on another spoke's topics", () => {
    const other = Object.values(spokeTopics('edge-b'));
    expect(acls.filter((a) => other.includes(a.topic))).toEqual([]);
    for (const a of acls) expect(a.topic.startsWith(`${TOPIC_ROOT}/edge-a/`)).toBe(true);
  });

  it.each(['', 'Edge-A', 'edge_a', 'a/b', '+', '#', '-edge', 'x'.repeat(64)])('throws on a name that is not a spoke name: %j', (name) => {
    expect(() => spokeRoleAcls(name)).toThrow(/not a valid spoke name/);
  });

  it('names the role after the spoke, never as the shared role', () => {
    expect(spokeRole('edge-a')).toBe('flotilla-spoke-edge-a');
    expect(spokeRole('s')).not.toBe(SPOKE_BASE_ROLE);
  });
});

describe('spokeBaseRoleAcls', () => {
  const base = spokeBaseRoleAcls();

  it('grants nothing', () => {
    expect(base.filter((a) => a.allow)).toEqual([]);
    expect(base).toHaveLength(12);
  });

  it('denies every catch-all topic for each kind of check a spoke role answers, wildcard subscriptions included', () => {
    const checks = new Set(spokeRoleAcls('edge-a').map((a) => (a.acltype === 'subscribeLiteral' ? 'subscribePattern' : a.acltype)));
    expect([...checks].sort()).toEqual(['publishClientReceive', 'publishClientSend', 'subscribePattern']);
    for (const type of checks) {
      expect({ type, topics: base.filter((a) => a.acltype === type).map((a) => a.topic).sort() }).toEqual({ type, topics: CATCH_ALL });
    }
  });
});

describe('spokeClientRoles', () => {
  it("gives the client its own role above the shared role, so a grant wins over the shared denies", () => {
    const roles = spokeClientRoles('edge-a');
    expect(roles.map((r) => r.rolename)).toEqual([spokeRole('edge-a'), SPOKE_BASE_ROLE]);
    expect(roles[0]!.priority).toBeGreaterThan(roles[1]!.priority);
  });
});

describe('hubRoleAcls', () => {
  const acls = hubRoleAcls();

  it('grants the shared and plain agent-to-hub filters as literals', () => {
    expect(allowed(acls, 'subscribeLiteral')).toEqual([...HUB_SHARED_FILTERS, ...HUB_FILTERS].sort());
  });

  it('grants receiving every spoke channel the agents publish on, and nothing the hub publishes', () => {
    expect(allowed(acls, 'publishClientReceive')).toEqual(HUB_FILTERS.slice().sort());
  });

  it('grants publishing desired state, commands and presence (cleared on revocation) of every spoke', () => {
    expect(allowed(acls, 'publishClientSend')).toEqual([
      'flotilla/v1/spokes/+/commands',
      'flotilla/v1/spokes/+/desired',
      'flotilla/v1/spokes/+/presence',
    ]);
  });

  it('carries no deny, so the admin role held beside it keeps working', () => {
    expect(acls.filter((a) => !a.allow)).toEqual([]);
  });
});

describe('MosquittoDynsecProvisioner', () => {
  // Nothing listens here: the inputs are refused before any connection is tried.
  const opts = { url: 'mqtt://127.0.0.1:1', username: 'dynsec-admin', password: 'secret', commandTimeoutMs: 2_000 };
  let provisioner: MosquittoDynsecProvisioner;
  beforeEach(() => {
    provisioner = new MosquittoDynsecProvisioner(opts);
  });
  afterEach(async () => {
    await provisioner.close();
  });

  it.each([
    ['url', { ...opts, url: '' }],
    ['username', { ...opts, username: '' }],
    ['password', { ...opts, password: '' }],
  ])('refuses to be built without the admin %s', (field, bad) => {
    expect(() => new MosquittoDynsecProvisioner(bad)).toThrow(new RegExp(`needs ${field}`));
  });

  it('refuses to provision a spoke whose name is not a DNS label', async () => {
    await expect(provisioner.provisionSpoke('Edge_A', 'edge.1', 'pw')).rejects.toThrow('"Edge_A" is not a spoke name (a DNS label)');
  });

  it('refuses to provision a spoke with an empty username or password', async () => {
    await expect(provisioner.provisionSpoke('edge-a', '', 'pw')).rejects.toThrow('spoke edge-a: the MQTT username is empty');
    await expect(provisioner.provisionSpoke('edge-a', 'edge-a.1', '')).rejects.toThrow('spoke edge-a: the MQTT password is empty');
  });

  it('refuses to turn the dynsec admin into a spoke, or to revoke it', async () => {
    await expect(provisioner.provisionSpoke('edge-a', 'dynsec-admin', 'pw')).rejects.toThrow('"dynsec-admin" is the dynsec admin, not a spoke user');
    await expect(provisioner.revokeSpoke('edge-a', 'dynsec-admin')).rejects.toThrow('"dynsec-admin" is the dynsec admin, not a spoke user');
  });

  it('refuses an empty hub username', async () => {
    await expect(provisioner.ensureHubRole('')).rejects.toThrow('the hub MQTT username is empty');
  });

  it('refuses commands once closed', async () => {
    await provisioner.close();
    await expect(provisioner.provisionSpoke('edge-a', 'edge-a.1', 'pw')).rejects.toThrow('mosquitto dynsec createRole: the provisioner was closed');
  });
});

describe('MosquittoDynsecProvisioner against a server that never answers CONNECT', () => {
  let server: net.Server;
  let url: string;
  const sockets = new Set<net.Socket>();
  beforeAll(async () => {
    server = net.createServer((s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `mqtt://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('times out with an error naming the command and the broker', async () => {
    const provisioner = new MosquittoDynsecProvisioner({ url, username: 'admin', password: 'pw', commandTimeoutMs: 300 });
    try {
      const err = await provisioner.provisionSpoke('edge-a', 'edge-a.1', 'pw').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DynsecUnavailableError);
      expect((err as Error).message).toBe(`mosquitto dynsec createRole: not connected to ${url} within 300 ms`);
    } finally {
      await provisioner.close();
    }
  });

  it('stops waiting when the caller aborts, with the caller reason', async () => {
    const provisioner = new MosquittoDynsecProvisioner({ url, username: 'admin', password: 'pw', commandTimeoutMs: 60_000 });
    try {
      const controller = new AbortController();
      const pending = provisioner.revokeSpoke('edge-a', 'edge-a.1', controller.signal);
      controller.abort(new Error('hub stopping'));
      await expect(pending).rejects.toThrow('hub stopping');
    } finally {
      await provisioner.close();
    }
  });
});

interface SentCommand {
  command: string;
  rolename?: string;
  username?: string;
  roles?: Array<{ rolename: string; priority: number }>;
  acls?: DynsecAcl[];
}

/**
 * A stand-in for the plugin, answering `$CONTROL/dynamic-security/v1` over an
 * in-process aedes broker from a small model of roles and clients, with the
 * error texts of Mosquitto 2.0. It records every command, so the order and
 * number of commands can be checked; the real plugin is in
 * test/broker/mosquitto-dynsec.test.ts.
 */
describe('MosquittoDynsecProvisioner commands, against a fake dynsec plugin', () => {
  let aedes: Aedes;
  let server: net.Server;
  let provisioner: MosquittoDynsecProvisioner;
  const sent: SentCommand[] = [];
  const roles = new Map<string, DynsecAcl[]>();
  const clients = new Map<string, Array<{ rolename: string; priority: number }>>();
  /** One-shot failures: the next command of this name (and rolename, when given) fails with the text. */
  const failures: Array<{ command: string; rolename?: string; error: string }> = [];

  const answer = (c: SentCommand): { error?: string; data?: unknown } => {
    const failure = failures.findIndex((f) => f.command === c.command && (f.rolename === undefined || f.rolename === c.rolename));
    if (failure >= 0) return { error: failures.splice(failure, 1)[0]!.error };
    const missingRole = (c.roles ?? []).some((r) => !roles.has(r.rolename));
    switch (c.command) {
      case 'createRole':
        if (roles.has(c.rolename!)) return { error: 'Role already exists' };
        roles.set(c.rolename!, c.acls ?? []);
        return {};
      case 'modifyRole':
        if (!roles.has(c.rolename!)) return { error: 'Role not found' };
        roles.set(c.rolename!, c.acls ?? []);
        return {};
      case 'deleteRole':
        return roles.delete(c.rolename!) ? {} : { error: 'Role not found' };
      case 'createClient':
        if (clients.has(c.username!)) return { error: 'Client already exists' };
        if (missingRole) return { error: 'Role not found' };
        clients.set(c.username!, c.roles ?? []);
        return {};
      case 'modifyClient':
        if (!clients.has(c.username!)) return { error: 'Client not found' };
        if (missingRole) return { error: 'Role not found' };
        clients.set(c.username!, c.roles ?? []);
        return {};
      case 'enableClient':
        return clients.has(c.username!) ? {} : { error: 'Client not found' };
      case 'deleteClient':
        return clients.delete(c.username!) ? {} : { error: 'Client not found' };
      case 'listClients':
        return { data: { totalCount: clients.size, clients: [...clients].map(([username, r]) => ({ username, roles: r })) } };
      default:
        return { error: 'Unknown command' };
    }
  };
  const commands = () => sent.filter((c) => c.command !== 'listClients').map((c) => `${c.command} ${c.rolename ?? c.username}`);

  beforeAll(async () => {
    aedes = await Aedes.createBroker();
    aedes.on('publish', (packet, client) => {
      if (!client || packet.topic !== DYNSEC_CONTROL_TOPIC) return;
      const { commands: batch } = JSON.parse(packet.payload.toString()) as { commands: Array<SentCommand & { correlationData: string }> };
      const responses = batch.map((c) => {
        sent.push(c);
        return { command: c.command, correlationData: c.correlationData, ...answer(c) };
      });
      aedes.publish({ cmd: 'publish', topic: DYNSEC_RESPONSE_TOPIC, payload: Buffer.from(JSON.stringify({ responses })), qos: 0, retain: false, dup: false }, () => {});
    });
    server = net.createServer(aedes.handle);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });
  beforeEach(() => {
    sent.length = 0;
    failures.length = 0;
    roles.clear();
    clients.clear();
    const url = `mqtt://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    provisioner = new MosquittoDynsecProvisioner({ url, username: 'dynsec-admin', password: 'pw', commandTimeoutMs: 5_000 });
  });
  afterEach(async () => {
    await provisioner.close();
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('makes the shared role once, then one role and one client per spoke, the client holding both roles', async () => {
    await provisioner.provisionSpoke('edge-a', 'edge-a.1', 'pw');
    await provisioner.provisionSpoke('edge-b', 'edge-b.1', 'pw');
    expect(commands()).toEqual([
      `createRole ${SPOKE_BASE_ROLE}`,
      'createRole flotilla-spoke-edge-a',
      'createClient edge-a.1',
      'createRole flotilla-spoke-edge-b',
      'createClient edge-b.1',
    ]);
    expect(roles.get(SPOKE_BASE_ROLE)).toEqual(spokeBaseRoleAcls());
    expect(roles.get(spokeRole('edge-a'))).toEqual(spokeRoleAcls('edge-a'));
    expect(clients.get('edge-a.1')).toEqual(spokeClientRoles('edge-a'));
    expect(sent.find((c) => c.command === 'createClient')).toMatchObject({ clientid: 'edge-a' });
  });

  it('makes the shared role once for spokes provisioned at the same time', async () => {
    await Promise.all(['edge-a', 'edge-b', 'edge-c'].map((s) => provisioner.provisionSpoke(s, `${s}.1`, 'pw')));
    expect(commands().filter((c) => c.endsWith(` ${SPOKE_BASE_ROLE}`))).toEqual([`createRole ${SPOKE_BASE_ROLE}`]);
    expect([...clients.keys()].sort()).toEqual(['edge-a.1', 'edge-b.1', 'edge-c.1']);
  });

  it('updates a shared role that already exists', async () => {
    roles.set(SPOKE_BASE_ROLE, []);
    await provisioner.provisionSpoke('edge-a', 'edge-a.1', 'pw');
    expect(commands().slice(0, 2)).toEqual([`createRole ${SPOKE_BASE_ROLE}`, `modifyRole ${SPOKE_BASE_ROLE}`]);
    expect(roles.get(SPOKE_BASE_ROLE)).toEqual(spokeBaseRoleAcls());
  });

  it('forgets a failed attempt at the shared role, so the next provisioning tries again', async () => {
    failures.push({ command: 'createRole', rolename: SPOKE_BASE_ROLE, error: 'Internal error' });
    await expect(provisioner.provisionSpoke('edge-a', 'edge-a.1', 'pw')).rejects.toThrow(new DynsecCommandError('createRole', 'Internal error'));
    expect(clients.size).toBe(0);
    await provisioner.provisionSpoke('edge-a', 'edge-a.1', 'pw');
    await provisioner.provisionSpoke('edge-b', 'edge-b.1', 'pw');
    expect(commands().filter((c) => c.endsWith(` ${SPOKE_BASE_ROLE}`))).toEqual([`createRole ${SPOKE_BASE_ROLE}`, `createRole ${SPOKE_BASE_ROLE}`]);
    expect(clients.get('edge-a.1')).toEqual(spokeClientRoles('edge-a'));
  });

  it('makes the shared role again when the broker lost it after this provisioner made it', async () => {
    await provisioner.provisionSpoke('edge-a', 'edge-a.1', 'pw');
    roles.delete(SPOKE_BASE_ROLE);
    sent.length = 0;
    await provisioner.provisionSpoke('edge-b', 'edge-b.1', 'pw');
    expect(commands()).toEqual([
      'createRole flotilla-spoke-edge-b',
      'createClient edge-b.1',
      `createRole ${SPOKE_BASE_ROLE}`,
      'createRole flotilla-spoke-edge-b',
      'createClient edge-b.1',
      'modifyRole flotilla-spoke-edge-b',
    ]);
    expect(roles.get(SPOKE_BASE_ROLE)).toEqual(spokeBaseRoleAcls());
    expect(clients.get('edge-b.1')).toEqual(spokeClientRoles('edge-b'));
  });

  it("gives an earlier spoke both roles before it slims the spoke's own role", async () => {
    // As provisioned before the shared role: one role, grants and denies together.
    const fat = [...spokeRoleAcls('edge-a'), ...spokeBaseRoleAcls()];
    roles.set(spokeRole('edge-a'), fat);
    clients.set('edge-a.1', [{ rolename: spokeRole('edge-a'), priority: 0 }]);
    await provisioner.provisionSpoke('edge-a', 'edge-a.1', 'new-pw');
    expect(commands()).toEqual([
      `createRole ${SPOKE_BASE_ROLE}`,
      'createRole flotilla-spoke-edge-a',
      'createClient edge-a.1',
      'modifyClient edge-a.1',
      'enableClient edge-a.1',
      'modifyRole flotilla-spoke-edge-a',
    ]);
    expect(sent.find((c) => c.command === 'modifyClient')).toMatchObject({ clientid: 'edge-a', password: 'new-pw', roles: spokeClientRoles('edge-a') });
    expect(roles.get(spokeRole('edge-a'))).toEqual(spokeRoleAcls('edge-a'));
  });

  it("revokes a spoke's clients, then its own role, and never the shared role", async () => {
    await provisioner.provisionSpoke('edge-a', 'edge-a.old', 'pw');
    await provisioner.provisionSpoke('edge-a', 'edge-a.new', 'pw');
    await provisioner.provisionSpoke('edge-b', 'edge-b.1', 'pw');
    sent.length = 0;
    await provisioner.revokeSpoke('edge-a', 'edge-a.new');
    expect(commands()).toEqual(['deleteClient edge-a.new', 'deleteClient edge-a.old', 'deleteRole flotilla-spoke-edge-a']);
    expect([...roles.keys()].sort()).toEqual([spokeRole('edge-b'), SPOKE_BASE_ROLE].sort());
    expect([...clients.keys()]).toEqual(['edge-b.1']);
  });
});
