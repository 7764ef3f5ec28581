import { Controller, Get, Inject, Param } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { type Decision, POLICY_KINDS } from '@flotilla/policy';
import { z } from 'zod';
import { PageQuerySchema, toPage } from '../common/pagination.js';
import { ZodQuery } from '../common/zod.js';
import type { PolicyObjectEntity } from '../database/entities/policy-object.entity.js';
import { COMPLIANCE_STATES, JOB_STATES, countStates, deploymentCompliance, jobRun } from './compliance.js';
import { toPolicyObjectDto } from './policy-object.dto.js';
import { DataSource } from 'typeorm';
import { PromotionStore } from '../finetune/promotion-store.js';
import { type PromotionView, toPromotionView } from '../finetune/promotion-view.js';
import { RolloutStore } from '../rollouts/rollout-store.js';
import { loadRolloutView } from '../rollouts/rollout-view.js';
import { type FleetStatus, PolicyQueries, type StoredDecision, objectKey } from './policy-queries.js';

export const ListQuery = PageQuerySchema.extend({
  selector: z.string().max(4096).optional().describe('label selector over the objects’ own labels, e.g. team=vision'),
  source: z.string().max(256).optional().describe('only objects last written by this source, e.g. git:policies or api:ci-bot'),
}).strict();

export const ObjectsQuery = ListQuery.extend({
  kind: z.enum(POLICY_KINDS).optional().describe('one kind: Model, Placement, ModelDeployment or FineTuneJob'),
}).strict();

type ListQueryT = z.infer<typeof ListQuery>;

/** Which spokes a workload's placement selects; a missing placement selects none and says so. */
function placementOf(name: string, decide: (n: string) => Decision | null) {
  const decision = decide(name);
  return { name, found: decision !== null, selected: decision?.selected ?? [] };
}

function placementDto(row: PolicyObjectEntity, decision: StoredDecision, detail: boolean) {
  return {
    ...toPolicyObjectDto(row),
    decision: {
      evaluatedAt: decision.computedAt.toISOString(),
      spokeCount: decision.selected.length + decision.excluded.length,
      selectedCount: decision.selected.length,
      excludedCount: decision.excluded.length,
      ...(detail ? { selected: decision.selected, excluded: decision.excluded } : {}),
    },
  };
}

function deploymentDto(row: PolicyObjectEntity, fleet: FleetStatus, decide: (n: string) => Decision | null, detail: boolean, promoted: ReadonlyMap<string, string> = new Map()) {
  const placement = placementOf(String(row.spec.placement), decide);
  const now = fleet.at.getTime();
  const spokes = placement.selected.flatMap((s) => {
    const view = fleet.workloads.get(s);
    return view ? [deploymentCompliance(row.name, view, now, promoted.get(s) ?? null)] : [];
  });
  return {
    ...toPolicyObjectDto(row),
    placement: { name: placement.name, found: placement.found, selectedCount: placement.selected.length, ...(detail ? { selected: placement.selected } : {}) },
    compliance: { evaluatedAt: fleet.at.toISOString(), counts: countStates(COMPLIANCE_STATES, spokes), ...(detail ? { spokes } : {}) },
  };
}

function jobDto(row: PolicyObjectEntity, fleet: FleetStatus, decide: (n: string) => Decision | null, detail: boolean, promotions: readonly PromotionView[] = []) {
  const placement = placementOf(String(row.spec.placement), decide);
  const now = fleet.at.getTime();
  const runs = placement.selected.flatMap((s) => {
    const view = fleet.workloads.get(s);
    if (!view) return [];
    const run = jobRun(row.name, view, now);
    // Promoted: the version this run produced is served on the spoke (for some deployment of the output model).
    const mine = promotions.filter((p) => p.spoke === s);
    const promoted = run.producedVersion !== null && mine.some((p) => p.active && p.version === run.producedVersion);
    return [{ ...run, promoted, ...(detail ? { promotions: mine } : {}) }];
  });
  return {
    ...toPolicyObjectDto(row),
    placement: { name: placement.name, found: placement.found, selectedCount: placement.selected.length, ...(detail ? { selected: placement.selected } : {}) },
    runs: {
      evaluatedAt: fleet.at.toISOString(),
      counts: countStates(JOB_STATES, runs),
      ...(detail ? { spokes: runs, producedVersions: runs.flatMap((r) => (r.producedVersion ? [{ spoke: r.spoke, version: r.producedVersion }] : [])) } : {}),
    },
  };
}

@ApiTags('policy')
@ApiBearerAuth()
@Controller('api/v1/policy-objects')
export class PolicyObjectsController {
  constructor(@Inject(PolicyQueries) private readonly q: PolicyQueries) {}

