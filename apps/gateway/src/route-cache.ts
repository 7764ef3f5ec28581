import { type Location, type RouteItem, type RouteResponse, RouteResponseSchema, rankFrom } from '@flotilla/contracts';
import type { Logger } from 'pino';
import type { GatewayMetrics } from './gateway-metrics.js';
import { type UpstreamClient, type UpstreamTarget, upstreamTarget } from './upstream.js';

/** A spoke of the table with its endpoint already split for the HTTP client. */
export type GatewayRoute = RouteItem & { target: UpstreamTarget };

/**
 * Callers are ranked from their position rounded to this many degrees
 * (0.01 degree: about 1 km), so that the ranking of one bucket serves every
 * caller in it until the table changes.
 */
export const LOCATION_BUCKET_DEGREES = 0.01;
/** Rankings kept per model between two reads of its table (a bound on memory, whatever callers send). */
const MAX_RANKINGS = 4096;

export interface RouteCacheOptions {
  hubUrl: string;
  token: string;
  /** How often each model in use is read again from the hub. */
  pollMs: number;
  /** A table the hub has not confirmed for this long is not used. */
  maxStaleMs: number;
  /** A model nobody asked for in this long is no longer followed. */
  forgetAfterMs: number;
  requestTimeoutMs: number;
}

interface ModelRoutes {
  items: GatewayRoute[];
  /** Rankings of `items` per (version, caller bucket); emptied whenever `items` is replaced. */
  ranked: Map<string, GatewayRoute[]>;
  /** When the hub last answered for this model (0: never). */
  fetchedAt: number;
  lastUsed: number;
  lastError: string | null;
  inflight: Promise<void> | null;
}

/** Spokes that may serve a model now, or why none may. */
export type Candidates = { ok: true; items: GatewayRoute[] } | { ok: false; reason: string };

/**
 * The gateway's copy of the hub's route table, one entry per model that
 * callers ask for: read with a read-only token from `GET /api/v1/route`
 * (every healthy spoke, unranked by place), refreshed every `pollMs`, ranked
 * per caller by the gateway. Nothing here is the only copy of anything: a
 * restarted gateway reads it again.
 */
export class RouteCache {
  private readonly models = new Map<string, ModelRoutes>();
  private timer: NodeJS.Timeout | null = null;
  private lastHubContact = 0;

