import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Location, LocationSchema, type RouteItem, rankFrom } from '@flotilla/contracts';
import type { Logger } from 'pino';
import { GatewayMetrics } from './gateway-metrics.js';
import { RouteCache } from './route-cache.js';
import { SpokeEjector } from './spoke-ejector.js';
import { UpstreamClient, UpstreamError, type UpstreamResponse } from './upstream.js';

export interface GatewayConfig {
  host: string;
  port: number;
  hubUrl: string;
  /** A token of a read-only role (viewer): the gateway only reads the route table. */
  token: string;
  /** Where callers are when they send no x-client-lat / x-client-lon. */
  defaultLocation: Location | null;
  /** PEM of extra CA certificates for an https:// hub or spokes. */
  ca?: string | undefined;
  pollMs: number;
  maxStaleMs: number;
  maxBodyBytes: number;
  maxResponseBytes: number;
  /** One attempt on one spoke. */
  attemptTimeoutMs: number;
  /** The whole request, retries included. */
  requestTimeoutMs: number;
  /** Spokes tried per request at most. */
  maxAttempts: number;
  /** First circuit-breaker ejection of a failing spoke. */
  ejectMs: number;
}

export const GATEWAY_DEFAULTS = {
  pollMs: 2_000,
  maxStaleMs: 30_000,
  maxBodyBytes: 8 * 1024 * 1024,
  maxResponseBytes: 64 * 1024 * 1024,
  attemptTimeoutMs: 30_000,
  requestTimeoutMs: 60_000,
  maxAttempts: 3,
  ejectMs: 10_000,
} as const;

/** Request headers passed on to a spoke (KServe v2 binary extension and tracing included); everything else stays here. */
const FORWARDED_REQUEST_HEADERS = ['content-type', 'accept', 'inference-header-content-length', 'x-request-id', 'traceparent', 'tracestate'];
/** Answer headers passed back to the caller. */
const FORWARDED_RESPONSE_HEADERS = ['content-type', 'inference-header-content-length'];
const MODEL_PATH = /^\/v2\/models\/([a-z0-9](?:[-a-z0-9]*[a-z0-9])?)((?:\/versions\/[^/]+)?(?:\/ready|\/infer)?)\/?$/;

class HttpProblem extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * `flotilla gateway`: a stateless KServe v2 HTTP endpoint in front of the
 * fleet. Each request goes to the best spoke for the caller's location (the
 * hub's route table, ranked here by distance, load and p99); a connection
 * error, a timeout or a 5xx sends it on to the next spoke (inference is
 * idempotent) and ejects the failing one for a while. The answering spoke is
 * named in `x-flotilla-spoke`. Run as many as wanted: each keeps its own
 * copy of the table and nothing else.
 */
export class InferenceGateway {
  readonly metrics = new GatewayMetrics();
  private readonly upstream: UpstreamClient;
  private readonly routes: RouteCache;
  private readonly ejector: SpokeEjector;
  private readonly server: http.Server;

  constructor(
    private readonly c: GatewayConfig,
    private readonly log: Logger,
  ) {
    this.upstream = new UpstreamClient({ ca: c.ca, maxResponseBytes: c.maxResponseBytes });
    this.routes = new RouteCache(
      { hubUrl: c.hubUrl, token: c.token, pollMs: c.pollMs, maxStaleMs: c.maxStaleMs, forgetAfterMs: 600_000, requestTimeoutMs: Math.min(10_000, c.requestTimeoutMs) },
      this.upstream,
      this.metrics,
      log.child({ component: 'routes' }),
    );
    this.ejector = new SpokeEjector(c.ejectMs);
    this.server = http.createServer({ requestTimeout: c.requestTimeoutMs + 5_000, headersTimeout: Math.min(30_000, c.requestTimeoutMs), keepAliveTimeout: 65_000 }, (req, res) => {
      void this.handle(req, res);
    });
  }

