import {
  type Location,
  type ReportedDeploymentStatus,
  type RouteExclusion,
  type RouteItem,
  type RouteResponse,
  type Telemetry,
  EARTH_RADIUS_KM,
  compareRoutes,
  insertBest,
} from '@flotilla/contracts';
import { DEFAULT_ROLLOUT_GATES, type PathSegment, RolloutGatesSchema, formatPath } from '@flotilla/policy';
import type { Logger } from 'pino';
import type { DataSource } from 'typeorm';
import type { PresenceState } from '../database/entities/spoke.entity.js';
import { deploymentCompliance } from '../policy/compliance.js';
import { STALE_AFTER_INTERVALS } from '../spokes/spoke.dto.js';

/**
 * Error ratio above which a spoke is not routed to when its deployment names
 * no `rollout.gates.maxErrorRatio` (or has no ModelDeployment object): the
 * policy schema's default, the same one rollouts gate on.
 */
export const DEFAULT_MAX_ERROR_RATIO = DEFAULT_ROLLOUT_GATES.maxErrorRatio;
/** Spoke labels read as the region filter, first found wins. */
export const REGION_LABELS = ['topology.flotilla.dev/region', 'region'] as const;
/** Full reload from Postgres, whatever notifications arrived (as the hub's controllers resync). */
const REBUILD_MS = 300_000;
/** Deployment thresholds change without a new generation (a rollout gate is not rendered), so they are re-read this often. */
const THRESHOLDS_MS = 10_000;
const MAX_EXCLUDED_SHOWN = 100;
const RAD = Math.PI / 180;

export interface RouteQuery {
  model: string;
  version?: string | undefined;
  near?: Location | null | undefined;
  region?: string | undefined;
  limit: number;
}

/**
 * One deployment serving a model on one spoke, with everything routing
 * needs. The part of the verdict that does not depend on the clock (the
 * hub's compliance rules, Ready, an endpoint) is computed when the row is
 * loaded; presence and freshness are checked at each lookup.
 */
interface RouteEntry {
  key: string;
  spoke: string;
  deployment: string;
  model: string;
  region: string | null;
  location: Location | null;
  /** The location in radians and cos(lat), so a lookup's distance costs two sines and an arcsine. */
  latRad: number;
  lonRad: number;
  cosLat: number;
  presence: PresenceState;
  lastSeenAt: number | null;
  telemetryAt: number | null;
  /** null: Compliant, Ready, with an endpoint; else the CamelCase reason it is not. */
  unfit: string | null;
  endpoint: string | null;
  servingVersion: string | null;
  readyReplicas: number;
  requestsPerSecond: number;
  errorRatio: number;
  latencyP99Ms: number | null;
}

/** A candidate as ranking reads it. */
interface Ranked {
  spoke: string;
  distanceKm: number | null;
  load: number;
  latencyP99Ms: number | null;
  entry: RouteEntry;
  maxErrorRatio: number;
}

function toItem(r: Ranked): RouteItem {
  const e = r.entry;
  return {
    spoke: e.spoke,
    deployment: e.deployment,
    endpoint: e.endpoint as string,
    servingVersion: e.servingVersion,
    location: e.location,
    region: e.region,
    distanceKm: r.distanceKm,
    load: r.load,
    requestsPerSecond: e.requestsPerSecond,
    readyReplicas: e.readyReplicas,
    latencyP99Ms: e.latencyP99Ms,
    errorRatio: e.errorRatio,
    maxErrorRatio: r.maxErrorRatio,
    lastSeenAt: new Date(e.lastSeenAt as number).toISOString(),
    telemetryAt: new Date(e.telemetryAt as number).toISOString(),
  };
}

interface SpokeRow {
  name: string;
  labels: Record<string, string>;
  location: Location | null;
  presence: PresenceState;
  last_seen_at: Date | null;
  telemetry_at: Date | null;
  desired_generation: number;
  accepted_generation: number;
  observed_generation: number;
  deployment_statuses: ReportedDeploymentStatus[];
  inference: Telemetry['inference'] | null;
  /** The deployments of the spoke's stored desired payload; null when nothing was rendered for it yet. */
  desired: { name: string; model: string; version: string }[] | null;
}

