import { mayPublish, maySubscribe } from '@flotilla/contracts';
import type { Logger } from 'pino';
import type { DataSource } from 'typeorm';
import { hashSecret, secretMatches } from '../../common/secrets.js';

/** Who a broker username is: the hub's own login, an enrolled spoke, or nobody. */
export type HookIdentity = { kind: 'hub' } | { kind: 'spoke'; spoke: string };

export interface HookOptions {
  /** How long an answer about a username is reused: revocation takes effect within this (per hub). */
  cacheMs?: number;
  /** Failed password checks per username within failureWindowMs before that username is refused unchecked. */
  maxFailures?: number;
  failureWindowMs?: number;
  /** The RabbitMQ virtual host spokes may use. */
  vhost?: string;
  now?: () => number;
}

/** The exchange RabbitMQ's MQTT plugin publishes to: MQTT topics are its routing keys, `/` written `.`. */
export const MQTT_EXCHANGE = 'amq.topic';

interface SpokeRow {
  name: string;
  credential_hash: string | null;
}

/** A hash compared when the username is unknown, so both refusals cost the same. */
const NO_SUCH_USER_HASH = hashSecret('no such user');

/**
 * The decisions behind FLOTILLA_BROKER_AUTH=http: the broker asks, Postgres
 * answers. Credentials and grants live only in the spokes table, so enrolling
 * or revoking a spoke writes one row and touches no broker configuration.
 *
 * A spoke may connect with its own name as client id, publish to its own
 * status/telemetry/events/presence and subscribe to its own desired/commands
 * topics (the contracts' mayPublish/maySubscribe, the rules every broker
 * backend shares); the hub's own login may do anything. Logins always read
 * Postgres; the authorisation checks that follow (many per connection) reuse
 * a username's row for cacheMs; a username that failed too many password checks is
 * refused without a check until its window passes (no online guessing through
 * the broker). Unknown users and wrong passwords get the same answer.
 */
export class BrokerAuthHooks {
  private readonly cache = new Map<string, { row: SpokeRow | null; at: number }>();
  private readonly failures = new Map<string, number[]>();
  private readonly cacheMs: number;
  private readonly maxFailures: number;
  private readonly failureWindowMs: number;
  private readonly vhost: string;
  private readonly now: () => number;

  constructor(
    private readonly ds: DataSource,
    private readonly hub: { username: string; password: string },
    private readonly log: Logger,
    o: HookOptions = {},
  ) {
    this.cacheMs = o.cacheMs ?? 2_000;
    this.maxFailures = o.maxFailures ?? 10;
    this.failureWindowMs = o.failureWindowMs ?? 60_000;
    this.vhost = o.vhost ?? '/';
    this.now = o.now ?? Date.now;
  }

  /** Checks a login; `clientId` (when the broker tells it) must be the spoke's name. */
  async authenticate(username: string, password: string, clientId?: string): Promise<HookIdentity | null> {
    if (!username || !password) return null;
    if (username === this.hub.username) {
      return password === this.hub.password && (clientId === undefined || clientId.startsWith('flotilla-hub')) ? { kind: 'hub' } : null;
    }
    if (this.tooManyFailures(username)) return null;
    // A login always reads Postgres (one indexed row): a revoked spoke cannot log in again from a cached answer.
    const row = await this.spoke(username, { fresh: true });
    const ok = secretMatches(password, row?.credential_hash ?? NO_SUCH_USER_HASH) && row !== null && row.credential_hash !== null;
    if (!ok) {
      this.fail(username);
      return null;
    }
    if (clientId !== undefined && clientId !== row.name) return null;
    return { kind: 'spoke', spoke: row.name };
  }

  /** Who an already-authenticated username is (authorisation requests carry no password). */
  async identify(username: string): Promise<HookIdentity | null> {
    if (username === this.hub.username) return { kind: 'hub' };
    const row = await this.spoke(username);
    return row ? { kind: 'spoke', spoke: row.name } : null;
  }

  /* --------------------------------------------- RabbitMQ rabbitmq_auth_backend_http */

  /** user_path: `allow` (no tags: no management access) or `deny`. */
  async rabbitUser(p: Record<string, string>): Promise<'allow' | 'deny'> {
    const clientId = p.client_id;
    return (await this.authenticate(p.username ?? '', p.password ?? '', clientId === undefined || clientId === '' ? undefined : clientId)) ? 'allow' : 'deny';
  }

  /** vhost_path: spokes only on the configured virtual host. */
  async rabbitVhost(p: Record<string, string>): Promise<'allow' | 'deny'> {
    const who = await this.identify(p.username ?? '');
    if (!who) return 'deny';
    return who.kind === 'hub' || p.vhost === this.vhost ? 'allow' : 'deny';
  }

