import fc from 'fast-check';
import { formatPath, formatPolicyError, parsePolicyDocuments, type PolicyError } from './documents.js';
import { parseDuration } from './schemas.js';

const deployment = (spec: string, name = 'bridge-defects-eu') =>
  `apiVersion: flotilla.dev/v1
kind: ModelDeployment
metadata:
  name: ${name}
spec:
${spec.replace(/^/gm, '  ')}
`;
const minimalSpec = `model: { name: bridge-defects, version: "1.0.0" }
placement: eu-gpu-sites
runtime: triton`;

function errorsOf(text: string, file = 'policy.yaml'): PolicyError[] {
  return parsePolicyDocuments([{ file, text }]).errors;
}
/** The single error a document must produce, as `line:column path message`. */
function onlyError(text: string): string {
  const errors = errorsOf(text);
  expect(errors).toHaveLength(1);
  const [e] = errors as [PolicyError];
  return `${e.line}:${e.column} ${e.path} ${e.message}`;
}

describe('parsePolicyDocuments: good input', () => {
  it('reads several documents from one file and applies defaults', () => {
    const { objects, errors } = parsePolicyDocuments([
      {
        file: 'p.yaml',
        text: `apiVersion: flotilla.dev/v1
kind: Placement
metadata: { name: eu-gpu-sites, labels: { region: eu } }
spec:
  selector: { matchLabels: { region: eu } }
---
${deployment(minimalSpec)}`,
      },
    ]);
    expect(errors).toEqual([]);
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual(['Placement/eu-gpu-sites', 'ModelDeployment/bridge-defects-eu']);
    const d = objects[1];
    if (d?.kind !== 'ModelDeployment') throw new Error('expected a ModelDeployment');
    expect(d.spec.replicas).toEqual({ min: 1, max: 1 });
    expect(d.spec.resources).toEqual({ gpu: 0 });
    expect(d.spec.remediation).toBe('enforce');
    expect(d.spec.rollout).toEqual({
      strategy: 'Progressive',
      maxConcurrency: '25%',
      minSuccessTime: '2m',
      progressDeadline: '10m',
      maxFailures: 0,
      gates: { maxErrorRatio: 0.05, maxLatencyP99Ratio: 2, noRestarts: true },
    });
  });

  it('reads JSON, including a top-level list of objects', () => {
    const placement = { apiVersion: 'flotilla.dev/v1', kind: 'Placement', metadata: { name: 'a' }, spec: { selector: {} } };
    const { objects, errors } = parsePolicyDocuments([
      { file: 'one.json', text: JSON.stringify(placement) },
      { file: 'list.json', text: JSON.stringify([{ ...placement, metadata: { name: 'b' } }, { ...placement, metadata: { name: 'c' } }], null, 2) },
    ]);
    expect(errors).toEqual([]);
    expect(objects.map((o) => o.metadata.name)).toEqual(['a', 'b', 'c']);
  });

  it('locates errors inside a JSON list item', () => {
    const text = `[
  {"apiVersion": "flotilla.dev/v1", "kind": "Placement", "metadata": {"name": "a"}, "spec": {"selector": {}}},
  {"apiVersion": "flotilla.dev/v1", "kind": "Placement", "metadata": {"name": "b"}, "spec": {"selector": {}, "maxSpokes": 0}}
]`;
    expect(onlyError(text)).toMatch(/^3:123 spec\.maxSpokes Too small/);
  });

  it('takes numbers for cpu and memory quantities, as people write them', () => {
    const { objects, errors } = parsePolicyDocuments([{ file: 'p.yaml', text: deployment(`${minimalSpec}\nresources: { gpu: 1, cpu: 2 }`) }]);
    expect(errors).toEqual([]);
    expect(objects[0]?.kind === 'ModelDeployment' && objects[0].spec.resources).toEqual({ gpu: 1, cpu: '2' });
  });

  it('ignores empty files and empty documents', () => {
    expect(parsePolicyDocuments([{ file: 'empty.yaml', text: '' }, { file: 'blank.yaml', text: '---\n# nothing\n---\n' }])).toMatchObject({ objects: [], errors: [] });
  });

  it('finds a field through sourceMap.locate', () => {
    const { sourceMap } = parsePolicyDocuments([{ file: 'd.yaml', text: deployment(minimalSpec) }]);
    expect(sourceMap.locate('ModelDeployment', 'bridge-defects-eu', ['spec', 'placement'])).toEqual({ file: 'd.yaml', line: 7, column: 14 });
    expect(sourceMap.locate('ModelDeployment', 'other', ['spec'])).toBeUndefined();
  });
});

