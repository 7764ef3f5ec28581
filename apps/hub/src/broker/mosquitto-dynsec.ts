import { randomBytes, randomUUID } from 'node:crypto';
import {
  HUB_FILTERS,
  HUB_SHARED_FILTERS,
  SPOKE_PUBLISH_CHANNELS,
  SPOKE_SUBSCRIBE_CHANNELS,
  SpokeNameSchema,
  type SpokeChannel,
  TOPIC_ROOT,
  spokeTopic,
} from '@flotilla/contracts';
import { tlsOptionsFor } from '../mqtt/hub-publisher.js';
import mqtt, { type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { BrokerProvisioner } from './broker-provisioner.js';

/**
 * Provisions Mosquitto 2.0's dynamic security plugin over its MQTT control
 * API: one client and one role of grants per spoke, one role of catch-all
 * denies shared by every spoke, and a role for the hub's own user.
 * Commands go to `$CONTROL/dynamic-security/v1` one at a time, each with a
 * correlationData that the plugin echoes on the response topic.
 *
 * The plugin (2.0.11) rewrites its whole JSON config file on every command,
 * so enrolling a spoke costs time in proportion to the size of the whole
 * config and enrolling N spokes costs N squared: every byte kept per spoke
 * counts. Hence the denies live once in the shared role rather than in each
 * spoke's role, and spoke roles and clients carry no textname. The grants
 * stay literal per spoke: 2.0.11 has no %c/%u substitution in dynsec ACLs.
 */

export const DYNSEC_CONTROL_TOPIC = '$CONTROL/dynamic-security/v1';
export const DYNSEC_RESPONSE_TOPIC = `${DYNSEC_CONTROL_TOPIC}/response`;
export const HUB_ROLE = 'flotilla-hub';
/**
 * The role every spoke client holds beside its own: the catch-all denies.
 * No spoke's role can take this name, as `spokeRole` adds a hyphen before the spoke name.
 */
export const SPOKE_BASE_ROLE = 'flotilla-spokes';

export function spokeRole(spoke: string): string {
  return `flotilla-spoke-${spoke}`;
}

export type DynsecAclType =
  | 'publishClientSend'
  | 'publishClientReceive'
  | 'subscribeLiteral'
  | 'subscribePattern'
  | 'unsubscribeLiteral'
  | 'unsubscribePattern';

export interface DynsecAcl {
  acltype: DynsecAclType;
  topic: string;
  priority: number;
  allow: boolean;
}

// The plugin tries a client's roles from the highest role priority down, and
// within a role its ACLs from the highest priority down; the first ACL whose
// topic matches decides (checked against Mosquitto 2.0.11 in
// test/broker/mosquitto-dynsec.test.ts). A spoke's own role, of grants only,
// therefore ranks above the shared role of denies.
const SPOKE_ROLE_PRIORITY = 1;
const SPOKE_BASE_ROLE_PRIORITY = 0;
const GRANT_PRIORITY = 10;
const CATCH_ALL_PRIORITY = 0;
// `#` does not match topics starting with `$`, so those trees are denied by name.
const CATCH_ALL_TOPICS = ['#', '$SYS/#', '$CONTROL/#', '$share/#'] as const;

const grant = (acltype: DynsecAclType, topic: string): DynsecAcl => ({ acltype, topic, priority: GRANT_PRIORITY, allow: true });
const deny = (acltype: DynsecAclType, topic: string): DynsecAcl => ({ acltype, topic, priority: CATCH_ALL_PRIORITY, allow: false });

/**
 * The spoke's own role (DESIGN.md section 6, `mayPublish`/`maySubscribe` in
 * contracts): publish to its own status, telemetry, events and presence;
 * subscribe to, and receive on, exactly its own desired and commands topics
 * (literals, so no wildcard or shared subscription can reach another spoke's
 * topics). Grants only: whatever they do not match falls through to the
 * denies of `SPOKE_BASE_ROLE`, which the spoke's client holds at a lower
 * priority.
 * No unsubscribe grant: the agent never unsubscribes (its clean session ends
 * its subscriptions), and an unsubscribe cannot open access to anything, so
 * neither a grant here nor a deny in the shared role would protect anything.
 * Throws on a name that is not a spoke name.
 */
export function spokeRoleAcls(spoke: string): DynsecAcl[] {
  const own = (channels: readonly SpokeChannel[]) => channels.map((c) => spokeTopic(spoke, c));
  return [
    ...own(SPOKE_PUBLISH_CHANNELS).map((t) => grant('publishClientSend', t)),
    ...own(SPOKE_SUBSCRIBE_CHANNELS).flatMap((t) => [grant('subscribeLiteral', t), grant('publishClientReceive', t)]),
  ];
}

/**
 * The shared role's catch-all denies, for every kind of check a spoke's grants
 * answer. The plugin's default ACL access is broker-wide and other clients may
 * rely on it (receive defaults to allow), so spokes carry their own denies
 * instead of changing the defaults. Unsubscribing is left to the defaults:
 * see `spokeRoleAcls`.
 */
export function spokeBaseRoleAcls(): DynsecAcl[] {
  return (['publishClientSend', 'publishClientReceive', 'subscribePattern'] as const).flatMap((type) =>
    CATCH_ALL_TOPICS.map((t) => deny(type, t)),
  );
}

/** The roles of a spoke's client: its own grants, above the shared denies. */
export function spokeClientRoles(spoke: string): Array<{ rolename: string; priority: number }> {
  return [
    { rolename: spokeRole(spoke), priority: SPOKE_ROLE_PRIORITY },
    { rolename: SPOKE_BASE_ROLE, priority: SPOKE_BASE_ROLE_PRIORITY },
  ];
}

/**
 * The hub's ACL: the agent-to-hub streams, plain and shared (the plugin checks
 * a `$share/...` filter as written), and publishing desired state and
 * commands; presence too, because the hub clears a revoked spoke's retained
 * presence. No catch-all denies here: the hub's user is usually the dynsec
 * admin, whose own role must keep working beside this one.
 */
export function hubRoleAcls(): DynsecAcl[] {
  const everySpoke = (channel: SpokeChannel) => `${TOPIC_ROOT}/+/${channel}`;
  return [
    ...[...HUB_SHARED_FILTERS, ...HUB_FILTERS].flatMap((f) => [grant('subscribeLiteral', f), grant('unsubscribeLiteral', f)]),
    ...SPOKE_PUBLISH_CHANNELS.map((c) => grant('publishClientReceive', everySpoke(c))),
    ...(['desired', 'commands', 'presence'] as const).map((c) => grant('publishClientSend', everySpoke(c))),
  ];
}

/** The broker answered a command with an error. */
export class DynsecCommandError extends Error {
  constructor(
    readonly command: string,
    readonly brokerError: string,
  ) {
    super(`mosquitto dynsec ${command} failed: ${brokerError}`);
    this.name = 'DynsecCommandError';
  }
}

/** No answer could be had: not connected, refused, timed out or closed. */
export class DynsecUnavailableError extends Error {
  constructor(
    readonly command: string,
    message: string,
  ) {
    super(`mosquitto dynsec ${command}: ${message}`);
    this.name = 'DynsecUnavailableError';
  }
}

/**
 * The session ended while a command was in flight; the command may or may not
 * have been applied. Mosquitto does this when a command changes the roles of
 * the very user we administer with.
 */
export class DynsecConnectionLostError extends DynsecUnavailableError {
  constructor(command: string, url: string) {
    super(command, `the connection to ${url} ended before the answer came; the command may have been applied`);
    this.name = 'DynsecConnectionLostError';
  }
}

// The plugin's error texts (Mosquitto 2.0) that idempotent operations expect.
const CLIENT_EXISTS = 'Client already exists';
const ROLE_EXISTS = 'Role already exists';
const CLIENT_NOT_FOUND = 'Client not found';
const ROLE_NOT_FOUND = 'Role not found';

const ResponsesSchema = z.object({
  responses: z.array(
    z.object({
      command: z.string(),
      error: z.string().optional(),
      data: z.unknown().optional(),
      correlationData: z.string().optional(),
    }),
  ),
});

const RoleRefsSchema = z.array(z.object({ rolename: z.string() })).optional().default([]);
const GetClientSchema = z.object({ client: z.object({ username: z.string(), roles: RoleRefsSchema }) });
const ListClientsSchema = z.object({
  totalCount: z.number(),
  clients: z.array(z.object({ username: z.string(), roles: RoleRefsSchema })),
});

const LIST_PAGE = 500;
// MQTT CONNACK refusals that retrying cannot fix: bad credentials, not authorised (3.1.1 and 5).
const REFUSED_CODES = new Set([4, 5, 134, 135]);

export interface MosquittoDynsecOptions {
  /** The broker (MQTT_URL). */
  url: string;
  /** A dynsec admin: may publish to and subscribe to `$CONTROL/dynamic-security/#`. */
  username: string;
  password: string;
  /** CA certificate (PEM) for an mqtts:// broker, besides the system's. */
  ca?: string | undefined;
  /** How long one command may wait for a connection and its answer; 10 s by default. */
  commandTimeoutMs?: number;
  log?: Logger;
}

interface Pending {
  command: string;
  resolve(data: unknown): void;
  reject(err: Error): void;
}

interface ReadyWaiter {
  resolve(): void;
  reject(reason: string): void;
}

export class MosquittoDynsecProvisioner implements BrokerProvisioner {
  private client: MqttClient | null = null;
  private ready = false;
  private closed = false;
  private lastProblem: string | null = null;
  private readonly pending = new Map<string, Pending>();
  private readonly readyWaiters = new Set<ReadyWaiter>();
  private readonly timeoutMs: number;
  private baseRole: Promise<void> | null = null;

  constructor(private readonly opts: MosquittoDynsecOptions) {
    const missing = (['url', 'username', 'password'] as const).filter((k) => !opts[k]);
    if (missing.length) throw new TypeError(`MosquittoDynsecProvisioner needs ${missing.join(', ')} of a dynsec admin`);
    this.timeoutMs = opts.commandTimeoutMs ?? 10_000;
  }

  /**
   * Creates or updates the spoke's role and client: username and password,
   * client id pinned to the spoke's name, the spoke's own role and the shared
   * `SPOKE_BASE_ROLE` (made once per provisioner). Updating a client ends the
   * sessions that used its old credentials.
   */
  async provisionSpoke(spoke: string, username: string, password: string, signal?: AbortSignal): Promise<void> {
    this.checkSpokeUser(spoke, username);
    if (typeof password !== 'string' || password.length === 0) throw new TypeError(`spoke ${spoke}: the MQTT password is empty`);
    try {
      await this.provisionSpokeOnce(spoke, username, password, signal);
    } catch (err) {
      if (!isBrokerError(err, ROLE_NOT_FOUND)) throw err;
      // The shared role went since this provisioner made it (a broker whose
      // config was reset, an operator): make it again and try once more.
      this.baseRole = null;
      await this.provisionSpokeOnce(spoke, username, password, signal);
    }
    this.opts.log?.info({ spoke, username }, 'spoke provisioned on mosquitto dynsec');
  }

  private async provisionSpokeOnce(spoke: string, username: string, password: string, signal?: AbortSignal): Promise<void> {
    await this.ensureSpokeBaseRole(signal);
    const rolename = spokeRole(spoke);
    const acls = spokeRoleAcls(spoke);
    let roleExisted = false;
    try {
      await this.command('createRole', { rolename, acls }, signal);
    } catch (err) {
      if (!isBrokerError(err, ROLE_EXISTS)) throw err;
      roleExisted = true;
    }
    // No textname: it would be rewritten with the whole file on every later command.
    const client = { username, password, clientid: spoke, roles: spokeClientRoles(spoke) };
    try {
      await this.command('createClient', client, signal);
    } catch (err) {
      if (!isBrokerError(err, CLIENT_EXISTS)) throw err;
      // Replaces password, client id and roles, and disconnects the client's sessions.
      await this.command('modifyClient', client, signal);
      await this.command('enableClient', { username }, signal);
    }
    // Only now that the client holds the shared denies: a spoke provisioned
    // before the shared role existed has its denies in its own role, and
    // slimming that role first would leave it a moment with the broker's
    // defaults. Replaces the whole ACL list without disconnecting anyone.
    if (roleExisted) await this.command('modifyRole', { rolename, acls }, signal);
  }

  /**
   * Creates or updates the shared role once per provisioner; every caller
   * waits on the same attempt, and a failed attempt is forgotten so the next
   * call tries again. The attempt is bounded by the command timeout, not by
   * the first caller's signal; each caller stops waiting on its own signal.
   */
  private ensureSpokeBaseRole(signal?: AbortSignal): Promise<void> {
    let attempt = this.baseRole;
    if (!attempt) {
      attempt = this.upsertRole(SPOKE_BASE_ROLE, spokeBaseRoleAcls(), 'Flotilla spokes: catch-all denies');
      this.baseRole = attempt;
      const made = attempt;
      made.catch(() => {
        if (this.baseRole === made) this.baseRole = null;
      });
    }
    return untilAborted(attempt, signal);
  }

  /**
   * Deletes the spoke's client, which disconnects its live sessions, and its
   * own role. Every other client still holding the role (credentials of an
   * earlier enrolment) goes too, and goes first: Mosquitto 2.0 crashes later
   * when a role is deleted while a client still holds it
   * (eclipse/mosquitto#2660). The shared `SPOKE_BASE_ROLE` stays: every other
   * spoke holds it.
   */
  async revokeSpoke(spoke: string, username: string, signal?: AbortSignal): Promise<void> {
    this.checkSpokeUser(spoke, username);
    const rolename = spokeRole(spoke);
    const holders = await this.clientsWithRole(rolename, signal);
    if (holders.includes(this.opts.username)) {
      throw new DynsecCommandError('deleteRole', `refusing to revoke ${spoke}: the admin user "${this.opts.username}" holds ${rolename}`);
    }
    for (const user of new Set([username, ...holders])) {
      await ignoring(CLIENT_NOT_FOUND, this.command('deleteClient', { username: user }, signal));
    }
    await ignoring(ROLE_NOT_FOUND, this.command('deleteRole', { rolename }, signal));
    this.opts.log?.info({ spoke, username }, 'spoke revoked on mosquitto dynsec');
  }

  /**
   * Creates or updates the hub's role and gives it to the hub's MQTT user,
   * which must exist (usually the dynsec admin itself). Mosquitto disconnects
   * every session of a user whose roles change, so call this before the hub's
   * other MQTT clients connect; once the user holds the role it is a no-op
   * for sessions.
   */
  async ensureHubRole(hubUsername: string, signal?: AbortSignal): Promise<void> {
    if (typeof hubUsername !== 'string' || hubUsername.length === 0) throw new TypeError('ensureHubRole: the hub MQTT username is empty');
    await this.upsertRole(HUB_ROLE, hubRoleAcls(), 'Flotilla hub', signal);
    if (await this.clientHasRole(hubUsername, HUB_ROLE, signal)) return;
    try {
      await this.command('addClientRole', { username: hubUsername, rolename: HUB_ROLE, priority: 0 }, signal);
    } catch (err) {
      // When the hub's user is ours, the broker drops our session before it
      // answers (eclipse/mosquitto#2474): look again once reconnected.
      if (!(err instanceof DynsecConnectionLostError)) throw err;
      if (!(await this.clientHasRole(hubUsername, HUB_ROLE, signal))) {
        throw new DynsecCommandError('addClientRole', `${hubUsername} still lacks ${HUB_ROLE} after the broker ended the session`);
      }
    }
    this.opts.log?.info({ hubUsername, role: HUB_ROLE }, 'hub role granted on mosquitto dynsec');
  }

  /** Deletes one spoke client (stale credentials of a spoke enrolled again under another username); its role stays. */
  async revokeCredentials(username: string, signal?: AbortSignal): Promise<void> {
    if (username === this.opts.username) throw new TypeError(`"${username}" is the dynsec admin, not a spoke user`);
    await ignoring(CLIENT_NOT_FOUND, this.command('deleteClient', { username }, signal));
  }

  /** Usernames of every spoke client the broker knows (they all hold the shared spoke role). */
  async listSpokeUsernames(signal?: AbortSignal): Promise<string[]> {
    return this.clientsWithRole(SPOKE_BASE_ROLE, signal);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.failAll('the provisioner was closed');
    const client = this.client;
    this.client = null;
    if (client) await client.endAsync(true);
  }

  private checkSpokeUser(spoke: string, username: string): void {
    if (!SpokeNameSchema.safeParse(spoke).success) throw new TypeError(`"${spoke}" is not a spoke name (a DNS label)`);
    if (typeof username !== 'string' || username.length === 0) throw new TypeError(`spoke ${spoke}: the MQTT username is empty`);
    // Provisioning would overwrite the admin's password and roles; revoking would delete it.
    if (username === this.opts.username) throw new TypeError(`spoke ${spoke}: "${username}" is the dynsec admin, not a spoke user`);
  }

  private async upsertRole(rolename: string, acls: DynsecAcl[], textname: string, signal?: AbortSignal): Promise<void> {
    try {
      await this.command('createRole', { rolename, textname, acls }, signal);
    } catch (err) {
      if (!isBrokerError(err, ROLE_EXISTS)) throw err;
      // Replaces the whole ACL list; takes effect on the next check, without disconnecting anyone.
      await this.command('modifyRole', { rolename, textname, acls }, signal);
    }
  }

  private async clientHasRole(username: string, rolename: string, signal?: AbortSignal): Promise<boolean> {
    let data: unknown;
    try {
      data = await this.command('getClient', { username }, signal);
    } catch (err) {
      if (!isBrokerError(err, CLIENT_NOT_FOUND)) throw err;
      throw new DynsecCommandError(
        'getClient',
        `${CLIENT_NOT_FOUND}: the hub's MQTT user "${username}" is not a dynsec client; create it (mosquitto_ctrl dynsec createClient) or set FLOTILLA_MQTT_USERNAME to the dynsec admin`,
      );
    }
    return parseData('getClient', GetClientSchema, data).client.roles.some((r) => r.rolename === rolename);
  }

  private async clientsWithRole(rolename: string, signal?: AbortSignal): Promise<string[]> {
    const holders: string[] = [];
    for (let offset = 0; ; offset += LIST_PAGE) {
      const page = parseData('listClients', ListClientsSchema, await this.command('listClients', { verbose: true, count: LIST_PAGE, offset }, signal));
      for (const c of page.clients) if (c.roles.some((r) => r.rolename === rolename)) holders.push(c.username);
      if (page.clients.length === 0 || offset + LIST_PAGE >= page.totalCount) return holders;
    }
  }

  /** Sends one command and resolves with its `data`, or rejects with the broker's error. */
  private async command(command: string, fields: Record<string, unknown>, signal?: AbortSignal): Promise<unknown> {
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const deadline = signal ? AbortSignal.any([signal, timeout]) : timeout;
    const client = await this.whenReady(command, deadline, signal);
    const correlationData = randomUUID();
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.pending.delete(correlationData);
        reject(
          signal?.aborted
            ? (signal.reason as Error)
            : new DynsecUnavailableError(
                command,
                `no answer from ${this.opts.url} within ${this.timeoutMs} ms; is the dynamic security plugin loaded, and may "${this.opts.username}" publish to ${DYNSEC_CONTROL_TOPIC}?`,
              ),
        );
      };
      if (deadline.aborted) return onAbort();
      deadline.addEventListener('abort', onAbort, { once: true });
      const settle = () => {
        deadline.removeEventListener('abort', onAbort);
        this.pending.delete(correlationData);
      };
      this.pending.set(correlationData, {
        command,
        resolve: (data) => {
          settle();
          resolve(data);
        },
        reject: (err) => {
          settle();
          reject(err);
        },
      });
      const body = JSON.stringify({ commands: [{ command, ...fields, correlationData }] });
      client.publish(DYNSEC_CONTROL_TOPIC, body, { qos: 1 }, (err) => {
        if (err) this.pending.get(correlationData)?.reject(new DynsecUnavailableError(command, `could not publish: ${err.message}`));
      });
    });
  }

  /** Connects on first use; resolves once the response topic is subscribed. */
  private whenReady(command: string, deadline: AbortSignal, signal?: AbortSignal): Promise<MqttClient> {
    if (this.closed) return Promise.reject(new DynsecUnavailableError(command, 'the provisioner was closed'));
    const client = this.connect();
    if (this.ready) return Promise.resolve(client);
    return new Promise((resolve, reject) => {
      const waiter: ReadyWaiter = {
        resolve: () => {
          cleanup();
          resolve(client);
        },
        reject: (reason) => {
          cleanup();
          reject(new DynsecUnavailableError(command, reason));
        },
      };
      const onAbort = () => {
        if (signal?.aborted) {
          cleanup();
          return reject(signal.reason as Error);
        }
        waiter.reject(`not connected to ${this.opts.url} within ${this.timeoutMs} ms${this.lastProblem ? ` (${this.lastProblem})` : ''}`);
      };
      const cleanup = () => {
        this.readyWaiters.delete(waiter);
        deadline.removeEventListener('abort', onAbort);
      };
      if (deadline.aborted) return onAbort();
      this.readyWaiters.add(waiter);
      deadline.addEventListener('abort', onAbort, { once: true });
    });
  }

  private connect(): MqttClient {
    if (this.client) return this.client;
    const { url, username, password } = this.opts;
    const client = mqtt.connect(url, {
      clientId: `flotilla-hub-dynsec-${randomBytes(4).toString('hex')}`,
      username,
      password,
      ...tlsOptionsFor(this.opts.ca),
      protocolVersion: 4,
      clean: true,
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
      resubscribe: false, // subscribed on every connect, below, before commands flow
    });
    this.client = client;
    client.on('connect', () => {
      this.lastProblem = null;
      client.subscribe(DYNSEC_RESPONSE_TOPIC, { qos: 1 }, (err) => {
        if (err) {
          // A refused SUBACK: this user is no dynsec admin. Retrying cannot help.
          this.lastProblem = `"${username}" may not subscribe to ${DYNSEC_RESPONSE_TOPIC}: ${err.message}`;
          for (const w of [...this.readyWaiters]) w.reject(this.lastProblem);
          return;
        }
        this.ready = true;
        for (const w of [...this.readyWaiters]) w.resolve();
      });
    });
    client.on('message', (topic, payload) => this.onResponse(topic, payload));
    client.on('close', () => {
      this.ready = false;
      // Clean sessions: answers to commands in flight are gone with the session.
      for (const p of [...this.pending.values()]) p.reject(new DynsecConnectionLostError(p.command, url));
    });
    client.on('error', (err: Error & { code?: unknown }) => {
      this.lastProblem = err.message;
      if (typeof err.code === 'number' && REFUSED_CODES.has(err.code)) {
        for (const w of [...this.readyWaiters]) w.reject(`${url} refused "${username}": ${err.message}`);
      }
    });
    return client;
  }

  private onResponse(topic: string, payload: Buffer): void {
    if (topic !== DYNSEC_RESPONSE_TOPIC) return;
    let parsed: z.infer<typeof ResponsesSchema>;
    try {
      parsed = ResponsesSchema.parse(JSON.parse(payload.toString('utf8')));
    } catch (err) {
      this.opts.log?.warn({ err: (err as Error).message }, 'unreadable dynsec response ignored');
      return;
    }
    for (const r of parsed.responses) {
      // Answers without our correlationData belong to other admins' commands.
      const p = r.correlationData === undefined ? undefined : this.pending.get(r.correlationData);
      if (!p) continue;
      if (r.error !== undefined) p.reject(new DynsecCommandError(p.command, r.error));
      else p.resolve(r.data);
    }
  }

  private failAll(reason: string): void {
    for (const p of [...this.pending.values()]) p.reject(new DynsecUnavailableError(p.command, reason));
    for (const w of [...this.readyWaiters]) w.reject(reason);
  }
}

function isBrokerError(err: unknown, text: string): boolean {
  return err instanceof DynsecCommandError && err.brokerError === text;
}

async function ignoring(text: string, command: Promise<unknown>): Promise<void> {
  try {
    await command;
  } catch (err) {
    if (!isBrokerError(err, text)) throw err;
  }
}

/** The promise, or the signal's reason once the signal aborts first. */
function untilAborted<T>(promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err as Error);
      },
    );
  });
}

function parseData<T>(command: string, schema: z.ZodType<T>, data: unknown): T {
  const parsed = schema.safeParse(data);
  if (!parsed.success) throw new DynsecCommandError(command, `unexpected answer: ${JSON.stringify(data)?.slice(0, 300)}`);
  return parsed.data;
}
