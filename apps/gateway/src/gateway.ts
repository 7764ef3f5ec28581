import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Location } from '@flotilla/contracts';
import type { Logger } from 'pino';
import { GatewayMetrics } from './gateway-metrics.js';
import { type GatewayRoute, RouteCache } from './route-cache.js';
import { SpokeEjector } from './spoke-ejector.js';
import { UpstreamClient, readBody } from './upstream.js';

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
const FORWARDED_REQUEST_HEADERS = ['content-type', 'content-length', 'accept', 'inference-header-content-length', 'x-request-id', 'traceparent', 'tracestate'];
/** Answer headers passed back to the caller. */
const FORWARDED_RESPONSE_HEADERS = ['content-type', 'content-length', 'inference-header-content-length'];
const VERSION_IN_SUFFIX = /^\/versions\/([^/]+)/;
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
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    try {
      const m = MODEL_PATH.exec(path);
      if (m) {
        const suffix = m[2] ?? '';
        const isInfer = suffix.endsWith('/infer');
        if (isInfer ? req.method !== 'POST' : req.method !== 'GET') throw new HttpProblem(405, `${req.method} is not allowed on ${path} (${isInfer ? 'POST' : 'GET'} is)`);
        await this.forward(req, res, m[1] as string, suffix, isInfer);
        return;
      }
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
      throw new HttpProblem(404, `no route ${req.method} ${path}: this gateway serves /v2/models/NAME[/versions/V][/ready|/infer], /v2/health/live|ready and /metrics`);
    } catch (err) {
      if (err instanceof HttpProblem) {
        if (!res.headersSent) json(res, err.status, { error: err.message });
        else res.destroy();
        return;
      }
      this.log.error({ err }, 'gateway request failed');
      if (!res.headersSent) json(res, 500, { error: 'the gateway failed; see its log' });
      else res.destroy();
    }
  }

  /**
   * Sends the request to the best spoke and streams its answer back. The
   * request body goes out to the first spoke as it arrives (no
   * store-and-forward) and is kept, bounded, for a retry; an answer is
   * passed through as it comes once its status says it is not a 5xx. A
   * connection error, a timeout or a 5xx sends the request on to the next
   * spoke, as long as nothing was written to the caller yet.
   */
  private async forward(req: http.IncomingMessage, res: http.ServerResponse, model: string, suffix: string, hasBody: boolean): Promise<void> {
    const started = process.hrtime.bigint();
    const deadline = Date.now() + this.c.requestTimeoutMs;
    const near = callerLocation(req, this.c.defaultLocation);
    const vm = VERSION_IN_SUFFIX.exec(suffix);
    const version = vm ? decodeURIComponent(vm[1] as string) : undefined;
    const done = (status: number, spoke: string) => this.metrics.answer(model, spoke, status, Number(process.hrtime.bigint() - started) / 1e9);

    const body = hasBody ? new RequestBody(req, this.c.maxBodyBytes) : null;
    if (body?.problem) {
      done(body.problem.status, 'none');
      throw body.problem;
    }
    let table = this.routes.ranked(model, version, near);
    if (table === null) {
      const first = await this.routes.candidates(model);
      table = first.ok ? this.routes.ranked(model, version, near) : first;
    }
    if (table === null || !table.ok) {
      body?.discard();
      done(503, 'none');
      return json(res, 503, { error: `no spoke can serve ${model}: ${table?.reason ?? 'no route table'}` });
    }
    const order = this.ejector.any() ? this.attemptOrder(table.items) : table.items;
    const headers = forwardedHeaders(req.headers);
    const failures: string[] = [];
    const attempts = Math.min(order.length, this.c.maxAttempts);
    for (let i = 0; i < attempts; i++) {
      const spoke = order[i] as GatewayRoute;
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        failures.push('the request deadline passed');
        break;
      }
      const outcome = await this.attempt(spoke, suffix, req.method as string, headers, body, res, i + 1, Math.min(this.c.attemptTimeoutMs, remaining));
      if (outcome.kind === 'answered') {
        this.ejector.succeeded(spoke.spoke);
        done(outcome.status, spoke.spoke);
        return;
      }
      if (outcome.kind === 'gone') {
        body?.discard();
        return;
      }
      if (outcome.kind === 'refused') {
        // The request itself is at fault (its body too large or cut off): no spoke is to blame.
        done(outcome.problem.status, 'none');
        throw outcome.problem;
      }
      if (outcome.kind === 'broken') {
        // The answer was cut off after its head went to the caller: too late for another spoke.
        this.ejector.failed(spoke.spoke);
        this.metrics.upstreamErrors.inc({ spoke: spoke.spoke, reason: outcome.code });
        done(outcome.status, spoke.spoke);
        res.destroy();
        return;
      }
      this.log.debug({ model, spoke: spoke.spoke, attempt: i + 1, reason: outcome.reason }, 'attempt failed; trying the next spoke');
      failures.push(`${spoke.spoke}: ${outcome.reason}`);
      this.ejector.failed(spoke.spoke);
      this.metrics.upstreamErrors.inc({ spoke: spoke.spoke, reason: outcome.code });
      if (i + 1 < attempts) this.metrics.retries.inc({ spoke: spoke.spoke });
      // The caller went away (its socket closed): nobody to answer.
      if (res.destroyed) {
        body?.discard();
        return;
      }
    }
    body?.discard();
    done(503, 'none');
    json(res, 503, { error: `no spoke could serve ${model}: ${failures.join('; ')}` });
  }

  /** Healthy spokes first in rank order, then the ejected ones (better a spoke that may have recovered than none). */
  private attemptOrder(ranked: GatewayRoute[]): GatewayRoute[] {
    const open = ranked.filter((r) => !this.ejector.ejected(r.spoke));
    return open.length === ranked.length ? ranked : [...open, ...ranked.filter((r) => this.ejector.ejected(r.spoke))];
  }

  /** One spoke, once more on a fresh socket when a kept-alive one turned out closed. */
  private async attempt(
    spoke: GatewayRoute,
    suffix: string,
    method: string,
    headers: http.OutgoingHttpHeaders,
    body: RequestBody | null,
    res: http.ServerResponse,
    attemptNo: number,
    timeoutMs: number,
  ): Promise<Outcome> {
    for (let tries = 0; ; tries++) {
      const outcome = await this.send(spoke, suffix, method, headers, body, res, attemptNo, timeoutMs);
      // A kept-alive socket the spoke closed while idle says nothing about the spoke: send once more on a new one.
      if (outcome.kind === 'failed' && outcome.reusedSocket && outcome.code === 'ECONNRESET' && tries === 0) continue;
      return outcome;
    }
  }

  private send(
    spoke: GatewayRoute,
    suffix: string,
    method: string,
    headers: http.OutgoingHttpHeaders,
    body: RequestBody | null,
    res: http.ServerResponse,
    attemptNo: number,
    timeoutMs: number,
  ): Promise<Outcome> {
    return new Promise<Outcome>((resolve) => {
      let settled = false;
      const settle = (o: Outcome) => {
        if (settled) return;
        settled = true;
        res.off('close', onCallerGone);
        resolve(o);
      };
      const onCallerGone = () => {
        if (res.writableFinished) return;
        up.destroy();
        settle({ kind: 'gone' });
      };
      const up = this.upstream.open(
        spoke.target,
        spoke.target.basePath + suffix,
        method,
        headers,
        timeoutMs,
        (answer) => {
          const status = answer.statusCode ?? 502;
          if (status >= 500) {
            // Read a little of what the spoke said (only here, on the error path) to name it.
            readBody(answer, 4096).then(
              (b) => settle({ kind: 'failed', code: `http_${status}`, reason: `HTTP ${status}${errorText(b)}`, reusedSocket: false }),
              () => settle({ kind: 'failed', code: `http_${status}`, reason: `HTTP ${status}`, reusedSocket: false }),
            );
            return;
          }
          this.relay(answer, res, spoke.spoke, attemptNo, settle);
        },
        (err) => {
          const problem = body?.problem;
          if (problem) settle({ kind: 'refused', problem });
          else settle({ kind: 'failed', code: err.code, reason: err.message, reusedSocket: err.reusedSocket });
        },
      );
      res.on('close', onCallerGone);
      if (body === null) up.end();
      else body.sendTo(up);
    });
  }

  /** Passes an answer's head and body to the caller as they come, within the response bound. */
  private relay(answer: http.IncomingMessage, res: http.ServerResponse, spoke: string, attemptNo: number, settle: (o: Outcome) => void): void {
    const status = answer.statusCode ?? 502;
    const h = answer.headers;
    const out: string[] = [];
    for (const name of FORWARDED_RESPONSE_HEADERS) {
      const v = h[name];
      if (typeof v === 'string') out.push(name, v);
    }
    out.push('x-flotilla-spoke', spoke, 'x-flotilla-attempts', attemptNo === 1 ? '1' : String(attemptNo));
    res.writeHead(status, out);
    const max = this.c.maxResponseBytes;
    let size = 0;
    answer.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) {
        answer.destroy();
        settle({ kind: 'broken', status, code: 'TooLarge' });
        return;
      }
      if (!res.write(c)) {
        answer.pause();
        res.once('drain', () => answer.resume());
      }
    });
    answer.on('end', () => {
      res.end();
      settle({ kind: 'answered', status });
    });
    answer.on('aborted', () => settle({ kind: 'broken', status, code: 'ECONNRESET' }));
    answer.on('error', () => settle({ kind: 'broken', status, code: 'ResponseError' }));
  }
}

