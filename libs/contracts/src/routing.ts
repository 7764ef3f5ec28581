import { z } from 'zod';

/**
 * Smart routing (DESIGN.md section 12): a spoke's position, the answer of
 * `GET /api/v1/route`, and the pure ranking both the hub and the gateway
 * apply to it, so the two can never order spokes differently.
 */

/** A point on Earth in decimal degrees (WGS 84). A field, not a label: label values cannot start with "-". */
export const LocationSchema = z
  .object({
    lat: z.number().min(-90, 'lat must be between -90 and 90').max(90, 'lat must be between -90 and 90'),
    lon: z.number().min(-180, 'lon must be between -180 and 180').max(180, 'lon must be between -180 and 180'),
  })
  .strict();
export type Location = z.output<typeof LocationSchema>;

/** `LAT,LON` as typed on a command line (`--near 48.85,2.35`); a message naming the problem otherwise. */
export function parseLatLon(text: string): Location | string {
  const parts = text.split(',').map((p) => p.trim());
  if (parts.length !== 2 || parts.some((p) => p === '' || !Number.isFinite(Number(p)))) return `"${text}" is not LAT,LON (e.g. 48.85,2.35)`;
  const parsed = LocationSchema.safeParse({ lat: Number(parts[0]), lon: Number(parts[1]) });
  return parsed.success ? parsed.data : `"${text}": ${parsed.error.issues.map((i) => i.message).join('; ')}`;
}

/** Mean Earth radius (IUGG), km. */
export const EARTH_RADIUS_KM = 6371.0088;
const RAD = Math.PI / 180;

/** Great-circle distance in km (haversine on the mean Earth radius). */
export function greatCircleKm(a: Location, b: Location): number {
  const dLat = (b.lat - a.lat) * RAD;
  const dLon = (b.lon - a.lon) * RAD;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * RAD) * Math.cos(b.lat * RAD) * Math.sin(dLon / 2) ** 2;
  return 2 * EARTH_RADIUS_KM * Math.asin(Math.min(1, Math.sqrt(h)));
}

export const RouteItemSchema = z
  .object({
    spoke: z.string(),
    deployment: z.string().describe('the ModelDeployment serving the model there'),
    endpoint: z.string().describe('the inference endpoint the spoke reported (KServe v2: POST {endpoint}/infer)'),
    servingVersion: z.string().nullable(),
    location: LocationSchema.nullable(),
    region: z.string().nullable().describe('the spoke label topology.flotilla.dev/region (else region), when set'),
    distanceKm: z.number().nullable().describe('great-circle distance from lat/lon; null without a caller or spoke location'),
    load: z.number().describe('inference requests per second per ready replica, from the last telemetry'),
    requestsPerSecond: z.number(),
    readyReplicas: z.number().int(),
    latencyP99Ms: z.number().nullable(),
    errorRatio: z.number(),
    maxErrorRatio: z.number().describe('the deployment’s threshold (spec.rollout.gates.maxErrorRatio, else the hub default)'),
    lastSeenAt: z.string(),
    telemetryAt: z.string(),
  })
  .strict();
export type RouteItem = z.output<typeof RouteItemSchema>;

export const RouteExclusionSchema = z
  .object({
    spoke: z.string(),
    deployment: z.string(),
    reason: z.string().describe('CamelCase: SpokeOffline, SpokeStale, TelemetryStale, GenerationBehind, Reconciling, NonCompliant, NotReady, NoEndpoint, ErrorRatio, VersionMismatch, ...'),
  })
  .strict();
export type RouteExclusion = z.output<typeof RouteExclusionSchema>;

export const RouteResponseSchema = z
  .object({
    model: z.string(),
    version: z.string().nullable(),
    near: LocationSchema.nullable(),
    evaluatedAt: z.string(),
    /** Healthy spokes, best first: nearest, then spokes without a location, ties by load then p99. */
    items: z.array(RouteItemSchema),
    /** How many spokes serve the model and were left out, and why (the first 100). */
    excludedCount: z.number().int(),
    excluded: z.array(RouteExclusionSchema),
  })
  .strict();
export type RouteResponse = z.output<typeof RouteResponseSchema>;

/** What ranking reads of a candidate. */
export interface Rankable {
  distanceKm: number | null;
  load: number;
  latencyP99Ms: number | null;
}

/** Order of two candidates: by distance (no distance last), then load, then p99 (unknown last), then a stable key. */
export function compareRoutes(a: Rankable & { spoke: string }, b: Rankable & { spoke: string }): number {
  if (a.distanceKm !== b.distanceKm) {
    if (a.distanceKm === null) return 1;
    if (b.distanceKm === null) return -1;
    return a.distanceKm - b.distanceKm;
  }
  if (a.load !== b.load) return a.load - b.load;
  if (a.latencyP99Ms !== b.latencyP99Ms) {
    if (a.latencyP99Ms === null) return 1;
    if (b.latencyP99Ms === null) return -1;
    return a.latencyP99Ms - b.latencyP99Ms;
  }
  return a.spoke < b.spoke ? -1 : a.spoke > b.spoke ? 1 : 0;
}

/** Puts `item` in its place in `best` (kept sorted by compareRoutes), dropping the worst past `limit`. */
export function insertBest<T extends Rankable & { spoke: string }>(best: T[], item: T, limit: number): void {
  if (best.length === limit && compareRoutes(item, best[limit - 1] as T) >= 0) return;
  let lo = 0;
  let hi = best.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareRoutes(best[mid] as T, item) <= 0) lo = mid + 1;
    else hi = mid;
  }
  best.splice(lo, 0, item);
  if (best.length > limit) best.pop();
}

/**
 * The best `limit` of `items` in order, in O(n log limit): a bounded sorted
 * insert, so a lookup over ten thousand candidates does not sort them all.
 */
export function bestRoutes<T extends Rankable & { spoke: string }>(items: Iterable<T>, limit: number): T[] {
  const best: T[] = [];
  for (const item of items) insertBest(best, item, limit);
  return best;
}

/** Items re-ranked for a caller at `near` (the gateway ranks the hub's table for each caller). */
export function rankFrom<T extends RouteItem>(items: readonly T[], near: Location | null, limit = items.length): T[] {
  const placed = items.map((i) => ({ ...i, distanceKm: near && i.location ? greatCircleKm(near, i.location) : null }));
  return bestRoutes(placed, Math.max(1, limit));
}
