import type { ReportedDeploymentStatus } from '@flotilla/contracts';
import { type Rollout, type RolloutGates, compileSelector, parseDuration, selectorFromSpec } from '@flotilla/policy';

/**
 * The pure part of a progressive rollout (DESIGN.md section 11): how spokes
 * are cut into waves, how a spoke's live health is measured against the
 * gates, and how one spoke's state moves given what it last reported. No I/O:
 * the RolloutReconciler reads Postgres, calls these, and writes the outcome.
 */

/** Where one spoke is in a rollout. */
export type SpokeRolloutState =
  /** Not started: its wave has not come, or it is offline. Serves the previous revision. */
  | 'Pending'
  /** Sent the new revision; waiting for it to report Ready at that generation. */
  | 'Progressing'
  /** Ready on the new revision; its live health is watched for minSuccessTime. */
  | 'Verifying'
  /** Passed: stays on the new revision. */
  | 'Succeeded'
  /** Sent back to the previous revision; waiting for it to be Ready and healthy there. */
  | 'RollingBack'
  /** Back on the previous revision and healthy. */
  | 'RolledBack'
  /** The rollback itself did not pass its gates in time. Serves the previous revision. */
  | 'Failed';

export const SPOKE_ROLLOUT_STATES: readonly SpokeRolloutState[] = ['Pending', 'Progressing', 'Verifying', 'Succeeded', 'RollingBack', 'RolledBack', 'Failed'];

/** The one rule for which revision a spoke in a rollout gets rendered. */
export function servesTarget(state: SpokeRolloutState): boolean {
  return state === 'Progressing' || state === 'Verifying' || state === 'Succeeded';
}

/** Stored rollout phase; `Paused` is shown when the paused flag is set on a Progressing rollout. */
export type RolloutPhase = 'Progressing' | 'Paused' | 'Succeeded' | 'Failed' | 'RolledBack' | 'Aborted';
export const ROLLOUT_PHASES: readonly RolloutPhase[] = ['Progressing', 'Paused', 'Succeeded', 'Failed', 'RolledBack', 'Aborted'];

export interface RolloutSettings {
  strategy: 'Progressive' | 'AllAtOnce';
  maxConcurrency: number | string;
  canary: Rollout['canary'];
  minSuccessSeconds: number;
  progressDeadlineSeconds: number;
  maxFailures: number;
  /** The deployment's spec.rollout.gates as the policy schema parsed them (routing reads maxErrorRatio from the same field). */
  gates: RolloutGates;
}

export function settingsOf(r: Rollout): RolloutSettings {
  return {
    strategy: r.strategy,
    maxConcurrency: r.maxConcurrency,
    canary: r.canary,
    minSuccessSeconds: parseDuration(r.minSuccessTime),
    progressDeadlineSeconds: parseDuration(r.progressDeadline),
    maxFailures: r.maxFailures,
    gates: r.gates,
  };
}

/** Spokes per wave: a count, or a percentage of the spokes the rollout moves (at least one). */
export function waveSize(maxConcurrency: number | string, total: number): number {
  if (typeof maxConcurrency === 'number') return Math.max(1, maxConcurrency);
  const pct = Number(maxConcurrency.replace('%', ''));
  return Math.max(1, Math.ceil((total * pct) / 100));
}

/**
 * Cuts the spokes (in placement order) into waves: those the canary selector
 * matches first, as one wave, then the rest `maxConcurrency` at a time.
 */
export function planWaves(spokes: readonly { name: string; labels: Readonly<Record<string, string>> }[], settings: Pick<RolloutSettings, 'canary' | 'maxConcurrency'>): string[][] {
  const isCanary = settings.canary ? compileSelector(selectorFromSpec(settings.canary)) : () => false;
  const canaries = spokes.filter((s) => isCanary(s.labels)).map((s) => s.name);
  const rest = spokes.filter((s) => !isCanary(s.labels)).map((s) => s.name);
  const size = waveSize(settings.maxConcurrency, spokes.length);
  const waves: string[][] = canaries.length > 0 ? [canaries] : [];
  for (let i = 0; i < rest.length; i += size) waves.push(rest.slice(i, i + size));
  return waves;
}

/** One gate as measured on one spoke: its worst value in the window against its threshold. */
export interface GateReading {
  name: 'errorRatio' | 'latencyP99Ratio' | 'restarts';
  /** Null: not measured yet (no requests, or no latency before the change to compare with). */
  value: number | null;
  threshold: number;
  ok: boolean;
}

/** The spoke's figures for the deployment before the change, from its last telemetry. */
export interface Baseline {
  latencyP99Ms: number | null;
  errorRatio: number | null;
}

/** What the hub last heard from one spoke, as far as one deployment is concerned. */
export interface SpokeObservation {
  online: boolean;
  observedGeneration: number;
  /** When the spoke's latest telemetry was sent (ms), whatever it carried. */
  telemetryAt: number | null;
  /** The deployment's reported status (with the generation it was computed at), if any. */
  deployment: ReportedDeploymentStatus | null;
  /** The deployment's line of the latest telemetry, with when it was sent. */
  inference: { at: number; errorRatio: number; latencyP99Ms: number | null; requestsPerSecond: number } | null;
}

/** p99 latencies before the change below this count as this much (ms). */
export const LATENCY_FLOOR_MS = 5;

const round = (v: number) => Math.round(v * 10_000) / 10_000;

/** Has the deployment crashed at or after `generation`? (the agent reports it as Degraded/ProcessCrashed) */
function crashed(d: ReportedDeploymentStatus | null, generation: number): boolean {
  if (!d || d.observedGeneration < generation) return false;
  return d.conditions.some((c) => c.type === 'Degraded' && c.status === 'True' && (c.reason === 'ProcessCrashed' || c.reason === 'CrashLoopBackOff'));
}