  /** Listens; resolves with the URL it serves. */
  async start(): Promise<string> {
    this.routes.start();
    await this.routes.probeHub();
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.c.port, this.c.host, () => resolve());
    });
    const { port } = this.server.address() as AddressInfo;
    const host = this.c.host === '0.0.0.0' || this.c.host === '::' ? '127.0.0.1' : this.c.host;
    return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  }

  async stop(): Promise<void> {
    this.routes.stop();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      // A stateless gateway has nothing to finish: kept-alive client connections end now.
      this.server.closeAllConnections();
    });
    this.upstream.close();
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0] as string;
    try {
      if (path === '/metrics' && req.method === 'GET') {
        this.metrics.ejected.set(this.ejector.ejectedSpokes().length);
        res.writeHead(200, { 'content-type': this.metrics.registry.contentType }).end(await this.metrics.registry.metrics());
        return;
      }
      if (path === '/v2/health/live' && req.method === 'GET') return json(res, 200, { live: true });
      if (path === '/v2/health/ready' && req.method === 'GET') {
        const ready = this.routes.hubFresh() || (await this.routes.probeHub());
        return json(res, ready ? 200 : 503, ready ? { ready: true } : { ready: false, error: 'the hub has not answered recently' });
      }
      const m = MODEL_PATH.exec(path);
      if (!m) throw new HttpProblem(404, `no route ${req.method} ${path}: this gateway serves /v2/models/NAME[/versions/V][/ready|/infer], /v2/health/live|ready and /metrics`);
      const suffix = m[2] ?? '';
      const isInfer = suffix.endsWith('/infer');
      if (isInfer ? req.method !== 'POST' : req.method !== 'GET') throw new HttpProblem(405, `${req.method} is not allowed on ${path} (${isInfer ? 'POST' : 'GET'} is)`);
      await this.forward(req, res, m[1] as string, suffix, isInfer);
    } catch (err) {
      if (err instanceof HttpProblem) {
        if (!res.headersSent) json(res, err.status, { error: err.message });
        return;
      }
      this.log.error({ err }, 'gateway request failed');
      if (!res.headersSent) json(res, 500, { error: 'the gateway failed; see its log' });
    }
  }

  private async forward(req: http.IncomingMessage, res: http.ServerResponse, model: string, suffix: string, hasBody: boolean): Promise<void> {
    const started = process.hrtime.bigint();
    const deadline = Date.now() + this.c.requestTimeoutMs;
    const near = callerLocation(req, this.c.defaultLocation);
    const body = hasBody ? await readBounded(req, this.c.maxBodyBytes) : null;
    const version = /^\/versions\/([^/]+)/.exec(suffix)?.[1];
    const done = (status: number, spoke: string) => {
      this.metrics.requests.inc({ model, spoke, code: String(status) });
      this.metrics.duration.observe({ model }, Number(process.hrtime.bigint() - started) / 1e9);
    };

    const table = await this.routes.candidates(model);
    if (!table.ok) {
      done(503, 'none');
      return json(res, 503, { error: `no spoke can serve ${model}: ${table.reason}` });
    }
    const servable = version === undefined ? table.items : table.items.filter((i) => i.servingVersion === decodeURIComponent(version));
    if (servable.length === 0) {
      done(503, 'none');
      return json(res, 503, { error: `no spoke can serve ${model}: none of the ${table.items.length} healthy spokes serves version ${decodeURIComponent(version as string)}` });
    }
    const order = this.attemptOrder(rankFrom(servable, near));
    const headers = pick(req.headers, FORWARDED_REQUEST_HEADERS);
    const failures: string[] = [];
    for (let i = 0; i < order.length && i < this.c.maxAttempts; i++) {
      const spoke = order[i] as RouteItem;
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        failures.push('the request deadline passed');
        break;
      }
      const outcome = await this.attempt(spoke, suffix, req.method as string, headers, body, Math.min(this.c.attemptTimeoutMs, remaining));
      if ('response' in outcome && outcome.response.status < 500) {
        this.ejector.succeeded(spoke.spoke);
        const r = outcome.response;
        res.writeHead(r.status, { ...pick(r.headers, FORWARDED_RESPONSE_HEADERS), 'x-flotilla-spoke': spoke.spoke, 'x-flotilla-attempts': String(i + 1) });
        res.end(r.body);
        done(r.status, spoke.spoke);
        return;
      }
      const reason = 'response' in outcome ? `HTTP ${outcome.response.status}` : outcome.error;
      this.log.debug({ model, spoke: spoke.spoke, attempt: i + 1, reason }, 'attempt failed; trying the next spoke');
      failures.push(`${spoke.spoke}: ${reason}`);
      this.ejector.failed(spoke.spoke);
      this.metrics.upstreamErrors.inc({ spoke: spoke.spoke, reason: 'response' in outcome ? `http_${outcome.response.status}` : outcome.code });
      if (i + 1 < Math.min(order.length, this.c.maxAttempts)) this.metrics.retries.inc({ spoke: spoke.spoke });
      // The caller went away (its socket closed): nobody to answer. (`req.destroyed` is true once its body was read.)
      if (res.destroyed) return;
    }
    done(503, 'none');
    json(res, 503, { error: `no spoke could serve ${model}: ${failures.join('; ')}` });
  }

  /** Healthy spokes first in rank order, then the ejected ones (better a spoke that may have recovered than none). */
  private attemptOrder(ranked: RouteItem[]): RouteItem[] {
    const open = ranked.filter((r) => !this.ejector.ejected(r.spoke));
    return open.length === ranked.length ? ranked : [...open, ...ranked.filter((r) => this.ejector.ejected(r.spoke))];
  }

  private async attempt(
    spoke: RouteItem,
    suffix: string,
    method: string,
    headers: http.OutgoingHttpHeaders,
    body: Buffer | null,
    timeoutMs: number,
  ): Promise<{ response: UpstreamResponse } | { error: string; code: string }> {
    const url = new URL(spoke.endpoint.replace(/\/+$/, '') + suffix);
    for (let tries = 0; ; tries++) {
      try {
        return { response: await this.upstream.request(url, method, headers, body, timeoutMs) };
      } catch (err) {
        const e = err as UpstreamError;
        // A kept-alive socket the spoke closed while idle says nothing about the spoke: send once more on a new one.
        if (e instanceof UpstreamError && e.reusedSocket && e.code === 'ECONNRESET' && tries === 0) continue;
        return { error: e.message, code: e instanceof UpstreamError ? e.code : 'Error' };
      }
    }
  }
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}

