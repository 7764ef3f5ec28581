import type { DeploymentStatus } from '@flotilla/contracts';
import { setCondition, truncate, workloadConditions } from './conditions.js';

const t0 = new Date('2025-01-01T00:00:00.000Z');
const t1 = new Date('2025-01-01T00:01:00.000Z');

const deployment = (name: string, phase: DeploymentStatus['phase']): DeploymentStatus => ({
  name,
  phase,
  readyReplicas: 0,
  desiredReplicas: 1,
  servingVersion: null,
  endpoint: null,
  compliance: 'Pending',
  conditions: [],
  message: '',
});

describe('setCondition', () => {
  it('adds a condition stamped with the current time', () => {
    expect(setCondition([], { type: 'Ready', status: 'False', reason: 'Progressing', message: 'm' }, t0)).toEqual([
      { type: 'Ready', status: 'False', reason: 'Progressing', message: 'm', lastTransitionTime: t0.toISOString() },
    ]);
  });

  it('keeps the transition time when only the reason or message changes', () => {
    const first = setCondition([], { type: 'Ready', status: 'False', reason: 'Progressing', message: 'a' }, t0);
    const second = setCondition(first, { type: 'Ready', status: 'False', reason: 'ReconcileFailed', message: 'b' }, t1);
    expect(second).toEqual([
      { type: 'Ready', status: 'False', reason: 'ReconcileFailed', message: 'b', lastTransitionTime: t0.toISOString() },
    ]);
  });

  it('moves the transition time when the status changes, leaving other conditions alone', () => {
    let c = setCondition([], { type: 'Ready', status: 'False', reason: 'Progressing', message: '' }, t0);
    c = setCondition(c, { type: 'Degraded', status: 'False', reason: 'AsExpected', message: '' }, t0);
    c = setCondition(c, { type: 'Ready', status: 'True', reason: 'AllWorkloadsReady', message: '' }, t1);
    expect(c.map((x) => [x.type, x.status, x.lastTransitionTime])).toEqual([
      ['Ready', 'True', t1.toISOString()],
      ['Degraded', 'False', t0.toISOString()],
    ]);
  });

  it('cuts messages to the 2048 characters the wire allows', () => {
    const [c] = setCondition([], { type: 'Degraded', status: 'True', reason: 'X', message: 'x'.repeat(5000) }, t0);
    expect(c?.message).toHaveLength(2048);
    expect(truncate('short')).toBe('short');
  });
});

describe('workloadConditions', () => {
  const byType = (cs: ReturnType<typeof workloadConditions>): Record<string, string> =>
    Object.fromEntries(cs.map((c) => [c.type, `${c.status}/${c.reason}`]));

  it('says it waits for a desired state before the first envelope', () => {
    expect(byType(workloadConditions({ appliedGeneration: 0, reconciledGeneration: 0, lastError: null, report: null }))).toEqual({
      Ready: 'False/NoDesiredState',
      Reconciling: 'False/NoDesiredState',
      Degraded: 'False/AsExpected',
    });
  });

  it('is Reconciling while the applied generation has not been reconciled', () => {
    expect(byType(workloadConditions({ appliedGeneration: 2, reconciledGeneration: 1, lastError: null, report: null }))).toEqual({
      Ready: 'False/Progressing',
      Reconciling: 'True/Progressing',
      Degraded: 'False/AsExpected',
    });
  });

  it('is Degraded and not Ready when the last reconcile failed, with the error as message', () => {
    const cs = workloadConditions({ appliedGeneration: 2, reconciledGeneration: 1, lastError: 'api down', report: null });
    expect(byType(cs)).toMatchObject({ Ready: 'False/ReconcileFailed', Degraded: 'True/ReconcileFailed' });
    expect(cs.find((c) => c.type === 'Degraded')?.message).toBe('api down');
  });

  it('is Ready when every deployment is Ready or scaled to zero', () => {
    const report = { deployments: [deployment('a', 'Ready'), deployment('b', 'ScaledToZero')], jobs: [] };
    expect(byType(workloadConditions({ appliedGeneration: 3, reconciledGeneration: 3, lastError: null, report }))).toEqual({
      Ready: 'True/AllWorkloadsReady',
      Reconciling: 'False/ReconciliationSucceeded',
      Degraded: 'False/AsExpected',
    });
  });

  it('names the deployments that are not ready and those that fail', () => {
    const report = {
      deployments: [deployment('a', 'Ready'), deployment('b', 'Pending'), deployment('c', 'Failed')],
      jobs: [{ name: 'j', phase: 'Failed' as const, progress: 0, metrics: {}, producedVersion: null, message: '' }],
    };
    const cs = workloadConditions({ appliedGeneration: 3, reconciledGeneration: 3, lastError: null, report });
    expect(byType(cs)).toMatchObject({ Ready: 'False/WorkloadsNotReady', Degraded: 'True/WorkloadsDegraded' });
    expect(cs.find((c) => c.type === 'Ready')?.message).toBe('2 of 3 deployments not ready: b (Pending), c (Failed); failing: c (Failed), job j (Failed)');
    expect(cs.find((c) => c.type === 'Degraded')?.message).toBe('c (Failed), job j (Failed)');
  });
});
