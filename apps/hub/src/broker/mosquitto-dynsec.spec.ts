import net from 'node:net';
import { HUB_FILTERS, HUB_SHARED_FILTERS, mayPublish, maySubscribe, spokeTopics } from '@flotilla/contracts';
import {
  type DynsecAcl,
  DynsecUnavailableError,
  MosquittoDynsecProvisioner,
  hubRoleAcls,
  spokeRole,
  spokeRoleAcls,
} from './mosquitto-dynsec.js';

const allowed = (acls: DynsecAcl[], ...types: DynsecAcl['acltype'][]) =>
  acls.filter((a) => a.allow && types.includes(a.acltype)).map((a) => a.topic).sort();

describe('spokeRoleAcls', () => {
  const acls = spokeRoleAcls('edge-a');

  it('grants publishing exactly to the topics mayPublish allows the spoke', () => {
    const own = spokeTopics('edge-a');
    expect(allowed(acls, 'publishClientSend')).toEqual([own.events, own.presence, own.status, own.telemetry].sort());
    for (const topic of allowed(acls, 'publishClientSend')) expect(mayPublish('edge-a', topic)).toBe(true);
  });

  it('grants subscribing only as literals to the filters maySubscribe allows, never as a pattern', () => {
    const own = spokeTopics('edge-a');
    expect(allowed(acls, 'subscribeLiteral')).toEqual([own.commands, own.desired].sort());
    expect(allowed(acls, 'subscribePattern')).toEqual([]);
    for (const filter of allowed(acls, 'subscribeLiteral')) expect(maySubscribe('edge-a', filter)).toBe(true);
    expect(allowed(acls, 'publishClientReceive')).toEqual([own.commands, own.desired].sort());
  });

  it("grants nothing on another spoke's topics", () => {
    const other = Object.values(spokeTopics('edge-b'));
    expect(acls.filter((a) => a.allow && other.includes(a.topic))).toEqual([]);
  });

  it('ends every kind of check in a catch-all deny ranked below every grant', () => {
    const lowestGrant = Math.min(...acls.filter((a) => a.allow).map((a) => a.priority));
    for (const type of ['publishClientSend', 'publishClientReceive', 'subscribePattern', 'unsubscribePattern'] as const) {
      const denies = acls.filter((a) => !a.allow && a.acltype === type);
      expect(denies.map((a) => a.topic).sort()).toEqual(['#', '$CONTROL/#', '$SYS/#', '$share/#']);
      for (const d of denies) expect(d.priority).toBeLessThan(lowestGrant);
    }
  });

  it.each(['', 'Edge-A', 'edge_a', 'a/b', '+', '#', '-edge', 'x'.repeat(64)])('throws on a name that is not a spoke name: %j', (name) => {
    expect(() => spokeRoleAcls(name)).toThrow(/not a valid spoke name/);
  });

  it('names the role after the spoke', () => {
    expect(spokeRole('edge-a')).toBe('flotilla-spoke-edge-a');
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
