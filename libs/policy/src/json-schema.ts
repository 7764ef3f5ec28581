import { z } from 'zod';
import { API_VERSION, PolicyObjectSchema, RULES_BEYOND_JSON_SCHEMA } from './schemas.js';

/**
 * One JSON Schema document covering the four policy kinds, for `flotilla
 * schema` and editors (yaml-language-server). It describes what people write,
 * so fields with defaults are optional. It carries the validator's patterns
 * and limits (label keys and values, names, quantities, durations, time
 * zones, selector operators, trainers); the few rules JSON Schema cannot state
 * are listed in its description and checked by `flotilla validate` only.
 */
export function toJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(PolicyObjectSchema, { io: 'input', target: 'draft-2020-12', unrepresentable: 'any' });
  return {
    ...schema,
    $id: 'https://flotilla.dev/schemas/policy-v1.json',
    title: `Flotilla policy object (${API_VERSION})`,
    description:
      'One of Model, Placement, ModelDeployment or FineTuneJob (docs: policy reference). ' +
      `Checked by \`flotilla validate\` but not expressible in JSON Schema: ${RULES_BEYOND_JSON_SCHEMA.join('; ')}.`,
  };
}
