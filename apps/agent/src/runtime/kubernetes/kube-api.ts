import { AsyncLocalStorage } from 'node:async_hooks';
import {
  ApiException,
  CoreV1Api,
  createConfiguration,
  type KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  ServerConfiguration,
  Watch,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { sleep } from '../../support/abort.js';
import { FIELD_MANAGER, LABEL_MANAGED_BY, MANAGED_BY, MANAGED_SELECTOR } from './labels.js';
import { API_VERSION, toJsonMap, toLiveObject, type JsonMap, type LiveObject, type ManagedKind, type ObjectRef } from './objects.js';

/**
 * The cluster as the Kubernetes runtime uses it: list by Flotilla's label,
 * read one name, server-side apply, delete with a uid precondition, watch.
 * Only this file knows @kubernetes/client-node.
 */
export interface KubeApi {
  listManaged(kind: ManagedKind, signal: AbortSignal): Promise<LiveObject[]>;
  /** Pods carrying the managed-by label (pod templates carry it). */
  listPods(signal: AbortSignal): Promise<JsonMap[]>;
  /** One object by name whatever its labels; undefined when absent. */
  read(ref: ObjectRef, signal: AbortSignal): Promise<LiveObject | undefined>;
  apply(body: JsonMap, force: boolean, signal: AbortSignal): Promise<LiveObject | undefined>;
  /** Deletes exactly the observed object (uid precondition); gone already is fine. */
  delete(target: ObjectRef & { uid: string }, signal: AbortSignal): Promise<void>;
  ensureNamespace(signal: AbortSignal): Promise<void>;
  /** Calls `onEvent` on any change to managed objects or their pods until `signal` aborts. */
  watchManaged(onEvent: () => void, signal: AbortSignal): Promise<void>;
  /** The whole log of a pod's container so far (a fine-tuning Job's progress lines). */
  readPodLog(pod: string, container: string, signal: AbortSignal): Promise<string>;
}

/** A refusal from the API server, with its Status reason and, for apply conflicts, the fields. */
export class KubeApiError extends Error {
  override readonly name = 'KubeApiError';
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly causes: { reason?: string; message?: string; field?: string }[] = [],
  ) {
    super(message);
  }

  /** Worth a requeue with backoff rather than a per-workload report: the server is overloaded or broken. */
  get retryable(): boolean {
    return this.code === 429 || this.code >= 500;
  }
}

function toKubeApiError(err: unknown): unknown {
  if (!(err instanceof ApiException)) return err;
  const code = Number(err.code);
  let status: { reason?: string; message?: string; details?: { causes?: KubeApiError['causes'] } } = {};
  const body: unknown = err.body;
  try {
    status = typeof body === 'string' && body !== '' ? JSON.parse(body) : typeof body === 'object' && body !== null ? (body as typeof status) : {};
  } catch {
    status = { message: String(body) };
  }
  return new KubeApiError(code, status.reason ?? `HTTP${code}`, status.message ?? `HTTP ${code}`, status.details?.causes ?? []);
}

const WATCH_PATHS: Record<ManagedKind | 'Pod', (ns: string) => string> = {
  Deployment: (ns) => `/apis/apps/v1/namespaces/${ns}/deployments`,
  Service: (ns) => `/api/v1/namespaces/${ns}/services`,
  HorizontalPodAutoscaler: (ns) => `/apis/autoscaling/v2/namespaces/${ns}/horizontalpodautoscalers`,
  Job: (ns) => `/apis/batch/v1/namespaces/${ns}/jobs`,
  Pod: (ns) => `/api/v1/namespaces/${ns}/pods`,
};

export interface ClientNodeKubeApiOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  /** Delay before re-establishing a watch that ended, doubled on consecutive failures up to 30 s. */
  watchRetryMs?: number;
  onWatchError?: (kind: string, err: unknown) => void;
}

