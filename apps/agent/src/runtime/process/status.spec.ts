import { DeploymentStatusSchema, type DesiredDeployment } from '@flotilla/contracts';
import { processKey, wantedNow } from './plan.js';
import { deploymentStatus as buildStatus, endpointUrl, type ProcessView, type StatusInput } from './status.js';

const built: ReturnType<typeof buildStatus>[] = [];
/** Builds a status and remembers it, so that every one is checked against the wire schema. */
function deploymentStatus(i: StatusInput) {
  const s = buildStatus(i);
  built.push(s);
  return s;
}

const now = new Date('2025-01-15T12:00:00Z');
const spec: DesiredDeployment = {
  name: 'web',
  model: { name: 'classifier', version: '2.0.0', digest: `sha256:${'b'.repeat(64)}`, uri: 'file:///m.onnx', format: 'onnx' },
  runtime: 'builtin',
  resources: { gpu: 0 },
  replicas: { min: 1, max: 1 },
  remediation: 'enforce',
};
const key = processKey(spec);
const serving = (over: Partial<ProcessView> = {}): ProcessView => ({
  state: 'ready',
  key,
  port: 8100,
  modelName: 'classifier',
  modelVersion: '2.0.0',
  restarts: 0,
  lastExit: undefined,
  nextRestartAt: undefined,
  ...over,
});
const input = (over: Partial<StatusInput> = {}): StatusInput => ({
  deployment: spec,
  wanted: wantedNow(spec, now),
  active: undefined,
  failure: undefined,
  holds: [],
  endpointHost: 'site-17.local',
  previous: [],
  now,
  ...over,
});
const condition = (s: ReturnType<typeof deploymentStatus>, type: string) => s.conditions.find((c) => c.type === type);

afterEach(() => {
  // Whatever a test built must be a valid wire status: the core drops reports that are not.
  for (const status of built.splice(0)) expect(DeploymentStatusSchema.safeParse(status).error).toBeUndefined();
});

describe('deploymentStatus', () => {
  it('is Ready and Compliant with the endpoint when the desired process serves', () => {
    const s = deploymentStatus(input({ active: serving() }));
    expect(s).toMatchObject({
      phase: 'Ready',
      readyReplicas: 1,
      desiredReplicas: 1,
      servingVersion: '2.0.0',
      endpoint: 'http://site-17.local:8100/v2/models/classifier',
      compliance: 'Compliant',
    });
    expect(condition(s, 'Ready')).toMatchObject({ status: 'True', reason: 'Serving', lastTransitionTime: now.toISOString() });
    expect(condition(s, 'Degraded')).toMatchObject({ status: 'False', reason: 'AsExpected' });
  });

  it('is Degraded with the exit, restart count and next restart while a crashed process waits', () => {
    const s = deploymentStatus(
      input({
        active: serving({ state: 'backoff', restarts: 3, lastExit: { code: 1, signal: null, at: 0, description: 'exited with code 1' }, nextRestartAt: now.getTime() + 4000 }),
      }),
    );
    expect(s).toMatchObject({ phase: 'Degraded', readyReplicas: 0, endpoint: null, servingVersion: null });
    expect(condition(s, 'Degraded')).toMatchObject({ status: 'True', reason: 'ProcessCrashed', message: 'process exited with code 1; restarted 3 times; next restart in 4 s' });
  });

  it('is Failed for a permanent start failure and Pending for a retryable one, with the reason', () => {
    const failed = deploymentStatus(input({ failure: { key, reason: 'ArtifactDigestMismatch', message: 'bad digest', retryable: false } }));
    expect(failed.phase).toBe('Failed');
    expect(condition(failed, 'Ready')).toMatchObject({ status: 'False', reason: 'ArtifactDigestMismatch', message: 'bad digest' });
    const pending = deploymentStatus(input({ failure: { key, reason: 'ArtifactUnavailable', message: 'unreachable', retryable: true } }));
    expect(pending.phase).toBe('Pending');
    expect(condition(pending, 'Ready')).toMatchObject({ reason: 'ArtifactUnavailable' });
  });

  it('keeps reporting the old version as serving, Degraded, when the new one cannot start', () => {
    const old = serving({ key: 'web/old/1', modelVersion: '1.0.0' });
    const s = deploymentStatus(input({ active: old, failure: { key, reason: 'StartupFailed', message: 'exited with code 1', retryable: false } }));
    expect(s).toMatchObject({ phase: 'Degraded', servingVersion: '1.0.0', compliance: 'NonCompliant', endpoint: 'http://site-17.local:8100/v2/models/classifier' });
    expect(condition(s, 'Degraded')).toMatchObject({ reason: 'StartupFailed', message: 'cannot start 2.0.0: exited with code 1' });
  });

  it('is ScaledToZero and Compliant when the schedule wants nothing and nothing runs', () => {
    const zero = { ...spec, replicas: { min: 0, max: 0 } };
    expect(deploymentStatus(input({ deployment: zero, wanted: wantedNow(zero, now) }))).toMatchObject({
      phase: 'ScaledToZero',
      desiredReplicas: 0,
      compliance: 'Compliant',
    });
  });

  it('reports drift under inform as NonCompliant without calling the workload unhealthy', () => {
    const s = deploymentStatus(
      input({ active: serving({ key: 'web/old/1', modelVersion: '1.0.0' }), holds: [{ reason: 'DriftNotCorrected', message: 'remediation is inform' }] }),
    );
    expect(s).toMatchObject({ phase: 'Ready', compliance: 'NonCompliant', servingVersion: '1.0.0' });
    expect(s.message).toContain('remediation is inform');
  });

  it('keeps the transition time of a condition whose status did not change', () => {
    const first = deploymentStatus(input({ active: serving() }));
    const later = new Date(now.getTime() + 60_000);
    const second = deploymentStatus(input({ active: serving(), previous: first.conditions, now: later }));
    expect(condition(second, 'Ready')?.lastTransitionTime).toBe(now.toISOString());
  });

  it('brackets IPv6 hosts and escapes model names in endpoint URLs', () => {
    expect(endpointUrl('::1', 9000, 'a b')).toBe('http://[::1]:9000/v2/models/a%20b');
  });
});
