import type { ReportedDeploymentStatus } from '@flotilla/contracts';
import type { SpokeObservation } from '../rollouts/rollout-plan.js';
import { DEFAULT_MAX_ERROR_RATIO, autoPromotes, maxErrorRatioOf, parseLineageBase, promotionHolds, stepPromotion, type PolicyNow, type PromotionSettings } from './promotion-plan.js';

const settings: PromotionSettings = { progressDeadlineSeconds: 30, minSuccessSeconds: 2, maxErrorRatio: 0.1, noRestarts: true };
const T0 = Date.parse('2026-01-01T00:00:00Z');

function status(generation: number, phase: ReportedDeploymentStatus['phase'] = 'Ready', conditions: ReportedDeploymentStatus['conditions'] = [], servingVersion = 'v'): ReportedDeploymentStatus {
  return { name: 'd', phase, readyReplicas: 1, desiredReplicas: 1, servingVersion, endpoint: null, compliance: 'Compliant', conditions, message: '', observedGeneration: generation };
}

function obs(o: Partial<SpokeObservation> = {}): SpokeObservation {
  return { online: true, observedGeneration: 7, telemetryAt: null, deployment: status(7), inference: null, ...o };
}

const progressing = { state: 'Progressing' as const, version: 'v', targetGeneration: 7, stepStartedAt: new Date(T0), readyAt: null, gates: [] };