export class ClientNodeKubeApi implements KubeApi {
  private readonly api: KubernetesObjectApi;
  private readonly core: CoreV1Api;
  private readonly watcher: Watch;
  private readonly namespace: string;
  /** The signal of the call in progress, handed to fetch by the request middleware. */
  private readonly signals = new AsyncLocalStorage<AbortSignal>();
  private readonly watchRetryMs: number;

  constructor(private readonly opts: ClientNodeKubeApiOptions) {
    const cluster = opts.kubeConfig.getCurrentCluster();
    if (!cluster) throw new Error('the kubeconfig has no current cluster');
    this.namespace = opts.namespace;
    this.watchRetryMs = opts.watchRetryMs ?? 1000;
    const signals = this.signals;
    // Built like KubeConfig.makeApiClient, plus a middleware so that every
    // request is cancelled by the reconcile's AbortSignal.
    const config = createConfiguration({
      baseServer: new ServerConfiguration(cluster.server, {}),
      authMethods: { default: opts.kubeConfig },
      promiseMiddleware: [
        {
          pre: async (ctx) => {
            const signal = signals.getStore();
            if (signal) ctx.setSignal(signal);
            ctx.setHeaderParam('User-Agent', FIELD_MANAGER);
            return ctx;
          },
          post: async (res) => res,
        },
      ],
    });
    this.api = new KubernetesObjectApi(config);
    this.core = new CoreV1Api(config);
    this.watcher = new Watch(opts.kubeConfig);
  }

  private async call<T>(signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
    signal.throwIfAborted();
    try {
      return await this.signals.run(signal, fn);
    } catch (err) {
      signal.throwIfAborted();
      throw toKubeApiError(err);
    }
  }

  private async listRaw(apiVersion: string, kind: string, signal: AbortSignal, limit?: number): Promise<{ items: unknown[]; resourceVersion: string }> {
    const items: unknown[] = [];
    let token: string | undefined;
    let resourceVersion = '';
    do {
      const page = await this.call(signal, () =>
        this.api.list(apiVersion, kind, this.namespace, undefined, undefined, undefined, undefined, MANAGED_SELECTOR, limit ?? 500, token),
      );
      items.push(...page.items);
      resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
      token = limit === undefined ? page.metadata?._continue || undefined : undefined;
    } while (token);
    return { items, resourceVersion };
  }

  async listManaged(kind: ManagedKind, signal: AbortSignal): Promise<LiveObject[]> {
    const { items } = await this.listRaw(API_VERSION[kind], kind, signal);
    return items
      .map((item) => toLiveObject(kind, item))
      .filter((o): o is LiveObject => o !== undefined && o.labels[LABEL_MANAGED_BY] === MANAGED_BY);
  }

  async listPods(signal: AbortSignal): Promise<JsonMap[]> {
    const { items } = await this.listRaw('v1', 'Pod', signal);
    return items.map(toJsonMap);
  }

  private header(ref: ObjectRef): KubernetesObject & { apiVersion: string; kind: string; metadata: { name: string; namespace: string } } {
    return { apiVersion: API_VERSION[ref.kind], kind: ref.kind, metadata: { name: ref.name, namespace: this.namespace } };
  }

  async read(ref: ObjectRef, signal: AbortSignal): Promise<LiveObject | undefined> {
    try {
      const obj = await this.call(signal, () => this.api.read(this.header(ref)));
      return toLiveObject(ref.kind, obj);
    } catch (err) {
      if (err instanceof KubeApiError && err.code === 404) return undefined;
      throw err;
    }
  }

  async apply(body: JsonMap, force: boolean, signal: AbortSignal): Promise<LiveObject | undefined> {
    const kind = body['kind'] as ManagedKind;
    const result = await this.call(signal, () =>
      this.api.patch(body as unknown as KubernetesObject, undefined, undefined, FIELD_MANAGER, force, PatchStrategy.ServerSideApply),
    );
    return toLiveObject(kind, result);
  }

  async delete(target: ObjectRef & { uid: string }, signal: AbortSignal): Promise<void> {
    try {
      await this.call(signal, () =>
        this.api.delete(this.header(target), undefined, undefined, undefined, undefined, 'Background', {
          preconditions: { uid: target.uid },
        }),
      );
    } catch (err) {
      if (err instanceof KubeApiError && err.code === 404) return;
      throw err;
    }
  }

