import type { Capacity, ReportedDeploymentStatus, ReportedJobRunStatus } from '@flotilla/contracts';
import { type Decision, type Placement, type PolicyKind, type SpokeView, evaluatePlacement, maxSpokesReason } from '@flotilla/policy';
import type { DataSource } from 'typeorm';
import { decodeCursor } from '../common/pagination.js';
import { PolicyObjectEntity } from '../database/entities/policy-object.entity.js';
import type { PresenceState } from '../database/entities/spoke.entity.js';
import { toPolicyObject } from '../desired/fleet-snapshot.js';
import { notFound } from '../errors/domain-error.js';
import { connectionOf } from '../spokes/spoke.dto.js';
import { selectorQueryToSql } from '../spokes/selector-sql.js';
import type { SpokeWorkloadView } from './compliance.js';

export interface ObjectListQuery {
  limit: number;
  cursor?: string | undefined;
  selector?: string | undefined;
  source?: string | undefined;
}

/** The live fleet, read once per request: what placements are evaluated over and workloads judged against. */
export interface FleetStatus {
  at: Date;
  views: SpokeView[];
  workloads: Map<string, SpokeWorkloadView>;
}

/** A placement's decision and when it was computed. */
export type StoredDecision = Decision & { computedAt: Date };

interface FleetRow {
  name: string;
  labels: Record<string, string>;
  capacity: Capacity | null;
  presence: PresenceState;
  last_seen_at: Date | null;
  desired_generation: number;
  accepted_generation: number;
  observed_generation: number;
  deployment_statuses?: ReportedDeploymentStatus[];
  job_statuses?: ReportedJobRunStatus[];
  desired_deployments?: string[] | null;
  desired_jobs?: string[] | null;
}

/** Cursor key of a policy object; kind first so `policy-objects` pages across kinds. */
const objectKey = (r: Pick<PolicyObjectEntity, 'kind' | 'name'>) => `${r.kind}/${r.name}`;

/**
 * Reads behind the placement, deployment and fine-tune job endpoints: policy
 * objects by kind, and the fleet with each spoke's reports, so decisions and
 * compliance are computed from the same snapshot.
 */
export class PolicyQueries {
  constructor(
    private readonly ds: DataSource,
    private readonly telemetryIntervalSeconds: number,
  ) {}

  async one(kind: PolicyKind, name: string, what: string): Promise<PolicyObjectEntity> {
    const row = await this.ds.getRepository(PolicyObjectEntity).findOne({ where: { kind, name } });
    if (!row) throw notFound(what, name);
    return row;
  }

  /** limit+1 objects after the cursor, by kind then name; `kind` undefined lists every kind. */
  async page(kind: PolicyKind | undefined, q: ObjectListQuery): Promise<PolicyObjectEntity[]> {
    const qb = this.ds.getRepository(PolicyObjectEntity).createQueryBuilder('o');
    if (kind) qb.andWhere('o.kind = :kind', { kind });
    if (q.source) qb.andWhere('o.source = :source', { source: q.source });
    if (q.selector) {
      const frag = selectorQueryToSql(q.selector, 'o.labels');
      qb.andWhere(frag.sql, frag.params);
    }
    const after = decodeCursor(q.cursor);
    if (after !== null) {
      const slash = after.indexOf('/');
      qb.andWhere('(o.kind, o.name) > (:afterKind, :afterName)', { afterKind: after.slice(0, slash), afterName: after.slice(slash + 1) });
    }
    return qb.orderBy('o.kind', 'ASC').addOrderBy('o.name', 'ASC').limit(q.limit + 1).getMany();
  }

  /** Every object of a kind (to find which workloads use a placement). */
  async names(kind: PolicyKind): Promise<PolicyObjectEntity[]> {
    return this.ds.getRepository(PolicyObjectEntity).find({ where: { kind }, order: { name: 'ASC' } });
  }

