import { diffOwnedFields, type Difference } from './drift.js';
import { ANNOTATION_SPEC_HASH } from './labels.js';
import {
  refKey,
  workloadOf,
  type DesiredObject,
  type LiveObject,
  type ManagedKind,
  type ObjectRef,
  type WorkloadKey,
} from './objects.js';

/**
 * plan(observed, desired) -> steps, with no cluster: the Kubernetes
 * runtime's decisions in one pure function (balena-supervisor style), so
 * they can be tested and property-checked without an API server.
 */

export interface ObservedState {
  /** Every object carrying Flotilla's managed-by label: the ledger. */
  managed: LiveObject[];
  /** Objects named like a desired object but without the managed-by label: never touched. */
  foreign: ObjectRef[];
}

/** Why a desired item cannot be applied this round. */
export interface Blocked {
  reason: string;
  message: string;
  /**
   * Keep what already runs for this item (an artifact that failed to verify
   * must not take down the previous, verified version); otherwise its objects
   * are pruned like anything else no longer wanted.
   */
  keepLive: boolean;
}

export interface DesiredWorkload {
  key: WorkloadKey;
  remediation: 'enforce' | 'inform';
  /** In apply order; empty when blocked. */
  objects: DesiredObject[];
  blocked?: Blocked;
}

export interface DesiredState {
  workloads: DesiredWorkload[];
}

export type Step =
  | {
      type: 'apply';
      workload: WorkloadKey;
      object: DesiredObject;
      /** Take over fields another manager changed (enforce); without it a conflict is reported (inform). */
      force: boolean;
      why: 'create' | 'update' | 'drift' | 'recreate';
      /** For `drift`: what the apply reverts. */
      differences?: Difference[];
    }
  | {
      type: 'delete';
      /** The desired item it belonged to, when it still is one (recreate). */
      workload: WorkloadKey | null;
      target: ObjectRef & { uid: string };
      why: 'prune' | 'recreate';
    }
  | { type: 'report-drift'; workload: WorkloadKey; target: ObjectRef; differences: Difference[] }
  | { type: 'report-conflict'; workload: WorkloadKey; target: ObjectRef; message: string };

/** Kinds whose spec cannot change in place: a new rendering replaces the object. */
const IMMUTABLE: ReadonlySet<ManagedKind> = new Set(['Job']);

/** Deletes of dependents first; creates of what they depend on first. */
const PRUNE_ORDER: ManagedKind[] = ['HorizontalPodAutoscaler', 'Service', 'Deployment', 'Job'];

export function liveHash(live: LiveObject): string | undefined {
  return live.annotations[ANNOTATION_SPEC_HASH];
}

/** Live drift of one desired object, or none when it is absent or was applied from another rendering. */
export function driftOf(object: DesiredObject, live: LiveObject | undefined): Difference[] {
  if (!live || liveHash(live) !== object.hash) return [];
  return diffOwnedFields(object.body, live.body);
}

export function planKubernetes(observed: ObservedState, desired: DesiredState): Step[] {
  const live = new Map(observed.managed.map((o) => [refKey(o), o]));
  const foreign = new Set(observed.foreign.map(refKey));
  const keepWorkloads = new Set<WorkloadKey>();
  const wanted = new Set<string>();
  const steps: Step[] = [];

  const workloads = [...desired.workloads].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  for (const workload of workloads) {
    if (workload.blocked) {
      if (workload.blocked.keepLive) keepWorkloads.add(workload.key);
      continue;
    }
    const clashes = workload.objects.filter((o) => foreign.has(refKey(o)) && !live.has(refKey(o)));
    if (clashes.length > 0) {
      // One unowned name blocks the whole item: half a deployment (say, no Service) is worse than none.
      keepWorkloads.add(workload.key);
      for (const o of clashes) {
        steps.push({
          type: 'report-conflict',
          workload: workload.key,
          target: { kind: o.kind, name: o.name },
          message: `${o.kind}/${o.name} exists without the label app.kubernetes.io/managed-by=flotilla; Flotilla does not take over objects it did not create`,
        });
      }
      continue;
    }
    for (const object of workload.objects) {
      const key = refKey(object);
      wanted.add(key);
      const current = live.get(key);
      const force = workload.remediation === 'enforce';
      if (!current) {
        steps.push({ type: 'apply', workload: workload.key, object, force, why: 'create' });
        continue;
      }
      if (liveHash(current) !== object.hash) {
        if (IMMUTABLE.has(object.kind)) {
          steps.push({ type: 'delete', workload: workload.key, target: { kind: current.kind, name: current.name, uid: current.uid }, why: 'recreate' });
          steps.push({ type: 'apply', workload: workload.key, object, force, why: 'recreate' });
        } else {
          steps.push({ type: 'apply', workload: workload.key, object, force, why: 'update' });
        }
        continue;
      }
      const differences = diffOwnedFields(object.body, current.body);
      if (differences.length === 0) continue;
      if (force) steps.push({ type: 'apply', workload: workload.key, object, force: true, why: 'drift', differences });
      else steps.push({ type: 'report-drift', workload: workload.key, target: { kind: object.kind, name: object.name }, differences });
    }
  }

  const prunes = observed.managed
    .filter((o) => !wanted.has(refKey(o)))
    .filter((o) => {
      const owner = workloadOf(o);
      return owner === undefined || !keepWorkloads.has(owner);
    })
    .sort((a, b) => PRUNE_ORDER.indexOf(a.kind) - PRUNE_ORDER.indexOf(b.kind) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const o of prunes) {
    steps.push({ type: 'delete', workload: null, target: { kind: o.kind, name: o.name, uid: o.uid }, why: 'prune' });
  }
  return steps;
}