describe('parsePolicyDocuments: bad input', () => {
  it('reports a YAML syntax error once per line, where yaml detects it, and no schema noise', () => {
    // Over-indented "labels" continues the plain scalar "a" in YAML's eyes, so the error is on "a".
    expect(errorsOf('apiVersion: flotilla.dev/v1\nkind: Placement\nmetadata:\n  name: a\n   labels: {}\n')).toEqual([
      { file: 'policy.yaml', line: 4, column: 9, path: '', message: 'Nested mappings are not allowed in compact mappings' },
    ]);
  });

  it('reports a duplicate YAML key', () => {
    expect(onlyError('apiVersion: flotilla.dev/v1\nkind: Placement\nkind: Model\n')).toMatch(/^3:1 {2}Map keys must be unique/);
  });

  it('reports an unknown field at its key, with the full path', () => {
    expect(onlyError(deployment(`${minimalSpec}\nreplicas: { min: 1, max: 2, target: 3 }`))).toBe('9:31 spec.replicas.target unknown field "target"');
  });

  it('refuses a rollout error-ratio gate (the threshold routing uses too) outside 0..1 or not a number, naming the field', () => {
    expect(onlyError(deployment(`${minimalSpec}\nrollout: { gates: { maxErrorRatio: 1.5 } }`))).toMatch(/^9:38 spec\.rollout\.gates\.maxErrorRatio Too big: expected number to be <=1/);
    expect(onlyError(deployment(`${minimalSpec}\nrollout: { gates: { maxErrorRatio: -0.1 } }`))).toMatch(/^9:38 spec\.rollout\.gates\.maxErrorRatio Too small: expected number to be >=0/);
    expect(onlyError(deployment(`${minimalSpec}\nrollout: { gates: { maxErrorRatio: "5%" } }`))).toBe('9:38 spec.rollout.gates.maxErrorRatio expected number, got "5%"');
    const { objects, errors } = parsePolicyDocuments([{ file: 'p.yaml', text: deployment(`${minimalSpec}\nrollout: { gates: { maxErrorRatio: 0.2 } }`) }]);
    expect(errors).toEqual([]);
    const d = objects[0];
    if (d?.kind !== 'ModelDeployment') throw new Error('expected a ModelDeployment');
    expect(d.spec.rollout.gates).toEqual({ maxErrorRatio: 0.2, maxLatencyP99Ratio: 2, noRestarts: true });
  });

  it('reports a wrong type with what was found', () => {
    expect(onlyError(deployment(`${minimalSpec}\nreplicas: { min: 1, max: "4" }`))).toBe('9:28 spec.replicas.max expected number, got "4"');
  });

  it('reports a missing required field at its parent', () => {
    expect(onlyError(deployment('model: { name: bridge-defects, version: "1.0.0" }\nruntime: triton'))).toBe(
      '6:3 spec.placement required field is missing (expected string)',
    );
  });

  it('reports an enum value with the allowed values', () => {
    expect(onlyError(deployment(minimalSpec.replace('triton', 'tritonserver')))).toBe(
      '8:12 spec.runtime must be one of "triton", "builtin", got "tritonserver"',
    );
  });

  it('asks for quotes when a version is written as a number', () => {
    expect(onlyError(deployment(minimalSpec.replace('"1.0.0"', '1.0')))).toBe('6:43 spec.model.version expected string, got 1');
  });

  it('reports max below min on max', () => {
    expect(onlyError(deployment(`${minimalSpec}\nreplicas: { min: 3, max: 2 }`))).toBe('9:28 spec.replicas.max max must be >= min');
  });

  it('rejects a wrong apiVersion and an unknown kind', () => {
    expect(onlyError('apiVersion: flotilla.dev/v2\nkind: Placement\n')).toBe('1:13 apiVersion must be "flotilla.dev/v1", got "flotilla.dev/v2"');
    expect(onlyError('apiVersion: flotilla.dev/v1\nkind: Deployment\n')).toBe(
      '2:7 kind unknown kind "Deployment"; expected one of Model, Placement, ModelDeployment, FineTuneJob',
    );
    expect(onlyError('kind: Placement\n')).toBe('1:1 apiVersion required field is missing (expected "flotilla.dev/v1")');
  });

  it('rejects a document that is not a mapping', () => {
    expect(errorsOf('- just\n- a list\n').map((e) => `${e.line}:${e.column} ${e.message}`)).toEqual([
      '1:3 expected a policy object with apiVersion, kind, metadata and spec',
      '2:3 expected a policy object with apiVersion, kind, metadata and spec',
    ]);
    expect(onlyError('hello\n')).toBe('1:1  expected a policy object with apiVersion, kind, metadata and spec');
  });

  it('rejects a name that is not a DNS label and a bad metadata label', () => {
    const errors = errorsOf(`apiVersion: flotilla.dev/v1
kind: Placement
metadata:
  name: EU_GPU
  labels: { "team/": x }
spec: { selector: {} }
`);
    expect(errors.map((e) => `${e.line}:${e.column} ${e.path}`)).toEqual(['4:9 metadata.name', '5:22 metadata.labels["team/"]']);
  });

  it('rejects an unknown time zone and a window that starts when it ends', () => {
    const errors = errorsOf(
      deployment(`${minimalSpec}
schedule:
  timezone: Europe/Paname
  windows:
    - { days: [mon], start: "07:00", end: "07:00", replicas: { min: 1, max: 1 } }
  outside: { min: 0, max: 0 }`),
    );
    expect(errors.map((e) => `${e.line}:${e.column} ${e.path}: ${e.message}`)).toEqual([
      '10:15 spec.schedule.timezone: unknown time zone "Europe/Paname"; use an IANA name like Europe/Paris',
      '12:45 spec.schedule.windows[0].end: window must not start and end at the same time',
    ]);
  });

  it('rejects a trainer that is both builtin and image, a relative dataset path and a bad holdout', () => {
    const errors = errorsOf(`apiVersion: flotilla.dev/v1
kind: FineTuneJob
metadata: { name: tune }
spec:
  baseModel: { name: bridge-defects, version: "1.0.0" }
  placement: eu-gpu-sites
  dataset: { path: data/labelled, format: csv }
  trainer: { builtin: linear-probe, image: "registry/trainer:1" }
  evaluation: { metric: accuracy, holdoutFraction: 1.5, threshold: 0.9 }
  output: { model: bridge-defects, artifact: keep-local }
`);
    expect(errors.map((e) => `${e.line}:${e.column} ${e.path}`)).toEqual([
      '7:20 spec.dataset.path',
      '8:44 spec.trainer.image',
      '9:52 spec.evaluation.holdoutFraction',
    ]);
  });

  it('reports a kind/name defined twice across files on the later one, naming the first', () => {
    const placement = 'apiVersion: flotilla.dev/v1\nkind: Placement\nmetadata:\n  name: eu\nspec: { selector: {} }\n';
    const { objects, errors } = parsePolicyDocuments([
      { file: 'a.yaml', text: placement },
      { file: 'b.yaml', text: `# again\n${placement}` },
    ]);
    expect(objects).toHaveLength(1);
    expect(errors).toEqual([
      { file: 'b.yaml', line: 5, column: 9, path: 'metadata.name', message: 'duplicate Placement "eu": already defined at a.yaml:4:9', object: 'Placement/eu' },
    ]);
  });

  it('allows the same name in different kinds', () => {
    const text = `apiVersion: flotilla.dev/v1\nkind: Placement\nmetadata: { name: x }\nspec: { selector: {} }\n---\napiVersion: flotilla.dev/v1\nkind: Model\nmetadata: { name: x }\nspec: { task: image-classification }\n`;
    expect(errorsOf(text)).toEqual([]);
  });

  it('keeps reading after a bad document and reports every problem', () => {
    const text = `${deployment(`${minimalSpec}\nbogus: 1`, 'one')}---\n${deployment(`${minimalSpec}\nbogus: 2`, 'two')}`;
    expect(errorsOf(text).map((e) => `${e.line} ${e.object}`)).toEqual(['9 ModelDeployment/one', '19 ModelDeployment/two']);
  });

  it('refuses to expand an alias bomb', () => {
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x, x]', ...Array.from({ length: 8 }, (_, i) => `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(10).fill(`*${String.fromCharCode(97 + i)}`).join(', ')}]`)].join('\n');
    const errors = errorsOf(bomb);
    expect(errors).toHaveLength(1);
    expect(errors[0]?.message).toMatch(/alias/i);
  });
});

