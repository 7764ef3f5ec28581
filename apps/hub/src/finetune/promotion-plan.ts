import type { Rollout } from '@flotilla/policy';
import { type GateReading, type RolloutSettings, type SpokeObservation, measureGates, settingsOf, stepSpoke } from '../rollouts/rollout-plan.js';
import type { PromotionRow } from './promotion-store.js';

/**
 * The pure part of promoting a fine-tuned version on one spoke: which runs
 * are promoted, whether the policy still allows a promotion, and how a
 * promotion moves given what the spoke last reported. The health rules are
 * the rollout's (rollout-plan.ts): Ready at the generation that carries the
 * version within the deployment's progressDeadline, then its error ratio
 * (and restarts, when the deployment's gates ask for none) within the
 * deployment's gates for minSuccessTime. No I/O.
 */

/** The rollout default, used when a deployment's gates name no maxErrorRatio. */
export const DEFAULT_MAX_ERROR_RATIO = 0.05;

/**
 * The deployment's `spec.rollout.gates.maxErrorRatio`, read loosely (the
 * gates schema is shared with other work), else the rollout default.
 */
export function maxErrorRatioOf(rollout: unknown): number {
  const v = (rollout as { gates?: { maxErrorRatio?: unknown } } | undefined)?.gates?.maxErrorRatio;
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= 1 ? v : DEFAULT_MAX_ERROR_RATIO;
}

export interface PromotionSettings {
  progressDeadlineSeconds: number;
  minSuccessSeconds: number;
  maxErrorRatio: number;
  noRestarts: boolean;
}

export function promotionSettings(rollout: Rollout): PromotionSettings {
  const s = settingsOf(rollout);
  return { progressDeadlineSeconds: s.progressDeadlineSeconds, minSuccessSeconds: s.minSuccessSeconds, maxErrorRatio: maxErrorRatioOf(rollout), noRestarts: s.gates.noRestarts };
}

/** The rollout settings the rollout's own step function reads; latency is not a promotion gate (there is no baseline to compare with). */
function asRolloutSettings(s: PromotionSettings): RolloutSettings {
  return {
    strategy: 'Progressive',
    maxConcurrency: 1,
    canary: undefined,
    minSuccessSeconds: s.minSuccessSeconds,
    progressDeadlineSeconds: s.progressDeadlineSeconds,
    maxFailures: 0,
    gates: { maxErrorRatio: s.maxErrorRatio, maxLatencyP99Ratio: 1000, noRestarts: s.noRestarts },
  };
}

const withoutLatency = (gates: GateReading[]) => gates.filter((g) => g.name !== 'latencyP99Ratio');

/** What happens to one rendered promotion now. */
export type PromotionStep =
  | { kind: 'wait'; state: 'Progressing' | 'Verifying' | 'Promoted'; gates: GateReading[]; readyAt: number | null; message: string }
  | { kind: 'pass'; gates: GateReading[]; readyAt: number; message: string }
  | { kind: 'fail'; reason: 'ProgressDeadlineExceeded' | 'GateFailed'; gates: GateReading[]; message: string };

/**
 * Moves one rendered promotion: Progressing until the spoke reports the
 * deployment Ready at the generation that carries the version (failed past
 * progressDeadline), Verifying while its gates hold for minSuccessTime, then
 * Promoted, where a gate that fails later still fails it.
 */
export function stepPromotion(
  row: Pick<PromotionRow, 'state' | 'version' | 'targetGeneration' | 'stepStartedAt' | 'readyAt' | 'gates'>,
  observed: SpokeObservation,
  settings: PromotionSettings,
  now: number,
): PromotionStep {
  // Ready means Ready on the produced version: a spoke still serving the previous one (its new server
  // could not start, or drift is only reported under `inform`) has not taken the promotion.
  const d = observed.deployment;
  const obs: SpokeObservation =
    d && d.phase === 'Ready' && d.servingVersion !== row.version
      ? { ...observed, deployment: { ...d, phase: 'Progressing', message: `still serving ${d.servingVersion ?? 'nothing'}${d.message ? `: ${d.message}` : ''}` } }
      : observed;
  const rollout = asRolloutSettings(settings);
  const started = new Date(row.stepStartedAt).getTime();
  const readyAt = row.readyAt ? new Date(row.readyAt).getTime() : null;
  if (row.state === 'Promoted') {
    if (row.targetGeneration === null || readyAt === null) return { kind: 'wait', state: 'Promoted', gates: row.gates, readyAt, message: 'serving the promoted version' };
    const gates = withoutLatency(measureGates(row.gates, rollout.gates, null, obs, readyAt, row.targetGeneration));
    const bad = gates.find((g) => !g.ok);
    if (bad) return { kind: 'fail', reason: 'GateFailed', gates, message: describe(bad) };
    return { kind: 'wait', state: 'Promoted', gates, readyAt, message: 'serving the promoted version; watched' };
  }
  if (row.state !== 'Progressing' && row.state !== 'Verifying') throw new Error(`promotion in state ${row.state} is not stepped`);
  const step = stepSpoke(
    { state: row.state, targetGeneration: row.targetGeneration, stepStartedAt: started, readyAt, baseline: null, gates: row.gates },
    obs,
    rollout,
    now,
    started + settings.progressDeadlineSeconds * 1000,
  );
  if (step.kind === 'wait') return { kind: 'wait', state: step.readyAt === null ? 'Progressing' : 'Verifying', gates: withoutLatency(step.gates), readyAt: step.readyAt, message: step.message };
  // Passed on the look that saw it Ready (minSuccessTime 0s) or later: the watch goes on from when it was Ready.
  if (step.kind === 'pass') return { kind: 'pass', gates: withoutLatency(step.gates), readyAt: readyAt ?? now, message: `Ready and within the gates for minSuccessTime ${settings.minSuccessSeconds}s` };
  const gates = withoutLatency(step.gates);
  const bad = step.reason === 'GateFailed' ? gates.find((g) => !g.ok) : undefined;
  return { kind: 'fail', reason: step.reason, gates, message: bad ? describe(bad) : step.message };
}