  /** The live fleet; with `reports`, also each spoke's workload statuses and what it was last sent. */
  async fleet(reports: boolean): Promise<FleetStatus> {
    const rows: FleetRow[] = await this.ds.query(
      `SELECT s.name, s.labels, s.capacity, s.presence, s.last_seen_at, s.desired_generation, s.accepted_generation, s.observed_generation
       ${
         reports
           ? `, s.deployment_statuses, s.job_statuses,
         CASE WHEN d.spoke_id IS NULL THEN NULL ELSE ARRAY(SELECT x->>'name' FROM jsonb_array_elements(d.payload->'deployments') x) END AS desired_deployments,
         CASE WHEN d.spoke_id IS NULL THEN NULL ELSE ARRAY(SELECT x->>'name' FROM jsonb_array_elements(d.payload->'fineTuneJobs') x) END AS desired_jobs`
           : ''
       }
       FROM spokes s ${reports ? 'LEFT JOIN desired_states d ON d.spoke_id = s.id' : ''}
       WHERE s.revoked_at IS NULL ORDER BY s.name`,
    );
    const at = new Date();
    const now = at.getTime();
    const views: SpokeView[] = [];
    const workloads = new Map<string, SpokeWorkloadView>();
    for (const r of rows) {
      const connection = connectionOf({ presence: r.presence, lastSeenAt: r.last_seen_at }, now, this.telemetryIntervalSeconds);
      views.push({ name: r.name, labels: r.labels, ...(r.capacity ? { capacity: r.capacity } : {}), connection });
      if (reports) {
        workloads.set(r.name, {
          name: r.name,
          connection,
          lastSeenAt: r.last_seen_at,
          desiredGeneration: r.desired_generation,
          acceptedGeneration: r.accepted_generation,
          observedGeneration: r.observed_generation,
          deploymentStatuses: r.deployment_statuses ?? [],
          jobStatuses: r.job_statuses ?? [],
          desiredDeployments: r.desired_deployments ? new Set(r.desired_deployments) : null,
          desiredJobs: r.desired_jobs ? new Set(r.desired_jobs) : null,
        });
      }
    }
    return { at, views, workloads };
  }

  /**
   * Placement decisions as the last render stored them (what the spokes were
   * actually sent), so every view agrees with the rendered state. A placement
   * the renderer has not seen yet (between an apply and its render) is
   * evaluated over `fleet` instead. Null when the placement is missing.
   */
  async decider(fleet: FleetStatus, placements: readonly PolicyObjectEntity[]): Promise<(name: string) => StoredDecision | null> {
    const byName = new Map(placements.map((p) => [p.name, p]));
    const headers: { placement: string; computed_at: Date }[] = await this.ds.query(
      `SELECT placement, computed_at FROM placement_decisions WHERE placement = ANY($1)`,
      [[...byName.keys()]],
    );
    const memo = new Map<string, StoredDecision>();
    if (headers.length > 0) {
      const rows: { placement: string; spoke: string; selected: boolean; eligible: boolean; score: number; reasons: string[] | null }[] = await this.ds.query(
        `SELECT placement, spoke, selected, eligible, score, reasons FROM placement_decision_spokes WHERE placement = ANY($1)`,
        [headers.map((h) => h.placement)],
      );
      const byPlacement = new Map<string, typeof rows>();
      for (const r of rows) {
        const list = byPlacement.get(r.placement);
        if (list) list.push(r);
        else byPlacement.set(r.placement, [r]);
      }
      for (const h of headers) {
        const max = (byName.get(h.placement)?.spec as { maxSpokes?: number } | undefined)?.maxSpokes;
        memo.set(h.placement, { ...assembleDecision(byPlacement.get(h.placement) ?? [], max), computedAt: new Date(h.computed_at) });
      }
    }
    return (name) => {
      const cached = memo.get(name);
      if (cached) return cached;
      const row = byName.get(name);
      if (!row) return null;
      const decision = { ...evaluatePlacement(toPolicyObject(row) as Placement, fleet.views), computedAt: fleet.at };
      memo.set(name, decision);
      return decision;
    };
  }
}

/**
 * A placement's decision from its rows per spoke, as evaluatePlacement gives
 * it: selected sorted by name, every other spoke with its reasons. An eligible
 * spoke a `maxSpokes` cap leaves out gets its rank among the eligible ones
 * here (it changes with every enrolment, so it is not stored).
 */
export function assembleDecision(
  rows: readonly { spoke: string; selected: boolean; eligible: boolean; score: number; reasons: string[] | null }[],
  maxSpokes: number | undefined,
): Decision {
  const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  const selected = rows.filter((r) => r.selected).map((r) => r.spoke).sort(byName);
  const eligible = rows.filter((r) => r.eligible).sort((a, b) => b.score - a.score || byName(a.spoke, b.spoke));
  const rank = new Map(eligible.map((r, i) => [r.spoke, i + 1]));
  const excluded: Decision['excluded'] = rows
    .filter((r) => !r.selected)
    .map((r) => ({
      spoke: r.spoke,
      reasons: r.reasons ?? [maxSpokesReason(maxSpokes ?? 0, eligible.length, rank.get(r.spoke) ?? 0)],
    }))
    .sort((a, b) => byName(a.spoke, b.spoke));
  return { selected, excluded };
}

export { objectKey };
