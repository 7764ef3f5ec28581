import type { ReportedDeploymentStatus } from '@flotilla/contracts';
import { COMPLIANCE_STATES, type SpokeWorkloadView, countStates, deploymentCompliance, jobRun } from './compliance.js';

const NOW = Date.parse('2026-01-01T12:00:00Z');

const status = (over: Partial<ReportedDeploymentStatus> = {}): ReportedDeploymentStatus => ({
  name: 'web',
  observedGeneration: 3,
  phase: 'Ready',
  readyReplicas: 1,
  desiredReplicas: 1,
  servingVersion: '1.0.0',
  endpoint: null,
  compliance: 'Compliant',
  conditions: [],
  message: '',
  ...over,
});

const spoke = (over: Partial<SpokeWorkloadView> = {}): SpokeWorkloadView => ({
  name: 's1',
  connection: 'online',
  lastSeenAt: new Date(NOW - 5_000),
  desiredGeneration: 3,
  acceptedGeneration: 3,
  observedGeneration: 3,
  deploymentStatuses: [status()],
  jobStatuses: [],
  desiredDeployments: new Set(['web']),
  desiredJobs: new Set(),
  ...over,
});

const judge = (over: Partial<SpokeWorkloadView>) => {
  const c = deploymentCompliance('web', spoke(over), NOW);
  return `${c.state}/${c.reason}`;
};

describe('deploymentCompliance', () => {
  it('is Compliant only when the spoke is online, caught up and says so', () => {
    expect(judge({})).toBe('Compliant/Reported');
  });

  it('is Unknown while the spoke is offline or stale, whatever it last reported', () => {
    expect(judge({ connection: 'offline' })).toBe('Unknown/SpokeOffline');
    expect(judge({ connection: 'stale', deploymentStatuses: [status({ phase: 'Failed', compliance: 'NonCompliant' })] })).toBe('Unknown/SpokeStale');
    expect(deploymentCompliance('web', spoke({ connection: 'offline', lastSeenAt: null }), NOW).message).toContain('never seen');
  });

  it('is Pending until the hub has sent the workload and the spoke has applied that generation', () => {
    expect(judge({ desiredDeployments: null })).toBe('Pending/NotRendered');
    expect(judge({ desiredDeployments: new Set(['other']) })).toBe('Pending/NotRendered');
    // A report from an older generation says nothing about the current one, even a failure.
    expect(judge({ acceptedGeneration: 2, observedGeneration: 2, deploymentStatuses: [status({ phase: 'Failed', compliance: 'NonCompliant' })] })).toBe('Pending/GenerationBehind');
    expect(judge({ deploymentStatuses: [] })).toBe('Pending/NotReported');
    expect(judge({ deploymentStatuses: [status({ phase: 'Progressing', compliance: 'Pending' })] })).toBe('Pending/Progressing');
  });

  it('is Pending/Reconciling while the spoke has accepted the generation but not finished reconciling it', () => {
    // The old version still serves and says Compliant: that answers nothing about generation 3.
    expect(judge({ observedGeneration: 2, deploymentStatuses: [status({ observedGeneration: 2 })] })).toBe('Pending/Reconciling');
    const c = deploymentCompliance('web', spoke({ observedGeneration: 2, deploymentStatuses: [status({ observedGeneration: 2 })] }), NOW);
    expect(c.message).toContain('reconciling');
  });

  it('never trusts a workload status computed at another generation than the desired one', () => {
    expect(judge({ deploymentStatuses: [status({ observedGeneration: 2 })] })).toBe('Pending/Reconciling');
    expect(judge({ deploymentStatuses: [status({ observedGeneration: 2, phase: 'Failed', compliance: 'NonCompliant' })] })).toBe('Pending/Reconciling');
    expect(deploymentCompliance('web', spoke({ deploymentStatuses: [status({ observedGeneration: 1 })] }), NOW).message).toContain('generation 1, not 3');
  });

  it('is NonCompliant when reported so, or Failed or Degraded whatever the agent concluded, with the message', () => {
    expect(judge({ deploymentStatuses: [status({ compliance: 'NonCompliant', message: 'replicas differ' })] })).toBe('NonCompliant/NonCompliant');
    expect(judge({ deploymentStatuses: [status({ phase: 'Degraded', compliance: 'Compliant' })] })).toBe('NonCompliant/Degraded');
    const failed = deploymentCompliance('web', spoke({ deploymentStatuses: [status({ phase: 'Failed', compliance: 'NonCompliant', message: 'digest mismatch' })] }), NOW);
    expect(failed).toEqual(expect.objectContaining({ state: 'NonCompliant', reason: 'Failed', message: 'digest mismatch' }));
    const byCondition = deploymentCompliance(
      'web',
      spoke({ deploymentStatuses: [status({ phase: 'Degraded', conditions: [{ type: 'Ready', status: 'False', reason: 'CrashLoop', message: 'exit 1', lastTransitionTime: new Date(NOW).toISOString(), observedGeneration: 3 }] })] }),
      NOW,
    );
    expect(byCondition.message).toBe('Ready=False CrashLoop: exit 1');
  });
});

describe('jobRun', () => {
  const run = (over: Partial<SpokeWorkloadView>) => jobRun('tune', spoke({ desiredJobs: new Set(['tune']), ...over }), NOW);

  it('reports the phase the spoke reported once it has caught up', () => {
    const r = run({ jobStatuses: [{ name: 'tune', phase: 'Running', progress: 0.5, metrics: { loss: 0.2 }, producedVersion: null, message: '', observedGeneration: 3 }] });
    expect(r).toEqual(expect.objectContaining({ state: 'Running', progress: 0.5, metrics: { loss: 0.2 } }));
  });

  it('is Unknown when the spoke is away and Pending before it reports', () => {
    expect(run({ connection: 'stale' }).state).toBe('Unknown');
    expect(run({}).state).toBe('Pending');
    expect(run({ desiredJobs: new Set() }).reason).toBe('NotRendered');
  });
});

describe('countStates', () => {
  it('lists every state, zero included, so tables line up', () => {
    expect(countStates(COMPLIANCE_STATES, [{ state: 'Pending' }, { state: 'Pending' }, { state: 'Unknown' }])).toEqual({ Compliant: 0, NonCompliant: 0, Pending: 2, Unknown: 1 });
  });
});
