import { parsePolicyDocuments } from './documents.js';
import { buildModelIndex, checkReferences, type RegisteredModel } from './references.js';
import { objectsFrom } from './spec-helpers.js';

const DIGEST_A = `sha256:${'a'.repeat(64)}`;
const DIGEST_B = `sha256:${'b'.repeat(64)}`;

const model = `apiVersion: flotilla.dev/v1
kind: Model
metadata: { name: bridge-defects }
spec:
  task: image-classification
  versions:
    - { version: "1.0.0", uri: "s3://m/1.0.0.onnx", digest: "${DIGEST_A}", format: onnx }
`;
const placement = `apiVersion: flotilla.dev/v1
kind: Placement
metadata: { name: eu-gpu-sites }
spec: { selector: {} }
`;
const deployment = (version: string, placementName = 'eu-gpu-sites', modelName = 'bridge-defects') => `apiVersion: flotilla.dev/v1
kind: ModelDeployment
metadata: { name: inference }
spec:
  model: { name: ${modelName}, version: "${version}" }
  placement: ${placementName}
  runtime: triton
`;
const job = (outputModel: string) => `apiVersion: flotilla.dev/v1
kind: FineTuneJob
metadata: { name: tune }
spec:
  baseModel: { name: bridge-defects, version: "1.0.0" }
  placement: eu-gpu-sites
  dataset: { path: /data/labelled, format: csv }
  trainer: { builtin: linear-probe }
  evaluation: { metric: accuracy, holdoutFraction: 0.2, threshold: 0.9 }
  output: { model: ${outputModel}, artifact: keep-local }
`;

const registry: RegisteredModel[] = [
  { name: 'bridge-defects', versions: [{ version: '1.2.0', uri: 's3://m/1.2.0.onnx', digest: DIGEST_B, format: 'onnx' }] },
  { name: 'pothole-detector', versions: [] },
];

function check(text: string, reg: RegisteredModel[] = []) {
  const parsed = parsePolicyDocuments([{ file: 'p.yaml', text }]);
  expect(parsed.errors).toEqual([]);
  return checkReferences(parsed.objects, reg, parsed.sourceMap).map((e) => `${e.file}:${e.line}:${e.column} ${e.path}: ${e.message}`);
}

describe('checkReferences', () => {
  it('accepts references to objects in the same set', () => {
    expect(check([model, placement, deployment('1.0.0'), job('bridge-defects')].join('---\n'))).toEqual([]);
  });

  it('reports an unknown placement at the placement field, listing the known ones', () => {
    expect(check([model, placement, deployment('1.0.0', 'eu-gpu')].join('---\n'))).toEqual([
      'p.yaml:19:14 spec.placement: unknown placement "eu-gpu"; known: eu-gpu-sites',
    ]);
  });

  it('reports an unknown model at the model name', () => {
    expect(check([placement, deployment('1.0.0', 'eu-gpu-sites', 'bridge-defect')].join('---\n'))).toEqual([
      'p.yaml:10:18 spec.model.name: unknown model "bridge-defect"',
    ]);
  });

  it('reports an unknown version at the version field, listing known versions', () => {
    expect(check([model, placement, deployment('2.0.0')].join('---\n'))).toEqual([
      'p.yaml:18:43 spec.model.version: model "bridge-defects" has no version "2.0.0"; known: 1.0.0',
    ]);
  });

  it('takes versions from the registry as well as from Model objects', () => {
    expect(check([model, placement, deployment('1.2.0')].join('---\n'), registry)).toEqual([]);
    expect(check([placement, deployment('1.2.0')].join('---\n'), registry)).toEqual([]);
  });

  it('knows a registered model that has no versions yet, as a fine-tuning output', () => {
    expect(check([model, placement, job('pothole-detector')].join('---\n'), registry)).toEqual([]);
    expect(check([model, placement, job('crack-segmenter')].join('---\n'), registry)).toEqual([
      'p.yaml:23:20 spec.output.model: unknown model "crack-segmenter"',
    ]);
  });

  it('reports a Model version whose digest contradicts the registry', () => {
    const conflicting = model.replace('"1.0.0"', '"1.2.0"');
    expect(check(conflicting, registry)).toEqual([
      `p.yaml:7:61 spec.versions[0].digest: version "1.2.0" is already registered with digest ${DIGEST_B}; versions are immutable, give the new artifact a new version`,
    ]);
  });

  it('names the object instead of a file when there is no source map', () => {
    const objects = objectsFrom([model, deployment('1.0.0', 'nowhere')].join('---\n'));
    expect(checkReferences(objects)).toEqual([
      {
        file: 'ModelDeployment/inference',
        line: 0,
        column: 0,
        path: 'spec.placement',
        message: 'unknown placement "nowhere"; no Placement is defined',
        object: 'ModelDeployment/inference',
      },
    ]);
  });
});

describe('buildModelIndex', () => {
  it('resolves versions to full model references, preferring the registry', () => {
    const index = buildModelIndex(objectsFrom(model.replace('"1.0.0"', '"1.2.0"')), registry);
    expect(index.get('bridge-defects')?.get('1.2.0')).toEqual({ name: 'bridge-defects', version: '1.2.0', uri: 's3://m/1.2.0.onnx', digest: DIGEST_B, format: 'onnx' });
  });
});