/**
 * Folds the latest telemetry into the gate readings of the window started at
 * `since`: each gate keeps its worst value, so one bad interval fails it.
 * Telemetry sent before `since` (which may describe the old server) is ignored.
 */
export function measureGates(
  previous: readonly GateReading[],
  gates: RolloutSettings['gates'],
  baseline: Baseline | null,
  obs: SpokeObservation,
  since: number,
  generation: number,
): GateReading[] {
  const prev = (name: GateReading['name']) => previous.find((g) => g.name === name)?.value ?? null;
  const worst = (a: number | null, b: number | null) => (a === null ? b : b === null ? a : Math.max(a, b));
  const fresh = obs.inference && obs.inference.at > since ? obs.inference : null;
  const error = worst(prev('errorRatio'), fresh && fresh.requestsPerSecond > 0 ? round(fresh.errorRatio) : null);
  // Below LATENCY_FLOOR_MS a baseline is noise (a warm cache, an idle core): ratios are taken against the floor.
  const p99 =
    fresh && fresh.latencyP99Ms !== null && baseline && baseline.latencyP99Ms !== null
      ? round(fresh.latencyP99Ms / Math.max(baseline.latencyP99Ms, LATENCY_FLOOR_MS))
      : null;
  const latency = worst(prev('latencyP99Ratio'), p99);
  const readings: GateReading[] = [
    { name: 'errorRatio', value: error, threshold: gates.maxErrorRatio, ok: error === null || error <= gates.maxErrorRatio },
    { name: 'latencyP99Ratio', value: latency, threshold: gates.maxLatencyP99Ratio, ok: latency === null || latency <= gates.maxLatencyP99Ratio },
  ];
  if (gates.noRestarts) {
    const restarts = Math.max(prev('restarts') ?? 0, crashed(obs.deployment, generation) ? 1 : 0);
    readings.push({ name: 'restarts', value: restarts, threshold: 0, ok: restarts === 0 });
  }
  return readings;
}

export function describeGate(g: GateReading): string {
  return g.name === 'restarts' ? 'the server restarted (crashed)' : `${g.name} ${g.value} > ${g.threshold}`;
}

/** Is the deployment Ready on the spoke, as computed at `generation` or later? */
export function readyAt(obs: SpokeObservation, generation: number): boolean {
  const d = obs.deployment;
  return obs.observedGeneration >= generation && d !== null && d.observedGeneration >= generation && (d.phase === 'Ready' || d.phase === 'ScaledToZero');
}

/** One in-flight spoke as stored. */
export interface InFlightSpoke {
  state: 'Progressing' | 'Verifying' | 'RollingBack';
  targetGeneration: number | null;
  stepStartedAt: number;
  readyAt: number | null;
  baseline: Baseline | null;
  gates: GateReading[];
}

/** What happens to one in-flight spoke now. */
export type SpokeStep =
  | { kind: 'wait'; gates: GateReading[]; readyAt: number | null; message: string }
  | { kind: 'pass'; gates: GateReading[] }
  | { kind: 'fail'; gates: GateReading[]; reason: 'GateFailed' | 'ProgressDeadlineExceeded'; message: string };

/**
 * Moves one spoke that is on its way to a revision (forward or back): it
 * must report Ready at the generation that carries the revision, then stay
 * within the gates for minSuccessTime. Past `deadline` without passing, it fails.
 */
export function stepSpoke(s: InFlightSpoke, obs: SpokeObservation, settings: RolloutSettings, now: number, deadline: number): SpokeStep {
  if (s.targetGeneration === null) return { kind: 'wait', gates: s.gates, readyAt: null, message: 'waiting for the new desired state to be rendered' };
  let ready = s.readyAt;
  if (ready === null && readyAt(obs, s.targetGeneration)) ready = now;
  if (ready === null) {
    if (now >= deadline) {
      const seen = obs.deployment && obs.deployment.observedGeneration >= s.targetGeneration ? `${obs.deployment.phase}: ${obs.deployment.message}` : obs.online ? `generation ${s.targetGeneration} not reconciled yet` : 'offline';
      return { kind: 'fail', gates: s.gates, reason: 'ProgressDeadlineExceeded', message: `not Ready within progressDeadline ${settings.progressDeadlineSeconds}s (${seen})`.slice(0, 1000) };
    }
    return { kind: 'wait', gates: s.gates, readyAt: null, message: obs.online ? `waiting for generation ${s.targetGeneration} to be Ready` : 'offline; waiting' };
  }
  const gates = measureGates(s.gates, settings.gates, s.baseline, obs, ready, s.targetGeneration);
  const bad = gates.find((g) => !g.ok);
  if (bad) return { kind: 'fail', gates, reason: 'GateFailed', message: describeGate(bad) };
  const heldFor = (now - ready) / 1000;
  // With minSuccessTime > 0, at least one telemetry report must describe the window.
  const measured = settings.minSuccessSeconds === 0 || (obs.telemetryAt !== null && obs.telemetryAt > ready + settings.minSuccessSeconds * 500);
  if (heldFor >= settings.minSuccessSeconds && measured && obs.online) return { kind: 'pass', gates };
  if (now >= deadline) return { kind: 'fail', gates, reason: 'ProgressDeadlineExceeded', message: `did not stay healthy for minSuccessTime ${settings.minSuccessSeconds}s within progressDeadline ${settings.progressDeadlineSeconds}s` };
  return { kind: 'wait', gates, readyAt: ready, message: `Ready; healthy for ${Math.floor(heldFor)}s of ${settings.minSuccessSeconds}s` };
}
