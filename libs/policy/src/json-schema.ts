import { z } from 'zod';
import { API_VERSION, PolicyObjectSchema } from './schemas.js';

/**
 * One JSON Schema document covering the four policy kinds, for `flotilla
 * schema` and editors (yaml-language-server). It describes what people write,
 * so fields with defaults are optional; refinements that JSON Schema cannot
 * express (label syntax, time zones, durations' order) are checked only by
 * `flotilla validate`.
 */
export function toJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(PolicyObjectSchema, { io: 'input', target: 'draft-2020-12', unrepresentable: 'any' });
  return {
    ...schema,
    $id: 'https://flotilla.dev/schemas/policy-v1.json',
    title: `Flotilla policy object (${API_VERSION})`,
    description: 'One of Model, Placement, ModelDeployment or FineTuneJob; see DESIGN.md section 5.',
  };
}
