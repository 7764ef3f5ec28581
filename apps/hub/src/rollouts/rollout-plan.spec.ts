import fc from 'fast-check';
import type { ReportedDeploymentStatus } from '@flotilla/contracts';
import { type InFlightSpoke, type RolloutSettings, type SpokeObservation, measureGates, planWaves, stepSpoke, waveSize } from './rollout-plan.js';

const settings: RolloutSettings = {
  strategy: 'Progressive',
  maxConcurrency: '25%',
  canary: { matchLabels: { canary: 'true' } },
  minSuccessSeconds: 10,
  progressDeadlineSeconds: 60,
  maxFailures: 0,
  gates: { maxErrorRatio: 0.05, maxLatencyP99Ratio: 2, noRestarts: true },
};

const status = (over: Partial<ReportedDeploymentStatus> = {}): ReportedDeploymentStatus => ({
  name: 'd',
  phase: 'Ready',
  readyReplicas: 1,
  desiredReplicas: 1,
  servingVersion: '2.0.0',
  endpoint: null,
  compliance: 'Compliant',
  conditions: [],
  message: '',
  observedGeneration: 5,
  ...over,
});

const obs = (over: Partial<SpokeObservation> = {}): SpokeObservation => ({
  online: true,
  observedGeneration: 5,
  telemetryAt: null,
  deployment: status(),
  inference: null,
  ...over,
});

const inFlight = (over: Partial<InFlightSpoke> = {}): InFlightSpoke => ({
  state: 'Progressing',
  targetGeneration: 5,
  stepStartedAt: 0,
  readyAt: null,
  baseline: { latencyP99Ms: 20, errorRatio: 0 },
  gates: [],
  ...over,
});

describe('planWaves', () => {
  it('puts the canaries first, then the rest in order, maxConcurrency at a time', () => {
    const spokes = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'].map((name) => ({ name, labels: (name === 'c' ? { canary: 'true' } : {}) as Record<string, string> }));
    expect(planWaves(spokes, settings)).toEqual([['c'], ['a', 'b'], ['d', 'e'], ['f', 'g'], ['h']]);
    expect(planWaves(spokes, { canary: undefined, maxConcurrency: 3 })).toEqual([['a', 'b', 'c'], ['d', 'e', 'f'], ['g', 'h']]);
  });

  it('places every spoke exactly once, in order, in waves no larger than maxConcurrency', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.stringMatching(/^[a-z]{1,6}$/), { maxLength: 60 }), fc.integer({ min: 1, max: 100 }), fc.boolean(), (names, pct, byCount) => {
        const spokes = names.map((name, i) => ({ name, labels: (i % 7 === 0 ? { canary: 'true' } : {}) as Record<string, string> }));
        const maxConcurrency = byCount ? pct : `${pct}%`;
        const waves = planWaves(spokes, { canary: settings.canary, maxConcurrency });
        expect(waves.flat().sort()).toEqual([...names].sort());
        const size = waveSize(maxConcurrency, spokes.length);
        for (const w of waves.slice(spokes.some((s) => s.labels['canary']) ? 1 : 0)) expect(w.length).toBeLessThanOrEqual(size);
        expect(waves.every((w) => w.length > 0)).toBe(true);
      }),
    );
  });
});

describe('measureGates', () => {
  it('keeps the worst value of each gate, ignores telemetry from before the window, and floors tiny baselines', () => {
    const first = measureGates([], settings.gates, { latencyP99Ms: 1, errorRatio: 0 }, obs({ inference: { at: 2_000, errorRatio: 0.2, latencyP99Ms: 4, requestsPerSecond: 5 } }), 1_000, 5);
    expect(first).toEqual([
      { name: 'errorRatio', value: 0.2, threshold: 0.05, ok: false },
      // 4 ms against a 1 ms baseline is taken against the 5 ms floor.
      { name: 'latencyP99Ratio', value: 0.8, threshold: 2, ok: true },
      { name: 'restarts', value: 0, threshold: 0, ok: true },
    ]);
    const later = measureGates(first, settings.gates, { latencyP99Ms: 1, errorRatio: 0 }, obs({ inference: { at: 3_000, errorRatio: 0, latencyP99Ms: 4, requestsPerSecond: 5 } }), 1_000, 5);
    expect(later[0]).toMatchObject({ value: 0.2, ok: false });
    const stale = measureGates([], settings.gates, null, obs({ inference: { at: 500, errorRatio: 0.9, latencyP99Ms: 4, requestsPerSecond: 5 } }), 1_000, 5);
    expect(stale[0]).toMatchObject({ value: null, ok: true });
  });

  it('counts a crash reported at the new generation, not one from before', () => {
    const crashed = status({ conditions: [{ type: 'Degraded', status: 'True', reason: 'ProcessCrashed', message: 'exit 1', lastTransitionTime: new Date(0).toISOString(), observedGeneration: 5 }] });
    expect(measureGates([], settings.gates, null, obs({ deployment: crashed }), 0, 5)[2]).toMatchObject({ name: 'restarts', ok: false });
    expect(measureGates([], settings.gates, null, obs({ deployment: { ...crashed, observedGeneration: 4 } }), 0, 5)[2]).toMatchObject({ ok: true });
  });
});

describe('stepSpoke', () => {
  it('waits for Ready at the generation that carries the revision, not an older one', () => {
    expect(stepSpoke(inFlight(), obs({ observedGeneration: 4, deployment: status({ observedGeneration: 4 }) }), settings, 1_000, 60_000).kind).toBe('wait');
    const ready = stepSpoke(inFlight(), obs(), settings, 1_000, 60_000);
    expect(ready).toMatchObject({ kind: 'wait', readyAt: 1_000 });
  });

  it('passes after minSuccessTime with telemetry inside the window, and fails a gate at once', () => {
    const healthy = obs({ telemetryAt: 9_000, inference: { at: 9_000, errorRatio: 0, latencyP99Ms: 25, requestsPerSecond: 10 } });
    expect(stepSpoke(inFlight({ readyAt: 1_000 }), healthy, settings, 11_000, 60_000).kind).toBe('pass');
    expect(stepSpoke(inFlight({ readyAt: 1_000 }), { ...healthy, telemetryAt: 2_000 }, settings, 11_000, 60_000).kind).toBe('wait');
    const bad = stepSpoke(inFlight({ readyAt: 1_000 }), obs({ telemetryAt: 3_000, inference: { at: 3_000, errorRatio: 0.3, latencyP99Ms: 25, requestsPerSecond: 10 } }), settings, 3_000, 60_000);
    expect(bad).toMatchObject({ kind: 'fail', reason: 'GateFailed', message: 'errorRatio 0.3 > 0.05' });
  });

  it('fails on the deadline when the revision never becomes Ready', () => {
    const never = obs({ deployment: status({ phase: 'Degraded', message: 'cannot load the model' }) });
    expect(stepSpoke(inFlight(), never, settings, 59_000, 60_000).kind).toBe('wait');
    expect(stepSpoke(inFlight(), never, settings, 60_000, 60_000)).toMatchObject({ kind: 'fail', reason: 'ProgressDeadlineExceeded' });
  });
});
