import {
  AppsV1Api,
  CoreV1Api,
  KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  setHeaderOptions,
  Watch,
  type KubernetesObject,
  type V1Deployment,
} from '@kubernetes/client-node';
import { startFakeKubeApiServer, type FakeKubeApiServer, type JsonObject } from '../support/fake-kube-apiserver/index.js';
import { expectStatus, waitFor } from './kube-test-helpers.js';

const NS = 'apps';

function deployment(name: string, extra: { labels?: Record<string, string>; replicas?: number; image?: string } = {}): V1Deployment {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: NS, labels: { app: name, ...extra.labels } },
    spec: {
      ...(extra.replicas !== undefined ? { replicas: extra.replicas } : {}),
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers: [{ name: 'main', image: extra.image ?? 'busybox:1.36', env: [{ name: 'A', value: '1' }] }] },
      },
    },
  };
}

describe('fake kube-apiserver through @kubernetes/client-node', () => {
  let fake: FakeKubeApiServer;
  let apps: AppsV1Api;
  let core: CoreV1Api;
  let objects: KubernetesObjectApi;

  beforeEach(async () => {
    fake = await startFakeKubeApiServer({ namespaces: [NS], namespace: NS });
    apps = fake.kubeConfig.makeApiClient(AppsV1Api);
    core = fake.kubeConfig.makeApiClient(CoreV1Api);
    objects = KubernetesObjectApi.makeApiClient(fake.kubeConfig);
  });

  afterEach(async () => {
    await fake.close();
  });

  describe('discovery', () => {
    it('lets KubernetesObjectApi resolve every kind the agent uses', async () => {
      for (const [apiVersion, kind] of [
        ['v1', 'Namespace'],
        ['v1', 'Pod'],
        ['v1', 'Service'],
        ['apps/v1', 'Deployment'],
        ['autoscaling/v2', 'HorizontalPodAutoscaler'],
        ['batch/v1', 'Job'],
      ] as const) {
        const list = await objects.list(apiVersion, kind, kind === 'Namespace' ? undefined : NS);
        expect(Array.isArray(list.items)).toBe(true);
      }
    });

    it('answers /api and /apis with the served groups', async () => {
      const res = await fetch(`${fake.url}/apis`);
      const body = (await res.json()) as { groups: { name: string }[] };
      expect(body.groups.map((g) => g.name).sort()).toEqual(['apps', 'autoscaling', 'batch']);
      const api = (await (await fetch(`${fake.url}/api`)).json()) as { versions: string[] };
      expect(api.versions).toEqual(['v1']);
    });

    it('answers an unknown path with a NotFound Status', async () => {
      const res = await fetch(`${fake.url}/apis/example.com/v1/widgets`);
      expect(res.status).toBe(404);
      expect(await res.json()).toMatchObject({ kind: 'Status', reason: 'NotFound', code: 404 });
    });
  });

  describe('create and read', () => {
    it('assigns uid, creationTimestamp, resourceVersion and generation on create', async () => {
      const created = await apps.createNamespacedDeployment({ namespace: NS, body: deployment('web') });
      expect(created.metadata?.uid).toMatch(/^[0-9a-f-]{36}$/);
      expect(created.metadata?.creationTimestamp).toBeInstanceOf(Date);
      expect(Number(created.metadata?.resourceVersion)).toBeGreaterThan(0);
      expect(created.metadata?.generation).toBe(1);
      // Server defaults a client must not mistake for its own fields.
      expect(created.spec?.replicas).toBe(1);
      expect(created.spec?.template.spec?.containers[0]?.imagePullPolicy).toBe('IfNotPresent');
    });

    it('refuses a second create of the same name with AlreadyExists', async () => {
      await apps.createNamespacedDeployment({ namespace: NS, body: deployment('web') });
      const status = await expectStatus(apps.createNamespacedDeployment({ namespace: NS, body: deployment('web') }));
      expect(status).toMatchObject({ code: 409, reason: 'AlreadyExists', message: 'deployments.apps "web" already exists' });
    });

    it('answers a missing object with a NotFound Status naming it', async () => {
      const status = await expectStatus(apps.readNamespacedDeployment({ name: 'nope', namespace: NS }));
      expect(status).toMatchObject({ code: 404, reason: 'NotFound', details: { name: 'nope', kind: 'deployments' } });
    });

    it('refuses to create into a namespace that does not exist', async () => {
      const status = await expectStatus(apps.createNamespacedDeployment({ namespace: 'ghost', body: { ...deployment('web'), metadata: { name: 'web', namespace: 'ghost' } } }));
      expect(status).toMatchObject({ code: 404, reason: 'NotFound', message: 'namespaces "ghost" not found' });
    });

    it('rejects a Deployment whose selector does not match its template with 422 Invalid', async () => {
      const bad = deployment('web');
      bad.spec!.template.metadata!.labels = { app: 'other' };
      const status = await expectStatus(apps.createNamespacedDeployment({ namespace: NS, body: bad }));
      expect(status.code).toBe(422);
      expect(status.reason).toBe('Invalid');
      expect(status.details?.causes?.[0]?.field).toBe('spec.template.metadata.labels');
    });

    it('rejects an invalid object name with 422 Invalid', async () => {
      const status = await expectStatus(apps.createNamespacedDeployment({ namespace: NS, body: deployment('Not_A_Name') }));
      expect(status).toMatchObject({ code: 422, reason: 'Invalid' });
    });

    it('keeps pods read-only for clients while the test hook sets them', async () => {
      const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: NS }, spec: { containers: [{ name: 'c', image: 'x:1' }] } };
      const status = await expectStatus(core.createNamespacedPod({ namespace: NS, body: pod }));
      expect(status).toMatchObject({ code: 405, reason: 'MethodNotAllowed' });
      fake.store.put({ ...pod, status: { phase: 'Running' } });
      const listed = await core.listNamespacedPod({ namespace: NS });
      expect(listed.items.map((p) => [p.metadata?.name, p.status?.phase])).toEqual([['p', 'Running']]);
    });

    it('rejects a malformed body with 400 BadRequest', async () => {
      const res = await fetch(`${fake.url}/apis/apps/v1/namespaces/${NS}/deployments`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"kind": ',
      });
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ kind: 'Status', reason: 'BadRequest' });
    });
  });

  describe('list with selectors', () => {
    beforeEach(async () => {
      await apps.createNamespacedDeployment({ namespace: NS, body: deployment('a', { labels: { tier: 'gpu', team: 'x' } }) });
      await apps.createNamespacedDeployment({ namespace: NS, body: deployment('b', { labels: { tier: 'cpu' } }) });
      await apps.createNamespacedDeployment({ namespace: NS, body: deployment('c', { labels: { team: 'y' } }) });
    });

    const names = (list: { items: { metadata?: { name?: string } }[] }) => list.items.map((i) => i.metadata?.name);

    it.each([
      ['tier=gpu', ['a']],
      ['tier==gpu', ['a']],
      ['tier!=gpu', ['b', 'c']],
      ['tier in (gpu,cpu)', ['a', 'b']],
      ['tier notin (gpu)', ['b', 'c']],
      ['team', ['a', 'c']],
      ['!team', ['b']],
      ['team,tier=gpu', ['a']],
    ])('filters by label selector %s', async (labelSelector, expected) => {
      expect(names(await apps.listNamespacedDeployment({ namespace: NS, labelSelector }))).toEqual(expected);
    });

    it('filters by fieldSelector metadata.name', async () => {
      expect(names(await apps.listNamespacedDeployment({ namespace: NS, fieldSelector: 'metadata.name=b' }))).toEqual(['b']);
      expect(names(await apps.listNamespacedDeployment({ namespace: NS, fieldSelector: 'metadata.name!=b' }))).toEqual(['a', 'c']);
    });

    it('rejects a malformed label selector with 400 BadRequest', async () => {
      const status = await expectStatus(apps.listNamespacedDeployment({ namespace: NS, labelSelector: 'tier in (' }));
      expect(status).toMatchObject({ code: 400, reason: 'BadRequest' });
    });

    it('rejects an unsupported field selector with 400 BadRequest', async () => {
      const status = await expectStatus(apps.listNamespacedDeployment({ namespace: NS, fieldSelector: 'spec.replicas=1' }));
      expect(status).toMatchObject({ code: 400, message: 'field label not supported: spec.replicas' });
    });

    it('pages with limit and continue', async () => {
      const first = await apps.listNamespacedDeployment({ namespace: NS, limit: 2 });
      expect(names(first)).toEqual(['a', 'b']);
      const rest = await apps.listNamespacedDeployment({ namespace: NS, limit: 2, _continue: first.metadata!._continue! });
      expect(names(rest)).toEqual(['c']);
    });

    it('lists across namespaces at the cluster-wide path', async () => {
      const all = await apps.listDeploymentForAllNamespaces({ labelSelector: 'tier' });
      expect(names(all)).toEqual(['a', 'b']);
    });
  });

  describe('replace and patch', () => {
    it('increases resourceVersion on every write and refuses a stale one with 409 Conflict', async () => {
      const created = await apps.createNamespacedDeployment({ namespace: NS, body: deployment('web') });
      const replaced = await apps.replaceNamespacedDeployment({ name: 'web', namespace: NS, body: { ...created, spec: { ...created.spec!, replicas: 3 } } });
      expect(Number(replaced.metadata?.resourceVersion)).toBeGreaterThan(Number(created.metadata?.resourceVersion));
      expect(replaced.metadata?.generation).toBe(2);
      const status = await expectStatus(apps.replaceNamespacedDeployment({ name: 'web', namespace: NS, body: { ...created, spec: { ...created.spec!, replicas: 4 } } }));
      expect(status.code).toBe(409);
      expect(status.reason).toBe('Conflict');
      expect(status.message).toContain('the object has been modified');
    });

    it('bumps generation on a spec change but not on a label change', async () => {
      await apps.createNamespacedDeployment({ namespace: NS, body: deployment('web') });
      const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
      const relabelled = await apps.patchNamespacedDeployment({ name: 'web', namespace: NS, body: { metadata: { labels: { extra: 'yes' } } } }, merge);
      expect(relabelled.metadata?.generation).toBe(1);
      expect(relabelled.metadata?.labels).toEqual({ app: 'web', extra: 'yes' });
      const scaled = await apps.patchNamespacedDeployment({ name: 'web', namespace: NS, body: { spec: { replicas: 5 } } }, merge);
      expect(scaled.metadata?.generation).toBe(2);
      expect(scaled.spec?.replicas).toBe(5);
    });

    it('removes a field set to null in a JSON merge patch', async () => {
      await apps.createNamespacedDeployment({ namespace: NS, body: deployment('web', { labels: { drop: 'me' } }) });
      const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
      const patched = await apps.patchNamespacedDeployment({ name: 'web', namespace: NS, body: { metadata: { labels: { drop: null } } } }, merge);
      expect(patched.metadata?.labels).toEqual({ app: 'web' });
    });

    it('merges containers and env by name in a strategic merge patch', async () => {
      await apps.createNamespacedDeployment({ namespace: NS, body: deployment('web') });
      const smp = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);
      const patched = await apps.patchNamespacedDeployment(
        { name: 'web', namespace: NS, body: { spec: { template: { spec: { containers: [{ name: 'main', env: [{ name: 'B', value: '2' }] }] } } } } },
        smp,
      );
      const container = patched.spec?.template.spec?.containers[0];
      expect(container?.image).toBe('busybox:1.36');
      expect(container?.env).toEqual([
        { name: 'A', value: '1' },
        { name: 'B', value: '2' },
      ]);
    });

    it('applies a JSON patch', async () => {
      await apps.createNamespacedDeployment({ namespace: NS, body: deployment('web') });
      const patched = await apps.patchNamespacedDeployment(
        { name: 'web', namespace: NS, body: [{ op: 'replace', path: '/spec/replicas', value: 7 }] },
        setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
      );
      expect(patched.spec?.replicas).toBe(7);
    });

    it('refuses force on a non-apply patch', async () => {
      await apps.createNamespacedDeployment({ namespace: NS, body: deployment('web') });
      const res = await fetch(`${fake.url}/apis/apps/v1/namespaces/${NS}/deployments/web?force=true`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/merge-patch+json' },
        body: '{}',
      });
      expect(res.status).toBe(422);
    });

    it('refuses an unknown patch type with 415', async () => {
      await apps.createNamespacedDeployment({ namespace: NS, body: deployment('web') });
      const res = await fetch(`${fake.url}/apis/apps/v1/namespaces/${NS}/deployments/web`, {
        method: 'PATCH',
        headers: { 'content-type': 'text/plain' },
        body: '{}',
      });
      expect(res.status).toBe(415);
    });

    it('keeps status out of reach of main-resource writes and lets the status subresource set it', async () => {
      await apps.createNamespacedDeployment({ namespace: NS, body: deployment('web') });
      fake.store.setStatus('Deployment', NS, 'web', { replicas: 1, readyReplicas: 1, observedGeneration: 1 });
      const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
      const patched = await apps.patchNamespacedDeployment({ name: 'web', namespace: NS, body: { status: { readyReplicas: 9 } } }, merge);
      expect(patched.status?.readyReplicas).toBe(1);
      const viaStatus = await apps.patchNamespacedDeploymentStatus({ name: 'web', namespace: NS, body: { status: { readyReplicas: 0 } } }, merge);
      expect(viaStatus.status?.readyReplicas).toBe(0);
      expect(viaStatus.metadata?.generation).toBe(1);
    });
  });

  describe('server-side apply', () => {
    const apply = (obj: KubernetesObject, force = false) =>
      objects.patch(obj, undefined, undefined, 'flotilla-agent', force, PatchStrategy.ServerSideApply);

    it('creates a missing object and records the manager in managedFields', async () => {
      const applied = (await apply(deployment('web', { replicas: 2 }))) as V1Deployment;
      expect(applied.spec?.replicas).toBe(2);
      const managers = applied.metadata?.managedFields?.map((m) => [m.manager, m.operation]);
      expect(managers).toEqual([['flotilla-agent', 'Apply']]);
      const fields = applied.metadata?.managedFields?.[0]?.fieldsV1 as Record<string, Record<string, unknown>>;
      expect(fields['f:spec']).toHaveProperty('f:replicas');
    });

    it('does not bump resourceVersion when the same configuration is applied again', async () => {
      const first = await apply(deployment('web', { replicas: 2 }));
      const second = await apply(deployment('web', { replicas: 2 }));
      expect(second.metadata?.resourceVersion).toBe(first.metadata?.resourceVersion);
    });

    it('reports a conflict on a field another manager changed, and takes it over with force', async () => {
      await apply(deployment('web', { replicas: 2 }));
      fake.store.edit('Deployment', NS, 'web', (d) => {
        (d['spec'] as JsonObject)['replicas'] = 5;
      });
      const status = await expectStatus(apply(deployment('web', { replicas: 2 })));
      expect(status.code).toBe(409);
      expect(status.reason).toBe('Conflict');
      expect(status.message).toContain('conflict with "kubectl-edit"');
      expect(status.details?.causes).toEqual([
        { reason: 'FieldManagerConflict', message: 'conflict with "kubectl-edit" using apps/v1', field: '.spec.replicas' },
      ]);
      const forced = (await apply(deployment('web', { replicas: 2 }), true)) as V1Deployment;
      expect(forced.spec?.replicas).toBe(2);
      expect(forced.metadata?.managedFields?.map((m) => m.manager)).not.toContain('kubectl-edit');
    });

    it('shares a field without conflict when another manager set the same value', async () => {
      await apply(deployment('web', { replicas: 2 }));
      fake.store.edit('Deployment', NS, 'web', (d) => {
        ((d['metadata'] as JsonObject)['labels'] as JsonObject)['owner'] = 'ops';
      });
      const applied = await apply(deployment('web', { replicas: 2 }));
      expect(applied.metadata?.labels).toEqual({ app: 'web', owner: 'ops' });
    });

    it('removes fields the manager no longer applies and keeps fields others own', async () => {
      await apply(deployment('web', { labels: { a: '1', b: '2' } }));
      fake.store.edit('Deployment', NS, 'web', (d) => {
        ((d['metadata'] as JsonObject)['labels'] as JsonObject)['c'] = '3';
      });
      const applied = await apply(deployment('web', { labels: { a: '1' } }));
      expect(applied.metadata?.labels).toEqual({ app: 'web', a: '1', c: '3' });
    });

    it('removes a list element the manager no longer applies', async () => {
      const withTwo = deployment('web');
      withTwo.spec!.template.spec!.containers[0]!.env = [{ name: 'A', value: '1' }, { name: 'B', value: '2' }];
      await apply(withTwo);
      const applied = (await apply(deployment('web'))) as V1Deployment;
      expect(applied.spec?.template.spec?.containers[0]?.env).toEqual([{ name: 'A', value: '1' }]);
    });

    it('requires a field manager for apply', async () => {
      await apply(deployment('web'));
      const res = await fetch(`${fake.url}/apis/apps/v1/namespaces/${NS}/deployments/web`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/apply-patch+yaml' },
        body: JSON.stringify(deployment('web')),
      });
      expect(res.status).toBe(422);
    });

    it('accepts a YAML apply body', async () => {
      const res = await fetch(`${fake.url}/api/v1/namespaces/${NS}/services/svc?fieldManager=person`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/apply-patch+yaml' },
        body: 'apiVersion: v1\nkind: Service\nmetadata:\n  name: svc\nspec:\n  ports:\n  - port: 80\n',
      });
      expect(res.status).toBe(201);
      expect(fake.store.get('Service', NS, 'svc')).toMatchObject({ spec: { ports: [{ port: 80, protocol: 'TCP', targetPort: 80 }] } });
    });

    it('refuses to change an immutable Job template', async () => {
      const job = {
        apiVersion: 'batch/v1',
        kind: 'Job',
        metadata: { name: 'train', namespace: NS },
        spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 't', image: 'trainer:1' }] } } },
      };
      await apply(job);
      const changed = structuredClone(job);
      changed.spec.template.spec.containers[0]!.image = 'trainer:2';
      const status = await expectStatus(apply(changed, true));
      expect(status).toMatchObject({ code: 422, reason: 'Invalid' });
      expect(status.message).toContain('field is immutable');
    });
  });

  describe('delete', () => {
    it('deletes with a propagation policy and garbage-collects dependents', async () => {
      const owner = await apps.createNamespacedDeployment({ namespace: NS, body: deployment('web') });
      fake.store.put({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name: 'web-1',
          namespace: NS,
          ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', uid: owner.metadata!.uid! }],
        },
        spec: { containers: [{ name: 'main', image: 'busybox:1.36' }] },
      });
      const status = await apps.deleteNamespacedDeployment({ name: 'web', namespace: NS, propagationPolicy: 'Foreground' });
      expect(status.status).toBe('Success');
      expect(fake.store.get('Deployment', NS, 'web')).toBeUndefined();
      expect(fake.store.get('Pod', NS, 'web-1')).toBeUndefined();
    });

    it('rejects an unknown propagation policy', async () => {
      await apps.createNamespacedDeployment({ namespace: NS, body: deployment('web') });
      const status = await expectStatus(apps.deleteNamespacedDeployment({ name: 'web', namespace: NS, propagationPolicy: 'Sometimes' }));
      expect(status).toMatchObject({ code: 422, reason: 'Invalid' });
      expect(fake.store.get('Deployment', NS, 'web')).toBeDefined();
    });

    it('refuses a delete whose uid precondition names an earlier incarnation', async () => {
      const first = await apps.createNamespacedDeployment({ namespace: NS, body: deployment('web') });
      await apps.deleteNamespacedDeployment({ name: 'web', namespace: NS });
      await apps.createNamespacedDeployment({ namespace: NS, body: deployment('web') });
      const status = await expectStatus(
        apps.deleteNamespacedDeployment({ name: 'web', namespace: NS, body: { preconditions: { uid: first.metadata!.uid! } } }),
      );
      expect(status).toMatchObject({ code: 409, reason: 'Conflict' });
      expect(status.message).toContain('Precondition failed: UID in precondition');
      expect(fake.store.get('Deployment', NS, 'web')).toBeDefined();
    });

    it('answers deleting a missing object with NotFound', async () => {
      const status = await expectStatus(apps.deleteNamespacedDeployment({ name: 'gone', namespace: NS }));
      expect(status).toMatchObject({ code: 404, reason: 'NotFound' });
    });
  });

  describe('watch', () => {
    type Seen = { type: string; name: string | undefined; rv: string | undefined };

    async function watch(path: string, params: Record<string, string>, seen: Seen[]): Promise<AbortController> {
      return new Watch(fake.kubeConfig).watch(
        path,
        params,
        (type, obj: KubernetesObject) => seen.push({ type, name: obj.metadata?.name, rv: obj.metadata?.resourceVersion }),
        () => undefined,
      );
    }

    it('streams ADDED, MODIFIED and DELETED from a resourceVersion', async () => {
      const list = await apps.listNamespacedDeployment({ namespace: NS });
      const seen: Seen[] = [];
      const controller = await watch(`/apis/apps/v1/namespaces/${NS}/deployments`, { resourceVersion: list.metadata!.resourceVersion! }, seen);
      try {
        await apps.createNamespacedDeployment({ namespace: NS, body: deployment('web') });
        fake.store.setStatus('Deployment', NS, 'web', { readyReplicas: 1 });
        await apps.deleteNamespacedDeployment({ name: 'web', namespace: NS });
        await waitFor(() => seen.length >= 3, 'three watch events');
        expect(seen.map((s) => [s.type, s.name])).toEqual([
          ['ADDED', 'web'],
          ['MODIFIED', 'web'],
          ['DELETED', 'web'],
        ]);
        const rvs = seen.map((s) => Number(s.rv));
        expect([...rvs].sort((a, b) => a - b)).toEqual(rvs);
      } finally {
        controller.abort();
      }
    });

    it('replays events that happened after the given resourceVersion', async () => {
      const list = await apps.listNamespacedDeployment({ namespace: NS });
      await apps.createNamespacedDeployment({ namespace: NS, body: deployment('early') });
      const seen: Seen[] = [];
      const controller = await watch(`/apis/apps/v1/namespaces/${NS}/deployments`, { resourceVersion: list.metadata!.resourceVersion! }, seen);
      try {
        await waitFor(() => seen.length >= 1, 'the replayed event');
        expect(seen[0]).toMatchObject({ type: 'ADDED', name: 'early' });
      } finally {
        controller.abort();
      }
    });

    it('turns label changes into ADDED and DELETED for a selector watch', async () => {
      await apps.createNamespacedDeployment({ namespace: NS, body: deployment('web') });
      const seen: Seen[] = [];
      const controller = await watch(`/apis/apps/v1/namespaces/${NS}/deployments`, { labelSelector: 'flotilla=yes', resourceVersion: fake.store.resourceVersion() }, seen);
      try {
        const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
        await apps.patchNamespacedDeployment({ name: 'web', namespace: NS, body: { metadata: { labels: { flotilla: 'yes' } } } }, merge);
        await apps.patchNamespacedDeployment({ name: 'web', namespace: NS, body: { metadata: { labels: { flotilla: null } } } }, merge);
        await waitFor(() => seen.length >= 2, 'two watch events');
        expect(seen.map((s) => s.type)).toEqual(['ADDED', 'DELETED']);
      } finally {
        controller.abort();
      }
    });

    it('answers a compacted resourceVersion with an ERROR event carrying 410 Expired', async () => {
      const old = fake.store.resourceVersion();
      await apps.createNamespacedDeployment({ namespace: NS, body: deployment('web') });
      fake.store.compact();
      const events: { type: string; obj: { code?: number; reason?: string } }[] = [];
      let ended = false;
      await new Watch(fake.kubeConfig).watch(
        `/apis/apps/v1/namespaces/${NS}/deployments`,
        { resourceVersion: old },
        (type, obj: { code?: number; reason?: string }) => events.push({ type, obj }),
        () => {
          ended = true;
        },
      );
      await waitFor(() => ended, 'the watch to end');
      expect(events).toEqual([{ type: 'ERROR', obj: expect.objectContaining({ code: 410, reason: 'Expired' }) }]);
    });

    it('sends current objects as ADDED when watching without a resourceVersion', async () => {
      await apps.createNamespacedDeployment({ namespace: NS, body: deployment('web') });
      const seen: Seen[] = [];
      const controller = await watch(`/apis/apps/v1/namespaces/${NS}/deployments`, {}, seen);
      try {
        await waitFor(() => seen.length >= 1, 'the initial event');
        expect(seen[0]).toMatchObject({ type: 'ADDED', name: 'web' });
      } finally {
        controller.abort();
      }
    });
  });

  describe('label-like fields', () => {
    const LABEL_VALUE_MESSAGE =
      "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

    it('rejects a nodeSelector value that is not a label value with the real 422 Status', async () => {
      const bad = deployment('gpu');
      bad.spec!.template.spec!.nodeSelector = { 'nvidia.com/gpu.product': 'NVIDIA H100 80GB HBM3' };
      const status = await expectStatus(apps.createNamespacedDeployment({ namespace: NS, body: bad }));
      expect(status).toMatchObject({
        code: 422,
        reason: 'Invalid',
        message: `Deployment.apps "gpu" is invalid: spec.template.spec.nodeSelector: Invalid value: "NVIDIA H100 80GB HBM3": ${LABEL_VALUE_MESSAGE}`,
        details: {
          name: 'gpu',
          kind: 'Deployment',
          causes: [{ reason: 'FieldValueInvalid', field: 'spec.template.spec.nodeSelector', message: `Invalid value: "NVIDIA H100 80GB HBM3": ${LABEL_VALUE_MESSAGE}` }],
        },
      });
      bad.spec!.template.spec!.nodeSelector = { 'nvidia.com/gpu.product': 'NVIDIA-H100-80GB-HBM3' };
      await expect(apps.createNamespacedDeployment({ namespace: NS, body: bad })).resolves.toBeDefined();
    });

    it('checks label keys: prefix a DNS subdomain, name at most 63 characters', async () => {
      const bad = deployment('keys', { labels: { 'Example.COM/app': 'x', ['n'.repeat(64)]: 'y' } });
      const status = await expectStatus(apps.createNamespacedDeployment({ namespace: NS, body: bad }));
      expect(status.code).toBe(422);
      expect(status.details?.causes).toEqual([
        {
          reason: 'FieldValueInvalid',
          field: 'metadata.labels',
          message: `Invalid value: "Example.COM/app": prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`,
        },
        { reason: 'FieldValueInvalid', field: 'metadata.labels', message: `Invalid value: "${'n'.repeat(64)}": name part must be no more than 63 characters` },
      ]);
    });

    it('checks selector matchLabels, a too-long value, and Service selectors', async () => {
      const long = 'v'.repeat(64);
      const bad = deployment('sel');
      bad.spec!.selector = { matchLabels: { app: long } };
      bad.spec!.template.metadata!.labels = { app: long };
      const status = await expectStatus(apps.createNamespacedDeployment({ namespace: NS, body: bad }));
      expect(status.details?.causes?.map((c) => [c.field, c.message])).toEqual([
        ['spec.selector.matchLabels', `Invalid value: "${long}": must be no more than 63 characters`],
        ['spec.template.metadata.labels', `Invalid value: "${long}": must be no more than 63 characters`],
      ]);
      const svc = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'svc', namespace: NS }, spec: { selector: { app: 'a b' }, ports: [{ port: 80 }] } };
      const svcStatus = await expectStatus(core.createNamespacedService({ namespace: NS, body: svc }));
      expect(svcStatus).toMatchObject({ code: 422, details: { causes: [{ field: 'spec.selector', message: `Invalid value: "a b": ${LABEL_VALUE_MESSAGE}` }] } });
    });
  });

  describe('field validation', () => {
    const url = () => `${fake.url}/apis/apps/v1/namespaces/${NS}/deployments`;
    const withUnknown = (): JsonObject => {
      const body = deployment('extra') as unknown as JsonObject;
      (body['spec'] as JsonObject)['replicaz'] = 3;
      return body;
    };

    it('refuses unknown fields under fieldValidation=Strict as the real server decodes them', async () => {
      const res = await fetch(`${url()}?fieldValidation=Strict`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(withUnknown()) });
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({
        reason: 'BadRequest',
        message: 'Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: unknown field "spec.replicaz"',
      });
      expect(fake.store.get('Deployment', NS, 'extra')).toBeUndefined();
    });

    it('drops unknown fields with a Warning header by default, as fieldValidation=Warn', async () => {
      const res = await fetch(url(), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(withUnknown()) });
      expect(res.status).toBe(201);
      expect(res.headers.get('warning')).toBe('299 - "unknown field \\"spec.replicaz\\""');
      expect(fake.store.get('Deployment', NS, 'extra')!['spec']).not.toHaveProperty('replicaz');
    });

    it('names the field for a server-side apply under Strict', async () => {
      const res = await fetch(`${url()}/extra?fieldManager=t&fieldValidation=Strict`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/apply-patch+yaml' },
        body: JSON.stringify(withUnknown()),
      });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { message: string }).message).toBe(
        'failed to create typed patch object (apps/v1, Kind=Deployment): .spec.replicaz: field not declared in schema',
      );
    });
  });

  describe('scale subresource', () => {
    it('reads and writes spec.replicas as an autoscaling/v1 Scale', async () => {
      await apps.createNamespacedDeployment({ namespace: NS, body: deployment('web', { replicas: 2 }) });
      const scale = await apps.readNamespacedDeploymentScale({ name: 'web', namespace: NS });
      expect(scale).toMatchObject({ kind: 'Scale', apiVersion: 'autoscaling/v1', spec: { replicas: 2 }, status: { replicas: 0, selector: 'app=web' } });
      await apps.patchNamespacedDeploymentScale(
        { name: 'web', namespace: NS, body: { spec: { replicas: 4 } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
      expect((fake.store.get('Deployment', NS, 'web')!['spec'] as JsonObject)['replicas']).toBe(4);
      const stale = await expectStatus(
        apps.replaceNamespacedDeploymentScale({ name: 'web', namespace: NS, body: { ...scale, spec: { replicas: 1 } } }),
      );
      expect(stale).toMatchObject({ code: 409, reason: 'Conflict' });
      const negative = await expectStatus(
        apps.patchNamespacedDeploymentScale({ name: 'web', namespace: NS, body: { spec: { replicas: -1 } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch)),
      );
      expect(negative).toMatchObject({ code: 422, message: 'Scale.autoscaling "web" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0' });
    });
  });

  describe('server-side printing and discovery for kubectl', () => {
    it('answers a Table when asked for one, with wide cells and partial metadata', async () => {
      await apps.createNamespacedDeployment({ namespace: NS, body: deployment('web', { replicas: 3 }) });
      const res = await fetch(`${fake.url}/apis/apps/v1/namespaces/${NS}/deployments`, {
        headers: { accept: 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json' },
      });
      const t = (await res.json()) as { kind: string; columnDefinitions: { name: string; priority: number }[]; rows: { cells: unknown[]; object: JsonObject }[] };
      expect(t.kind).toBe('Table');
      expect(t.columnDefinitions.map((c) => `${c.name}:${c.priority}`)).toEqual([
        'Name:0', 'Ready:0', 'Up-to-date:0', 'Available:0', 'Age:0', 'Containers:1', 'Images:1', 'Selector:1',
      ]);
      expect(t.rows[0]!.cells).toEqual(['web', '0/3', 0, 0, expect.stringMatching(/^\d+s$/), 'main', 'busybox:1.36', 'app=web']);
      expect(t.rows[0]!.object).toMatchObject({ kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: { name: 'web' } });
      const plain = (await (await fetch(`${fake.url}/apis/apps/v1/namespaces/${NS}/deployments`)).json()) as { kind: string };
      expect(plain.kind).toBe('DeploymentList');
    });

    it('puts workloads in the "all" category and lists the scale subresource', async () => {
      const res = (await (await fetch(`${fake.url}/apis/apps/v1`)).json()) as { resources: JsonObject[] };
      expect(res.resources.find((r) => r['name'] === 'deployments')).toMatchObject({ categories: ['all'] });
      expect(res.resources.find((r) => r['name'] === 'deployments/scale')).toMatchObject({ group: 'autoscaling', version: 'v1', kind: 'Scale' });
      const core = (await (await fetch(`${fake.url}/api/v1`)).json()) as { resources: JsonObject[] };
      expect(core.resources.filter((r) => Array.isArray(r['categories'])).map((r) => r['name']).sort()).toEqual(['pods', 'services']);
    });

    it('publishes OpenAPI v3 per group-version with fieldValidation on every PATCH', async () => {
      const index = (await (await fetch(`${fake.url}/openapi/v3`)).json()) as { paths: Record<string, { serverRelativeURL: string }> };
      expect(Object.keys(index.paths).sort()).toEqual(['api/v1', 'apis/apps/v1', 'apis/autoscaling/v2', 'apis/batch/v1']);
      const doc = (await (await fetch(`${fake.url}${index.paths['apis/apps/v1']!.serverRelativeURL}`)).json()) as {
        paths: Record<string, Record<string, { parameters?: { name: string }[]; 'x-kubernetes-group-version-kind'?: JsonObject }>>;
        components: { schemas: Record<string, JsonObject> };
      };
      const patch = doc.paths['/apis/apps/v1/namespaces/{namespace}/deployments/{name}']!['patch']!;
      expect(patch['x-kubernetes-group-version-kind']).toEqual({ group: 'apps', version: 'v1', kind: 'Deployment' });
      expect(patch.parameters!.map((p) => p.name)).toContain('fieldValidation');
      const containers = (doc.components.schemas['io.k8s.api.core.v1.PodSpec']!['properties'] as JsonObject)['containers'] as JsonObject;
      expect(containers['x-kubernetes-patch-merge-key']).toBe('name');
      const v2 = (await (await fetch(`${fake.url}/openapi/v2`, { headers: { accept: 'application/json' } })).json()) as { swagger: string; definitions: JsonObject };
      expect(v2.swagger).toBe('2.0');
      expect(Object.keys(v2.definitions)).toContain('io.k8s.api.apps.v1.Deployment');
    });
  });

  describe('authentication', () => {
    it('refuses a request without the bearer token when one is required', async () => {
      const secured = await startFakeKubeApiServer({ token: 's3cret' });
      try {
        const withToken = secured.kubeConfig.makeApiClient(CoreV1Api);
        await expect(withToken.listNamespace()).resolves.toBeDefined();
        const anonymous = new KubeConfig();
        anonymous.loadFromOptions({
          clusters: [{ name: 'c', server: secured.url, skipTLSVerify: true }],
          users: [{ name: 'u' }],
          contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
          currentContext: 'x',
        });
        const status = await expectStatus(anonymous.makeApiClient(CoreV1Api).listNamespace());
        expect(status.code).toBe(401);
      } finally {
        await secured.close();
      }
    });
  });

  it('loads from its kubeconfig YAML as a file-based client would', async () => {
    const kc = new KubeConfig();
    kc.loadFromString(fake.kubeconfigYaml);
    const list = await kc.makeApiClient(CoreV1Api).listNamespace();
    expect(list.items.map((n) => n.metadata?.name)).toEqual(expect.arrayContaining(['default', NS]));
  });

  it('records every request in its audit log', async () => {
    fake.clearRequests();
    await apps.listNamespacedDeployment({ namespace: NS, labelSelector: 'x=y' });
    expect(fake.requests()).toEqual([
      expect.objectContaining({ verb: 'list', resource: 'deployments', namespace: NS, query: { labelSelector: 'x=y' }, code: 200 }),
    ]);
  });
});
