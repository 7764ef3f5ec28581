import fc from 'fast-check';
import type { DesiredDeployment } from '@flotilla/contracts';
import { planProcesses, processKey, type Observed, type ObservedProcess, type Step } from './plan.js';

const DIGEST_A = `sha256:${'a'.repeat(64)}`;
const DIGEST_B = `sha256:${'b'.repeat(64)}`;
const now = new Date('2025-01-15T12:00:00Z'); // a Wednesday

function deployment(name: string, overrides: Partial<DesiredDeployment> = {}, digest = DIGEST_A): DesiredDeployment {
  return {
    name,
    model: { name: 'classifier', version: digest === DIGEST_A ? '1.0.0' : '2.0.0', digest, uri: 'file:///models/m.onnx', format: 'onnx' },
    runtime: 'builtin',
    resources: { gpu: 0 },
    replicas: { min: 1, max: 1 },
    remediation: 'enforce',
    ...overrides,
  };
}

function running(d: DesiredDeployment, over: Partial<ObservedProcess> = {}): ObservedProcess {
  return { instanceId: `${d.name}-${d.model.digest.slice(7, 10)}`, deployment: d.name, key: processKey(d), role: 'active', state: 'ready', ...over };
}

const observed = (processes: ObservedProcess[], failures: Observed['failures'] = []): Observed => ({ processes, failures });
const kinds = (steps: Step[]) => steps.map((s) => `${s.kind}:${s.deployment}${s.kind === 'stop' ? `:${s.why}` : ''}${s.kind === 'hold' ? `:${s.reason}` : ''}`);

describe('processKey', () => {
  it('changes with the model digest and the runtime but not with replicas, schedule or remediation', () => {
    const d = deployment('web');
    expect(processKey(deployment('web', {}, DIGEST_B))).not.toBe(processKey(d));
    expect(processKey(deployment('web', { runtime: 'triton' }))).not.toBe(processKey(d));
    expect(processKey(deployment('web', { replicas: { min: 0, max: 3 }, remediation: 'inform' }))).toBe(processKey(d));
    expect(processKey(d).startsWith(`web/${DIGEST_A}/`)).toBe(true);
  });
});

describe('planProcesses', () => {
  it('starts a process for a new deployment', () => {
    expect(kinds(planProcesses(observed([]), [deployment('web')], now))).toEqual(['start:web']);
  });

  it('keeps a process that already runs the desired key', () => {
    const d = deployment('web');
    expect(kinds(planProcesses(observed([running(d)]), [d], now))).toEqual(['keep:web']);
  });

  it('replaces a process whose model digest changed, naming the old one', () => {
    const old = running(deployment('web'));
    const steps = planProcesses(observed([old]), [deployment('web', {}, DIGEST_B)], now);
    expect(steps).toEqual([{ kind: 'replace', deployment: 'web', key: processKey(deployment('web', {}, DIGEST_B)), spec: deployment('web', {}, DIGEST_B), old }]);
  });

  it('stops the processes of deployments that are no longer desired', () => {
    const steps = planProcesses(observed([running(deployment('gone'))]), [], now);
    expect(kinds(steps)).toEqual(['stop:gone:removed']);
  });

  it('stops the process when the schedule scales the deployment to zero', () => {
    const d = deployment('web', {
      schedule: { timezone: 'UTC', windows: [{ days: ['sat'], start: '08:00', end: '18:00', replicas: { min: 1, max: 1 } }], outside: { min: 0, max: 0 } },
    });
    expect(kinds(planProcesses(observed([running(d)]), [d], now))).toEqual(['stop:web:scaled-to-zero']);
    expect(kinds(planProcesses(observed([]), [d], now))).toEqual([]);
    // Saturday 10:00: inside the window.
    expect(kinds(planProcesses(observed([]), [d], new Date('2025-01-18T10:00:00Z')))).toEqual(['start:web']);
  });

  it('stops a draining process once its drain time has passed, and keeps it before', () => {
    const d = deployment('web', {}, DIGEST_B);
    const draining = running(deployment('web'), { role: 'draining', drainUntil: now.getTime() });
    expect(kinds(planProcesses(observed([running(d), draining]), [d], now))).toEqual(['stop:web:drained', 'keep:web']);
    const later = { ...draining, drainUntil: now.getTime() + 1 };
    expect(kinds(planProcesses(observed([running(d), later]), [d], now))).toEqual(['keep:web', 'keep:web']);
  });

  it('holds a key whose start failed until its retry time, keeping what serves', () => {
    const next = deployment('web', {}, DIGEST_B);
    const failure = { deployment: 'web', key: processKey(next), reason: 'ArtifactDigestMismatch', message: 'digest differs', retryAt: now.getTime() + 1000 };
    const old = running(deployment('web'));
    expect(kinds(planProcesses(observed([old], [failure]), [next], now))).toEqual(['keep:web', 'hold:web:ArtifactDigestMismatch']);
    expect(kinds(planProcesses(observed([old], [{ ...failure, retryAt: now.getTime() }]), [next], now))).toEqual(['replace:web']);
  });

  it('only reports drift under remediation inform', () => {
    const d = deployment('web', { remediation: 'inform' });
    expect(kinds(planProcesses(observed([]), [d], now))).toEqual(['hold:web:DriftNotCorrected']);
    const other = running(deployment('web', {}, DIGEST_B));
    expect(kinds(planProcesses(observed([other]), [d], now))).toEqual(['keep:web', 'hold:web:DriftNotCorrected']);
  });

  it('reports a schedule it cannot evaluate and leaves the running process alone', () => {
    const d = deployment('web', {
      schedule: { timezone: 'Nowhere/Land', windows: [{ days: ['mon'], start: '08:00', end: '18:00', replicas: { min: 1, max: 1 } }], outside: { min: 0, max: 0 } },
    });
    const steps = planProcesses(observed([running(d)]), [d], now);
    expect(kinds(steps)).toEqual(['hold:web:InvalidSchedule', 'keep:web']);
    expect(steps[0]).toMatchObject({ message: expect.stringContaining('unknown timezone "Nowhere/Land"') });
  });

  it('keeps the best of two active processes and stops the other', () => {
    const d = deployment('web');
    const good = running(d, { instanceId: 'good' });
    const stale = running(deployment('web', {}, DIGEST_B), { instanceId: 'stale' });
    const steps = planProcesses(observed([stale, good]), [d], now);
    expect(steps).toEqual([
      { kind: 'stop', deployment: 'web', process: stale, why: 'duplicate' },
      { kind: 'keep', deployment: 'web', process: good },
    ]);
  });
});