type Outcome =
  | { kind: 'answered'; status: number }
  /** No answer, or a 5xx, and nothing sent to the caller: the next spoke may try. */
  | { kind: 'failed'; code: string; reason: string; reusedSocket: boolean }
  /** The answer broke off after its head went to the caller. */
  | { kind: 'broken'; status: number; code: string }
  /** The caller's request is at fault (its body). */
  | { kind: 'refused'; problem: HttpProblem }
  /** The caller went away: nobody to answer, no spoke to blame. */
  | { kind: 'gone' };

/**
 * The caller's request body: streamed to the first spoke as it arrives and
 * kept (up to the gateway's bound, as the chunks read) for a retry on
 * another spoke. Refused with 413 past the bound, on the declared length
 * first.
 */
class RequestBody {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private ended = false;
  /** Why the body cannot be forwarded (too large, cut off). */
  problem: HttpProblem | null = null;
  /** The first attempt, fed as the body arrives. */
  private sink: http.ClientRequest | null = null;
  private streamed = false;
  private readonly waiting: Array<() => void> = [];

  constructor(
    private readonly req: http.IncomingMessage,
    max: number,
  ) {
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (Number.isFinite(declared) && declared > max) {
      this.fail(new HttpProblem(413, `request body of ${declared} bytes is over the gateway's limit of ${max}`));
      return;
    }
    req.on('data', (c: Buffer) => {
      if (this.problem) return;
      this.size += c.length;
      if (this.size > max) {
        this.fail(new HttpProblem(413, `request body over the gateway's limit of ${max} bytes`));
        return;
      }
      this.chunks.push(c);
      if (this.sink !== null && !this.sink.destroyed) this.sink.write(c);
    });
    req.on('end', () => {
      this.ended = true;
      if (this.sink !== null && !this.sink.destroyed) this.sink.end();
      this.sink = null;
      this.wake();
    });
    req.on('error', (err) => this.fail(new HttpProblem(400, `request body not read: ${err.message}`)));
  }

