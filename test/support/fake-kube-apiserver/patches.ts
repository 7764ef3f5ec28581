import { cloneJson, isJsonObject, jsonEqual, type JsonObject, type JsonValue } from './json.js';
import { badRequest, ApiError } from './status.js';

/**
 * Lists that the real API schema declares as maps keyed by a field
 * (`x-kubernetes-list-type: map` / `patchMergeKey`), for the resources the
 * fake serves. Strategic merge patch and server-side apply merge these element
 * by element; every other list is atomic and replaced whole.
 */
export function listMergeKey(field: string, elements: JsonValue[]): string | undefined {
  const keyed = (key: string): string | undefined =>
    elements.every((e) => isJsonObject(e) && e[key] !== undefined && e[key] !== null) ? key : undefined;
  switch (field) {
    case 'containers':
    case 'initContainers':
    case 'env':
    case 'volumes':
    case 'imagePullSecrets':
      return keyed('name');
    case 'volumeMounts':
      return keyed('mountPath');
    case 'ports':
      // Container ports merge on containerPort, Service ports on port.
      return elements.length > 0 && elements.every((e) => isJsonObject(e) && e['containerPort'] !== undefined)
        ? 'containerPort'
        : keyed('port');
    case 'ownerReferences':
      return keyed('uid');
    case 'conditions':
      return keyed('type');
    default:
      return undefined;
  }
}

/** RFC 7386 JSON merge patch. */
export function applyMergePatch(target: JsonValue | undefined, patch: JsonValue): JsonValue {
  if (!isJsonObject(patch)) return cloneJson(patch);
  const result: JsonObject = isJsonObject(target) ? cloneJson(target) : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = applyMergePatch(result[key], value);
  }
  return result;
}

/**
 * Strategic merge patch for the fields the fake's resources use: maps merge,
 * keyed lists (see listMergeKey) merge element by element, `$patch: delete`
 * and `$patch: replace` directives are honoured, other lists are replaced.
 */
export function applyStrategicMergePatch(target: JsonValue | undefined, patch: JsonValue): JsonValue | undefined {
  if (!isJsonObject(patch)) return cloneJson(patch);
  const directive = patch['$patch'];
  if (directive === 'delete') return undefined;
  const base: JsonObject = directive === 'replace' || !isJsonObject(target) ? {} : cloneJson(target);
  for (const [key, value] of Object.entries(patch)) {
    if (key.startsWith('$')) continue;
    if (value === null) {
      delete base[key];
      continue;
    }
    const current = base[key];
    if (Array.isArray(value) && Array.isArray(current)) {
      const mergeKey = listMergeKey(key, [...value.filter((v) => !(isJsonObject(v) && v['$patch'])), ...current]);
      if (mergeKey === undefined) {
        base[key] = value.filter((v) => !(isJsonObject(v) && v['$patch'] !== undefined)).map((v) => cloneJson(v));
        continue;
      }
      const merged = current.map((v) => cloneJson(v));
      for (const element of value) {
        if (!isJsonObject(element)) continue;
        const index = merged.findIndex((m) => isJsonObject(m) && jsonEqual(m[mergeKey], element[mergeKey]));
        if (element['$patch'] === 'delete') {
          if (index >= 0) merged.splice(index, 1);
          continue;
        }
        if (index >= 0) merged[index] = applyStrategicMergePatch(merged[index], element) ?? merged[index]!;
        else merged.push(applyStrategicMergePatch(undefined, element) ?? {});
      }
      base[key] = merged;
    } else {
      const next = applyStrategicMergePatch(current, value);
      if (next === undefined) delete base[key];
      else base[key] = next;
    }
  }
  return base;
}

function parsePointer(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) throw badRequest(`the server rejected our request due to an error in our request: invalid JSON pointer "${pointer}"`);
  return pointer
    .slice(1)
    .split('/')
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function jsonPatchError(message: string): ApiError {
  return new ApiError(422, 'Invalid', message);
}

function resolveParent(doc: JsonValue, tokens: string[]): { parent: JsonValue; last: string } {
  let cur: JsonValue = doc;
  for (const token of tokens.slice(0, -1)) {
    const next: JsonValue | undefined = Array.isArray(cur) ? cur[Number(token)] : isJsonObject(cur) ? cur[token] : undefined;
    if (next === undefined) throw jsonPatchError(`jsonpatch: path /${tokens.join('/')} does not exist`);
    cur = next;
  }
  return { parent: cur, last: tokens[tokens.length - 1] ?? '' };
}

function getAt(doc: JsonValue, tokens: string[]): JsonValue | undefined {
  let cur: JsonValue | undefined = doc;
  for (const t of tokens) cur = Array.isArray(cur) ? cur[Number(t)] : isJsonObject(cur) ? cur[t] : undefined;
  return cur;
}

/** RFC 6902 JSON patch (add, remove, replace, move, copy, test). */
export function applyJsonPatch(target: JsonValue, ops: JsonValue): JsonValue {
  if (!Array.isArray(ops)) throw badRequest('json patch must be an array of operations');
  let doc = cloneJson(target);
  const remove = (tokens: string[]): JsonValue => {
    const { parent, last } = resolveParent(doc, tokens);
    if (Array.isArray(parent)) {
      const i = Number(last);
      if (!(i >= 0 && i < parent.length)) throw jsonPatchError(`jsonpatch: remove index ${last} out of range`);
      return parent.splice(i, 1)[0]!;
    }
    if (!isJsonObject(parent) || !Object.hasOwn(parent, last)) throw jsonPatchError(`jsonpatch: remove path /${tokens.join('/')} does not exist`);
    const old = parent[last]!;
    delete parent[last];
    return old;
  };
  const add = (tokens: string[], value: JsonValue): void => {
    if (tokens.length === 0) {
      doc = value;
      return;
    }
    const { parent, last } = resolveParent(doc, tokens);
    if (Array.isArray(parent)) {
      const i = last === '-' ? parent.length : Number(last);
      if (!(i >= 0 && i <= parent.length)) throw jsonPatchError(`jsonpatch: add index ${last} out of range`);
      parent.splice(i, 0, value);
    } else if (isJsonObject(parent)) {
      parent[last] = value;
    } else {
      throw jsonPatchError(`jsonpatch: add path /${tokens.join('/')} has no container`);
    }
  };
  for (const op of ops) {
    if (!isJsonObject(op) || typeof op['op'] !== 'string' || typeof op['path'] !== 'string') {
      throw badRequest('json patch operations need "op" and "path"');
    }
    const path = parsePointer(op['path']);
    switch (op['op']) {
      case 'add':
        add(path, cloneJson(op['value'] ?? null));
        break;
      case 'remove':
        remove(path);
        break;
      case 'replace':
        remove(path);
        add(path, cloneJson(op['value'] ?? null));
        break;
      case 'move': {
        const value = remove(parsePointer(String(op['from'])));
        add(path, value);
        break;
      }
      case 'copy': {
        const value = getAt(doc, parsePointer(String(op['from'])));
        if (value === undefined) throw jsonPatchError(`jsonpatch: copy from ${String(op['from'])} does not exist`);
        add(path, cloneJson(value));
        break;
      }
      case 'test':
        if (!jsonEqual(getAt(doc, path), op['value'])) throw jsonPatchError(`jsonpatch: test failed at ${op['path']}`);
        break;
      default:
        throw badRequest(`json patch operation "${op['op']}" is not supported`);
    }
  }
  return doc;
}
