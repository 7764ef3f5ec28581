import { timingSafeEqual } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { BrokerAuthHooks } from './broker-auth-hooks.js';

export interface HookServerOptions {
  host: string;
  port: number;
  /** The shared secret the broker presents: `Authorization: Bearer <s>`, Basic with it as password, or `?secret=<s>`. */
  secret: string;
  /** Requests refused for a bad secret, per client address per minute, before it is answered 429 unchecked. */
  maxBadSecrets?: number;
}

const MAX_BODY = 8 * 1024;
const BODY_TIMEOUT_MS = 5_000;

/**
 * The broker-facing HTTP endpoint of FLOTILLA_BROKER_AUTH=http, on its own
 * listener (FLOTILLA_BROKER_HOOK_HOST, loopback by default, and
 * FLOTILLA_BROKER_HOOK_PORT) rather than the admin API: only the broker
 * calls it, it speaks the brokers' formats rather than the API's, and it is
 * not an oracle for anyone else. Every request must carry the shared secret;
 * addresses that present wrong ones are throttled; answers never say whether
 * a username exists.
 *
 * Routes (GET with a query string, or POST with a form or JSON body):
 *   /rabbitmq/user, /rabbitmq/vhost, /rabbitmq/resource, /rabbitmq/topic -> text `allow` | `deny`
 *   /emqx/authn, /emqx/authz -> JSON `{"result": ...}`
 */
export class BrokerHookServer {
  private readonly server: http.Server;
  private readonly badSecrets = new Map<string, number[]>();
  private readonly maxBadSecrets: number;

  constructor(
    private readonly hooks: BrokerAuthHooks,
    private readonly o: HookServerOptions,
    private readonly log: Logger,
  ) {
    this.maxBadSecrets = o.maxBadSecrets ?? 20;
    this.server = http.createServer((req, res) => void this.handle(req, res));
    this.server.keepAliveTimeout = 30_000;
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 10_000;
  }

  /** Listens; resolves with the base URL. */
  async listen(): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.o.port, this.o.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const { port } = this.server.address() as AddressInfo;
    const host = this.o.host === '0.0.0.0' || this.o.host === '::' ? '127.0.0.1' : this.o.host;
    return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  }

  async close(): Promise<void> {
    this.server.closeIdleConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const from = req.socket.remoteAddress ?? 'unknown';
    try {
      const url = new URL(req.url ?? '/', 'http://hook');
      if (this.throttled(from)) return send(res, 429, 'text/plain', 'too many bad secrets\n');
      if (!this.authorised(req, url)) {
        this.noteBadSecret(from);
        return send(res, 401, 'text/plain', 'unauthorised\n');
      }
      if (req.method !== 'GET' && req.method !== 'POST') return send(res, 405, 'text/plain', 'GET or POST\n');
      const params = req.method === 'GET' ? Object.fromEntries(url.searchParams) : await readParams(req);
      if (params === null) return send(res, 400, 'text/plain', 'unreadable body\n');
      const h = this.hooks;
      switch (url.pathname) {
        case '/rabbitmq/user':
          return send(res, 200, 'text/plain', await h.rabbitUser(strings(params)));
        case '/rabbitmq/vhost':
          return send(res, 200, 'text/plain', await h.rabbitVhost(strings(params)));
        case '/rabbitmq/resource':
          return send(res, 200, 'text/plain', await h.rabbitResource(strings(params)));
        case '/rabbitmq/topic':
          return send(res, 200, 'text/plain', await h.rabbitTopic(strings(params)));
        case '/emqx/authn':
          return send(res, 200, 'application/json', JSON.stringify(await h.emqxAuthenticate(params)));
        case '/emqx/authz':
          return send(res, 200, 'application/json', JSON.stringify(await h.emqxAuthorize(params)));
        default:
          return send(res, 404, 'text/plain', 'no such hook\n');
      }
    } catch (err) {
      // Postgres down, say: the broker refuses (RabbitMQ on non-200) or, for EMQX, a 5xx is `ignore`; deny explicitly.
      this.log.error({ err: (err as Error).message, path: (req.url ?? '').split('?')[0] }, 'broker auth hook failed; denying');
      if ((req.url ?? '').startsWith('/emqx/')) return send(res, 200, 'application/json', JSON.stringify({ result: 'deny' }));
      return send(res, 200, 'text/plain', 'deny');
    }
  }

  private authorised(req: IncomingMessage, url: URL): boolean {
    const auth = req.headers.authorization ?? '';
    let presented: string | null = null;
    if (auth.startsWith('Bearer ')) presented = auth.slice(7).trim();
    else if (auth.startsWith('Basic ')) {
      const decoded = Buffer.from(auth.slice(6).trim(), 'base64').toString('utf8');
      presented = decoded.slice(decoded.indexOf(':') + 1);
    } else presented = url.searchParams.get('secret');
    if (presented === null) return false;
    const a = Buffer.from(presented);
    const b = Buffer.from(this.o.secret);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  private throttled(from: string): boolean {
    return this.recent(from).length >= this.maxBadSecrets;
  }

  private noteBadSecret(from: string): void {
    const recent = this.recent(from);
    recent.push(Date.now());
    this.badSecrets.set(from, recent);
    if (recent.length === 1) this.log.warn({ from }, 'broker auth hook called without the right secret');
    if (this.badSecrets.size > 10_000) for (const k of this.badSecrets.keys()) if (this.recent(k).length === 0) this.badSecrets.delete(k);
  }

  private recent(from: string): number[] {
    const cutoff = Date.now() - 60_000;
    return (this.badSecrets.get(from) ?? []).filter((t) => t > cutoff);
  }
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

function strings(p: Record<string, unknown>): Record<string, string> {
  return Object.fromEntries(Object.entries(p).filter(([, v]) => typeof v === 'string')) as Record<string, string>;
}

/** A form (RabbitMQ's POST) or JSON (EMQX) body, bounded in size and time; null when unreadable. */
async function readParams(req: IncomingMessage): Promise<Record<string, unknown> | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  const timer = setTimeout(() => req.destroy(), BODY_TIMEOUT_MS);
  try {
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > MAX_BODY) return null;
      chunks.push(chunk as Buffer);
    }
  } finally {
    clearTimeout(timer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  const type = req.headers['content-type'] ?? '';
  if (type.includes('json')) {
    try {
      const parsed: unknown = JSON.parse(text);
      return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : null;
    } catch {
      return null;
    }
  }
  return Object.fromEntries(new URLSearchParams(text));
}
