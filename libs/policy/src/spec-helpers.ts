import { type Capacity } from '@flotilla/contracts';
import { parsePolicyDocuments } from './documents.js';
import { type SpokeView } from './placement.js';
import { type Placement, type PolicyObject } from './schemas.js';

/** Shared builders for the policy specs; not exported from the library. */

export function gpus(product: string, memoryGiB: number, count = 1): Capacity {
  return {
    cpuCores: 32,
    memoryGiB: 256,
    gpus: Array.from({ length: count }, (_, index) => ({ index, uuid: `GPU-${product}-${index}`, product, memoryGiB, mig: false })),
  };
}

export const cpuOnly: Capacity = { cpuCores: 8, memoryGiB: 32, gpus: [] };

export function spoke(name: string, labels: Record<string, string>, capacity?: Capacity, connection?: SpokeView['connection']): SpokeView {
  return { name, labels, ...(capacity ? { capacity } : {}), ...(connection ? { connection } : {}) };
}

/** Parse YAML that the test expects to be valid, failing loudly with the errors otherwise. */
export function objectsFrom(text: string, file = 'inline.yaml'): PolicyObject[] {
  const { objects, errors } = parsePolicyDocuments([{ file, text }]);
  if (errors.length > 0) throw new Error(`unexpected policy errors: ${JSON.stringify(errors, null, 2)}`);
  return objects;
}

export function placementFrom(spec: string, name = 'test-placement'): Placement {
  const [object] = objectsFrom(`apiVersion: flotilla.dev/v1\nkind: Placement\nmetadata: { name: ${name} }\nspec:\n${spec.replace(/^/gm, '  ')}\n`);
  if (object?.kind !== 'Placement') throw new Error('expected a Placement');
  return object;
}