describe('stepPromotion: the rollout health rules applied to one promoted spoke', () => {
  it('waits while the spoke has not reported the generation that carries the version', () => {
    const step = stepPromotion(progressing, obs({ observedGeneration: 6, deployment: status(6) }), settings, T0 + 1000);
    expect(step).toMatchObject({ kind: 'wait', state: 'Progressing' });
  });

  it('rolls back a version that is not Ready within the deployment’s progressDeadline, saying what the spoke reported', () => {
    const step = stepPromotion(progressing, obs({ deployment: status(7, 'Failed') }), settings, T0 + 31_000);
    expect(step.kind).toBe('fail');
    if (step.kind !== 'fail') return;
    expect(step.reason).toBe('ProgressDeadlineExceeded');
    expect(step.message).toContain('progressDeadline 30s');
    expect(step.message).toContain('Failed');
  });

  it('does not count Ready on the previous version: a spoke still serving it fails at the deadline, saying so', () => {
    const old = obs({ deployment: status(7, 'Ready', [], '1.0.0') });
    expect(stepPromotion(progressing, old, settings, T0 + 1000)).toMatchObject({ kind: 'wait', state: 'Progressing' });
    const step = stepPromotion(progressing, old, settings, T0 + 31_000);
    expect(step).toMatchObject({ kind: 'fail', reason: 'ProgressDeadlineExceeded' });
    expect(step.kind === 'fail' && step.message).toContain('still serving 1.0.0');
  });

  it('verifies once Ready, then passes after minSuccessTime with telemetry describing the window', () => {
    const ready = stepPromotion(progressing, obs(), settings, T0 + 1000);
    expect(ready).toMatchObject({ kind: 'wait', state: 'Verifying', readyAt: T0 + 1000 });
    const verifying = { ...progressing, state: 'Verifying' as const, readyAt: new Date(T0 + 1000) };
    // No telemetry after Ready yet: still verifying, even past minSuccessTime.
    expect(stepPromotion(verifying, obs(), settings, T0 + 4000).kind).toBe('wait');
    const fresh = obs({ telemetryAt: T0 + 3500, inference: { at: T0 + 3500, errorRatio: 0.02, latencyP99Ms: 3, requestsPerSecond: 5 } });
    const passed = stepPromotion(verifying, fresh, settings, T0 + 4000);
    expect(passed.kind).toBe('pass');
    // Latency is not a promotion gate: there is no baseline of this version to compare with.
    expect(passed.gates.map((g) => g.name)).toEqual(['errorRatio', 'restarts']);
  });

  it('with minSuccessTime 0s passes as soon as Ready, and the watch goes on from then', () => {
    const passed = stepPromotion(progressing, obs(), { ...settings, minSuccessSeconds: 0 }, T0 + 1000);
    expect(passed).toMatchObject({ kind: 'pass', readyAt: T0 + 1000 });
    const promoted = { ...progressing, state: 'Promoted' as const, readyAt: new Date(T0 + 1000) };
    const bad = obs({ telemetryAt: T0 + 6000, inference: { at: T0 + 6000, errorRatio: 0.9, latencyP99Ms: 3, requestsPerSecond: 5 } });
    expect(stepPromotion(promoted, bad, settings, T0 + 6500)).toMatchObject({ kind: 'fail', reason: 'GateFailed' });
  });

  it('rolls back a verifying version whose error ratio is above maxErrorRatio, with the value and the threshold', () => {
    const verifying = { ...progressing, state: 'Verifying' as const, readyAt: new Date(T0 + 1000) };
    const bad = obs({ telemetryAt: T0 + 2000, inference: { at: T0 + 2000, errorRatio: 0.5, latencyP99Ms: 3, requestsPerSecond: 5 } });
    const step = stepPromotion(verifying, bad, settings, T0 + 2500);
    expect(step).toMatchObject({ kind: 'fail', reason: 'GateFailed', message: 'errorRatio 0.5 > maxErrorRatio 0.1' });
  });

  it('keeps watching a Promoted version: a later error ratio above the threshold rolls it back', () => {
    const promoted = { ...progressing, state: 'Promoted' as const, readyAt: new Date(T0 + 1000) };
    const good = obs({ telemetryAt: T0 + 60_000, inference: { at: T0 + 60_000, errorRatio: 0.05, latencyP99Ms: 3, requestsPerSecond: 5 } });
    expect(stepPromotion(promoted, good, settings, T0 + 60_500)).toMatchObject({ kind: 'wait', state: 'Promoted' });
    const bad = obs({ telemetryAt: T0 + 600_000, inference: { at: T0 + 600_000, errorRatio: 0.3, latencyP99Ms: 3, requestsPerSecond: 5 } });
    expect(stepPromotion(promoted, bad, settings, T0 + 600_500)).toMatchObject({ kind: 'fail', reason: 'GateFailed', message: 'errorRatio 0.3 > maxErrorRatio 0.1' });
  });

  it('ignores telemetry from before the version was Ready (the old server’s errors are not the new one’s)', () => {
    const promoted = { ...progressing, state: 'Promoted' as const, readyAt: new Date(T0 + 10_000) };
    const old = obs({ telemetryAt: T0 + 5_000, inference: { at: T0 + 5_000, errorRatio: 1, latencyP99Ms: 3, requestsPerSecond: 5 } });
    expect(stepPromotion(promoted, old, settings, T0 + 11_000)).toMatchObject({ kind: 'wait', state: 'Promoted' });
  });

  it('rolls back a version whose server crashed when the deployment asks for noRestarts', () => {
    const verifying = { ...progressing, state: 'Verifying' as const, readyAt: new Date(T0 + 1000) };
    const crashed = obs({ deployment: status(7, 'Ready', [{ type: 'Degraded', status: 'True', reason: 'ProcessCrashed', message: '', lastTransitionTime: new Date(T0).toISOString(), observedGeneration: 7 }]) });
    expect(stepPromotion(verifying, crashed, settings, T0 + 1500)).toMatchObject({ kind: 'fail', reason: 'GateFailed' });
    expect(stepPromotion(verifying, crashed, { ...settings, noRestarts: false }, T0 + 1500).kind).toBe('wait');
  });
});

