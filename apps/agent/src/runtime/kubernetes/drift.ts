import { isJsonMap, type Json, type ObjectRef } from './objects.js';

/**
 * Drift: where a live object differs from what Flotilla applied, looking only
 * at the fields Flotilla sets (its applied configuration). Fields others add
 * (server defaults, labels from other tools, HPA-chosen replicas when the
 * Deployment leaves replicas out) are not Flotilla's and never drift.
 */
export interface Difference {
  /** `spec.template.spec.containers[name=triton].image` */
  path: string;
  desired: Json | undefined;
  live: Json | undefined;
}

/** Lists the API merges element by element (strategic merge keys); the rest are atomic. */
function mergeKey(field: string, elements: Json[]): string | undefined {
  const keyed = (key: string) => (elements.every((e) => isJsonMap(e) && e[key] !== undefined) ? key : undefined);
  switch (field) {
    case 'containers':
    case 'initContainers':
    case 'env':
    case 'volumes':
      return keyed('name');
    case 'volumeMounts':
      return keyed('mountPath');
    case 'ports':
      return keyed('containerPort') ?? keyed('port');
    default:
      return undefined;
  }
}

const QUANTITY = /^([+-]?[0-9.]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d+)?$/;
const SCALE: Record<string, number> = {
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** A resource quantity as a number ("500m" = 0.5, "1Gi" = 2^30), or undefined if it is not one. */
export function parseQuantity(value: string): number | undefined {
  const m = QUANTITY.exec(value.trim());
  if (!m) return undefined;
  const base = Number(m[1]);
  if (!Number.isFinite(base)) return undefined;
  const suffix = m[2];
  if (suffix === undefined) return base;
  if (/^[eE]/.test(suffix)) return base * 10 ** Number(suffix.slice(1));
  return base * (SCALE[suffix] ?? NaN);
}

/** The server canonicalises quantities ("1000m" comes back as "1"): compare them by value. */
function isQuantityField(path: string): boolean {
  return /(^|\.)(limits|requests)\.[^.]+$/.test(path) || /\.target\.(averageValue|value)$/.test(path);
}

function scalarEqual(desired: Json, live: Json | undefined, path: string): boolean {
  if (desired === live) return true;
  if (typeof desired === 'string' && typeof live === 'string' && isQuantityField(path)) {
    const a = parseQuantity(desired);
    const b = parseQuantity(live);
    return a !== undefined && b !== undefined && Math.abs(a - b) <= Math.abs(a) * 1e-9;
  }
  // A quantity written as a string may come back as a number and vice versa.
  if (isQuantityField(path) && (typeof desired === 'number' || typeof live === 'number')) {
    return String(desired) === String(live);
  }
  return false;
}

/** Whether `live` holds everything `desired` says (extra live fields are someone else's). */
function covers(desired: Json, live: Json | undefined, path: string): boolean {
  return walk(desired, live, path, lastField(path)).length === 0;
}

function lastField(path: string): string {
  const m = /([A-Za-z0-9_-]+)(\[[^\]]*\])?$/.exec(path);
  return m?.[1] ?? '';
}

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

function walk(desired: Json, live: Json | undefined, path: string, field: string): Difference[] {
  if (isJsonMap(desired)) {
    if (!isJsonMap(live)) return [{ path, desired, live }];
    return Object.entries(desired).flatMap(([k, v]) => walk(v, live[k], join(path, k), k));
  }
  if (Array.isArray(desired)) {
    if (!Array.isArray(live)) return [{ path, desired, live }];
    const key = desired.length > 0 ? mergeKey(field, desired) : undefined;
    if (key !== undefined) {
      return desired.flatMap((element) => {
        const id = (element as { [k: string]: Json })[key];
        const elementPath = `${path}[${key}=${typeof id === 'string' ? id : JSON.stringify(id)}]`;
        const match = live.find((l) => isJsonMap(l) && l[key] === id);
        return match === undefined ? [{ path: elementPath, desired: element, live: undefined }] : walk(element, match, elementPath, field);
      });
    }
    // Atomic list: same length, each element covering its desired counterpart.
    const same = desired.length === live.length && desired.every((d, i) => covers(d, live[i], `${path}[${i}]`));
    return same ? [] : [{ path, desired, live }];
  }
  return scalarEqual(desired, live, path) ? [] : [{ path, desired, live }];
}

/** Fields Flotilla applied (`desired`) whose live values differ. Identity and server-owned metadata are skipped. */
export function diffOwnedFields(desired: Json, live: Json): Difference[] {
  if (!isJsonMap(desired) || !isJsonMap(live)) return [{ path: '', desired, live }];
  const out: Difference[] = [];
  for (const [key, value] of Object.entries(desired)) {
    if (key === 'apiVersion' || key === 'kind' || key === 'status') continue;
    if (key === 'metadata' && isJsonMap(value)) {
      const liveMeta = isJsonMap(live['metadata']) ? live['metadata'] : {};
      for (const field of ['labels', 'annotations']) {
        if (value[field] !== undefined) out.push(...walk(value[field]!, liveMeta[field], `metadata.${field}`, field));
      }
      continue;
    }
    out.push(...walk(value, live[key], key, key));
  }
  return out;
}

function show(value: Json | undefined): string {
  if (value === undefined) return 'absent';
  const text = typeof value === 'string' ? JSON.stringify(value) : JSON.stringify(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** "Deployment/x: spec.replicas is 5, desired 2; ..." for status messages. */
export function describeDrift(ref: ObjectRef, differences: Difference[]): string {
  const parts = differences.map((d) => `${d.path} is ${show(d.live)}, desired ${show(d.desired)}`);
  return `${ref.kind}/${ref.name}: ${parts.join('; ')}`;
}
