import fc from 'fast-check';
import { ANNOTATION_SPEC_HASH, LABEL_DEPLOYMENT, LABEL_JOB, LABEL_MANAGED_BY, MANAGED_BY } from './labels.js';
import { specHash } from './manifests.js';
import { refKey, type DesiredObject, type JsonMap, type LiveObject, type ManagedKind, type WorkloadKey } from './objects.js';
import { planKubernetes, type DesiredWorkload, type ObservedState, type Step } from './planner.js';

function desiredObject(kind: ManagedKind, name: string, owner: string, replicas = 1): DesiredObject {
  const labels = { [LABEL_MANAGED_BY]: MANAGED_BY, [kind === 'Job' ? LABEL_JOB : LABEL_DEPLOYMENT]: owner };
  const body: JsonMap = { apiVersion: 'v1', kind, metadata: { name, labels }, spec: { replicas } };
  const hash = specHash(body);
  (body['metadata'] as JsonMap)['annotations'] = { [ANNOTATION_SPEC_HASH]: hash };
  return { kind, name, body, hash };
}

/** The object as the cluster would hold it after Flotilla applied `o` (plus whatever `edit` changes). */
function liveFrom(o: DesiredObject, uid: string, edit?: (body: JsonMap) => void): LiveObject {
  const body = structuredClone(o.body);
  edit?.(body);
  const meta = body['metadata'] as JsonMap;
  return {
    kind: o.kind,
    name: o.name,
    uid,
    labels: { ...(meta['labels'] as Record<string, string>) },
    annotations: { ...(meta['annotations'] as Record<string, string>) },
    body,
  };
}

function workload(name: string, objects: DesiredObject[], remediation: 'enforce' | 'inform' = 'enforce'): DesiredWorkload {
  return { key: `deployment/${name}`, remediation, objects };
}

const types = (steps: Step[]) => steps.map((s) => `${s.type}:${'object' in s ? refKey(s.object) : refKey(s.target)}`);

