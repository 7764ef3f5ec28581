import { KubeConfig } from '@kubernetes/client-node';
import { cloneJson, isJsonObject, metadataOf, type JsonObject } from './json.js';
import { groupVersionOf } from './resources.js';
import { parseLabelSelector } from './selectors.js';
import { HttpLayer, type AuditEntry } from './server.js';
import { FakeManagers, ObjectStore } from './store.js';

export type { AuditEntry } from './server.js';
export type { JsonObject, JsonValue } from './json.js';
export { ApiError } from './status.js';

/**
 * What a test can do to the cluster behind the API, as a person with kubectl
 * (or a controller) would. Kinds are named as kubectl names them
 * ("Deployment", "deployments", "deploy"). Every change goes through the same
 * write path as API requests: resourceVersion, generation, field ownership
 * and watch events all follow.
 */
export interface FakeKubeStoreAccess {
  get(kind: string, namespace: string | undefined, name: string): JsonObject | undefined;
  list(kind: string, opts?: { namespace?: string; labelSelector?: string }): JsonObject[];
  /**
   * Creates or overwrites the object exactly as given, status included; the
   * hook for what nothing in the fake produces (pods, controller status).
   */
  put(obj: JsonObject, opts?: { manager?: string }): JsonObject;
  /** `kubectl edit`: an Update by `manager` (default "kubectl-edit"); status is not editable this way. */
  edit(kind: string, namespace: string | undefined, name: string, mutate: (obj: JsonObject) => void, opts?: { manager?: string }): JsonObject;
  /** `kubectl apply --server-side`. */
  apply(obj: JsonObject, opts?: { manager?: string; force?: boolean }): JsonObject;
  /** A controller writing the /status subresource (e.g. readyReplicas of a Deployment). */
  setStatus(kind: string, namespace: string | undefined, name: string, status: JsonObject | ((current: JsonObject) => JsonObject)): JsonObject;
  /** `kubectl delete`; false when there was nothing to delete. */
  delete(kind: string, namespace: string | undefined, name: string, opts?: { propagationPolicy?: 'Orphan' | 'Background' | 'Foreground' }): boolean;
  /** Appends to a pod's container log (`GET .../pods/NAME/log` serves it), as the kubelet would. */
  appendPodLog(namespace: string, pod: string, text: string): void;
  /** The current resourceVersion of the whole store (as a list returns it). */
  resourceVersion(): string;
  /** Forgets watch history, as etcd compaction does: older resourceVersions then get 410 Gone. */
  compact(): void;
}

export interface FakeKubeApiServer {
  url: string;
  /** A client-node KubeConfig whose current context points at the fake (namespace `namespace`). */
  kubeConfig: KubeConfig;
  /** The same as a kubeconfig file. */
  kubeconfigYaml: string;
  store: FakeKubeStoreAccess;
  /** Every request served so far, oldest first. */
  requests(): AuditEntry[];
  clearRequests(): void;
  /** Ends every open watch (as a server restart or watch timeout would); returns how many there were. */
  dropWatches(): number;
  close(): Promise<void>;
}

export interface FakeKubeApiServerOptions {
  /** Namespaces to create besides default, kube-system and kube-public. */
  namespaces?: string[];
  /** Namespace of the kubeconfig's context (default "default"). */
  namespace?: string;
  /** When set, requests must carry `Authorization: Bearer <token>` (the kubeconfig does). */
  token?: string;
  /** How often a watch with allowWatchBookmarks gets a BOOKMARK (default 10 s). */
  bookmarkIntervalMs?: number;
  /**
   * Server-side field validation (default true, as since Kubernetes 1.25).
   * False behaves like an older server: no `fieldValidation` parameter in
   * the OpenAPI documents and unknown fields dropped silently, so kubectl
   * validates objects against `/openapi/v2` itself.
   */
  serverSideFieldValidation?: boolean;
}