  async readPodLog(pod: string, container: string, signal: AbortSignal): Promise<string> {
    return this.call(signal, () => this.core.readNamespacedPodLog({ name: pod, namespace: this.namespace, container }));
  }

  async ensureNamespace(signal: AbortSignal): Promise<void> {
    const header = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: this.namespace } };
    try {
      await this.call(signal, () => this.api.read(header));
      return;
    } catch (err) {
      // An agent confined to its namespace may not read Namespaces: it exists then.
      if (err instanceof KubeApiError && err.code === 403) return;
      if (!(err instanceof KubeApiError && err.code === 404)) throw err;
    }
    await this.call(signal, () =>
      this.api.patch(
        { ...header, metadata: { ...header.metadata, labels: { [LABEL_MANAGED_BY]: MANAGED_BY } } },
        undefined,
        undefined,
        FIELD_MANAGER,
        false,
        PatchStrategy.ServerSideApply,
      ),
    );
  }

  async watchManaged(onEvent: () => void, signal: AbortSignal): Promise<void> {
    const kinds: (ManagedKind | 'Pod')[] = ['Deployment', 'Service', 'HorizontalPodAutoscaler', 'Job', 'Pod'];
    await Promise.all(kinds.map((kind) => this.watchKind(kind, onEvent, signal)));
  }

  /** List-then-watch from the list's resourceVersion, resuming from the last seen one, relisting on 410 Gone. */
  private async watchKind(kind: ManagedKind | 'Pod', onEvent: () => void, signal: AbortSignal): Promise<void> {
    let resourceVersion: string | undefined;
    let failures = 0;
    let listed = false;
    while (!signal.aborted) {
      let healthy = false;
      try {
        if (resourceVersion === undefined) {
          const apiVersion = kind === 'Pod' ? 'v1' : API_VERSION[kind];
          resourceVersion = (await this.listRaw(apiVersion, kind, signal, 1)).resourceVersion;
          // On a relist, something may have changed while no watch was open.
          if (listed) onEvent();
          listed = true;
        }
        await new Promise<void>((resolve, reject) => {
          let controller: AbortController | undefined;
          let expired = false;
          const onAbort = (): void => controller?.abort();
          signal.addEventListener('abort', onAbort, { once: true });
          const finish = (err: unknown): void => {
            signal.removeEventListener('abort', onAbort);
            // Ending the stream ourselves after a 410 is the normal way to relist, not a failure.
            if (err && !signal.aborted && !expired) reject(err instanceof Error ? err : new Error(String(err)));
            else resolve();
          };
          this.watcher
            .watch(
              WATCH_PATHS[kind](this.namespace),
              { labelSelector: MANAGED_SELECTOR, resourceVersion, allowWatchBookmarks: true },
              (type: string, obj: { code?: number; metadata?: { resourceVersion?: string } }) => {
                healthy = true;
                if (type === 'ERROR') {
                  // 410 Gone: our resourceVersion was compacted away; start over from a list.
                  expired = true;
                  resourceVersion = undefined;
                  controller?.abort();
                  return;
                }
                resourceVersion = obj.metadata?.resourceVersion ?? resourceVersion;
                if (type !== 'BOOKMARK') onEvent();
              },
              finish,
            )
            .then((c) => {
              controller = c;
              if (signal.aborted || expired) c.abort();
            }, finish);
        });
        failures = healthy ? 0 : failures;
      } catch (err) {
        if (signal.aborted) return;
        failures += 1;
        this.opts.onWatchError?.(kind, err);
      }
      try {
        await sleep(Math.min(30_000, this.watchRetryMs * 2 ** Math.min(failures, 5)), signal);
      } catch {
        return;
      }
    }
  }
}

export function isKubeApiError(err: unknown): err is KubeApiError {
  return err instanceof KubeApiError;
}