  constructor(
    private readonly o: RouteCacheOptions,
    private readonly upstream: UpstreamClient,
    private readonly metrics: GatewayMetrics,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.refreshAll(), this.o.pollMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Whether the hub answered within the staleness bound. */
  hubFresh(): boolean {
    return this.now() - this.lastHubContact <= this.o.maxStaleMs;
  }

  /** Checks the hub answers (readiness before any model was asked for). */
  async probeHub(): Promise<boolean> {
    try {
      const r = await this.upstream.request(new URL('/healthz', this.o.hubUrl), 'GET', {}, null, this.o.requestTimeoutMs);
      if (r.status === 200) this.lastHubContact = this.now();
      return r.status === 200;
    } catch {
      return false;
    }
  }

  /** The healthy spokes for `model` as the hub last said, reading it first when this model is new. */
  async candidates(model: string): Promise<Candidates> {
    let m = this.models.get(model);
    if (!m) {
      m = { items: [], ranked: new Map(), fetchedAt: 0, lastUsed: this.now(), lastError: null, inflight: null };
      this.models.set(model, m);
    }
    if (m.fetchedAt === 0) await this.refresh(model, m);
    return this.verdict(model, m);
  }

  /**
   * The spokes that may serve `model` (at `version`, when given) in the order
   * a caller at `near` should try them: ranked once per location bucket and
   * kept until the table is read again, so a request costs a map lookup.
   * Null when this model's table was never read (then: `candidates`).
   */
  ranked(model: string, version: string | undefined, near: Location | null): { ok: true; items: GatewayRoute[] } | { ok: false; reason: string } | null {
    const m = this.models.get(model);
    if (!m || m.fetchedAt === 0) return null;
    const v = this.verdict(model, m);
    if (!v.ok) return v;
    const lat = near === null ? 0 : Math.round(near.lat / LOCATION_BUCKET_DEGREES);
    const lon = near === null ? 0 : Math.round(near.lon / LOCATION_BUCKET_DEGREES);
    const key = near === null ? `${version ?? ''}|` : `${version ?? ''}|${lat},${lon}`;
    let items = m.ranked.get(key);
    if (items === undefined) {
      const servable = version === undefined ? m.items : m.items.filter((i) => i.servingVersion === version);
      if (servable.length === 0) {
        return { ok: false, reason: `none of the ${m.items.length} healthy spokes serves version ${version ?? ''}` };
      }
      items = rankFrom(servable, near === null ? null : { lat: lat * LOCATION_BUCKET_DEGREES, lon: lon * LOCATION_BUCKET_DEGREES });
      if (m.ranked.size >= MAX_RANKINGS) m.ranked.clear();
      m.ranked.set(key, items);
    }
    return { ok: true, items };
  }

  private verdict(model: string, m: ModelRoutes): Candidates {
    const now = this.now();
    m.lastUsed = now;
    if (m.fetchedAt === 0) return { ok: false, reason: `the route table for ${model} could not be read from the hub: ${m.lastError ?? 'no answer'}` };
    const age = now - m.fetchedAt;
    if (age > this.o.maxStaleMs) {
      return { ok: false, reason: `the route table for ${model} is ${Math.round(age / 1000)}s old (the hub has not answered: ${m.lastError ?? 'unknown'})` };
    }
    if (m.items.length === 0) return { ok: false, reason: `no healthy spoke serves ${model} (per the hub's route table)` };
    return { ok: true, items: m.items };
  }

  private async refreshAll(): Promise<void> {
    const now = this.now();
    for (const [model, m] of this.models) {
      if (now - m.lastUsed > this.o.forgetAfterMs) this.models.delete(model);
      else void this.refresh(model, m);
    }
    if (this.models.size === 0) await this.probeHub();
  }

  private refresh(model: string, m: ModelRoutes): Promise<void> {
    m.inflight ??= this.fetch(model)
      .then((r) => {
        m.items = this.targets(model, r.items);
        m.ranked = new Map();
        m.fetchedAt = this.now();
        m.lastError = null;
        this.lastHubContact = m.fetchedAt;
        this.metrics.routeRefreshes.inc({ outcome: 'ok' });
      })
      .catch((err: Error) => {
        m.lastError = err.message;
        this.metrics.routeRefreshes.inc({ outcome: 'error' });
        this.log.warn({ model, err: err.message }, 'route table not refreshed from the hub');
      })
      .finally(() => {
        m.inflight = null;
      });
    return m.inflight;
  }

  private targets(model: string, items: RouteItem[]): GatewayRoute[] {
    const out: GatewayRoute[] = [];
    for (const i of items) {
      try {
        out.push({ ...i, target: upstreamTarget(i.endpoint) });
      } catch {
        this.log.warn({ model, spoke: i.spoke, endpoint: i.endpoint }, 'spoke endpoint is not a URL; not routed to');
      }
    }
    return out;
  }

  private async fetch(model: string): Promise<RouteResponse> {
    const url = new URL('/api/v1/route', this.o.hubUrl);
    url.searchParams.set('model', model);
    url.searchParams.set('limit', '500');
    const r = await this.upstream.request(url, 'GET', { authorization: `Bearer ${this.o.token}`, accept: 'application/json' }, null, this.o.requestTimeoutMs);
    if (r.status !== 200) {
      let message = `HTTP ${r.status}`;
      try {
        message += `: ${(JSON.parse(r.body.toString('utf8')) as { error?: { message?: string } }).error?.message ?? ''}`;
      } catch {
        /* not JSON */
      }
      throw new Error(message);
    }
    const parsed = RouteResponseSchema.safeParse(JSON.parse(r.body.toString('utf8')));
    if (!parsed.success) throw new Error(`the hub's route table did not parse: ${parsed.error.issues[0]?.message ?? ''}`);
    return parsed.data;
  }
}
