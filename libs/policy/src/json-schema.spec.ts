import fc from 'fast-check';
import { LABEL_KEY_PATTERN, LABEL_VALUE_PATTERN, POSITIVE_DURATION_PATTERN, TIME_ZONES, timeZoneProblem } from './json-schema-rules.js';
import { toJsonSchema } from './json-schema.js';
import { parseDuration } from './schemas.js';
import { labelKeyProblem, labelValueProblem } from './selector.js';

type Schema = { properties?: Record<string, Schema>; required?: string[]; additionalProperties?: unknown; const?: unknown; oneOf?: Schema[] };

describe('toJsonSchema', () => {
  const schema = toJsonSchema() as Schema & { $schema?: string; $id?: string };
  const kinds = schema.oneOf ?? [];
  const kind = (name: string) => kinds.find((k) => k.properties?.kind?.const === name) as Schema;

  it('is one draft 2020-12 document with a branch per kind', () => {
    expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(schema.$id).toBe('https://flotilla.dev/schemas/policy-v1.json');
    expect(kinds.map((k) => k.properties?.kind?.const)).toEqual(['Model', 'Placement', 'ModelDeployment', 'FineTuneJob']);
  });

  it('pins apiVersion and forbids unknown fields, as validation does', () => {
    for (const k of kinds) {
      expect(k.properties?.apiVersion?.const).toBe('flotilla.dev/v1');
      expect(k.additionalProperties).toBe(false);
      expect(k.properties?.spec?.additionalProperties).toBe(false);
    }
  });

  it('describes what people write: defaulted fields are optional', () => {
    const spec = kind('ModelDeployment').properties?.spec as Schema;
    expect(spec.required?.sort()).toEqual(['model', 'placement', 'runtime']);
    expect(Object.keys(spec.properties ?? {})).toEqual(
      expect.arrayContaining(['model', 'placement', 'runtime', 'resources', 'replicas', 'schedule', 'remediation', 'rollout']),
    );
  });

  it('is plain JSON', () => {
    expect(JSON.parse(JSON.stringify(schema))).toEqual(schema);
  });
});

describe('JSON Schema patterns say what the validator says', () => {
  // Strings built from the characters that matter to label syntax, so edge cases come up often.
  const chars = fc.constantFrom('a', 'z', 'A', '0', '9', '-', '_', '.', '/', ' ', '!', 'é');
  const text = (max: number) => fc.array(chars, { maxLength: max }).map((a) => a.join(''));
  const longish = fc.tuple(text(8), fc.integer({ min: 0, max: 70 }), text(8)).map(([a, n, b]) => `${a}${'k'.repeat(n)}${b}`);
  const key = new RegExp(LABEL_KEY_PATTERN, 'u');
  const value = new RegExp(LABEL_VALUE_PATTERN, 'u');

  it('label keys: the pattern (and maxLength) accepts exactly what labelKeyProblem accepts', () => {
    fc.assert(
      fc.property(fc.oneof(text(20), longish, fc.tuple(longish, longish).map(([a, b]) => `${a}/${b}`)), (k) => {
        expect(key.test(k) && k.length <= 317).toBe(labelKeyProblem(k) === undefined);
      }),
      { numRuns: 5000 },
    );
    expect(key.test(`${'a'.repeat(253)}/x`)).toBe(true);
    expect(key.test(`${'a'.repeat(254)}/x`)).toBe(false);
  });

  it('label values: the pattern (and maxLength 63) accepts exactly what labelValueProblem accepts', () => {
    fc.assert(
      fc.property(fc.oneof(text(20), longish), (v) => {
        expect(value.test(v) && v.length <= 63).toBe(labelValueProblem(v) === undefined);
      }),
      { numRuns: 5000 },
    );
  });

  it('durations: the pattern accepts exactly the durations longer than zero', () => {
    const pattern = new RegExp(POSITIVE_DURATION_PATTERN, 'u');
    const part = fc.tuple(fc.integer({ min: 0, max: 120 }), fc.constantFrom('ms', 's', 'm', 'h', 'd', '')).map(([n, u]) => `${n}${u}`);
    fc.assert(
      fc.property(fc.array(part, { minLength: 1, maxLength: 3 }).map((p) => p.join('')), (d) => {
        let ok: boolean;
        try {
          ok = parseDuration(d) > 0;
        } catch {
          ok = false;
        }
        expect(pattern.test(d)).toBe(ok);
      }),
      { numRuns: 3000 },
    );
  });

  it('time zones: the schema lists exactly the zones validation accepts, and aliases get the name to use', () => {
    for (const tz of TIME_ZONES) expect(timeZoneProblem(tz)).toBeUndefined();
    expect(TIME_ZONES).toEqual(expect.arrayContaining(['Europe/Paris', 'America/Chicago', 'UTC', 'Asia/Kolkata']));
    expect(timeZoneProblem('Mars/Olympus')).toMatch(/unknown time zone/);
    expect(timeZoneProblem('US/Eastern')).toBe('time zone "US/Eastern" is an alias; write "America/New_York"');
  });
});
