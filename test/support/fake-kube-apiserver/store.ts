import { randomBytes, randomUUID } from 'node:crypto';
import { cloneJson, isJsonObject, jsonEqual, kubeTime, metadataOf, stringMap, type JsonObject } from './json.js';
import { enforceFieldValidation, type FieldValidation } from './field-validation.js';
import { type ManagerEntry, recordUpdate, renderManagedFields, serverSideApply, type Scope } from './field-manager.js';
import { applyDefaults, validate } from './object-rules.js';
import { applyJsonPatch, applyMergePatch, applyStrategicMergePatch } from './patches.js';
import { findResourceByName, groupVersionOf, RESOURCE_TYPES, type ResourceType } from './resources.js';
import { matchesFields, matchesLabels, type FieldRequirement, type LabelRequirement } from './selectors.js';
import { alreadyExists, ApiError, badRequest, conflict, invalid, notFound } from './status.js';

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface StoreEvent {
  type: WatchEventType;
  resourceVersion: number;
  resource: ResourceType;
  namespace: string | undefined;
  /** The object as clients see it after the change (for DELETED: as it was). */
  object: JsonObject;
  /** The object before a MODIFIED, to decide whether a selector watch sees ADDED/DELETED instead. */
  previous: JsonObject | undefined;
}

interface Entry {
  object: JsonObject;
  managers: ManagerEntry[];
}

export type PatchType = 'merge' | 'strategic' | 'json' | 'apply';

export interface WriteOptions {
  manager: string;
  dryRun?: boolean;
  subresource?: 'status';
  /**
   * Test hooks and the fake's own controllers: may write read-only resources
   * (pods) and set status together with the rest of the object.
   */
  privileged?: boolean;
  /** Requests from clients: unknown fields are refused or dropped (and warned about) as the mode says. */
  fieldValidation?: FieldValidation;
}

export interface ListFilter {
  namespace?: string | undefined;
  labels?: LabelRequirement[];
  fields?: FieldRequirement[];
}

/** How far back a watch may resume; older resourceVersions get 410 Gone, as after etcd compaction. */
const HISTORY_LIMIT = 5000;

/**
 * The fake's etcd: every write goes through the same path as in the real
 * server (defaulting, validation, immutability, field ownership, generation,
 * a resourceVersion from one global counter, a watch event).
 */
export class ObjectStore {
  private revision = 1000;
  private readonly objects = new Map<string, Map<string, Entry>>();
  private readonly history: StoreEvent[] = [];
  /** Watches may resume from this revision or later; older ones were compacted away. */
  private compactedRevision = 0;
  private readonly listeners = new Set<(event: StoreEvent) => void>();
  private nextClusterIp = 1;
  private nextNodePort = 30000;

