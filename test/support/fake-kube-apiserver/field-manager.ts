import { cloneJson, isJsonObject, jsonEqual, type JsonObject, type JsonValue } from './json.js';
import { listMergeKey } from './patches.js';
import { ApiError, type StatusCause } from './status.js';

/**
 * Field ownership as server-side apply tracks it (structured-merge-diff, much
 * reduced): a field is a path of `f:<name>` steps, `k:<json key>` steps into
 * keyed lists, and `.` for "this list element itself". Atomic values (scalars,
 * atomic lists, empty maps) are leaves. Each manager owns a set of leaves.
 *
 * - Apply: the manager's set becomes exactly the fields it sent; a field it
 *   sent with a different value than the live one, owned by another manager,
 *   is a conflict (409) unless `force`, which takes the field over; fields it
 *   owned before and no longer sends are removed unless someone else owns them.
 * - Update (create, PUT, merge/strategic/json patch): never conflicts; every
 *   field it changed moves to the updater.
 */
export type Scope = 'main' | 'status';

export interface ManagerEntry {
  manager: string;
  operation: 'Apply' | 'Update';
  apiVersion: string;
  time: string;
  subresource?: 'status';
  fields: Set<string>;
}

type Path = string[];

const IGNORED_METADATA = new Set([
  'name',
  'namespace',
  'uid',
  'resourceVersion',
  'generation',
  'creationTimestamp',
  'deletionTimestamp',
  'deletionGracePeriodSeconds',
  'managedFields',
  'selfLink',
  'generateName',
]);

function walk(value: JsonValue, path: Path, field: string, out: Set<string>): void {
  if (isJsonObject(value)) {
    const keys = Object.keys(value);
    if (keys.length === 0) {
      out.add(JSON.stringify(path));
      return;
    }
    for (const key of keys) walk(value[key]!, [...path, `f:${key}`], key, out);
    return;
  }
  if (Array.isArray(value)) {
    const key = value.length > 0 ? listMergeKey(field, value) : undefined;
    if (key === undefined) {
      out.add(JSON.stringify(path));
      return;
    }
    for (const element of value as JsonObject[]) {
      const elementPath = [...path, `k:${JSON.stringify({ [key]: element[key] })}`];
      out.add(JSON.stringify([...elementPath, '.']));
      for (const [k, v] of Object.entries(element)) walk(v, [...elementPath, `f:${k}`], k, out);
    }
    return;
  }
  out.add(JSON.stringify(path));
}

/** The leaves of `obj` that ownership is tracked for, in the given scope. */
export function collectFields(obj: JsonObject, scope: Scope): Set<string> {
  const out = new Set<string>();
  for (const [key, value] of Object.entries(obj)) {
    if (key === 'apiVersion' || key === 'kind') continue;
    if ((key === 'status') !== (scope === 'status')) continue;
    if (key === 'metadata' && isJsonObject(value)) {
      for (const [mk, mv] of Object.entries(value)) {
        if (!IGNORED_METADATA.has(mk)) walk(mv, ['f:metadata', `f:${mk}`], mk, out);
      }
      continue;
    }
    walk(value, [`f:${key}`], key, out);
  }
  return out;
}

function parseKeyStep(step: string): [string, JsonValue] {
  const parsed = JSON.parse(step.slice(2)) as JsonObject;
  const [entry] = Object.entries(parsed);
  return entry!;
}

/** The value at a field path, or undefined when absent. `.` yields the list element. */
export function valueAt(obj: JsonValue | undefined, path: Path): JsonValue | undefined {
  let cur: JsonValue | undefined = obj;
  for (const step of path) {
    if (cur === undefined) return undefined;
    if (step === '.') return cur;
    if (step.startsWith('f:')) {
      cur = isJsonObject(cur) ? cur[step.slice(2)] : undefined;
    } else {
      const [key, keyValue] = parseKeyStep(step);
      cur = Array.isArray(cur) ? cur.find((e) => isJsonObject(e) && jsonEqual(e[key], keyValue)) : undefined;
    }
  }
  return cur;
}

/** Sets the value at a field path, creating maps, lists and list elements on the way. */
function setAt(obj: JsonObject, path: Path, value: JsonValue | undefined): void {
  let cur: JsonValue = obj;
  for (let i = 0; i < path.length; i++) {
    const step = path[i]!;
    if (step === '.') return;
    const last = i === path.length - 1;
    const next = path[i + 1];
    if (step.startsWith('f:')) {
      if (!isJsonObject(cur)) return;
      const name = step.slice(2);
      if (last) {
        if (value !== undefined) cur[name] = value;
        return;
      }
      const wantList = next !== undefined && next.startsWith('k:');
      const existing: JsonValue | undefined = cur[name];
      if (wantList ? !Array.isArray(existing) : !isJsonObject(existing)) cur[name] = wantList ? [] : {};
      cur = cur[name]!;
    } else {
      if (!Array.isArray(cur)) return;
      const [key, keyValue] = parseKeyStep(step);
      let element: JsonObject | undefined = cur.find((e): e is JsonObject => isJsonObject(e) && jsonEqual(e[key], keyValue));
      if (!element) {
        element = { [key]: keyValue };
        cur.push(element);
      }
      if (last) return;
      cur = element;
    }
  }
}

