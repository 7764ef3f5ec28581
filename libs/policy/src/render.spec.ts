import fc from 'fast-check';
import { DesiredPayloadSchema, type DesiredPayload } from '@flotilla/contracts';
import { diffDesired, renderDesired, RenderError } from './render.js';
import { cpuOnly, gpus, objectsFrom, spoke } from './spec-helpers.js';

const DIGEST_1 = `sha256:${'1'.repeat(64)}`;
const DIGEST_2 = `sha256:${'2'.repeat(64)}`;

const policy = objectsFrom(`apiVersion: flotilla.dev/v1
kind: Model
metadata: { name: bridge-defects }
spec:
  task: image-classification
  versions:
    - { version: "1.0.0", uri: "s3://m/bd/1.0.0.onnx", digest: "${DIGEST_1}", format: onnx, sizeBytes: 1000 }
---
apiVersion: flotilla.dev/v1
kind: Placement
metadata: { name: eu-gpu }
spec:
  selector: { matchLabels: { region: eu } }
  requirements: { gpu: { count: 1, product: NVIDIA L40S } }
---
apiVersion: flotilla.dev/v1
kind: Placement
metadata: { name: field }
spec:
  selector: { matchLabels: { class: field-unit } }
---
apiVersion: flotilla.dev/v1
kind: ModelDeployment
metadata: { name: zz-eu }
spec:
  model: { name: bridge-defects, version: "1.0.0" }
  placement: eu-gpu
  runtime: triton
  resources: { gpu: 1, memory: 8Gi }
  replicas: { min: 1, max: 4, targetConcurrency: 8 }
  schedule:
    timezone: Europe/Paris
    windows: [{ days: [mon], start: "07:00", end: "19:00", replicas: { min: 2, max: 8 } }]
    outside: { min: 0, max: 0 }
---
apiVersion: flotilla.dev/v1
kind: ModelDeployment
metadata: { name: aa-field }
spec:
  model: { name: bridge-defects, version: "1.2.0" }
  placement: field
  runtime: builtin
  remediation: inform
---
apiVersion: flotilla.dev/v1
kind: ModelDeployment
metadata: { name: mm-eu-shadow }
spec:
  model: { name: bridge-defects, version: "1.0.0" }
  placement: eu-gpu
  runtime: builtin
---
apiVersion: flotilla.dev/v1
kind: FineTuneJob
metadata: { name: eu-tune }
spec:
  baseModel: { name: bridge-defects, version: "1.0.0" }
  placement: eu-gpu
  dataset: { path: /data/labelled/bridge-defects, format: csv }
  trainer: { image: "registry.example/trainer:3", command: [python, train.py], hyperparameters: { lr: 0.1, epochs: 3 } }
  evaluation: { metric: f1, holdoutFraction: 0.2, threshold: 0.8 }
  output: { model: bridge-defects, artifact: keep-local }
  promote: auto
`);
const registry = [{ name: 'bridge-defects', versions: [{ version: '1.2.0', uri: 'https://models.example/bd/1.2.0.onnx', digest: DIGEST_2, format: 'onnx' as const }] }];
const fleet = [
  spoke('paris-1', { region: 'eu' }, gpus('NVIDIA L40S', 48)),
  spoke('van-7', { class: 'field-unit' }, cpuOnly),
  spoke('ohio-1', { region: 'us' }, gpus('NVIDIA H100 80GB HBM3', 80)),
  spoke('lyon-2', { region: 'eu' }),
];
const options = { telemetryIntervalSeconds: 30, registry };

describe('renderDesired', () => {
  const desired = renderDesired(policy, fleet, options);

  it('gives every spoke a valid payload, in spoke-name order, including spokes with nothing to run', () => {
    expect([...desired.keys()]).toEqual(['lyon-2', 'ohio-1', 'paris-1', 'van-7']);
    for (const payload of desired.values()) expect(DesiredPayloadSchema.parse(payload)).toEqual(payload);
    expect(desired.get('ohio-1')).toEqual({ settings: { telemetryIntervalSeconds: 30 }, deployments: [], fineTuneJobs: [] });
    // lyon-2 has not reported capacity, so the GPU placement leaves it out.
    expect(desired.get('lyon-2')?.deployments).toEqual([]);
  });

  it('renders deployments sorted by name with the model resolved and the GPU product of the placement', () => {
    const paris = desired.get('paris-1') as DesiredPayload;
    expect(paris.deployments.map((d) => d.name)).toEqual(['mm-eu-shadow', 'zz-eu']);
    expect(paris.deployments[1]).toEqual({
      name: 'zz-eu',
      model: { name: 'bridge-defects', version: '1.0.0', digest: DIGEST_1, uri: 's3://m/bd/1.0.0.onnx', format: 'onnx', sizeBytes: 1000 },
      runtime: 'triton',
      resources: { gpu: 1, memory: '8Gi' },
      replicas: { min: 1, max: 4, targetConcurrency: 8 },
      schedule: { timezone: 'Europe/Paris', windows: [{ days: ['mon'], start: '07:00', end: '19:00', replicas: { min: 2, max: 8 } }], outside: { min: 0, max: 0 } },
      remediation: 'enforce',
      // In GPU Feature Discovery's node label form, which the Kubernetes runtime selects on.
      gpuProduct: 'NVIDIA-L40S',
    });
  });

  it('resolves a version known only to the registry and leaves gpuProduct out without a GPU requirement', () => {
    expect(desired.get('van-7')?.deployments).toEqual([
      {
        name: 'aa-field',
        model: { name: 'bridge-defects', version: '1.2.0', digest: DIGEST_2, uri: 'https://models.example/bd/1.2.0.onnx', format: 'onnx' },
        runtime: 'builtin',
        resources: { gpu: 0 },
        replicas: { min: 1, max: 1 },
        remediation: 'inform',
      },
    ]);
  });

  it('renders fine-tuning jobs with their dataset path on the spoke and an image trainer', () => {
    expect(desired.get('paris-1')?.fineTuneJobs).toEqual([
      {
        name: 'eu-tune',
        baseModel: { name: 'bridge-defects', version: '1.0.0', digest: DIGEST_1, uri: 's3://m/bd/1.0.0.onnx', format: 'onnx', sizeBytes: 1000 },
        dataset: { path: '/data/labelled/bridge-defects', format: 'csv' },
        trainer: { image: 'registry.example/trainer:3', command: ['python', 'train.py'], hyperparameters: { epochs: 3, lr: 0.1 } },
        evaluation: { metric: 'f1', holdoutFraction: 0.2, threshold: 0.8 },
        output: { model: 'bridge-defects', artifact: 'keep-local' },
        promote: 'auto',
      },
    ]);
  });

  it('refuses to render dangling references, listing each', () => {
    expect(() => renderDesired(policy, fleet, { telemetryIntervalSeconds: 30 })).toThrow(RenderError);
    expect(() => renderDesired(policy, fleet, { telemetryIntervalSeconds: 30 })).toThrow(
      /ModelDeployment\/aa-field: spec\.model\.version: model "bridge-defects" has no version "1\.2\.0"; known: 1\.0\.0/,
    );
  });

  it('refuses a fleet that lists a spoke twice', () => {
    expect(() => renderDesired(policy, [...fleet, spoke('van-7', {})], options)).toThrow(/spoke "van-7" is listed twice/);
  });
});

