import { toJsonSchema } from './json-schema.js';

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
