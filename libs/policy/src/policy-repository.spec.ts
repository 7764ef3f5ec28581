// The specs read policy files from the repository; the library itself does no I/O.
// eslint-disable-next-line no-restricted-imports
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { DesiredPayloadSchema } from '@flotilla/contracts';
import { checkReferences, formatPolicyError, parsePolicyDocuments, type PolicyError, type PolicySource, renderDesired } from './index.js';
import { cpuOnly, gpus, spoke } from './spec-helpers.js';

const ROOT = join(import.meta.dirname, '..', '..', '..');

function sourcesUnder(dir: string): PolicySource[] {
  return readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => /\.(ya?ml|json)$/.test(f))
    .sort()
    .map((f) => {
      const file = relative(ROOT, join(ROOT, dir, f));
      return { file, text: readFileSync(join(ROOT, file), 'utf8') };
    });
}

/** Parse one bad fixture and check references too, as `flotilla validate` does. */
function validate(sources: PolicySource[]): PolicyError[] {
  const parsed = parsePolicyDocuments(sources);
  return [...parsed.errors, ...checkReferences(parsed.objects, [], parsed.sourceMap)];
}

describe('examples/policies', () => {
  const sources = sourcesUnder('examples/policies');
  const parsed = parsePolicyDocuments(sources);

  it('validates clean: no schema or reference errors', () => {
    expect(sources.length).toBeGreaterThanOrEqual(9);
    expect([...parsed.errors, ...checkReferences(parsed.objects, [], parsed.sourceMap)].map(formatPolicyError)).toEqual([]);
  });

  it('declares the concrete-defects model with two versions, three placements, three deployments and a job per region', () => {
    const names = parsed.objects.map((o) => `${o.kind}/${o.metadata.name}`).sort();
    expect(names).toEqual([
      'FineTuneJob/bridge-defects-eu-site-tuning',
      'FineTuneJob/bridge-defects-us-site-tuning',
      'Model/concrete-defects',
      'ModelDeployment/bridge-defects-eu',
      'ModelDeployment/bridge-defects-field',
      'ModelDeployment/bridge-defects-us',
      'Placement/cpu-field-units',
      'Placement/eu-gpu-sites',
      'Placement/us-gpu-sites',
    ]);
  });

  it('renders for a mixed fleet: each site gets its region workloads, data stays on site', () => {
    const fleet = [
      spoke('depot-lyon', { region: 'eu', 'gpu.product': 'L40S', 'data-residency': 'eu' }, gpus('NVIDIA L40S', 48)),
      spoke('depot-gdansk', { region: 'eu', 'gpu.product': 'T4', 'data-residency': 'eu' }, gpus('Tesla T4', 16)),
      spoke('office-denver', { region: 'us', 'data-residency': 'us' }, gpus('NVIDIA H100 80GB HBM3', 80)),
      spoke('office-austin', { region: 'us', 'data-residency': 'us', quarantined: 'true' }, gpus('NVIDIA H100 80GB HBM3', 80)),
      spoke('van-12', { class: 'field-unit', region: 'eu' }, cpuOnly),
    ];
    const desired = renderDesired(parsed.objects, fleet, { telemetryIntervalSeconds: 30 });
    const summary = Object.fromEntries(
      [...desired].map(([name, p]) => [name, [...p.deployments.map((d) => `${d.name}@${d.model.version}`), ...p.fineTuneJobs.map((j) => `job:${j.name}`)]]),
    );
    expect(summary).toEqual({
      'depot-gdansk': [],
      'depot-lyon': ['bridge-defects-eu@1.1.0', 'job:bridge-defects-eu-site-tuning'],
      'office-austin': [],
      'office-denver': ['bridge-defects-us@1.0.0', 'job:bridge-defects-us-site-tuning'],
      'van-12': ['bridge-defects-field@1.1.0'],
    });
    for (const payload of desired.values()) DesiredPayloadSchema.parse(payload);
    const lyonJob = desired.get('depot-lyon')?.fineTuneJobs[0];
    expect(lyonJob?.dataset.path).toBe('/data/labelled/bridge-defects');
    expect(lyonJob?.output.artifact).toBe('keep-local');
    expect(desired.get('office-denver')?.deployments[0]?.gpuProduct).toBe('NVIDIA-H100-80GB-HBM3');
  });
});

