import { type DesiredDeployment, type DesiredFineTuneJob, type DesiredPayload, type ModelRef, canonicalJson, gpuProductLabelValue } from '@flotilla/contracts';
import { formatPolicyError } from './documents.js';
import { type Decision, evaluatePlacement, type SpokeView } from './placement.js';
import { buildModelIndex, checkReferences, type ModelIndex, type RegisteredModel } from './references.js';
import { parseDuration, type FineTuneJob, type ModelDeployment, type Placement, type PolicyObject } from './schemas.js';

/**
 * Rendering: the whole desired state of each spoke, computed from the policy
 * objects and the fleet. Deterministic (same inputs in any order give equal
 * payloads, field for field and in the same order) because the hub bumps a
 * spoke's generation only when its payload changes.
 */

export interface RenderOptions {
  telemetryIntervalSeconds: number;
  registry?: readonly RegisteredModel[];
}

/** Thrown when objects refer to placements or model versions that do not exist. */
export class RenderError extends Error {
  override readonly name = 'RenderError';
  constructor(readonly problems: string[]) {
    super(`cannot render desired state:\n${problems.map((p) => `  ${p}`).join('\n')}`);
  }
}

const byName = <T extends { metadata: { name: string } }>(a: T, b: T): number =>
  a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0;

function resolve(index: ModelIndex, ref: { name: string; version: string }): ModelRef {
  const found = index.get(ref.name)?.get(ref.version);
  // checkReferences ran first, so this only guards against a broken invariant.
  if (!found) throw new RenderError([`model ${ref.name} version ${ref.version} is not known`]);
  // Rebuilt field by field so key order, and so the canonical JSON, never depends on the source.
  return {
    name: found.name,
    version: found.version,
    digest: found.digest,
    uri: found.uri,
    format: found.format,
    ...(found.sizeBytes !== undefined ? { sizeBytes: found.sizeBytes } : {}),
    ...(found.input !== undefined ? { input: found.input } : {}),
  };
}

function renderDeployment(d: ModelDeployment, model: ModelRef, placement: Placement): DesiredDeployment {
  const { spec } = d;
  const product = placement.spec.requirements?.gpu?.product;
  return {
    name: d.metadata.name,
    model,
    runtime: spec.runtime,
    resources: {
      gpu: spec.resources.gpu,
      ...(spec.resources.cpu !== undefined ? { cpu: spec.resources.cpu } : {}),
      ...(spec.resources.memory !== undefined ? { memory: spec.resources.memory } : {}),
    },
    replicas: {
      min: spec.replicas.min,
      max: spec.replicas.max,
      ...(spec.replicas.targetConcurrency !== undefined ? { targetConcurrency: spec.replicas.targetConcurrency } : {}),
    },
    ...(spec.schedule ? { schedule: structuredClone(spec.schedule) } : {}),
    remediation: spec.remediation,
    // The node label value GPU Feature Discovery uses, so the Kubernetes runtime can select on it as is.
    ...(product !== undefined ? { gpuProduct: gpuProductLabelValue(product) } : {}),
  };
}

