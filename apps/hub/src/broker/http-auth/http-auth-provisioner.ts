import type { Logger } from 'pino';
import type { BrokerProvisioner } from '../broker-provisioner.js';
import type { BrokerAuthHooks } from './broker-auth-hooks.js';

export interface SessionKillerOptions {
  kind: 'mosquitto' | 'emqx' | 'rabbitmq';
  /** Management API base with credentials in it (`http://user:pass@host:15672`), or null. */
  adminUrl: string | null;
  log: Logger;
  fetchImpl?: typeof fetch;
}

/**
 * FLOTILLA_BROKER_AUTH=http: the broker asks the hub (BrokerAuthHooks) on
 * every login, so enrolment provisions nothing and revocation only has to
 * end the spoke's live session (brokers do not ask again about a connection
 * already open, and RabbitMQ's MQTT plugin caches topic grants per
 * connection). With FLOTILLA_BROKER_ADMIN_URL the session is closed through
 * the broker's management API (RabbitMQ: the connections of the user;
 * EMQX: the client named after the spoke); without it the spoke keeps its
 * open session until it drops, and can never log in again.
 */
export class HttpAuthProvisioner implements BrokerProvisioner {
  private readonly fetch: typeof fetch;

  constructor(
    private readonly hooks: BrokerAuthHooks,
    private readonly o: SessionKillerOptions,
  ) {
    this.fetch = o.fetchImpl ?? fetch;
  }

  async provisionSpoke(): Promise<void> {}

  async revokeSpoke(spoke: string, username: string): Promise<void> {
    this.hooks.invalidate(username);
    await this.endSessions(spoke, username);
  }

  async revokeCredentials(username: string): Promise<void> {
    this.hooks.invalidate(username);
  }

  async listSpokeUsernames(): Promise<string[] | null> {
    return null;
  }

  async close(): Promise<void> {}

  private async endSessions(spoke: string, username: string): Promise<void> {
    if (!this.o.adminUrl) return;
    const base = new URL(this.o.adminUrl);
    const auth = `Basic ${Buffer.from(`${decodeURIComponent(base.username)}:${decodeURIComponent(base.password)}`).toString('base64')}`;
    base.username = '';
    base.password = '';
    const root = base.toString().replace(/\/$/, '');
    const call = async (method: string, path: string): Promise<Response> => {
      const res = await this.fetch(`${root}${path}`, { method, headers: { authorization: auth }, signal: AbortSignal.timeout(10_000) });
      if (!res.ok && res.status !== 404) throw new Error(`${method} ${path} answered ${res.status}`);
      return res;
    };
    if (this.o.kind === 'emqx') {
      await call('DELETE', `/api/v5/clients/${encodeURIComponent(spoke)}`);
    } else if (this.o.kind === 'rabbitmq') {
      const res = await call('GET', '/api/connections?columns=name,user');
      const conns = (await res.json()) as { name: string; user: string }[];
      for (const c of conns.filter((x) => x.user === username)) await call('DELETE', `/api/connections/${encodeURIComponent(c.name)}`);
    }
    this.o.log.info({ spoke, kind: this.o.kind }, 'ended the broker session of a revoked spoke');
  }
}