describe('test/fixtures/policy/bad', () => {
  const fixture = (name: string): PolicySource[] => sourcesUnder('test/fixtures/policy/bad').filter((s) => s.file.endsWith(`/${name}`));
  const located = (errors: PolicyError[]) => errors.map((e) => `${e.file.replace('test/fixtures/policy/bad/', '')}:${e.line}:${e.column} ${e.path}`);

  it('has a test for every fixture', () => {
    expect(sourcesUnder('test/fixtures/policy/bad').map((s) => s.file.replace('test/fixtures/policy/bad/', ''))).toEqual([
      'bad-indentation.yaml',
      'bad-rollout.yaml',
      'bad-selector.yaml',
      'dangling-reference.yaml',
      'duplicate-name.yaml',
      'malformed-digest.yaml',
      'unknown-field.yaml',
      'wrong-type.yaml',
    ]);
  });

  it('bad-indentation.yaml: a YAML error on the mis-indented line', () => {
    const errors = validate(fixture('bad-indentation.yaml'));
    expect(located(errors)).toEqual(['bad-indentation.yaml:9:2 ']);
    expect(errors[0]?.message).toBe('All mapping items must start at the same column');
  });

  it('unknown-field.yaml: the misspelt key, with its path', () => {
    const errors = validate(fixture('unknown-field.yaml'));
    expect(located(errors)).toEqual(['unknown-field.yaml:10:3 spec.replica']);
    expect(errors[0]?.message).toBe('unknown field "replica"');
  });

  it('wrong-type.yaml: the value of the wrong type', () => {
    const errors = validate(fixture('wrong-type.yaml'));
    expect(located(errors)).toEqual(['wrong-type.yaml:12:10 spec.replicas.max']);
    expect(errors[0]?.message).toBe('expected number, got "four"');
  });

  it('malformed-digest.yaml: the digest of the second version', () => {
    const errors = validate(fixture('malformed-digest.yaml'));
    expect(located(errors)).toEqual(['malformed-digest.yaml:15:15 spec.versions[1].digest']);
    expect(errors[0]?.message).toBe('must be "sha256:" followed by 64 lower-case hex digits');
  });

  it('dangling-reference.yaml: the unknown version and the unknown placement, at the referring fields', () => {
    const errors = validate(fixture('dangling-reference.yaml'));
    expect(located(errors)).toEqual(['dangling-reference.yaml:19:43 spec.model.version', 'dangling-reference.yaml:20:14 spec.placement']);
    expect(errors.map((e) => e.message)).toEqual([
      'model "bridge-defects" has no version "2.0.0"; known: 1.0.0',
      'unknown placement "eu-gpu-sitez"; no Placement is defined',
    ]);
  });

  it('duplicate-name.yaml: the second definition, pointing back at the first', () => {
    const errors = validate(fixture('duplicate-name.yaml'));
    expect(located(errors)).toEqual(['duplicate-name.yaml:10:19 metadata.name']);
    expect(errors[0]?.message).toBe('duplicate Placement "eu-gpu-sites": already defined at test/fixtures/policy/bad/duplicate-name.yaml:4:19');
  });

  it('bad-selector.yaml: In without values and Gt with a non-integer', () => {
    const errors = validate(fixture('bad-selector.yaml'));
    expect(located(errors)).toEqual(['bad-selector.yaml:9:9 spec.selector.matchExpressions[0].values', 'bad-selector.yaml:12:18 spec.selector.matchExpressions[1].values[0]']);
    expect(errors.map((e) => e.message)).toEqual(['operator In needs at least one value', 'operator Gt needs an integer value, got "many"']);
  });

  it('bad-rollout.yaml: the percentage over 100 and the deadline shorter than the success time', () => {
    const errors = validate(fixture('bad-rollout.yaml'));
    expect(located(errors)).toEqual(['bad-rollout.yaml:12:21 spec.rollout.maxConcurrency', 'bad-rollout.yaml:14:23 spec.rollout.progressDeadline']);
    expect(errors[1]?.message).toBe('must be longer than minSuccessTime (5m)');
  });

  it('a duplicate across files names the other file', () => {
    const placement = fixture('duplicate-name.yaml')[0] as PolicySource;
    const errors = validate([{ file: 'other.yaml', text: placement.text.split('---')[0] as string }, placement]);
    expect(errors.map(formatPolicyError)).toEqual([
      'test/fixtures/policy/bad/duplicate-name.yaml:4:19: metadata.name: duplicate Placement "eu-gpu-sites": already defined at other.yaml:4:19',
      'test/fixtures/policy/bad/duplicate-name.yaml:10:19: metadata.name: duplicate Placement "eu-gpu-sites": already defined at other.yaml:4:19',
    ]);
  });
});