/** Removes the value at a field path, then prunes maps and elements it left empty unless still owned. */
function removeAt(obj: JsonObject, path: Path, stillOwned: (p: Path) => boolean): void {
  const chain: { container: JsonValue; step: string }[] = [];
  let cur: JsonValue | undefined = obj;
  for (const step of path) {
    if (cur === undefined) return;
    if (step === '.') break;
    chain.push({ container: cur, step });
    cur = valueAt(cur, [step]);
  }
  if (cur === undefined) return;
  const elementRemoval = path[path.length - 1] === '.';
  for (let i = chain.length - 1; i >= 0; i--) {
    const { container, step } = chain[i]!;
    const target = valueAt(container, [step]);
    const isTarget = i === chain.length - 1;
    const empty =
      (isJsonObject(target) && Object.keys(target).length === 0) || (Array.isArray(target) && target.length === 0);
    const prefix = path.slice(0, i + 1);
    if (!isTarget && (!empty || stillOwned(prefix))) return;
    if (isTarget && elementRemoval && !empty && hasOwnedDescendant(prefix, stillOwned, target)) return;
    if (step.startsWith('f:') && isJsonObject(container)) {
      delete container[step.slice(2)];
    } else if (Array.isArray(container)) {
      const index = container.indexOf(target!);
      if (index >= 0) container.splice(index, 1);
    }
  }
}

function hasOwnedDescendant(prefix: Path, stillOwned: (p: Path) => boolean, element: JsonValue | undefined): boolean {
  if (!isJsonObject(element)) return false;
  const fields = new Set<string>();
  for (const [k, v] of Object.entries(element)) walk(v, [...prefix, `f:${k}`], k, fields);
  return [...fields].some((f) => stillOwned(JSON.parse(f) as Path));
}

/** `.spec.template.spec.containers[name="triton"].image`, as the server prints field paths in conflicts. */
export function renderPath(path: Path): string {
  return path
    .map((step) => {
      if (step === '.') return '';
      if (step.startsWith('f:')) return `.${step.slice(2)}`;
      const [key, value] = parseKeyStep(step);
      return `[${key}=${JSON.stringify(value)}]`;
    })
    .join('');
}

function isOwnEntry(entry: ManagerEntry, manager: string, scope: Scope): boolean {
  return entry.manager === manager && (entry.subresource === 'status') === (scope === 'status');
}

function sameScope(entry: ManagerEntry, scope: Scope): boolean {
  return (entry.subresource === 'status') === (scope === 'status');
}

export interface ApplyOptions {
  manager: string;
  force: boolean;
  apiVersion: string;
  now: string;
  scope: Scope;
}

/** Server-side apply of `applied` onto `live` (undefined when creating). Throws a 409 ApiError on conflicts. */
export function serverSideApply(
  live: JsonObject | undefined,
  applied: JsonObject,
  managers: ManagerEntry[],
  opts: ApplyOptions,
): { object: JsonObject; managers: ManagerEntry[] } {
  const entries = managers.map((m) => ({ ...m, fields: new Set(m.fields) }));
  const newFields = collectFields(applied, opts.scope);
  const others = entries.filter((m) => sameScope(m, opts.scope) && m.manager !== opts.manager);

  const conflicts: { entry: ManagerEntry; field: string }[] = [];
  for (const field of newFields) {
    const path = JSON.parse(field) as Path;
    if (path[path.length - 1] === '.') continue;
    for (const entry of others) {
      if (entry.fields.has(field) && !jsonEqual(valueAt(applied, path), valueAt(live, path))) {
        conflicts.push({ entry, field });
      }
    }
  }
  if (conflicts.length > 0 && !opts.force) throw conflictError(conflicts);
  for (const { entry, field } of conflicts) entry.fields.delete(field);

  const result: JsonObject = live ? cloneJson(live) : {};
  const own = entries.find((m) => m.operation === 'Apply' && isOwnEntry(m, opts.manager, opts.scope));
  const ownedByOthers = (p: Path): boolean => {
    const key = JSON.stringify(p);
    return entries.some((m) => m !== own && sameScope(m, opts.scope) && m.fields.has(key));
  };
  const stillOwned = (p: Path): boolean => ownedByOthers(p) || newFields.has(JSON.stringify(p));
  const removed = [...(own?.fields ?? [])].filter((f) => !newFields.has(f)).map((f) => JSON.parse(f) as Path);
  // Deepest first, so a list element goes after its fields.
  removed.sort((a, b) => b.length - a.length);
  for (const path of removed) {
    if (!ownedByOthers(path)) removeAt(result, path, stillOwned);
  }
  for (const field of newFields) {
    const path = JSON.parse(field) as Path;
    const value = valueAt(applied, path);
    setAt(result, path, path[path.length - 1] === '.' ? undefined : cloneJson(value ?? null));
  }
  // Identity fields come from the request, not from ownership.
  for (const key of ['apiVersion', 'kind']) if (applied[key] !== undefined) result[key] = applied[key]!;
  const meta = isJsonObject(result['metadata']) ? result['metadata'] : (result['metadata'] = {});
  const appliedMeta = isJsonObject(applied['metadata']) ? applied['metadata'] : {};
  for (const key of ['name', 'namespace']) if (appliedMeta[key] !== undefined) meta[key] = appliedMeta[key]!;

  const next = entries.filter((m) => m !== own);
  next.push({
    manager: opts.manager,
    operation: 'Apply',
    apiVersion: opts.apiVersion,
    time: opts.now,
    ...(opts.scope === 'status' ? { subresource: 'status' as const } : {}),
    fields: newFields,
  });
  return { object: result, managers: next.filter((m) => m.fields.size > 0) };
}

