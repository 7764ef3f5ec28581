import { CliError, EXIT } from '../exit-codes.js';
import { trustCa } from './trust-ca.js';

/** Where the admin API is and who we are: flags win over FLOTILLA_URL / FLOTILLA_TOKEN. */
export interface HubTarget {
  url: string;
  token: string;
}

export interface ConnectionFlags {
  url?: string;
  token?: string;
  /** CA certificate file for an https:// hub (else FLOTILLA_CA, else the system store). */
  ca?: string;
}

export function resolveTarget(flags: ConnectionFlags, env: NodeJS.ProcessEnv = process.env): HubTarget {
  const url = flags.url ?? env.FLOTILLA_URL;
  const token = flags.token ?? env.FLOTILLA_TOKEN;
  const missing = [!url ? 'the hub URL (--url or FLOTILLA_URL)' : null, !token ? 'an API token (--token or FLOTILLA_TOKEN)' : null].filter(Boolean);
  if (missing.length) throw new CliError(`needs ${missing.join(' and ')}`, EXIT.usage);
  trustCa(flags.ca ?? env.FLOTILLA_CA);
  return { url: checkedUrl(url as string), token: token as string };
}

/** The hub URL alone, for public routes (version); null when none is configured. */
export function resolveUrl(flags: ConnectionFlags, env: NodeJS.ProcessEnv = process.env): string | null {
  const url = flags.url ?? env.FLOTILLA_URL;
  if (url) trustCa(flags.ca ?? env.FLOTILLA_CA);
  return url ? checkedUrl(url) : null;
}

function checkedUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('scheme');
  } catch {
    throw new CliError(`hub URL ${JSON.stringify(url)} is not an http(s) URL`, EXIT.usage);
  }
  return url.replace(/\/+$/, '');
}

/** A problem as the hub reports it in `error.details.problems`. */
export interface HubProblem {
  file?: string;
  line?: number;
  column?: number;
  field?: string;
  message: string;
}

/** `file:line:column field: message`, the form editors and terminals link; shorter when parts are unknown. */
export function formatProblem(p: HubProblem): string {
  const where = p.file ? (p.line ? `${p.file}:${p.line}:${p.column ?? 0}` : p.file) : '';
  const field = p.field ? `${p.field}: ` : '';
  return [where, `${field}${p.message}`].filter(Boolean).join(' ');
}

interface ErrorBody {
  error?: { code?: string; message?: string; details?: { problems?: HubProblem[] } & Record<string, unknown> };
}

/** The hub said no: the exit code tells scripts whether the input, the caller or the hub is at fault. */
export class HubError extends CliError {
  constructor(
    message: string,
    exitCode: number,
    readonly status: number,
    readonly code: string,
    readonly problems: HubProblem[],
  ) {
    super(message, exitCode);
    this.name = 'HubError';
  }
}

function toHubError(status: number, body: unknown, method: string, route: string): HubError {
  const err = (body as ErrorBody | null)?.error;
  const code = err?.code ?? `http_${status}`;
  const problems = Array.isArray(err?.details?.problems) ? err.details.problems : [];
  let message = err?.message ?? (typeof body === 'string' && body ? body.slice(0, 300) : `HTTP ${status}`);
  // The problems are listed one a line below, so the summary need not repeat them.
  if (problems.length) message = `${message.replace(/:.*$/s, '')}:\n${problems.map((p) => `  ${formatProblem(p)}`).join('\n')}`;
  const exit = status === 400 || status === 422 ? EXIT.invalid : status >= 500 ? EXIT.failure : EXIT.refused;
  const prefix =
    status === 401
      ? 'the hub did not accept the token (check --token / FLOTILLA_TOKEN): '
      : status === 403
        ? 'not allowed: '
        : status >= 500
          ? `the hub failed (${status} ${code}) on ${method} ${route}: `
          : '';
  return new HubError(`${prefix}${message}`, exit, status, code, problems);
}

export interface RequestOptions {
  query?: Record<string, string | undefined>;
  /** JSON body. */
  json?: unknown;
  signal?: AbortSignal;
}

/** The admin API over fetch: bearer token, JSON both ways, errors mapped to exit codes. */
export class HubClient {
  constructor(
    readonly target: HubTarget,
    private readonly timeoutMs = 60_000,
    /** Aborts every request of this client (Ctrl-C during a watch). */
    private readonly signal?: AbortSignal,
  ) {}

  async request<T>(method: string, route: string, opts: RequestOptions = {}): Promise<T> {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) q.set(k, v);
    const url = `${this.target.url}${route}${q.size ? `?${q}` : ''}`;
    const headers: Record<string, string> = { accept: 'application/json' };
    // An empty token: a public route (version, health), asked without credentials.
    if (this.target.token) headers.authorization = `Bearer ${this.target.token}`;
    if (opts.json !== undefined) headers['content-type'] = 'application/json';
    const signal = AbortSignal.any([AbortSignal.timeout(this.timeoutMs), ...[opts.signal, this.signal].filter((s): s is AbortSignal => s !== undefined)]);
    let res: Response;
    let text: string;
    try {
      res = await fetch(url, { method, headers, body: opts.json === undefined ? undefined : JSON.stringify(opts.json), signal });
      text = await res.text();
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const why = (err as Error).name === 'TimeoutError' ? `no answer within ${this.timeoutMs / 1000}s` : (cause?.code ?? cause?.message ?? (err as Error).message);
      throw new CliError(`cannot reach the hub at ${this.target.url}: ${why}`, EXIT.failure);
    }
    let body: unknown = text;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      /* not JSON: kept as text for the error message */
    }
    if (!res.ok) throw toHubError(res.status, body, method, route);
    return body as T;
  }

  /** Every item of a paged list, following nextCursor. */
  async list<T>(route: string, query: Record<string, string | undefined> = {}): Promise<T[]> {
    const items: T[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.request<{ items: T[]; nextCursor: string | null }>('GET', route, { query: { ...query, limit: '500', cursor } });
      items.push(...page.items);
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    return items;
  }
}