  @Get()
  @ApiOperation({ summary: 'Applied policy objects of every kind (or one), with source, commit and generation' })
  async list(@ZodQuery(ObjectsQuery) query: z.infer<typeof ObjectsQuery>) {
    const rows = await this.q.page(query.kind, query);
    return toPage(rows, query.limit, objectKey, toPolicyObjectDto);
  }
}

@ApiTags('policy')
@ApiBearerAuth()
@Controller('api/v1/placements')
export class PlacementsController {
  constructor(@Inject(PolicyQueries) private readonly q: PolicyQueries) {}

  @Get()
  @ApiOperation({ summary: 'Placements, each with how many spokes it selects and leaves out right now' })
  async list(@ZodQuery(ListQuery) query: ListQueryT) {
    const rows = await this.q.page('Placement', query);
    const fleet = await this.q.fleet(false);
    const decide = await this.q.decider(fleet, rows);
    return toPage(rows, query.limit, objectKey, (r) => placementDto(r, decide(r.name) as StoredDecision, false));
  }

  @Get(':name')
  @ApiOperation({ summary: 'A placement with its current decision over the live fleet: the spokes selected and, for each spoke left out, why' })
  async get(@Param('name') name: string) {
    const row = await this.q.one('Placement', name, 'placement');
    const fleet = await this.q.fleet(false);
    const decision = (await this.q.decider(fleet, [row]))(name) as StoredDecision;
    const [deployments, jobs] = [await this.q.names('ModelDeployment'), await this.q.names('FineTuneJob')];
    return {
      ...placementDto(row, decision, true),
      usedBy: {
        deployments: deployments.filter((d) => d.spec.placement === name).map((d) => d.name),
        fineTuneJobs: jobs.filter((j) => j.spec.placement === name).map((j) => j.name),
      },
    };
  }
}

@ApiTags('policy')
@ApiBearerAuth()
@Controller('api/v1/deployments')
export class DeploymentsController {
  constructor(
    @Inject(PolicyQueries) private readonly q: PolicyQueries,
    @Inject(RolloutStore) private readonly rollouts: RolloutStore,
    @Inject(PromotionStore) private readonly promotions: PromotionStore,
    @Inject(DataSource) private readonly ds: DataSource,
  ) {}

  @Get()
  @ApiOperation({ summary: 'Model deployments, each with its count of Compliant, NonCompliant, Pending and Unknown spokes' })
  async list(@ZodQuery(ListQuery) query: ListQueryT) {
    const rows = await this.q.page('ModelDeployment', query);
    const fleet = await this.q.fleet(true);
    const decide = await this.q.decider(fleet, await this.q.names('Placement'));
    return toPage(rows, query.limit, objectKey, (r) => deploymentDto(r, fleet, decide, false));
  }

  @Get(':name')
  @ApiOperation({
    summary:
      'A model deployment with its placement’s selected spokes and per-spoke compliance: Compliant, NonCompliant (with the message), Pending (not caught up) or Unknown (spoke stale or offline)',
  })
  async get(@Param('name') name: string) {
    const row = await this.q.one('ModelDeployment', name, 'deployment');
    const fleet = await this.q.fleet(true);
    const decide = await this.q.decider(fleet, await this.q.names('Placement'));
    const promotions = (await this.promotions.forDeployment(this.ds.manager, name)).map(toPromotionView);
    const promoted = new Map(promotions.filter((p) => p.active).map((p) => [p.spoke, p.version]));
    return { ...deploymentDto(row, fleet, decide, true, promoted), rollout: await loadRolloutView(this.ds.manager, this.rollouts, name), promotions };
  }
}

@ApiTags('policy')
@ApiBearerAuth()
@Controller('api/v1/finetune-jobs')
export class FineTuneJobsController {
  constructor(
    @Inject(PolicyQueries) private readonly q: PolicyQueries,
    @Inject(PromotionStore) private readonly promotions: PromotionStore,
    @Inject(DataSource) private readonly ds: DataSource,
  ) {}

  @Get()
  @ApiOperation({ summary: 'Fine-tuning jobs, each with its count of runs per state' })
  async list(@ZodQuery(ListQuery) query: ListQueryT) {
    const rows = await this.q.page('FineTuneJob', query);
    const fleet = await this.q.fleet(true);
    const decide = await this.q.decider(fleet, await this.q.names('Placement'));
    return toPage(rows, query.limit, objectKey, (r) => jobDto(r, fleet, decide, false));
  }

  @Get(':name')
  @ApiOperation({ summary: 'A fine-tuning job with its run on each selected spoke: state, progress, metrics and produced model version' })
  async get(@Param('name') name: string) {
    const row = await this.q.one('FineTuneJob', name, 'fine-tune job');
    const fleet = await this.q.fleet(true);
    const decide = await this.q.decider(fleet, await this.q.names('Placement'));
    return jobDto(row, fleet, decide, true, (await this.promotions.forJob(this.ds.manager, name)).map(toPromotionView));
  }
}
