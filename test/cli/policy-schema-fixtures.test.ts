import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { parseAllDocuments } from 'yaml';
import { type PolicyError, RULES_BEYOND_JSON_SCHEMA, checkReferences, formatPath, parsePolicyDocuments } from '@flotilla/policy';
import { runCli } from '../support/cli.js';

/**
 * `flotilla schema` is as strict as `flotilla validate`: every fixture gets
 * the same verdict from a real JSON Schema validator (ajv, draft 2020-12,
 * against the CLI's output) and from the library function `flotilla
 * validate` runs. Bad fixtures name the one field at fault (`# invalid:`),
 * so each proves its own rule rather than failing for another reason. The
 * few rules JSON Schema cannot state have fixtures of their own, which the
 * schema accepts, validate refuses, and the schema's description names.
 */

const ROOT = 'test/fixtures/policy-schema';
const noHub = { FLOTILLA_URL: '', FLOTILLA_TOKEN: '' };

interface Fixture {
  file: string;
  text: string;
  /** The field `flotilla validate` must report, from the `# invalid:` line. */
  invalid: string | null;
}

async function fixtures(dir: string): Promise<Fixture[]> {
  const names = (await readdir(path.join(ROOT, dir))).filter((n) => n.endsWith('.yaml')).sort();
  return Promise.all(
    names.map(async (n) => {
      const file = `${ROOT}/${dir}/${n}`;
      const text = await readFile(file, 'utf8');
      return { file, text, invalid: /^# invalid: (.+)$/m.exec(text)?.[1] ?? null };
    }),
  );
}

/** As `flotilla validate` decides (apps/cli/src/commands/policy.ts): schema, then references. */
function validateProblems(f: Fixture): PolicyError[] {
  const parsed = parsePolicyDocuments([{ file: f.file, text: f.text }]);
  return [...parsed.errors, ...checkReferences(parsed.objects, [], parsed.sourceMap)];
}

/** ajv's errors for every object in the file (a YAML list at the top holds several). */
function schemaErrors(validate: ValidateFunction, f: Fixture): ErrorObject[] {
  const errors: ErrorObject[] = [];
  for (const doc of parseAllDocuments(f.text)) {
    const js: unknown = doc.toJS();
    if (js === null) continue;
    for (const object of Array.isArray(js) ? js : [js]) {
      if (!validate(object)) errors.push(...(validate.errors ?? []));
    }
  }
  return errors;
}

/** Where ajv says the error is, as `flotilla validate` writes paths (`spec.versions[0].digest`). */
function errorPath(e: ErrorObject): string {
  const segments: (string | number)[] = e.instancePath
    .split('/')
    .slice(1)
    .map((s) => s.replaceAll('~1', '/').replaceAll('~0', '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
  // Unknown fields and bad map keys are reported on the object that holds them.
  if (e.keyword === 'additionalProperties') segments.push(String(e.params.additionalProperty));
  if (e.keyword === 'propertyNames') segments.push(String(e.params.propertyName));
  return formatPath(segments);
}

describe('flotilla schema agrees with flotilla validate', () => {
  let schema: Record<string, unknown>;
  let validate: ValidateFunction;
  let good: Fixture[];
  let bad: Fixture[];
  let beyond: Fixture[];

  beforeAll(async () => {
    const r = await runCli(['schema'], noHub);
    expect(r.code).toBe(0);
    schema = JSON.parse(r.stdout) as Record<string, unknown>;
    // Strict, but `required` may name properties a sibling `properties` declares (as in the trainer rule).
    const ajv = new Ajv2020({ strict: true, strictRequired: false, allowUnionTypes: true, allErrors: true });
    // ajv-formats is CommonJS: its default export is the plugin, under `.default` as TypeScript sees it.
    addFormats.default(ajv);
    validate = ajv.compile(schema);
    [good, bad, beyond] = await Promise.all([fixtures('good'), fixtures('bad'), fixtures('beyond-json-schema')]);
  });

  test('there are enough fixtures of each kind, each bad one naming its field', () => {
    expect(good.length).toBeGreaterThanOrEqual(8);
    expect(bad.length).toBeGreaterThanOrEqual(15);
    for (const f of [...bad, ...beyond]) expect({ file: f.file, invalid: typeof f.invalid }).toEqual({ file: f.file, invalid: 'string' });
  });

  test('good fixtures: valid for both', () => {
    for (const f of good) {
      expect({ file: f.file, validate: validateProblems(f).map((p) => `${p.path}: ${p.message}`) }).toEqual({ file: f.file, validate: [] });
      expect({ file: f.file, schema: schemaErrors(validate, f).map((e) => `${e.instancePath} ${e.message}`) }).toEqual({ file: f.file, schema: [] });
    }
  });

  test('bad fixtures: both refuse them, for the field each names', () => {
    for (const f of bad) {
      const problems = validateProblems(f);
      expect({ file: f.file, validate: problems.map((p) => p.path) }).toEqual({ file: f.file, validate: [f.invalid] });
      const errors = schemaErrors(validate, f);
      const at = errors.map(errorPath);
      // ajv points at the field, or at the object or map holding it (propertyNames, oneOf, required).
      const related = at.some((p) => (f.invalid as string).startsWith(p) && p.split('.').length >= 2);
      expect({ file: f.file, refused: errors.length > 0, related, at }).toEqual({ file: f.file, refused: true, related: true, at });
    }
  });

  test('what JSON Schema cannot state: validate refuses, the schema accepts, and its description says so', () => {
    const description = String(schema.description);
    for (const rule of RULES_BEYOND_JSON_SCHEMA) expect(description).toContain(rule);
    const ruleOf: Record<string, string> = {
      'replicas-max-below-min.yaml': 'replicas.max must be >= replicas.min',
      'rollout-deadline-not-longer.yaml': 'progressDeadline must be longer than rollout.minSuccessTime',
      'window-start-equals-end.yaml': 'must not start and end at the same time',
      'version-listed-twice.yaml': 'lists each version once',
    };
    expect(beyond.map((f) => path.basename(f.file)).sort()).toEqual(Object.keys(ruleOf).sort());
    for (const f of beyond) {
      expect(description).toContain(ruleOf[path.basename(f.file)]);
      expect({ file: f.file, validate: validateProblems(f).map((p) => p.path) }).toEqual({ file: f.file, validate: [f.invalid] });
      expect({ file: f.file, schema: schemaErrors(validate, f).length }).toEqual({ file: f.file, schema: 0 });
    }
  });

  test('the CLI itself: validate passes the good directory and finds a problem in every bad file', async () => {
    const ok = await runCli(['validate', '-f', `${ROOT}/good`], noHub);
    expect({ code: ok.code, stderr: ok.stderr }).toEqual({ code: 0, stderr: '' });
    expect(ok.stdout).toMatch(new RegExp(`^valid: ${good.length} files, `));
    const refused = await runCli(['validate', '-f', `${ROOT}/bad`], noHub);
    expect(refused.code).toBe(3);
    expect(refused.stderr.trimEnd().split('\n').at(-1)).toBe(`flotilla: ${bad.length} problems in ${bad.length} of ${bad.length} files`);
  });
});
