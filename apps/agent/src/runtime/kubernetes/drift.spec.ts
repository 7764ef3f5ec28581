import fc from 'fast-check';
import { describeDrift, diffOwnedFields, parseQuantity } from './drift.js';
import type { Json } from './objects.js';

const deployment = (containers: Json[], extra: Record<string, Json> = {}): Json => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'web', labels: { a: '1' } },
  spec: { replicas: 2, template: { spec: { containers } } },
  ...extra,
});

describe('diffOwnedFields', () => {
  it('finds nothing when live holds everything desired plus server defaults and foreign labels', () => {
    const desired = deployment([{ name: 'triton', image: 'i:1', ports: [{ containerPort: 8000, protocol: 'TCP' }] }]);
    const live = {
      metadata: { name: 'web', uid: 'x', labels: { a: '1', team: 'ops' }, resourceVersion: '9' },
      spec: {
        replicas: 2,
        revisionHistoryLimit: 10,
        template: { spec: { containers: [{ name: 'triton', image: 'i:1', imagePullPolicy: 'IfNotPresent', ports: [{ containerPort: 8000, protocol: 'TCP' }] }] } },
      },
      status: { readyReplicas: 0 },
    };
    expect(diffOwnedFields(desired, live)).toEqual([]);
  });

  it('names a changed scalar by its path', () => {
    const live = deployment([{ name: 'triton', image: 'i:1' }]) as Record<string, Record<string, Json>>;
    live['spec']!['replicas'] = 5;
    expect(diffOwnedFields(deployment([{ name: 'triton', image: 'i:1' }]), live)).toEqual([{ path: 'spec.replicas', desired: 2, live: 5 }]);
  });

  it('matches containers and env by name, not position', () => {
    const desired = deployment([
      { name: 'a', image: 'x:1', env: [{ name: 'K', value: 'v' }] },
      { name: 'b', image: 'y:1' },
    ]);
    const live = deployment([
      { name: 'b', image: 'y:1' },
      { name: 'a', image: 'x:2', env: [{ name: 'OTHER', value: 'o' }, { name: 'K', value: 'v' }] },
    ]);
    expect(diffOwnedFields(desired, live)).toEqual([{ path: 'spec.template.spec.containers[name=a].image', desired: 'x:1', live: 'x:2' }]);
  });

  it('reports a missing env entry as absent', () => {
    const desired = deployment([{ name: 'a', image: 'x', env: [{ name: 'K', value: 'v' }] }]);
    const live = deployment([{ name: 'a', image: 'x', env: [] }]);
    expect(diffOwnedFields(desired, live)).toEqual([
      { path: 'spec.template.spec.containers[name=a].env[name=K]', desired: { name: 'K', value: 'v' }, live: undefined },
    ]);
  });

  it('compares resource quantities by value', () => {
    const desired = deployment([{ name: 'a', image: 'x', resources: { limits: { cpu: '1000m', memory: '1Gi', 'nvidia.com/gpu': '1' } } }]);
    const same = deployment([{ name: 'a', image: 'x', resources: { limits: { cpu: '1', memory: '1073741824', 'nvidia.com/gpu': '1' } } }]);
    const more = deployment([{ name: 'a', image: 'x', resources: { limits: { cpu: '1', memory: '1Gi', 'nvidia.com/gpu': '2' } } }]);
    expect(diffOwnedFields(desired, same)).toEqual([]);
    expect(diffOwnedFields(desired, more)).toEqual([
      { path: 'spec.template.spec.containers[name=a].resources.limits.nvidia.com/gpu', desired: '1', live: '2' },
    ]);
  });

  it('treats an atomic list as one value: same length, each element covered', () => {
    const desired = deployment([{ name: 'a', image: 'x', args: ['--a', '--b'] }]);
    expect(diffOwnedFields(desired, deployment([{ name: 'a', image: 'x', args: ['--a', '--b'] }]))).toEqual([]);
    expect(diffOwnedFields(desired, deployment([{ name: 'a', image: 'x', args: ['--a', '--b', '--c'] }]))).toHaveLength(1);
  });

  it('reports a removed label of its own but ignores others', () => {
    const desired = { metadata: { labels: { mine: 'x' } } };
    expect(diffOwnedFields(desired, { metadata: { labels: { theirs: 'y' } } })).toEqual([{ path: 'metadata.labels.mine', desired: 'x', live: undefined }]);
  });

  it('describes differences for a status message', () => {
    expect(describeDrift({ kind: 'Deployment', name: 'web' }, [{ path: 'spec.replicas', desired: 2, live: 5 }])).toBe(
      'Deployment/web: spec.replicas is 5, desired 2',
    );
  });

  it('finds no drift between any JSON value and itself', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const obj = { spec: value as Json };
        expect(diffOwnedFields(obj, structuredClone(obj))).toEqual([]);
      }),
    );
  });
});

describe('parseQuantity', () => {
  it.each([
    ['1', 1],
    ['500m', 0.5],
    ['2k', 2000],
    ['1Gi', 2 ** 30],
    ['1.5Mi', 1.5 * 2 ** 20],
    ['1e3', 1000],
  ])('reads %s as %d', (text, value) => {
    expect(parseQuantity(text)).toBeCloseTo(value);
  });

  it.each(['', 'abc', '1Xi', '--1'])('refuses %j', (text) => {
    expect(parseQuantity(text)).toBeUndefined();
  });
});