const SPOKE_COLUMNS = `
  SELECT s.name, s.labels, s.location, s.presence, s.last_seen_at, s.telemetry_at,
    s.desired_generation, s.accepted_generation, s.observed_generation, s.deployment_statuses,
    s.telemetry->'inference' AS inference,
    CASE WHEN d.spoke_id IS NULL THEN NULL ELSE COALESCE((
      SELECT jsonb_agg(jsonb_build_object('name', x->>'name', 'model', x->'model'->>'name', 'version', x->'model'->>'version'))
      FROM jsonb_array_elements(d.payload->'deployments') x), '[]'::jsonb) END AS desired
  FROM spokes s LEFT JOIN desired_states d ON d.spoke_id = s.id
  WHERE s.revoked_at IS NULL`;

/**
 * The hub's routing table: for each model, the spokes whose desired state
 * serves it, kept in memory so that `GET /api/v1/route` ranks them without
 * reading the fleet. Postgres stays the source of truth: the table is built
 * from it at start, each spoke's entries are re-read when ingest writes that
 * spoke's reports or a render changes its desired state, and the whole table
 * is rebuilt every few minutes, so a lost notification costs a delay.
 * Health is judged with the hub's own compliance rules (compliance.ts), so
 * routing never trusts a status computed before the current generation.
 */
export class RouteTable {
  private readonly bySpoke = new Map<string, RouteEntry[]>();
  private readonly byModel = new Map<string, Map<string, RouteEntry>>();
  private thresholds = new Map<string, number>();
  /** Deployments whose stored gates do not parse, and why (warned once per change). */
  private thresholdProblems = new Map<string, string>();
  private readonly pending = new Set<string>();
  private refreshing: Promise<void> = Promise.resolve();
  private scheduled = false;
  private timers: NodeJS.Timeout[] = [];
  private stopped = false;

  constructor(
    private readonly ds: DataSource,
    private readonly telemetryIntervalSeconds: number,
    private readonly log: Logger,
  ) {}

  /** Loads everything, then keeps it fresh with periodic reloads. */
  async start(): Promise<void> {
    await this.rebuild();
    this.timers.push(setInterval(() => void this.serialized(() => this.rebuild()), REBUILD_MS).unref());
    this.timers.push(setInterval(() => void this.serialized(() => this.loadThresholds()), THRESHOLDS_MS).unref());
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await this.refreshing;
  }

  /** Reads every enrolled spoke and every deployment's threshold. */
  async rebuild(): Promise<void> {
    const rows: SpokeRow[] = await this.ds.query(SPOKE_COLUMNS);
    await this.loadThresholds();
    const seen = new Set(rows.map((r) => r.name));
    for (const name of [...this.bySpoke.keys()]) if (!seen.has(name)) this.replace(name, []);
    const now = Date.now();
    for (const r of rows) this.replace(r.name, this.entriesOf(r, now));
  }

