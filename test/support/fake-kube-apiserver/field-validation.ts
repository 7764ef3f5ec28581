import { cloneJson, isJsonObject, type JsonObject, type JsonValue } from './json.js';
import { groupVersionOf, type ResourceType } from './resources.js';
import { resolveSchema, type SchemaNode } from './schemas.js';
import { ApiError, badRequest } from './status.js';

/**
 * Server-side field validation (the `fieldValidation` query parameter), from
 * the same schemas the OpenAPI documents publish:
 *
 * - `Strict`: a request naming a field the schema does not know fails, with
 *   the real server's message for the verb (decoding error for create and
 *   update, an invalid `patch` for merge/strategic/JSON patches, "field not
 *   declared in schema" for server-side apply).
 * - `Warn` (the default, as in the real server): unknown fields are dropped
 *   and each is reported in a `Warning` response header.
 * - `Ignore`: unknown fields are dropped silently.
 */
export type FieldValidationMode = 'Strict' | 'Warn' | 'Ignore';

export type RequestStyle = 'decode' | 'patch' | 'apply';

export interface FieldValidation {
  mode: FieldValidationMode;
  style: RequestStyle;
  /** For `patch`: the patch body, which the real server quotes in its message. */
  patch?: JsonValue;
  /** Collects one warning per dropped field (Warn). */
  warnings: string[];
}

export function parseFieldValidation(value: string | null): FieldValidationMode {
  if (value === null || value === '') return 'Warn';
  if (value === 'Strict' || value === 'Warn' || value === 'Ignore') return value;
  throw badRequest(`fieldValidation must be one of "Ignore", "Warn", or "Strict", got "${value}"`);
}

/** A path segment: a property name or a list index. */
type Segment = string | number;

function walk(node: SchemaNode | undefined, value: JsonValue, path: Segment[], out: Segment[][]): void {
  const schema = resolveSchema(node);
  if (!schema) return;
  if (Array.isArray(value)) {
    const items = schema['items'];
    if (isJsonObject(items)) value.forEach((v, i) => walk(items, v, [...path, i], out));
    return;
  }
  if (!isJsonObject(value)) return;
  if (schema['x-kubernetes-preserve-unknown-fields'] === true) return;
  const properties = isJsonObject(schema['properties']) ? schema['properties'] : undefined;
  const additional = isJsonObject(schema['additionalProperties']) ? schema['additionalProperties'] : undefined;
  for (const [key, child] of Object.entries(value)) {
    const prop = properties?.[key];
    if (isJsonObject(prop)) walk(prop, child, [...path, key], out);
    else if (additional) walk(additional, child, [...path, key], out);
    else if (properties) out.push([...path, key]);
  }
}

/** Unknown fields of `obj` against the schema named `schemaName`, each as a path of segments. */
export function unknownFields(schemaName: string, obj: JsonObject): Segment[][] {
  const out: Segment[][] = [];
  walk({ $ref: schemaName }, obj, [], out);
  return out;
}

/** `spec.template.spec.containers[0].foo`, as strict decoding errors name a field. */
function decodingPath(path: Segment[]): string {
  return path.map((s, i) => (typeof s === 'number' ? `[${s}]` : i === 0 ? s : `.${s}`)).join('');
}

/** `.spec.template.spec.containers[name="triton"].foo`-style, as structured-merge-diff names a field; indices stand in for keys here. */
function applyPath(path: Segment[]): string {
  return path.map((s) => (typeof s === 'number' ? `[${s}]` : `.${s}`)).join('');
}

function removeAt(obj: JsonObject, path: Segment[]): void {
  let cur: JsonValue | undefined = obj;
  for (const seg of path.slice(0, -1)) {
    cur = Array.isArray(cur) && typeof seg === 'number' ? cur[seg] : isJsonObject(cur) && typeof seg === 'string' ? cur[seg] : undefined;
  }
  const last = path[path.length - 1];
  if (isJsonObject(cur) && typeof last === 'string') delete cur[last];
}

/** Go's `%+v` of a decoded JSON value (`map[spec:map[replicas:3]]`), which the real server quotes for an invalid patch. */
export function goValue(value: JsonValue | undefined): string {
  if (value === undefined || value === null) return '<nil>';
  if (Array.isArray(value)) return `[${value.map(goValue).join(' ')}]`;
  if (isJsonObject(value)) {
    return `map[${Object.keys(value)
      .sort()
      .map((k) => `${k}:${goValue(value[k])}`)
      .join(' ')}]`;
  }
  return String(value);
}

/**
 * Applies field validation to an object about to be written; returns the
 * object to store (unknown fields dropped unless Strict, which throws).
 */
export function enforceFieldValidation(type: ResourceType, schemaName: string, obj: JsonObject, fv: FieldValidation): JsonObject {
  const unknown = unknownFields(schemaName, obj);
  if (unknown.length === 0) return obj;
  if (fv.mode === 'Strict') {
    const version = type.version;
    if (fv.style === 'apply') {
      const gvk = `${groupVersionOf(type) === 'v1' ? '/v1' : groupVersionOf(type)}, Kind=${type.kind}`;
      throw badRequest(`failed to create typed patch object (${gvk}): ${unknown.map((p) => `${applyPath(p)}: field not declared in schema`).join(', ')}`);
    }
    const detail = `strict decoding error: ${unknown.map((p) => `unknown field "${decodingPath(p)}"`).join(', ')}`;
    if (fv.style === 'patch') {
      const message = `Invalid value: ${JSON.stringify(goValue(fv.patch))}: ${detail}`;
      throw new ApiError(422, 'Invalid', ` "" is invalid: patch: ${message}`, { causes: [{ reason: 'FieldValueInvalid', message, field: 'patch' }] });
    }
    throw badRequest(`${type.kind} in version "${version}" cannot be handled as a ${type.kind}: ${detail}`);
  }
  const pruned = cloneJson(obj);
  for (const path of unknown) {
    removeAt(pruned, path);
    if (fv.mode === 'Warn') fv.warnings.push(`unknown field "${decodingPath(path)}"`);
  }
  return pruned;
}