function renderJob(j: FineTuneJob, baseModel: ModelRef): DesiredFineTuneJob {
  const { spec } = j;
  const t = spec.trainer;
  const hyperparameters = Object.fromEntries(Object.entries(t.hyperparameters).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  const trainer: DesiredFineTuneJob['trainer'] =
    t.builtin !== undefined
      ? { builtin: t.builtin, hyperparameters }
      : t.image !== undefined
        ? { image: t.image, ...(t.command ? { command: [...t.command] } : {}), hyperparameters }
        : { command: [...(t.command ?? [])], hyperparameters };
  const d = spec.dataset;
  return {
    name: j.metadata.name,
    baseModel,
    dataset: {
      path: d.path,
      format: d.format,
      ...(d.labelColumn !== undefined ? { labelColumn: d.labelColumn } : {}),
      ...(d.imageColumn !== undefined ? { imageColumn: d.imageColumn } : {}),
      ...(d.featureColumns !== undefined ? { featureColumns: [...d.featureColumns] } : {}),
    },
    trainer,
    evaluation: { metric: spec.evaluation.metric, holdoutFraction: spec.evaluation.holdoutFraction, threshold: spec.evaluation.threshold },
    output: { model: spec.output.model, artifact: spec.output.artifact },
    promote: spec.promote,
    ...(spec.resources
      ? {
          resources: {
            gpu: spec.resources.gpu,
            ...(spec.resources.cpu !== undefined ? { cpu: spec.resources.cpu } : {}),
            ...(spec.resources.memory !== undefined ? { memory: spec.resources.memory } : {}),
          },
        }
      : {}),
    ...(spec.timeout !== undefined ? { timeoutSeconds: Math.max(1, Math.round(parseDuration(spec.timeout))) } : {}),
    ...(spec.schedule ? { schedule: structuredClone(spec.schedule) } : {}),
  };
}

/** What one render of the fleet produced. */
export interface FleetRender {
  /** Every spoke's payload, in spoke-name order. */
  payloads: Map<string, DesiredPayload>;
  /** Each placement used by a workload, evaluated once, by placement name. */
  decisions: Map<string, Decision>;
  /**
   * Objects that could not be rendered (`Kind/name` -> problems, e.g. a missing
   * placement or model version). Their spokes keep what `previous` gave them.
   */
  stalled: Map<string, string[]>;
}

/**
 * Renders every spoke's desired payload, one object at a time, so that one
 * object that cannot be rendered stalls only itself: it is reported in
 * `stalled` and each spoke keeps the entry `previous` had for it (never a
 * removal caused by a broken reference), while every other object converges.
 * The map iterates in spoke-name order; deployments and jobs are sorted by name.
 */
export function renderFleet(
  objects: readonly PolicyObject[],
  spokes: readonly SpokeView[],
  options: RenderOptions & {
    previous?: ReadonlyMap<string, DesiredPayload>;
    /**
     * Placement decisions made elsewhere (the hub's stored ones, for an
     * incremental render of a few spokes): used as given instead of evaluating
     * the placements over `spokes`; a placement missing here selects none of them.
     */
    decisions?: ReadonlyMap<string, Decision>;
  },
): FleetRender {
  const stalled = new Map<string, string[]>();
  for (const problem of checkReferences(objects, options.registry ?? [])) {
    const key = problem.object ?? problem.file;
    stalled.set(key, [...(stalled.get(key) ?? []), `${problem.path ? `${problem.path}: ` : ''}${problem.message}`]);
  }

  const index = buildModelIndex(objects, options.registry ?? []);
  const placements = new Map<string, Placement>();
  const deployments: ModelDeployment[] = [];
  const jobs: FineTuneJob[] = [];
  for (const o of objects) {
    if (o.kind === 'Placement') placements.set(o.metadata.name, o);
    else if (o.kind === 'ModelDeployment') deployments.push(o);
    else if (o.kind === 'FineTuneJob') jobs.push(o);
  }
  deployments.sort(byName);
  jobs.sort(byName);

  const sortedSpokes = [...spokes].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const twice = sortedSpokes.filter((s, i) => i > 0 && sortedSpokes[i - 1]?.name === s.name).map((s) => `spoke "${s.name}" is listed twice`);
  if (twice.length > 0) throw new RenderError([...new Set(twice)]);
  const payloads = new Map<string, DesiredPayload>();
  for (const s of sortedSpokes) {
    payloads.set(s.name, { settings: { telemetryIntervalSeconds: options.telemetryIntervalSeconds }, deployments: [], fineTuneJobs: [] });
  }

  // Each placement is evaluated once however many workloads use it.
  const decisions = new Map<string, Decision>();
  const decide = (name: string): { placement: Placement; decision: Decision } => {
    const placement = placements.get(name) as Placement;
    let decision = decisions.get(name);
    if (!decision) {
      decision = options.decisions ? (options.decisions.get(name) ?? { selected: [], excluded: [] }) : evaluatePlacement(placement, sortedSpokes);
      decisions.set(name, decision);
    }
    return { placement, decision };
  };
  // A stalled workload stays where it was, as it was.
  const keepPrevious = (field: 'deployments' | 'fineTuneJobs', name: string) => {
    for (const [spoke, payload] of payloads) {
      const before = options.previous?.get(spoke)?.[field].find((w) => w.name === name);
      if (before) (payload[field] as unknown[]).push(structuredClone(before));
    }
  };

  for (const d of deployments) {
    if (stalled.has(`ModelDeployment/${d.metadata.name}`)) {
      keepPrevious('deployments', d.metadata.name);
      continue;
    }
    const { placement, decision } = decide(d.spec.placement);
    const model = resolve(index, d.spec.model);
    for (const spoke of decision.selected) payloads.get(spoke)?.deployments.push(renderDeployment(d, model, placement));
  }
  for (const j of jobs) {
    if (stalled.has(`FineTuneJob/${j.metadata.name}`)) {
      keepPrevious('fineTuneJobs', j.metadata.name);
      continue;
    }
    const { decision } = decide(j.spec.placement);
    const baseModel = resolve(index, j.spec.baseModel);
    for (const spoke of decision.selected) payloads.get(spoke)?.fineTuneJobs.push(renderJob(j, baseModel));
  }
  // Placements no workload uses yet still have a decision to show.
  for (const name of placements.keys()) decide(name);
  return { payloads, decisions, stalled };
}

/**
 * The desired payload of every spoke, including spokes with nothing to run
 * (they still need their settings, and an empty list removes old workloads).
 * Throws RenderError when a reference does not resolve (dry runs and previews,
 * where a broken reference is the caller's error).
 */
export function renderDesired(
  objects: readonly PolicyObject[],
  spokes: readonly SpokeView[],
  options: RenderOptions,
): Map<string, DesiredPayload> {
  const problems = checkReferences(objects, options.registry ?? []);
  if (problems.length > 0) throw new RenderError(problems.map(formatPolicyError));
  return renderFleet(objects, spokes, options).payloads;
}

/* ------------------------------------------------------------------- diff */

export interface SpokeDiff {
  spoke: string;
  added: string[];
  removed: string[];
  changed: string[];
}

function workloads(payload: DesiredPayload | undefined): Map<string, string> {
  const m = new Map<string, string>();
  if (!payload) return m;
  for (const d of payload.deployments) m.set(`deployment/${d.name}`, canonicalJson(d));
  for (const j of payload.fineTuneJobs) m.set(`job/${j.name}`, canonicalJson(j));
  return m;
}

/**
 * What a change would do to each spoke, for dry runs: workloads added,
 * removed and changed (`deployment/NAME`, `job/NAME`; `settings` when the
 * spoke's settings change). Only spokes that change are listed, by name.
 */
export function diffDesired(before: ReadonlyMap<string, DesiredPayload>, after: ReadonlyMap<string, DesiredPayload>): SpokeDiff[] {
  const spokes = [...new Set([...before.keys(), ...after.keys()])].sort();
  const diffs: SpokeDiff[] = [];
  for (const spoke of spokes) {
    const b = before.get(spoke);
    const a = after.get(spoke);
    const bw = workloads(b);
    const aw = workloads(a);
    const added = [...aw.keys()].filter((k) => !bw.has(k)).sort();
    const removed = [...bw.keys()].filter((k) => !aw.has(k)).sort();
    const changed = [...aw.keys()].filter((k) => bw.has(k) && bw.get(k) !== aw.get(k)).sort();
    if (a && b && canonicalJson(a.settings) !== canonicalJson(b.settings)) changed.unshift('settings');
    if (added.length + removed.length + changed.length > 0) diffs.push({ spoke, added, removed, changed });
  }
  return diffs;
}