function pick(headers: http.IncomingHttpHeaders, names: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of names) {
    const v = headers[n];
    if (typeof v === 'string') out[n] = v;
  }
  return out;
}

/** The caller's position from x-client-lat / x-client-lon (both or neither), else the configured default. */
function callerLocation(req: http.IncomingMessage, fallback: Location | null): Location | null {
  const lat = req.headers['x-client-lat'];
  const lon = req.headers['x-client-lon'];
  if (lat === undefined && lon === undefined) return fallback;
  if (typeof lat !== 'string' || typeof lon !== 'string') throw new HttpProblem(400, 'send x-client-lat and x-client-lon together, once each');
  const parsed = LocationSchema.safeParse({ lat: Number(lat), lon: Number(lon) });
  if (!parsed.success || lat.trim() === '' || lon.trim() === '') {
    throw new HttpProblem(400, `x-client-lat/x-client-lon must be decimal degrees (lat -90..90, lon -180..180); got ${JSON.stringify(lat)}, ${JSON.stringify(lon)}`);
  }
  return parsed.data;
}

/** The request body, refused with 413 past `max` bytes (checked on content-length first, then as it streams). */
function readBounded(req: http.IncomingMessage, max: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > max) {
    req.resume();
    return Promise.reject(new HttpProblem(413, `request body of ${declared} bytes is over the gateway's limit of ${max}`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) {
        req.removeAllListeners('data');
        req.resume();
        reject(new HttpProblem(413, `request body over the gateway's limit of ${max} bytes`));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', (err) => reject(new HttpProblem(400, `request body not read: ${err.message}`)));
  });
}