/** Starts a fake kube-apiserver on a free loopback port. */
export async function startFakeKubeApiServer(opts: FakeKubeApiServerOptions = {}): Promise<FakeKubeApiServer> {
  const store = new ObjectStore();
  for (const ns of opts.namespaces ?? []) {
    store.create(store.type('Namespace'), undefined, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }, { manager: 'kubectl-create' });
  }
  const http = new HttpLayer(store, {
    ...(opts.token !== undefined ? { token: opts.token } : {}),
    bookmarkIntervalMs: opts.bookmarkIntervalMs ?? 10_000,
    serverSideFieldValidation: opts.serverSideFieldValidation ?? true,
    maxBodyBytes: 3 * 1024 * 1024,
  });
  const url = await http.listen();
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: 'fake', server: url, skipTLSVerify: true }],
    users: [{ name: 'fake', ...(opts.token !== undefined ? { token: opts.token } : {}) }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'fake', namespace: opts.namespace ?? 'default' }],
    currentContext: 'fake',
  });

  const scoped = (kind: string, namespace: string | undefined) => {
    const type = store.type(kind);
    return { type, namespace: type.namespaced ? (namespace ?? 'default') : undefined };
  };
  const identity = (obj: JsonObject) => {
    const kind = obj['kind'];
    if (typeof kind !== 'string') throw new Error('the object needs a kind');
    const meta = metadataOf(obj);
    const name = meta['name'];
    if (typeof name !== 'string') throw new Error('the object needs metadata.name');
    const { type, namespace } = scoped(kind, typeof meta['namespace'] === 'string' ? meta['namespace'] : undefined);
    return { type, namespace, name };
  };

  const access: FakeKubeStoreAccess = {
    get(kind, namespace, name) {
      const s = scoped(kind, namespace);
      return store.find(s.type, s.namespace, name);
    },
    list(kind, listOpts = {}) {
      const type = store.type(kind);
      return store.list(type, {
        namespace: type.namespaced ? listOpts.namespace : undefined,
        labels: parseLabelSelector(listOpts.labelSelector),
      });
    },
    put(obj, putOpts = {}) {
      const { type, namespace, name } = identity(obj);
      const body = cloneJson(obj);
      body['apiVersion'] = groupVersionOf(type);
      const manager = putOpts.manager ?? 'kubectl-replace';
      const existing = store.find(type, namespace, name);
      if (existing) {
        delete metadataOf(body)['resourceVersion'];
        return store.replace(type, namespace, name, body, { manager, privileged: true });
      }
      return store.create(type, namespace, body, { manager, privileged: true });
    },
    edit(kind, namespace, name, mutate, editOpts = {}) {
      const s = scoped(kind, namespace);
      const current = store.get(s.type, s.namespace, name);
      mutate(current);
      return store.replace(s.type, s.namespace, name, current, { manager: editOpts.manager ?? 'kubectl-edit' });
    },
    apply(obj, applyOpts = {}) {
      const { type, namespace, name } = identity(obj);
      return store.patch(type, namespace, name, 'apply', obj, {
        manager: applyOpts.manager ?? 'kubectl',
        ...(applyOpts.force !== undefined ? { force: applyOpts.force } : {}),
      });
    },
    setStatus(kind, namespace, name, status) {
      const s = scoped(kind, namespace);
      const current = store.get(s.type, s.namespace, name);
      const currentStatus = isJsonObject(current['status']) ? current['status'] : {};
      current['status'] = typeof status === 'function' ? status(cloneJson(currentStatus)) : status;
      return store.replace(s.type, s.namespace, name, current, {
        manager: FakeManagers.statusController,
        subresource: 'status',
        privileged: !s.type.writable,
      });
    },
    delete(kind, namespace, name, deleteOpts = {}) {
      const s = scoped(kind, namespace);
      if (!store.find(s.type, s.namespace, name)) return false;
      store.delete(s.type, s.namespace, name, { ...deleteOpts, privileged: true });
      return true;
    },
    resourceVersion: () => String(store.currentRevision()),
    appendPodLog: (namespace, pod, text) => http.podLogs.set(`${namespace}/${pod}`, (http.podLogs.get(`${namespace}/${pod}`) ?? '') + text),
    compact: () => store.compact(),
  };

  return {
    url,
    kubeConfig,
    kubeconfigYaml: kubeConfig.exportConfig(),
    store: access,
    requests: () => http.requests(),
    clearRequests: () => http.clearRequests(),
    dropWatches: () => http.dropWatches(),
    close: () => http.close(),
  };
}