describe('formatting', () => {
  it('writes paths the way people read them', () => {
    expect(formatPath(['spec', 'versions', 0, 'digest'])).toBe('spec.versions[0].digest');
    expect(formatPath(['spec', 'selector', 'matchLabels', 'gpu.product'])).toBe('spec.selector.matchLabels["gpu.product"]');
    expect(formatPath([])).toBe('');
  });

  it('formats an error as file:line:column: path: message', () => {
    expect(formatPolicyError({ file: 'a.yaml', line: 3, column: 7, path: 'spec.x', message: 'bad' })).toBe('a.yaml:3:7: spec.x: bad');
    expect(formatPolicyError({ file: 'Placement/eu', line: 0, column: 0, path: 'spec.x', message: 'bad' })).toBe('Placement/eu: spec.x: bad');
  });

  it('parses durations', () => {
    expect(parseDuration('2m')).toBe(120);
    expect(parseDuration('1h30m')).toBe(5400);
    expect(parseDuration('1500ms')).toBe(1.5);
    expect(() => parseDuration('2 minutes')).toThrow(/not a duration/);
  });
});

describe('parsePolicyDocuments properties', () => {
  const valid = deployment(`${minimalSpec}\nreplicas: { min: 1, max: 4 }\nresources: { gpu: 1, cpu: "2", memory: 8Gi }`);
  const lineCount = valid.split('\n').length;

  it('never throws on arbitrary text, and places every error inside the file', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(...'ab: -{}[],"\'\n\t#&*!|>%@`1.'.split('')), maxLength: 200 }), (text) => {
        const { errors } = parsePolicyDocuments([{ file: 'fuzz.yaml', text }]);
        const lines = text.split('\n').length;
        for (const e of errors) {
          expect(e.line).toBeGreaterThanOrEqual(1);
          expect(e.line).toBeLessThanOrEqual(lines);
          expect(e.column).toBeGreaterThanOrEqual(1);
          expect(e.message.length).toBeGreaterThan(0);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('reports a valid document with one line removed or re-indented as errors, never as a crash', () => {
    fc.assert(
      fc.property(fc.nat(lineCount - 1), fc.constantFrom('drop', 'indent', 'dedent'), (index, edit) => {
        const lines = valid.split('\n');
        const line = lines[index] ?? '';
        if (edit === 'drop') lines.splice(index, 1);
        else lines[index] = edit === 'indent' ? ` ${line}` : line.replace(/^ /, '');
        const { objects, errors } = parsePolicyDocuments([{ file: 'edited.yaml', text: lines.join('\n') }]);
        // Either the edit was harmless or it is reported; a broken document never yields an object.
        expect(objects.length + errors.length).toBeGreaterThan(0);
        if (errors.length > 0) expect(objects).toEqual([]);
        for (const e of errors) expect(e.line).toBeGreaterThanOrEqual(1);
      }),
      { numRuns: 200 },
    );
  });
});