  /**
   * resource_path: a spoke may write to and read from (bind to) amq.topic,
   * and use the subscription queues the MQTT plugin makes for its own client
   * id (`mqtt-subscription-<spoke>qos0|qos1`); nothing else, and never
   * configure an exchange.
   */
  async rabbitResource(p: Record<string, string>): Promise<'allow' | 'deny'> {
    const who = await this.identify(p.username ?? '');
    if (!who) return 'deny';
    if (who.kind === 'hub') return 'allow';
    if (p.vhost !== this.vhost) return 'deny';
    const permission = p.permission;
    if (p.resource === 'exchange') return p.name === MQTT_EXCHANGE && (permission === 'write' || permission === 'read') ? 'allow' : 'deny';
    if (p.resource === 'queue') {
      const own = p.name === `mqtt-subscription-${who.spoke}qos0` || p.name === `mqtt-subscription-${who.spoke}qos1`;
      return own && (permission === 'configure' || permission === 'read' || permission === 'write') ? 'allow' : 'deny';
    }
    // `topic` resources are decided by topic_path.
    return p.resource === 'topic' ? 'allow' : 'deny';
  }

  /**
   * topic_path: the routing key is the MQTT topic with `/` as `.` (and the
   * wildcards `+`, `#` as `*`, `#`); writes are publishes, reads are
   * subscriptions. Decided by the same rules as every other broker.
   */
  async rabbitTopic(p: Record<string, string>): Promise<'allow' | 'deny'> {
    const who = await this.identify(p.username ?? '');
    if (!who) return 'deny';
    if (who.kind === 'hub') return 'allow';
    if (p.vhost !== this.vhost || p.name !== MQTT_EXCHANGE) return 'deny';
    const key = p.routing_key ?? '';
    if (key.includes('/') || key.includes('*') || key.includes('#') || key.includes('+')) return 'deny';
    const topic = key.split('.').join('/');
    if (p.permission === 'write') return mayPublish(who.spoke, topic) ? 'allow' : 'deny';
    if (p.permission === 'read') return maySubscribe(who.spoke, topic) ? 'allow' : 'deny';
    return 'deny';
  }

  /* --------------------------------------------- EMQX HTTP authentication / authorisation */

  /**
   * EMQX authn body (configured as `{"clientid": "${clientid}", "username": "${username}", "password": "${password}"}`):
   * `{"result": "allow" | "deny", "is_superuser": bool}`. The hub is a
   * superuser (it subscribes with `$share/...`); spokes never are.
   */
  async emqxAuthenticate(body: Record<string, unknown>): Promise<{ result: 'allow' | 'deny'; is_superuser: boolean }> {
    const who = await this.authenticate(str(body.username), str(body.password), str(body.clientid));
    if (!who) return { result: 'deny', is_superuser: false };
    return { result: 'allow', is_superuser: who.kind === 'hub' };
  }

  /**
   * EMQX authz body (`{"clientid": "${clientid}", "username": "${username}", "action": "${action}", "topic": "${topic}"}`):
   * `{"result": "allow" | "deny"}`. Always an explicit answer: EMQX takes any
   * other status as `ignore` and moves on to its next authorizer.
   */
  async emqxAuthorize(body: Record<string, unknown>): Promise<{ result: 'allow' | 'deny' }> {
    const who = await this.identify(str(body.username));
    if (!who) return { result: 'deny' };
    if (who.kind === 'hub') return { result: 'allow' };
    if (str(body.clientid) !== who.spoke) return { result: 'deny' };
    const topic = str(body.topic);
    const action = str(body.action);
    if (action === 'publish') return { result: mayPublish(who.spoke, topic) ? 'allow' : 'deny' };
    if (action === 'subscribe') return { result: maySubscribe(who.spoke, topic) ? 'allow' : 'deny' };
    return { result: 'deny' };
  }

  /** Forgets a cached username now (this hub revoked or re-enrolled it). */
  invalidate(username: string): void {
    this.cache.delete(username);
  }

  private async spoke(username: string, o: { fresh?: boolean } = {}): Promise<SpokeRow | null> {
    const hit = this.cache.get(username);
    if (!o.fresh && hit && this.now() - hit.at < this.cacheMs) return hit.row;
    const rows: SpokeRow[] = await this.ds.query(`SELECT name, credential_hash FROM spokes WHERE mqtt_username = $1 AND revoked_at IS NULL LIMIT 1`, [username]);
    const row = rows[0] ?? null;
    this.cache.set(username, { row, at: this.now() });
    if (this.cache.size > 100_000) this.sweepCache();
    return row;
  }

  private tooManyFailures(username: string): boolean {
    return this.recentFailures(username).length >= this.maxFailures;
  }

  private fail(username: string): void {
    const recent = this.recentFailures(username);
    recent.push(this.now());
    this.failures.set(username, recent);
    if (recent.length === this.maxFailures) this.log.warn({ username: username.slice(0, 80) }, 'broker login refused too often; refusing this username unchecked for a while');
    if (this.failures.size > 10_000) {
      for (const k of this.failures.keys()) if (this.recentFailures(k).length === 0) this.failures.delete(k);
    }
  }

  private recentFailures(username: string): number[] {
    const cutoff = this.now() - this.failureWindowMs;
    return (this.failures.get(username) ?? []).filter((t) => t > cutoff);
  }

  private sweepCache(): void {
    const cutoff = this.now() - this.cacheMs;
    for (const [k, v] of this.cache) if (v.at < cutoff) this.cache.delete(k);
  }
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}