describe('maxErrorRatioOf', () => {
  it('reads the deployment’s gate, else the rollout default', () => {
    expect(maxErrorRatioOf({ gates: { maxErrorRatio: 0.2 } })).toBe(0.2);
    expect(maxErrorRatioOf({ gates: {} })).toBe(DEFAULT_MAX_ERROR_RATIO);
    expect(maxErrorRatioOf(undefined)).toBe(DEFAULT_MAX_ERROR_RATIO);
    expect(maxErrorRatioOf({ gates: { maxErrorRatio: 'high' } })).toBe(DEFAULT_MAX_ERROR_RATIO);
  });
});

describe('promotionHolds: what a policy change does to a promotion', () => {
  const row = { model: 'bridge', version: '1.0.0-ft.a.0123456789ab', job: 'tune', baseModel: 'bridge', baseVersion: '1.0.0', policyVersion: '1.0.0' };
  const now: PolicyNow = { deploymentModel: { name: 'bridge', version: '1.0.0' }, jobExists: true, placed: true, versionRegistered: true };

  it('holds while nothing it depends on changed', () => {
    expect(promotionHolds(row, now)).toBeNull();
  });
  it('holds when the deployment moves to the version the produced one was tuned from', () => {
    expect(promotionHolds({ ...row, policyVersion: '0.9.0' }, now)).toBeNull();
  });
  it('is withdrawn when the deployment’s version changes to anything else, naming both', () => {
    const w = promotionHolds(row, { ...now, deploymentModel: { name: 'bridge', version: '2.0.0' } });
    expect(w?.reason).toBe('BaseVersionChanged');
    expect(w?.message).toContain('bridge 2.0.0');
    expect(w?.message).toContain('bridge@1.0.0');
  });
  it('is withdrawn when the job is deleted, the model changes, the spoke leaves the placement or the version leaves the registry', () => {
    expect(promotionHolds(row, { ...now, jobExists: false })?.reason).toBe('JobDeleted');
    expect(promotionHolds(row, { ...now, deploymentModel: { name: 'other', version: '1.0.0' } })?.reason).toBe('DeploymentModelChanged');
    expect(promotionHolds(row, { ...now, placed: false })?.reason).toBe('NotPlaced');
    expect(promotionHolds(row, { ...now, versionRegistered: false })?.reason).toBe('VersionMissing');
  });
  it('does not treat another model’s base as this deployment’s version', () => {
    // Tuned from a backbone of another name: only the version it was promoted over counts.
    const w = promotionHolds({ ...row, baseModel: 'mobilenet', baseVersion: '2.0.0' }, { ...now, deploymentModel: { name: 'bridge', version: '2.0.0' } });
    expect(w?.reason).toBe('BaseVersionChanged');
  });
});

describe('autoPromotes', () => {
  const run = { job: 'tune', phase: 'Succeeded', producedVersion: 'v2' };
  it('promotes a registered version of a Succeeded run where nothing was promoted', () => {
    expect(autoPromotes(run, true, null)).toBe(true);
  });
  it('waits for registration and for success', () => {
    expect(autoPromotes(run, false, null)).toBe(false);
    expect(autoPromotes({ ...run, phase: 'Rejected' }, true, null)).toBe(false);
    expect(autoPromotes({ ...run, producedVersion: null }, true, null)).toBe(false);
  });
  it('replaces an older promoted version with a newer run’s', () => {
    expect(autoPromotes(run, true, { version: 'v1', history: ['v1'] })).toBe(true);
  });
  it('never promotes again a version promoted there before (a rolled-back one stays rolled back; two jobs do not take turns)', () => {
    expect(autoPromotes(run, true, { version: 'v2', history: ['v2'] })).toBe(false);
    expect(autoPromotes(run, true, { version: 'v3', history: ['v2', 'v3'] })).toBe(false);
  });
});

describe('parseLineageBase', () => {
  it('reads the base model and version registration writes', () => {
    expect(parseLineageBase(`bridge-defects@1.0.0 (sha256:${'a'.repeat(64)})`)).toEqual({ model: 'bridge-defects', version: '1.0.0' });
    expect(parseLineageBase('garbage')).toBeNull();
    expect(parseLineageBase(undefined)).toBeNull();
  });
});