  constructor() {
    for (const ns of ['default', 'kube-system', 'kube-public']) {
      this.create(this.type('Namespace'), undefined, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }, { manager: 'kube-apiserver' });
    }
  }

  currentRevision(): number {
    return this.revision;
  }

  oldestRetainedRevision(): number {
    return this.compactedRevision;
  }

  type(kind: string): ResourceType {
    const type = findResourceByName(kind);
    if (!type) throw new Error(`the fake kube-apiserver does not serve "${kind}"`);
    return type;
  }

  private bucket(type: ResourceType): Map<string, Entry> {
    const key = `${type.group}/${type.plural}`;
    let bucket = this.objects.get(key);
    if (!bucket) {
      bucket = new Map();
      this.objects.set(key, bucket);
    }
    return bucket;
  }

  private static key(namespace: string | undefined, name: string): string {
    return `${namespace ?? ''}/${name}`;
  }

  /** What a client reads: the stored object with managedFields rendered. */
  private render(type: ResourceType, entry: Entry): JsonObject {
    const out = cloneJson(entry.object);
    out['apiVersion'] = groupVersionOf(type);
    out['kind'] = type.kind;
    const meta = metadataOf(out);
    if (entry.managers.length > 0) meta['managedFields'] = renderManagedFields(entry.managers);
    return out;
  }

  get(type: ResourceType, namespace: string | undefined, name: string): JsonObject {
    const entry = this.bucket(type).get(ObjectStore.key(namespace, name));
    if (!entry) throw notFound(type.plural, type.group, name);
    return this.render(type, entry);
  }

  find(type: ResourceType, namespace: string | undefined, name: string): JsonObject | undefined {
    const entry = this.bucket(type).get(ObjectStore.key(namespace, name));
    return entry ? this.render(type, entry) : undefined;
  }

  list(type: ResourceType, filter: ListFilter): JsonObject[] {
    const out: JsonObject[] = [];
    for (const entry of this.bucket(type).values()) {
      const meta = metadataOf(entry.object);
      if (filter.namespace !== undefined && meta['namespace'] !== filter.namespace) continue;
      if (!this.matches(type, entry.object, filter)) continue;
      out.push(this.render(type, entry));
    }
    return out.sort((a, b) => {
      const ka = `${String(metadataOf(a)['namespace'] ?? '')}/${String(metadataOf(a)['name'])}`;
      const kb = `${String(metadataOf(b)['namespace'] ?? '')}/${String(metadataOf(b)['name'])}`;
      return ka < kb ? -1 : ka > kb ? 1 : 0;
    });
  }

  matches(_type: ResourceType, obj: JsonObject, filter: ListFilter): boolean {
    const meta = metadataOf(obj);
    if (filter.namespace !== undefined && meta['namespace'] !== filter.namespace) return false;
    if (filter.labels && !matchesLabels(filter.labels, stringMap(meta['labels']))) return false;
    if (filter.fields && !matchesFields(filter.fields, obj)) return false;
    return true;
  }

  private requireNamespace(type: ResourceType, namespace: string | undefined): void {
    if (!type.namespaced) return;
    if (namespace === undefined) throw badRequest('the server could not find the requested resource: a namespace is required');
    if (!this.bucket(this.type('Namespace')).has(ObjectStore.key(undefined, namespace))) {
      throw notFound('namespaces', '', namespace);
    }
  }

  private checkIdentity(type: ResourceType, namespace: string | undefined, body: JsonObject, name?: string): void {
    const meta = isJsonObject(body['metadata']) ? body['metadata'] : {};
    if (body['kind'] !== undefined && body['kind'] !== type.kind) {
      throw badRequest(`the object provided is unrecognized (kind ${String(body['kind'])} is not ${type.kind})`);
    }
    if (body['apiVersion'] !== undefined && body['apiVersion'] !== groupVersionOf(type)) {
      throw badRequest(`the API version in the data (${String(body['apiVersion'])}) does not match the expected API version (${groupVersionOf(type)})`);
    }
    if (type.namespaced && meta['namespace'] !== undefined && meta['namespace'] !== namespace) {
      throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
    }
    if (name !== undefined && meta['name'] !== undefined && meta['name'] !== name) {
      throw badRequest('the name of the object does not match the name on the URL');
    }
  }

  create(type: ResourceType, namespace: string | undefined, body: JsonObject, opts: WriteOptions): JsonObject {
    this.checkIdentity(type, namespace, body);
    this.requireNamespace(type, namespace);
    const obj = cloneJson(body);
    const meta = metadataOf(obj);
    if (typeof meta['name'] !== 'string' && typeof meta['generateName'] === 'string') {
      meta['name'] = `${meta['generateName']}${randomBytes(3).toString('hex').slice(0, 5)}`;
    }
    const name = typeof meta['name'] === 'string' ? meta['name'] : '';
    if (name !== '' && this.bucket(type).has(ObjectStore.key(namespace, name))) {
      throw alreadyExists(type.plural, type.group, name);
    }
    return this.commit(type, namespace, name, undefined, obj, [], opts, (after, managers) =>
      recordUpdate(undefined, after, managers, this.updateOptions(type, opts, 'main')),
    );
  }

  replace(type: ResourceType, namespace: string | undefined, name: string, body: JsonObject, opts: WriteOptions): JsonObject {
    this.checkIdentity(type, namespace, body, name);
    const entry = this.bucket(type).get(ObjectStore.key(namespace, name));
    if (!entry) throw notFound(type.plural, type.group, name);
    this.checkPreconditions(type, name, entry, body);
    const scope: Scope = opts.subresource === 'status' ? 'status' : 'main';
    const next = cloneJson(body);
    return this.commit(type, namespace, name, entry, next, entry.managers, opts, (after, managers) =>
      recordUpdate(entry.object, after, managers, this.updateOptions(type, opts, scope)),
    );
  }

  patch(
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    patchType: PatchType,
    body: unknown,
    opts: WriteOptions & { force?: boolean },
  ): JsonObject {
    const scope: Scope = opts.subresource === 'status' ? 'status' : 'main';
    const entry = this.bucket(type).get(ObjectStore.key(namespace, name));
    if (patchType === 'apply') {
      if (!isJsonObject(body)) throw badRequest('apply patch must be an object');
      this.checkIdentity(type, namespace, body, name);
      if (body['apiVersion'] === undefined || body['kind'] === undefined) {
        throw badRequest('apply patches must set apiVersion and kind');
      }
      let applied = cloneJson(body);
      if (opts.fieldValidation) {
        applied = enforceFieldValidation(type, type.schema, applied, { ...opts.fieldValidation, style: 'apply' });
      }
      metadataOf(applied)['name'] = name;
      if (type.namespaced) metadataOf(applied)['namespace'] = namespace ?? null;
      if (entry) this.checkPreconditions(type, name, entry, applied);
      else this.requireNamespace(type, namespace);
      const result = serverSideApply(entry?.object, applied, entry?.managers ?? [], {
        manager: opts.manager,
        force: opts.force === true,
        apiVersion: groupVersionOf(type),
        now: kubeTime(new Date()),
        scope,
      });
      // Defaults the server adds on top of the applied config belong to nobody.
      const { fieldValidation: _checked, ...rest } = opts;
      return this.commit(type, namespace, name, entry, result.object, result.managers, rest, (_after, managers) => managers);
    }
    if (!entry) throw notFound(type.plural, type.group, name);
    if (opts.force !== undefined) {
      throw new ApiError(422, 'Invalid', 'PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified for non-apply patch');
    }
    const current = entry.object;
    let next: unknown;
    if (patchType === 'merge') next = applyMergePatch(current, body as JsonObject);
    else if (patchType === 'strategic') next = applyStrategicMergePatch(current, body as JsonObject);
    else next = applyJsonPatch(current, body as JsonObject);
    if (!isJsonObject(next)) throw badRequest('the patch produced something that is not an object');
    this.checkIdentity(type, namespace, next, name);
    this.checkPreconditions(type, name, entry, next);
    return this.commit(type, namespace, name, entry, next, entry.managers, opts, (after, managers) =>
      recordUpdate(entry.object, after, managers, this.updateOptions(type, opts, scope)),
    );
  }

  private updateOptions(type: ResourceType, opts: WriteOptions, scope: Scope) {
    return { manager: opts.manager, apiVersion: groupVersionOf(type), now: kubeTime(new Date()), scope };
  }

  /** A resourceVersion or uid in the request body is a precondition, as in the real server. */
  private checkPreconditions(type: ResourceType, name: string, entry: Entry, body: JsonObject): void {
    const meta = isJsonObject(body['metadata']) ? body['metadata'] : {};
    const live = metadataOf(entry.object);
    if (meta['resourceVersion'] !== undefined && meta['resourceVersion'] !== null && meta['resourceVersion'] !== '' && meta['resourceVersion'] !== live['resourceVersion']) {
      throw conflict(type.plural, type.group, name, 'the object has been modified; please apply your changes to the latest version and try again');
    }
    if (meta['uid'] !== undefined && meta['uid'] !== null && meta['uid'] !== '' && meta['uid'] !== live['uid']) {
      throw conflict(type.plural, type.group, name, `Precondition failed: UID in precondition: ${String(live['uid'])}, UID in object meta: ${String(meta['uid'])}`);
    }
  }

  /**
   * The common tail of every write: keep server-owned metadata, keep status or
   * spec depending on the subresource written, default, validate, track
   * ownership, bump generation and resourceVersion, notify watchers.
   */
  private commit(
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    entry: Entry | undefined,
    candidate: JsonObject,
    managers: ManagerEntry[],
    opts: WriteOptions,
    track: (after: JsonObject, managers: ManagerEntry[]) => ManagerEntry[],
  ): JsonObject {
    if (!type.writable && !opts.privileged) {
      throw new ApiError(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource (${type.plural} are read-only in the fake: tests set them)`);
    }
    const before = entry?.object;
    let next = cloneJson(opts.fieldValidation ? enforceFieldValidation(type, type.schema, candidate, opts.fieldValidation) : candidate);
    delete next['apiVersion'];
    delete next['kind'];
    if (before && type.hasStatus && !opts.privileged) {
      // Writes to the main resource cannot change status, writes to /status nothing else.
      if (opts.subresource === 'status') {
        const status = next['status'];
        next = cloneJson(before);
        if (status === undefined) delete next['status'];
        else next['status'] = status;
      } else if (before['status'] === undefined) {
        delete next['status'];
      } else {
        next['status'] = cloneJson(before['status']!);
      }
    } else if (!before && type.hasStatus && type.kind !== 'Namespace' && !opts.privileged) {
      delete next['status'];
    }
    const meta = metadataOf(next);
    const beforeMeta = before ? metadataOf(before) : undefined;
    const uid = beforeMeta ? String(beforeMeta['uid']) : randomUUID();
    meta['name'] = name || meta['name'] || null;
    if (type.namespaced) meta['namespace'] = namespace ?? null;
    else delete meta['namespace'];
    meta['uid'] = uid;
    meta['creationTimestamp'] = beforeMeta?.['creationTimestamp'] ?? kubeTime(new Date());
    delete meta['managedFields'];
    delete meta['resourceVersion'];
    delete meta['selfLink'];
    // ObjectMeta's maps and lists are `omitempty` in Go: the real server never returns `annotations: {}`.
    for (const key of ['labels', 'annotations', 'finalizers', 'ownerReferences']) {
      const v = meta[key];
      if ((isJsonObject(v) && Object.keys(v).length === 0) || (Array.isArray(v) && v.length === 0)) delete meta[key];
    }
    if (beforeMeta?.['deletionTimestamp'] !== undefined) meta['deletionTimestamp'] = beforeMeta['deletionTimestamp']!;

    applyDefaults(type, next, before, { uid, allocateClusterIp: () => this.allocateClusterIp(), allocateNodePort: () => this.nextNodePort++ });
    const finalName = typeof meta['name'] === 'string' ? meta['name'] : '';
    const causes = validate(type, next, before);
    if (causes.length > 0) throw invalid(type.kind, type.group, finalName, causes);

    if (type.kind !== 'Namespace') {
      const specChanged = !before || !jsonEqual(withoutMetaAndStatus(before), withoutMetaAndStatus(next));
      const previousGeneration = typeof beforeMeta?.['generation'] === 'number' ? beforeMeta['generation'] : 0;
      meta['generation'] = specChanged ? previousGeneration + 1 : previousGeneration;
    }
    const nextManagers = track(next, managers);
    if (before && jsonEqual(before, { ...next, metadata: { ...meta, resourceVersion: beforeMeta?.['resourceVersion'] ?? null } }) && sameOwnership(entry!.managers, nextManagers)) {
      // A no-op write does not bump resourceVersion or wake watchers.
      return this.render(type, entry!);
    }
    if (opts.dryRun) {
      meta['resourceVersion'] = beforeMeta?.['resourceVersion'] ?? null;
      return this.render(type, { object: next, managers: nextManagers });
    }
    this.revision += 1;
    meta['resourceVersion'] = String(this.revision);
    const stored: Entry = { object: next, managers: nextManagers };
    this.bucket(type).set(ObjectStore.key(namespace, finalName), stored);
    const rendered = this.render(type, stored);
    this.emit({
      type: before ? 'MODIFIED' : 'ADDED',
      resourceVersion: this.revision,
      resource: type,
      namespace,
      object: rendered,
      previous: before ? this.render(type, entry!) : undefined,
    });
    return rendered;
  }

  private allocateClusterIp(): string {
    const n = this.nextClusterIp++;
    return `10.96.${Math.floor(n / 250)}.${(n % 250) + 1}`;
  }

  delete(
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    opts: { propagationPolicy?: string; preconditions?: { uid?: string; resourceVersion?: string }; dryRun?: boolean; privileged?: boolean },
  ): JsonObject {
    if (!type.writable && !opts.privileged) {
      throw new ApiError(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource (${type.plural} are read-only in the fake: tests set them)`);
    }
    const entry = this.bucket(type).get(ObjectStore.key(namespace, name));
    if (!entry) throw notFound(type.plural, type.group, name);
    const meta = metadataOf(entry.object);
    const pre = opts.preconditions;
    if (pre?.uid && pre.uid !== meta['uid']) {
      throw conflict(type.plural, type.group, name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${String(meta['uid'])}`);
    }
    if (pre?.resourceVersion && pre.resourceVersion !== meta['resourceVersion']) {
      throw conflict(type.plural, type.group, name, `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${String(meta['resourceVersion'])}`);
    }
    const policy = opts.propagationPolicy ?? (type.kind === 'Job' ? 'Orphan' : 'Background');
    if (!['Orphan', 'Background', 'Foreground'].includes(policy)) {
      throw new ApiError(422, 'Invalid', `DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "${policy}": supported values: "Foreground", "Background", "Orphan"`);
    }
    const rendered = this.render(type, entry);
    if (opts.dryRun) return rendered;
    this.bucket(type).delete(ObjectStore.key(namespace, name));
    this.revision += 1;
    metadataOf(rendered)['resourceVersion'] = String(this.revision);
    this.emit({ type: 'DELETED', resourceVersion: this.revision, resource: type, namespace, object: rendered, previous: undefined });
    this.collectDependents(type, namespace, name, String(meta['uid']), policy);
    return rendered;
  }

  /** The garbage collector, immediately: dependents (by ownerReference uid, or by namespace) go too, or are orphaned. */
  private collectDependents(type: ResourceType, namespace: string | undefined, name: string, uid: string, policy: string): void {
    for (const depType of RESOURCE_TYPES) {
      for (const [key, entry] of [...this.bucket(depType).entries()]) {
        if (!this.bucket(depType).has(key)) continue;
        const meta = metadataOf(entry.object);
        const depName = String(meta['name']);
        const depNs = typeof meta['namespace'] === 'string' ? meta['namespace'] : undefined;
        if (type.kind === 'Namespace' && depNs === name) {
          this.delete(depType, depNs, depName, { propagationPolicy: 'Background', privileged: true });
          continue;
        }
        const refs = Array.isArray(meta['ownerReferences']) ? meta['ownerReferences'] : [];
        if (depNs !== namespace || !refs.some((r) => isJsonObject(r) && r['uid'] === uid)) continue;
        if (policy === 'Orphan') {
          const body = cloneJson(entry.object);
          const remaining = refs.filter((r) => !(isJsonObject(r) && r['uid'] === uid));
          if (remaining.length > 0) metadataOf(body)['ownerReferences'] = remaining;
          else delete metadataOf(body)['ownerReferences'];
          this.replace(depType, depNs, depName, body, { manager: FakeManagers.garbageCollector, privileged: true });
        } else {
          this.delete(depType, depNs, depName, { propagationPolicy: policy, privileged: true });
        }
      }
    }
  }

  private emit(event: StoreEvent): void {
    this.history.push(event);
    if (this.history.length > HISTORY_LIMIT) this.compactedRevision = this.history.shift()!.resourceVersion;
    for (const listener of [...this.listeners]) listener(event);
  }

  /** Events after `resourceVersion`, or undefined when that version is older than the retained history. */
  eventsSince(resourceVersion: number): StoreEvent[] | undefined {
    if (resourceVersion < this.compactedRevision) return undefined;
    return this.history.filter((e) => e.resourceVersion > resourceVersion);
  }

  subscribe(listener: (event: StoreEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Drops history older than the current revision, as etcd compaction does; later watches from before it get 410. */
  compact(): void {
    this.history.splice(0, this.history.length);
    this.compactedRevision = this.revision;
  }
}

/** Field manager names the fake itself writes under. */
export const FakeManagers = {
  garbageCollector: 'kube-controller-manager',
  statusController: 'kube-controller-manager',
} as const;

function withoutMetaAndStatus(obj: JsonObject): JsonObject {
  const { metadata: _m, status: _s, ...rest } = obj;
  return rest;
}

function sameOwnership(a: ManagerEntry[], b: ManagerEntry[]): boolean {
  if (a.length !== b.length) return false;
  return a.every((entry, i) => {
    const other = b[i]!;
    return (
      entry.manager === other.manager &&
      entry.operation === other.operation &&
      entry.fields.size === other.fields.size &&
      [...entry.fields].every((f) => other.fields.has(f))
    );
  });
}