  /**
   * Marks spokes whose reports or desired state changed; they are re-read
   * together, once, on the next turn (ingest batches and renders name many).
   */
  noteSpokes(names: Iterable<string>): void {
    if (this.stopped) return;
    for (const n of names) this.pending.add(n);
    if (this.scheduled || this.pending.size === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      const batch = [...this.pending];
      this.pending.clear();
      void this.serialized(() => this.refreshSpokes(batch));
    });
  }

  /** Re-reads these spokes now (a revoked or unknown one leaves the table). */
  async refreshSpokes(names: readonly string[]): Promise<void> {
    if (names.length === 0) return;
    const rows: SpokeRow[] = await this.ds.query(`${SPOKE_COLUMNS} AND s.name = ANY($1)`, [names]);
    const now = Date.now();
    const found = new Set<string>();
    for (const r of rows) {
      found.add(r.name);
      this.replace(r.name, this.entriesOf(r, now));
    }
    for (const n of names) if (!found.has(n)) this.replace(n, []);
  }

  /** Waits for refreshes already asked for (tests, benchmarks). */
  async settled(): Promise<void> {
    while (this.scheduled || this.pending.size > 0) await new Promise((r) => setImmediate(r));
    await this.refreshing;
  }

  /** Entries held (one per spoke and deployment), for metrics and the benchmark. */
  get size(): number {
    let n = 0;
    for (const e of this.bySpoke.values()) n += e.length;
    return n;
  }

  /** The healthy spokes serving `q.model`, best first, and why the others were left out. */
  lookup(q: RouteQuery, now: number = Date.now()): RouteResponse {
    const staleMs = STALE_AFTER_INTERVALS * this.telemetryIntervalSeconds * 1000;
    const near = q.near ?? null;
    // Top `limit` kept as they come (no sort of every candidate, no object for one that cannot place); full items for the winners only.
    const best: Ranked[] = [];
    const excluded: RouteExclusion[] = [];
    let excludedCount = 0;
    const nearLat = near ? near.lat * RAD : 0;
    const nearLon = near ? near.lon * RAD : 0;
    const nearCos = Math.cos(nearLat);
    for (const e of this.byModel.get(q.model)?.values() ?? []) {
      if (q.region !== undefined && e.region !== q.region) continue;
      const maxErrorRatio = this.thresholds.get(e.deployment) ?? DEFAULT_MAX_ERROR_RATIO;
      const reason = this.unfitNow(e, q.version, maxErrorRatio, now, staleMs);
      if (reason !== null) {
        excludedCount++;
        if (excluded.length < MAX_EXCLUDED_SHOWN) excluded.push({ spoke: e.spoke, deployment: e.deployment, reason });
        continue;
      }
      let distanceKm: number | null = null;
      if (near && e.location) {
        const sLat = Math.sin((e.latRad - nearLat) / 2);
        const sLon = Math.sin((e.lonRad - nearLon) / 2);
        distanceKm = 2 * EARTH_RADIUS_KM * Math.asin(Math.min(1, Math.sqrt(sLat * sLat + nearCos * e.cosLat * sLon * sLon)));
      }
      const candidate = { spoke: e.spoke, distanceKm, load: e.requestsPerSecond / Math.max(1, e.readyReplicas), latencyP99Ms: e.latencyP99Ms };
      if (best.length === q.limit && compareRoutes(candidate, best[q.limit - 1] as Ranked) >= 0) continue;
      insertBest(best, { ...candidate, entry: e, maxErrorRatio }, q.limit);
    }
    return {
      model: q.model,
      version: q.version ?? null,
      near,
      evaluatedAt: new Date(now).toISOString(),
      items: best.map(toItem),
      excludedCount,
      excluded,
    };
  }

  /** Why `e` may not be routed to now, or null: presence and freshness against the clock, then the stored verdict. */
  private unfitNow(e: RouteEntry, version: string | undefined, maxErrorRatio: number, now: number, staleMs: number): string | null {
    if (e.presence !== 'online') return 'SpokeOffline';
    if (e.lastSeenAt === null || now - e.lastSeenAt > staleMs) return 'SpokeStale';
    if (e.telemetryAt === null || now - e.telemetryAt > staleMs) return 'TelemetryStale';
    if (e.unfit !== null) return e.unfit;
    if (version !== undefined && e.servingVersion !== version) return 'VersionMismatch';
    if (e.errorRatio > maxErrorRatio) return 'ErrorRatio';
    return null;
  }

  private serialized(work: () => Promise<void>): Promise<void> {
    this.refreshing = this.refreshing
      .then(async () => {
        if (!this.stopped) await work();
      })
      .catch((err: unknown) => this.log.warn({ err }, 'route table refresh failed; the next one repairs it'));
    return this.refreshing;
  }

  /**
   * Each deployment's `spec.rollout.gates.maxErrorRatio`, read through the
   * policy schema (RolloutGatesSchema) as rollouts read it: its default when
   * absent. Stored specs were validated when applied; one that no longer
   * parses (written by an older hub) falls back to the default, with a
   * warning naming the field, once per change.
   */
  private async loadThresholds(): Promise<void> {
    const rows: { name: string; gates: unknown }[] = await this.ds.query(`SELECT name, spec->'rollout'->'gates' AS gates FROM policy_objects WHERE kind = 'ModelDeployment'`);
    const next = new Map<string, number>();
    const problems = new Map<string, string>();
    for (const r of rows) {
      const parsed = RolloutGatesSchema.safeParse(r.gates ?? {});
      if (parsed.success) next.set(r.name, parsed.data.maxErrorRatio);
      else {
        const issue = parsed.error.issues[0];
        const problem = `${formatPath(['spec', 'rollout', 'gates', ...((issue?.path ?? []) as PathSegment[])])}: ${issue?.message ?? 'invalid'}`;
        problems.set(r.name, problem);
        if (this.thresholdProblems.get(r.name) !== problem) {
          this.log.warn({ deployment: r.name, problem }, `stored ModelDeployment gates do not parse; routing uses the default maxErrorRatio ${DEFAULT_MAX_ERROR_RATIO}`);
        }
      }
    }
    this.thresholds = next;
    this.thresholdProblems = problems;
  }

  private entriesOf(r: SpokeRow, now: number): RouteEntry[] {
    if (!r.desired || r.desired.length === 0) return [];
    const region = REGION_LABELS.map((k) => r.labels[k]).find((v) => v !== undefined) ?? null;
    // Presence and freshness are checked per lookup; the rest of the compliance verdict is fixed until the row changes.
    const view = {
      name: r.name,
      connection: 'online' as const,
      lastSeenAt: r.last_seen_at,
      desiredGeneration: r.desired_generation,
      acceptedGeneration: r.accepted_generation,
      observedGeneration: r.observed_generation,
      deploymentStatuses: r.deployment_statuses ?? [],
      jobStatuses: [],
      desiredDeployments: new Set(r.desired.map((d) => d.name)),
      desiredJobs: null,
    };
    return r.desired.map((d) => {
      const c = deploymentCompliance(d.name, view, now);
      const figures = r.inference?.find((i) => i.deployment === d.name);
      const unfit =
        c.state !== 'Compliant'
          ? c.state === 'NonCompliant'
            ? 'NonCompliant'
            : c.reason
          : c.phase !== 'Ready' || (c.readyReplicas ?? 0) < 1
            ? 'NotReady'
            : !c.endpoint
              ? 'NoEndpoint'
              : null;
      return {
        key: `${r.name}/${d.name}`,
        spoke: r.name,
        deployment: d.name,
        model: d.model,
        region,
        location: r.location,
        latRad: r.location ? r.location.lat * RAD : 0,
        lonRad: r.location ? r.location.lon * RAD : 0,
        cosLat: r.location ? Math.cos(r.location.lat * RAD) : 0,
        presence: r.presence,
        lastSeenAt: r.last_seen_at ? new Date(r.last_seen_at).getTime() : null,
        telemetryAt: r.telemetry_at ? new Date(r.telemetry_at).getTime() : null,
        unfit,
        endpoint: c.endpoint,
        servingVersion: c.servingVersion,
        readyReplicas: c.readyReplicas ?? 0,
        requestsPerSecond: figures?.requestsPerSecond ?? 0,
        errorRatio: figures?.errorRatio ?? 0,
        latencyP99Ms: figures?.latencyP99Ms ?? null,
      };
    });
  }

  private replace(spoke: string, entries: RouteEntry[]): void {
    for (const old of this.bySpoke.get(spoke) ?? []) {
      const m = this.byModel.get(old.model);
      m?.delete(old.key);
      if (m && m.size === 0) this.byModel.delete(old.model);
    }
    if (entries.length === 0) {
      this.bySpoke.delete(spoke);
      return;
    }
    this.bySpoke.set(spoke, entries);
    for (const e of entries) {
      let m = this.byModel.get(e.model);
      if (!m) this.byModel.set(e.model, (m = new Map()));
      m.set(e.key, e);
    }
  }
}
