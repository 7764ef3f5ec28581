import type { Spoke, SpokeDetail } from '@flotilla/contracts';
import type { SpokeEntity } from '../database/entities/spoke.entity.js';

export type Connection = 'online' | 'offline' | 'stale';

/** A spoke that reported nothing for this many telemetry intervals is stale. */
export const STALE_AFTER_INTERVALS = 3;

export function connectionOf(s: Pick<SpokeEntity, 'presence' | 'lastSeenAt'>, now: number, intervalSeconds: number): Connection {
  if (s.presence !== 'online') return 'offline';
  if (!s.lastSeenAt || now - s.lastSeenAt.getTime() > STALE_AFTER_INTERVALS * intervalSeconds * 1000) return 'stale';
  return 'online';
}

/** Typed with the API's response schema, so the mapping and the OpenAPI document cannot drift apart. */
export function toSpokeDto(s: SpokeEntity, now: number, intervalSeconds: number): Spoke {
  return {
    name: s.name,
    labels: s.labels,
    location: s.location ?? null,
    connection: connectionOf(s, now, intervalSeconds),
    lastSeenAt: s.lastSeenAt?.toISOString() ?? null,
    desiredGeneration: s.desiredGeneration,
    acceptedGeneration: s.acceptedGeneration,
    observedGeneration: s.observedGeneration,
    inSync: s.observedGeneration >= s.desiredGeneration,
    conditions: s.conditions,
    capacity: s.capacity,
    workloads: { deployments: s.deploymentStatuses, jobs: s.jobStatuses },
    createdAt: s.createdAt.toISOString(),
  };
}

export function toSpokeDetailDto(s: SpokeEntity, now: number, intervalSeconds: number): SpokeDetail {
  return {
    ...toSpokeDto(s, now, intervalSeconds),
    facts: s.facts,
    telemetry: s.telemetry,
    telemetryAt: s.telemetryAt?.toISOString() ?? null,
  };
}
