import { isJsonObject, metadataOf, type JsonObject, type JsonValue } from './json.js';
import { type ResourceType } from './resources.js';
import { fieldInvalid, invalid } from './status.js';
import { selectorString } from './tables.js';

/**
 * The `scale` subresource: an autoscaling/v1 Scale view of a Deployment's
 * replicas, which `kubectl scale` and HorizontalPodAutoscalers read and
 * write. Writing it changes only `spec.replicas` of the Deployment.
 */
export function scaleOf(obj: JsonObject): JsonObject {
  const meta = metadataOf(obj);
  const spec = isJsonObject(obj['spec']) ? obj['spec'] : {};
  const status = isJsonObject(obj['status']) ? obj['status'] : {};
  const identity: JsonObject = {};
  for (const key of ['name', 'namespace', 'uid', 'resourceVersion', 'creationTimestamp']) {
    if (meta[key] !== undefined) identity[key] = meta[key]!;
  }
  const selector = selectorString(spec['selector']);
  return {
    kind: 'Scale',
    apiVersion: 'autoscaling/v1',
    metadata: identity,
    spec: { replicas: typeof spec['replicas'] === 'number' ? spec['replicas'] : 0 },
    status: { replicas: typeof status['replicas'] === 'number' ? status['replicas'] : 0, ...(selector !== '<none>' ? { selector } : {}) },
  };
}

/** The replica count a written Scale asks for; 422 as from the real server when it is not a count. */
export function requestedReplicas(name: string, scale: JsonValue): number {
  const spec = isJsonObject(scale) && isJsonObject(scale['spec']) ? scale['spec'] : {};
  const replicas = spec['replicas'] ?? 0;
  if (typeof replicas !== 'number' || !Number.isInteger(replicas) || replicas < 0) {
    throw invalid('Scale', 'autoscaling', name, [fieldInvalid('spec.replicas', replicas, 'must be greater than or equal to 0')]);
  }
  return replicas;
}

/** Whether the resource type has the subresource path segment `name`. */
export function hasSubresource(type: ResourceType, name: string): boolean {
  return (name === 'status' && type.hasStatus) || (name === 'scale' && type.hasScale) || (name === 'log' && type.kind === 'Pod');
}
