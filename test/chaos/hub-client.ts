import { randomBytes } from 'node:crypto';

/**
 * The admin API as the driver uses it: every request carries its own
 * X-Request-Id (the hub records it in the audit event), and a connection
 * error is an outcome, not an exception, since the hub is killed while the
 * driver talks to it.
 */

export interface ApiAttempt {
  requestId: string;
  method: string;
  route: string;
  startedAt: number;
  endedAt: number;
  /** HTTP status, or null when no answer came (connection refused or reset, timeout). */
  status: number | null;
  body: unknown;
  error?: string;
}

export class HubClient {
  private seq = 0;
  /** What the last failed read got: `HTTP 500: message` or a connection error code. */
  lastFailure: string | null = null;

  constructor(
    readonly apiUrl: string,
    private readonly token: string,
    private readonly idPrefix: string,
  ) {}

  nextRequestId(): string {
    this.seq += 1;
    return `${this.idPrefix}-${this.seq}-${randomBytes(3).toString('hex')}`;
  }

  async call(method: string, route: string, body?: unknown, timeoutMs = 15_000): Promise<ApiAttempt> {
    const requestId = this.nextRequestId();
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}`, 'x-request-id': requestId };
    let payload: string | undefined;
    if (typeof body === 'string') {
      payload = body;
      headers['content-type'] = 'application/yaml';
    } else if (body !== undefined) {
      payload = JSON.stringify(body);
      headers['content-type'] = 'application/json';
    }
    const startedAt = Date.now();
    try {
      const res = await fetch(this.apiUrl + route, { method, headers, body: payload, signal: AbortSignal.timeout(timeoutMs) });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : null;
      } catch {
        // Keep the text.
      }
      return { requestId, method, route, startedAt, endedAt: Date.now(), status: res.status, body: parsed };
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code;
      return { requestId, method, route, startedAt, endedAt: Date.now(), status: null, body: null, error: cause ?? (err as Error).message };
    }
  }

  /** GET that must answer 200; null otherwise (the hub is down or failing). */
  async read<T>(route: string, timeoutMs = 10_000): Promise<T | null> {
    const a = await this.call('GET', route, undefined, timeoutMs);
    if (a.status === 200) return a.body as T;
    const message = (a.body as { error?: { message?: string } } | null)?.error?.message;
    this.lastFailure = a.status === null ? `no answer (${a.error})` : `HTTP ${a.status}${message ? `: ${message.slice(0, 200)}` : ''}`;
    return null;
  }

  async ready(): Promise<boolean> {
    try {
      const r = await fetch(`${this.apiUrl}/readyz`, { signal: AbortSignal.timeout(3_000) });
      return r.ok;
    } catch {
      return false;
    }
  }

  /** Every page of a list endpoint (`{items, nextCursor}`); null if any page fails. */
  async readAll<T>(route: string, limit = 500): Promise<T[] | null> {
    const out: T[] = [];
    let cursor: string | null = null;
    for (let page = 0; page < 1000; page++) {
      const sep = route.includes('?') ? '&' : '?';
      const r: { items: T[]; nextCursor: string | null } | null = await this.read(`${route}${sep}limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      if (!r) return null;
      out.push(...r.items);
      cursor = r.nextCursor;
      if (!cursor) return out;
    }
    return out;
  }
}