describe('diffDesired', () => {
  const before = renderDesired(policy, fleet, options);

  it('lists nothing when nothing changes', () => {
    expect(diffDesired(before, renderDesired(policy, fleet, options))).toEqual([]);
  });

  it('names workloads added, removed and changed, only for spokes that change', () => {
    const edited = policy
      .filter((o) => o.metadata.name !== 'mm-eu-shadow')
      .map((o) => (o.kind === 'ModelDeployment' && o.metadata.name === 'zz-eu' ? { ...o, spec: { ...o.spec, replicas: { min: 2, max: 4 } } } : o));
    const after = renderDesired(edited, [...fleet, spoke('rome-1', { region: 'eu' }, gpus('NVIDIA L40S', 48))], options);
    expect(diffDesired(before, after)).toEqual([
      { spoke: 'paris-1', added: [], removed: ['deployment/mm-eu-shadow'], changed: ['deployment/zz-eu'] },
      { spoke: 'rome-1', added: ['deployment/zz-eu', 'job/eu-tune'], removed: [], changed: [] },
    ]);
  });

  it('reports a settings change and a spoke that disappeared', () => {
    const after = renderDesired(policy, fleet.filter((s) => s.name !== 'van-7'), { ...options, telemetryIntervalSeconds: 60 });
    const diff = diffDesired(before, after);
    expect(diff.find((d) => d.spoke === 'paris-1')).toEqual({ spoke: 'paris-1', added: [], removed: [], changed: ['settings'] });
    expect(diff.find((d) => d.spoke === 'van-7')).toEqual({ spoke: 'van-7', added: [], removed: ['deployment/aa-field'], changed: [] });
  });
});

describe('rendering properties', () => {
  const permutation = <T>(items: readonly T[]) => fc.shuffledSubarray([...items], { minLength: items.length, maxLength: items.length });
  const fleetArb = fc.uniqueArray(
    fc.record({
      name: fc.stringMatching(/^[a-z][a-z0-9]{0,6}$/),
      region: fc.constantFrom('eu', 'us'),
      field: fc.boolean(),
      gpu: fc.constantFrom('NVIDIA L40S', 'Tesla T4', 'none'),
    }),
    { selector: (s) => s.name, maxLength: 25 },
  ).map((specs) => specs.map((s) => spoke(s.name, { region: s.region, ...(s.field ? { class: 'field-unit' } : {}) }, s.gpu === 'none' ? cpuOnly : gpus(s.gpu, 48))));

  it('does not depend on the order of objects or spokes, down to key order', () => {
    fc.assert(
      fc.property(fleetArb.chain((f) => fc.tuple(fc.constant(f), permutation(f), permutation(policy))), ([spokes, shuffledSpokes, shuffledPolicy]) => {
        const a = renderDesired(policy, spokes, options);
        const b = renderDesired(shuffledPolicy, shuffledSpokes, options);
        expect(JSON.stringify([...b])).toBe(JSON.stringify([...a]));
      }),
      { numRuns: 50 },
    );
  });

  it('diffs symmetrically: what one direction adds the other removes', () => {
    fc.assert(
      fc.property(fleetArb, fc.subarray(policy), (spokes, subset) => {
        const full = renderDesired(policy, spokes, options);
        // A subset may drop what others refer to; keep only subsets that render.
        let partial: Map<string, DesiredPayload>;
        try {
          partial = renderDesired(subset, spokes, options);
        } catch (e) {
          if (e instanceof RenderError) return;
          throw e;
        }
        const forward = diffDesired(full, partial);
        const backward = diffDesired(partial, full);
        expect(backward.map((d) => ({ spoke: d.spoke, added: d.removed, removed: d.added, changed: d.changed }))).toEqual(forward);
        expect(diffDesired(full, full)).toEqual([]);
      }),
      { numRuns: 50 },
    );
  });
});