function describe(g: GateReading): string {
  return g.name === 'restarts' ? 'the server restarted (crashed) and the deployment asks for noRestarts' : `${g.name} ${g.value} > maxErrorRatio ${g.threshold}`;
}

/** Why the policy no longer allows a promotion, if it does not. */
export interface Withdrawal {
  reason: 'DeploymentModelChanged' | 'BaseVersionChanged' | 'JobDeleted' | 'NotPlaced' | 'VersionMissing';
  message: string;
}

/** What the policy says now, as far as one promotion is concerned. */
export interface PolicyNow {
  /** The deployment's model as the policy names it. */
  deploymentModel: { name: string; version: string };
  jobExists: boolean;
  /** The deployment is rendered on the spoke (its placement selects it). */
  placed: boolean;
  /** The produced version is (still) in the registry. */
  versionRegistered: boolean;
}

/**
 * Whether a promotion still holds. It does while its job exists, the
 * deployment still serves the produced version's model on that spoke, and
 * the deployment's policy version is still the one it was promoted over, or
 * the base the produced version was tuned from (its lineage). A change of
 * the deployment's version to anything else withdraws it: the tuned head
 * was trained on another backbone than the one the policy now asks for.
 */
export function promotionHolds(row: Pick<PromotionRow, 'model' | 'version' | 'job' | 'baseModel' | 'baseVersion' | 'policyVersion'>, now: PolicyNow): Withdrawal | null {
  if (!now.jobExists) return { reason: 'JobDeleted', message: `FineTuneJob ${row.job} was deleted; the spoke serves the deployment's policy version again` };
  if (now.deploymentModel.name !== row.model) {
    return { reason: 'DeploymentModelChanged', message: `the deployment now serves model ${now.deploymentModel.name}, not ${row.model}` };
  }
  const version = now.deploymentModel.version;
  const lineageBase = row.baseModel === row.model && row.baseVersion === version;
  if (version !== row.policyVersion && !lineageBase) {
    const base = row.baseModel && row.baseVersion ? `${row.baseModel}@${row.baseVersion}` : 'an unknown base';
    return { reason: 'BaseVersionChanged', message: `the deployment's policy now names ${row.model} ${version}; ${row.version} was tuned from ${base} and promoted over ${row.policyVersion}` };
  }
  if (!now.placed) return { reason: 'NotPlaced', message: "the deployment's placement no longer selects this spoke" };
  if (!now.versionRegistered) return { reason: 'VersionMissing', message: `${row.model} ${row.version} is no longer in the registry` };
  return null;
}

/** `name@version (sha256:...)`, as RegisterProducedVersions writes lineage.baseVersion. */
export function parseLineageBase(text: string | undefined | null): { model: string; version: string } | null {
  const m = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)@(\S+)(?: \(sha256:[0-9a-f]+\))?$/.exec(text ?? '');
  return m ? { model: m[1]!, version: m[3]! } : null;
}

/** A run the spoke reported, as far as auto-promotion is concerned. */
export interface ReportedRun {
  job: string;
  phase: string;
  producedVersion: string | null;
}

/**
 * Whether an auto-promoted job's run replaces what (deployment, spoke) has:
 * only a Succeeded run whose produced version is registered, and only a
 * version that was never promoted there before (so a version rolled back
 * stays rolled back, and two jobs never take turns).
 */
export function autoPromotes(run: ReportedRun, registered: boolean, existing: Pick<PromotionRow, 'version' | 'history'> | null): boolean {
  if (run.phase !== 'Succeeded' || !run.producedVersion || !registered) return false;
  if (!existing) return true;
  return existing.version !== run.producedVersion && !existing.history.includes(run.producedVersion);
}
