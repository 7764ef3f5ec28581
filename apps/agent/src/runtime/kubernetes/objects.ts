import { LABEL_DEPLOYMENT, LABEL_JOB } from './labels.js';

/** The kinds the runtime creates and therefore lists, prunes and watches. */
export const MANAGED_KINDS = ['Deployment', 'Service', 'HorizontalPodAutoscaler', 'Job'] as const;
export type ManagedKind = (typeof MANAGED_KINDS)[number];

export const API_VERSION: Record<ManagedKind, string> = {
  Deployment: 'apps/v1',
  Service: 'v1',
  HorizontalPodAutoscaler: 'autoscaling/v2',
  Job: 'batch/v1',
};

/** Plain JSON as it crosses the API; live objects are normalised to this before anything compares them. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonMap = { [key: string]: Json };

export interface ObjectRef {
  kind: ManagedKind;
  name: string;
}

export function refKey(ref: ObjectRef): string {
  return `${ref.kind}/${ref.name}`;
}

/** `deployment/<name>` or `job/<name>`: the desired item an object belongs to. */
export type WorkloadKey = `deployment/${string}` | `job/${string}`;

export function deploymentKey(name: string): WorkloadKey {
  return `deployment/${name}`;
}

export function jobKey(name: string): WorkloadKey {
  return `job/${name}`;
}

/** An object observed in the cluster carrying Flotilla's managed-by label. */
export interface LiveObject extends ObjectRef {
  uid: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  body: JsonMap;
}

/** Which desired item a live object belongs to, by its Flotilla labels. */
export function workloadOf(live: Pick<LiveObject, 'kind' | 'labels'>): WorkloadKey | undefined {
  if (live.kind === 'Job') {
    const job = live.labels[LABEL_JOB];
    return job ? jobKey(job) : undefined;
  }
  const deployment = live.labels[LABEL_DEPLOYMENT];
  return deployment ? deploymentKey(deployment) : undefined;
}

/** An object as Flotilla wants it, with the hash of its rendering (also in its spec-hash annotation). */
export interface DesiredObject extends ObjectRef {
  body: JsonMap;
  hash: string;
}

export function isJsonMap(value: unknown): value is JsonMap {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * client-node hands back class instances with Dates; JSON round-tripping gives
 * the wire shape (the property names of the fields Flotilla sets are the JSON
 * names) so desired and live compare like for like.
 */
export function toJsonMap(value: unknown): JsonMap {
  const plain = JSON.parse(JSON.stringify(value ?? {})) as unknown;
  return isJsonMap(plain) ? plain : {};
}

export function stringRecord(value: Json | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!isJsonMap(value)) return out;
  for (const [k, v] of Object.entries(value)) if (typeof v === 'string') out[k] = v;
  return out;
}

export function toLiveObject(kind: ManagedKind, raw: unknown): LiveObject | undefined {
  const body = toJsonMap(raw);
  const meta = isJsonMap(body['metadata']) ? body['metadata'] : {};
  const name = meta['name'];
  if (typeof name !== 'string') return undefined;
  return {
    kind,
    name,
    uid: typeof meta['uid'] === 'string' ? meta['uid'] : '',
    labels: stringRecord(meta['labels']),
    annotations: stringRecord(meta['annotations']),
    body,
  };
}