function conflictError(conflicts: { entry: ManagerEntry; field: string }[]): ApiError {
  const causes: StatusCause[] = conflicts.map(({ entry, field }) => ({
    reason: 'FieldManagerConflict',
    message: `conflict with "${entry.manager}"${entry.operation === 'Update' ? ` using ${entry.apiVersion}` : ''}`,
    field: renderPath(JSON.parse(field) as Path),
  }));
  const lines = causes.map((c) => `${c.message}: ${c.field}`);
  const n = causes.length;
  return new ApiError(409, 'Conflict', `Apply failed with ${n} conflict${n === 1 ? '' : 's'}: ${lines.join('\n')}`, {
    causes,
  });
}

export interface UpdateOptions {
  manager: string;
  apiVersion: string;
  now: string;
  scope: Scope;
}

/** Records an Update by `manager` that turned `before` into `after`: changed fields move to the updater. */
export function recordUpdate(
  before: JsonObject | undefined,
  after: JsonObject,
  managers: ManagerEntry[],
  opts: UpdateOptions,
): ManagerEntry[] {
  const entries = managers.map((m) => ({ ...m, fields: new Set(m.fields) }));
  const afterFields = collectFields(after, opts.scope);
  const beforeFields = before ? collectFields(before, opts.scope) : new Set<string>();
  const changed = new Set<string>();
  for (const field of afterFields) {
    const path = JSON.parse(field) as Path;
    const isNew = !beforeFields.has(field);
    if (path[path.length - 1] === '.' ? isNew : isNew || !jsonEqual(valueAt(before, path), valueAt(after, path))) {
      changed.add(field);
    }
  }
  const removed = [...beforeFields].filter((f) => !afterFields.has(f));
  let own = entries.find((m) => m.operation === 'Update' && isOwnEntry(m, opts.manager, opts.scope));
  for (const entry of entries) {
    if (!sameScope(entry, opts.scope)) continue;
    for (const f of removed) entry.fields.delete(f);
    if (entry !== own) for (const f of changed) entry.fields.delete(f);
  }
  if (changed.size > 0) {
    if (!own) {
      own = {
        manager: opts.manager,
        operation: 'Update',
        apiVersion: opts.apiVersion,
        time: opts.now,
        ...(opts.scope === 'status' ? { subresource: 'status' as const } : {}),
        fields: new Set(),
      };
      entries.push(own);
    }
    for (const f of changed) own.fields.add(f);
    own.time = opts.now;
  }
  return entries.filter((m) => m.fields.size > 0);
}

/** `metadata.managedFields` as the server renders it (FieldsV1 trees). */
export function renderManagedFields(entries: ManagerEntry[]): JsonObject[] {
  return entries.map((entry) => {
    const tree: JsonObject = {};
    for (const field of entry.fields) {
      let node = tree;
      for (const step of JSON.parse(field) as Path) {
        const child = node[step];
        node = isJsonObject(child) ? child : (node[step] = {});
      }
    }
    return {
      manager: entry.manager,
      operation: entry.operation,
      apiVersion: entry.apiVersion,
      time: entry.time,
      fieldsType: 'FieldsV1',
      fieldsV1: tree,
      ...(entry.subresource ? { subresource: entry.subresource } : {}),
    };
  });
}