  /**
   * Writes the body to `up`. The first attempt gets what arrived so far and
   * then the rest as it comes; a retry gets all of it once it has arrived.
   */
  sendTo(up: http.ClientRequest): void {
    if (this.problem) return void up.destroy(new Error(this.problem.message));
    if (!this.streamed) {
      this.streamed = true;
      up.cork();
      for (const c of this.chunks) up.write(c);
      if (this.ended) up.end();
      else this.sink = up;
      up.uncork();
      return;
    }
    this.sink = null;
    const send = () => {
      if (this.problem) return void up.destroy(new Error(this.problem.message));
      up.setHeader('content-length', this.size);
      up.cork();
      for (const c of this.chunks) up.write(c);
      up.end();
      up.uncork();
    };
    if (this.ended) send();
    else this.waiting.push(send);
  }

  /** Stops reading: nobody will need the body. */
  discard(): void {
    this.sink = null;
    this.waiting.length = 0;
    if (!this.ended) this.req.resume();
  }

  private fail(problem: HttpProblem): void {
    if (this.problem) return;
    this.problem = problem;
    this.chunks.length = 0;
    this.sink?.destroy(new Error(problem.message));
    this.sink = null;
    this.req.resume();
    this.wake();
  }

  private wake(): void {
    for (const w of this.waiting.splice(0)) w();
  }
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}

/** The caller's headers a spoke gets: the KServe ones, tracing, and the body's length when declared. */
function forwardedHeaders(headers: http.IncomingHttpHeaders): http.OutgoingHttpHeaders {
  const out: http.OutgoingHttpHeaders = {};
  for (const n of FORWARDED_REQUEST_HEADERS) {
    const v = headers[n];
    if (typeof v === 'string') out[n] = v;
  }
  return out;
}

/** What a failing spoke said, shortened, for the 503 that names every failure. */
function errorText(b: Buffer): string {
  if (b.length === 0) return '';
  const text = b.toString('utf8', 0, Math.min(b.length, 300));
  try {
    const parsed = JSON.parse(b.toString('utf8')) as { error?: unknown };
    if (typeof parsed.error === 'string') return `: ${parsed.error.slice(0, 300)}`;
  } catch {
    /* not JSON */
  }
  return `: ${text.replace(/\s+/g, ' ').trim()}`;
}

/** The caller's position from x-client-lat / x-client-lon (both or neither), else the configured default. */
function callerLocation(req: http.IncomingMessage, fallback: Location | null): Location | null {
  const lat = req.headers['x-client-lat'];
  const lon = req.headers['x-client-lon'];
  if (lat === undefined && lon === undefined) return fallback;
  if (typeof lat !== 'string' || typeof lon !== 'string') throw new HttpProblem(400, 'send x-client-lat and x-client-lon together, once each');
  // The same bounds as LocationSchema, checked by hand: this runs on every request.
  const la = Number(lat);
  const lo = Number(lon);
  if (!(la >= -90 && la <= 90 && lo >= -180 && lo <= 180) || lat.trim() === '' || lon.trim() === '') {
    throw new HttpProblem(400, `x-client-lat/x-client-lon must be decimal degrees (lat -90..90, lon -180..180); got ${JSON.stringify(lat)}, ${JSON.stringify(lon)}`);
  }
  return { lat: la, lon: lo };
}