describe('planKubernetes', () => {
  const dep = desiredObject('Deployment', 'web', 'web', 2);
  const svc = desiredObject('Service', 'web', 'web');

  it('creates what is missing, Deployment before Service', () => {
    const steps = planKubernetes({ managed: [], foreign: [] }, { workloads: [workload('web', [dep, svc])] });
    expect(types(steps)).toEqual(['apply:Deployment/web', 'apply:Service/web']);
    expect(steps[0]).toMatchObject({ why: 'create' });
  });

  it('does nothing when live objects carry the desired hash and fields', () => {
    const observed: ObservedState = { managed: [liveFrom(dep, 'u1'), liveFrom(svc, 'u2')], foreign: [] };
    expect(planKubernetes(observed, { workloads: [workload('web', [dep, svc])] })).toEqual([]);
  });

  it('updates an object applied from an older rendering', () => {
    const old = desiredObject('Deployment', 'web', 'web', 1);
    const steps = planKubernetes({ managed: [liveFrom(old, 'u1')], foreign: [] }, { workloads: [workload('web', [dep])] });
    expect(steps).toEqual([{ type: 'apply', workload: 'deployment/web', object: dep, force: true, why: 'update' }]);
  });

  it('re-applies with force on drift under enforce', () => {
    const drifted = liveFrom(dep, 'u1', (b) => ((b['spec'] as JsonMap)['replicas'] = 5));
    const [step] = planKubernetes({ managed: [drifted], foreign: [] }, { workloads: [workload('web', [dep])] });
    expect(step).toMatchObject({ type: 'apply', force: true, why: 'drift', differences: [{ path: 'spec.replicas', desired: 2, live: 5 }] });
  });

  it('only reports drift under inform', () => {
    const drifted = liveFrom(dep, 'u1', (b) => ((b['spec'] as JsonMap)['replicas'] = 5));
    const steps = planKubernetes({ managed: [drifted], foreign: [] }, { workloads: [workload('web', [dep], 'inform')] });
    expect(steps).toEqual([
      { type: 'report-drift', workload: 'deployment/web', target: { kind: 'Deployment', name: 'web' }, differences: [{ path: 'spec.replicas', desired: 2, live: 5 }] },
    ]);
  });

  it('applies a desired change under inform without force', () => {
    const old = desiredObject('Deployment', 'web', 'web', 1);
    const [step] = planKubernetes({ managed: [liveFrom(old, 'u1')], foreign: [] }, { workloads: [workload('web', [dep], 'inform')] });
    expect(step).toMatchObject({ type: 'apply', force: false, why: 'update' });
  });

  it('replaces a Job whose rendering changed (its template is immutable)', () => {
    const oldJob = desiredObject('Job', 'train', 'train', 1);
    const newJob = desiredObject('Job', 'train', 'train', 2);
    const steps = planKubernetes(
      { managed: [liveFrom(oldJob, 'j1')], foreign: [] },
      { workloads: [{ key: 'job/train', remediation: 'enforce', objects: [newJob] }] },
    );
    expect(steps).toEqual([
      { type: 'delete', workload: 'job/train', target: { kind: 'Job', name: 'train', uid: 'j1' }, why: 'recreate' },
      { type: 'apply', workload: 'job/train', object: newJob, force: true, why: 'recreate' },
    ]);
  });

  it('reports a conflict and applies nothing of a workload when one of its names is taken by an unlabelled object', () => {
    const steps = planKubernetes({ managed: [], foreign: [{ kind: 'Service', name: 'web' }] }, { workloads: [workload('web', [dep, svc])] });
    expect(steps).toEqual([
      expect.objectContaining({ type: 'report-conflict', workload: 'deployment/web', target: { kind: 'Service', name: 'web' } }),
    ]);
  });

  it('keeps the live objects of a conflicted workload', () => {
    const steps = planKubernetes(
      { managed: [liveFrom(dep, 'u1')], foreign: [{ kind: 'Service', name: 'web' }] },
      { workloads: [workload('web', [dep, svc])] },
    );
    expect(steps.map((s) => s.type)).toEqual(['report-conflict']);
  });

  it('prunes what is no longer desired, dependents first', () => {
    const hpa = desiredObject('HorizontalPodAutoscaler', 'old', 'old');
    const oldDep = desiredObject('Deployment', 'old', 'old');
    const oldSvc = desiredObject('Service', 'old', 'old');
    const steps = planKubernetes(
      { managed: [liveFrom(oldDep, 'd'), liveFrom(oldSvc, 's'), liveFrom(hpa, 'h')], foreign: [] },
      { workloads: [] },
    );
    expect(types(steps)).toEqual(['delete:HorizontalPodAutoscaler/old', 'delete:Service/old', 'delete:Deployment/old']);
    expect(steps.every((s) => s.type === 'delete' && s.why === 'prune')).toBe(true);
  });

  it('keeps what serves a workload blocked with keepLive, and prunes one blocked without', () => {
    const kept: DesiredWorkload = { key: 'deployment/web', remediation: 'enforce', objects: [], blocked: { reason: 'ArtifactDigestMismatch', message: 'x', keepLive: true } };
    expect(planKubernetes({ managed: [liveFrom(dep, 'u1')], foreign: [] }, { workloads: [kept] })).toEqual([]);
    const dropped: DesiredWorkload = { ...kept, blocked: { reason: 'RuntimeNotSupported', message: 'x', keepLive: false } };
    expect(types(planKubernetes({ managed: [liveFrom(dep, 'u1')], foreign: [] }, { workloads: [dropped] }))).toEqual(['delete:Deployment/web']);
  });

  describe('properties', () => {
    const KINDS: ManagedKind[] = ['Deployment', 'Service', 'HorizontalPodAutoscaler', 'Job'];
    const names = fc.constantFrom('a', 'b', 'c', 'd');

    interface Scenario {
      observed: ObservedState;
      workloads: DesiredWorkload[];
    }

    const scenario: fc.Arbitrary<Scenario> = fc
      .record({
        desired: fc.uniqueArray(
          fc.record({
            name: names,
            remediation: fc.constantFrom<'enforce' | 'inform'>('enforce', 'inform'),
            kinds: fc.subarray(KINDS, { minLength: 1 }),
            replicas: fc.integer({ min: 0, max: 3 }),
            blocked: fc.option(fc.boolean(), { nil: undefined }),
          }),
          { selector: (d) => d.name, maxLength: 4 },
        ),
        live: fc.array(
          fc.record({
            kind: fc.constantFrom(...KINDS),
            name: names,
            replicas: fc.integer({ min: 0, max: 3 }),
            drift: fc.option(fc.integer({ min: 4, max: 9 }), { nil: undefined }),
          }),
          { maxLength: 8 },
        ),
        foreign: fc.array(fc.record({ kind: fc.constantFrom(...KINDS), name: names }), { maxLength: 3 }),
      })
      .map(({ desired, live, foreign }) => {
        const workloads: DesiredWorkload[] = desired.map((d) => ({
          key: `deployment/${d.name}` as WorkloadKey,
          remediation: d.remediation,
          objects: d.blocked === undefined ? d.kinds.map((k) => desiredObject(k, d.name, d.name, d.replicas)) : [],
          ...(d.blocked !== undefined ? { blocked: { reason: 'Blocked', message: '', keepLive: d.blocked } } : {}),
        }));
        const managed = new Map<string, LiveObject>();
        live.forEach((l, i) => {
          const o = desiredObject(l.kind, l.name, l.name, l.replicas);
          const obj = liveFrom(o, `uid-${i}`, l.drift === undefined ? undefined : (b) => ((b['spec'] as JsonMap)['replicas'] = l.drift!));
          managed.set(refKey(obj), obj);
        });
        // A name is either in the ledger or someone else's, never both.
        const foreignRefs = foreign.filter((f) => !managed.has(refKey(f)));
        return { observed: { managed: [...managed.values()], foreign: foreignRefs }, workloads };
      });

    /** What the cluster looks like after the steps ran. */
    function simulate(observed: ObservedState, steps: Step[]): ObservedState {
      const managed = new Map(observed.managed.map((o) => [refKey(o), o]));
      let n = 0;
      for (const step of steps) {
        if (step.type === 'delete') managed.delete(refKey(step.target));
        if (step.type === 'apply') managed.set(refKey(step.object), liveFrom(step.object, `new-${n++}`));
      }
      return { managed: [...managed.values()], foreign: observed.foreign };
    }

    it('never applies to or deletes an unlabelled object', () => {
      fc.assert(
        fc.property(scenario, ({ observed, workloads }) => {
          const foreign = new Set(observed.foreign.map(refKey));
          for (const step of planKubernetes(observed, { workloads })) {
            if (step.type === 'apply') expect(foreign.has(refKey(step.object))).toBe(false);
            if (step.type === 'delete') expect(foreign.has(refKey(step.target))).toBe(false);
          }
        }),
      );
    });

    it('deletes only objects from the ledger, by their observed uid', () => {
      fc.assert(
        fc.property(scenario, ({ observed, workloads }) => {
          const uids = new Map(observed.managed.map((o) => [refKey(o), o.uid]));
          for (const step of planKubernetes(observed, { workloads })) {
            if (step.type === 'delete') expect(uids.get(refKey(step.target))).toBe(step.target.uid);
          }
        }),
      );
    });

    it('converges: after its steps run, the next plan applies and deletes nothing', () => {
      fc.assert(
        fc.property(scenario, ({ observed, workloads }) => {
          const after = simulate(observed, planKubernetes(observed, { workloads }));
          const again = planKubernetes(after, { workloads });
          expect(again.filter((s) => s.type === 'apply' || s.type === 'delete')).toEqual([]);
        }),
      );
    });

    it('never forces under inform and never touches a live object of matching rendering under inform', () => {
      fc.assert(
        fc.property(scenario, ({ observed, workloads }) => {
          const live = new Map(observed.managed.map((o) => [refKey(o), o]));
          const remediation = new Map(workloads.map((w) => [w.key, w.remediation]));
          for (const step of planKubernetes(observed, { workloads })) {
            if (step.type !== 'apply' || remediation.get(step.workload) !== 'inform') continue;
            expect(step.force).toBe(false);
            expect(live.get(refKey(step.object))?.annotations[ANNOTATION_SPEC_HASH]).not.toBe(step.object.hash);
          }
        }),
      );
    });

    it('keeps every live object of a workload blocked with keepLive', () => {
      fc.assert(
        fc.property(scenario, ({ observed, workloads }) => {
          const kept = new Set(workloads.filter((w) => w.blocked?.keepLive).map((w) => w.key.slice('deployment/'.length)));
          for (const step of planKubernetes(observed, { workloads })) {
            if (step.type === 'delete' && step.target.kind !== 'Job') expect(kept.has(step.target.name)).toBe(false);
          }
        }),
      );
    });
  });
});