/* ------------------------------------------------------------ properties */

const deploymentArb = fc
  .record({
    name: fc.constantFrom('a', 'b', 'c'),
    digest: fc.constantFrom(DIGEST_A, DIGEST_B),
    max: fc.constantFrom(0, 1, 3),
    remediation: fc.constantFrom('enforce' as const, 'inform' as const),
    runtime: fc.constantFrom('builtin' as const, 'triton' as const),
  })
  .map((r) => deployment(r.name, { replicas: { min: 0, max: r.max }, remediation: r.remediation, runtime: r.runtime }, r.digest));
const desiredArb = fc.uniqueArray(deploymentArb, { selector: (d) => d.name, maxLength: 3 });
const processArb = fc
  .record({
    d: deploymentArb,
    role: fc.constantFrom('active' as const, 'draining' as const),
    state: fc.constantFrom('starting' as const, 'ready' as const, 'backoff' as const),
    drainOffset: fc.integer({ min: -1000, max: 1000 }),
    id: fc.uuid(),
  })
  .map(({ d, role, state, drainOffset, id }) =>
    running(d, { instanceId: id, role, state, ...(role === 'draining' ? { drainUntil: now.getTime() + drainOffset } : {}) }),
  );
const observedArb = fc.uniqueArray(processArb, { selector: (p) => p.instanceId, maxLength: 5 });

/** Carries out a plan on the planner's own view of the world, as the executor would if every step succeeded. */
function apply(processes: ObservedProcess[], steps: Step[]): ObservedProcess[] {
  let world = [...processes];
  for (const s of steps) {
    if (s.kind === 'stop') world = world.filter((p) => p.instanceId !== s.process.instanceId);
    if (s.kind === 'start') world.push({ instanceId: `new-${s.deployment}`, deployment: s.deployment, key: s.key, role: 'active', state: 'ready' });
    if (s.kind === 'replace') {
      world = world.map((p) => (p.instanceId === s.old.instanceId ? { ...p, role: 'draining', drainUntil: now.getTime() + 5000 } : p));
      world.push({ instanceId: `new-${s.deployment}`, deployment: s.deployment, key: s.key, role: 'active', state: 'ready' });
    }
  }
  return world;
}

describe('planProcesses properties', () => {
  it('account for every observed process exactly once (kept, stopped or replaced)', () => {
    fc.assert(
      fc.property(observedArb, desiredArb, (processes, desired) => {
        const steps = planProcesses(observed(processes), desired, now);
        const touched = steps.flatMap((s) =>
          s.kind === 'keep' || s.kind === 'stop' ? [s.process.instanceId] : s.kind === 'replace' ? [s.old.instanceId] : [],
        );
        expect([...touched].sort()).toEqual(processes.map((p) => p.instanceId).sort());
      }),
    );
  });

  it('never start, replace or scale down a deployment under inform, and stop every process of an undesired deployment', () => {
    fc.assert(
      fc.property(observedArb, desiredArb, (processes, desired) => {
        const steps = planProcesses(observed(processes), desired, now);
        const inform = new Set(desired.filter((d) => d.remediation === 'inform').map((d) => d.name));
        const names = new Set(desired.map((d) => d.name));
        for (const s of steps) {
          if (inform.has(s.deployment)) {
            expect(s.kind === 'start' || s.kind === 'replace' || (s.kind === 'stop' && s.why === 'scaled-to-zero')).toBe(false);
          }
          if (!names.has(s.deployment)) expect(s).toMatchObject({ kind: 'stop', why: 'removed' });
        }
      }),
    );
  });

  it('converge: after the plan, enforced deployments run exactly the desired key or nothing, and a second plan changes nothing', () => {
    fc.assert(
      fc.property(observedArb, desiredArb, (processes, desired) => {
        const after = apply(processes, planProcesses(observed(processes), desired, now));
        for (const d of desired.filter((x) => x.remediation === 'enforce')) {
          const active = after.filter((p) => p.deployment === d.name && p.role === 'active');
          expect(active.map((p) => p.key)).toEqual(d.replicas.max >= 1 ? [processKey(d)] : []);
        }
        const again = planProcesses(observed(after), desired, now);
        expect(again.filter((s) => s.kind !== 'keep' && s.kind !== 'hold')).toEqual([]);
      }),
    );
  });
});
