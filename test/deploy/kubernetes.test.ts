import { execFile, execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { loadConfig } from '../../apps/hub/src/config/config.js';
import { runCli } from '../support/cli.js';

// deploy/kubernetes rendered by `kubectl kustomize` and every object validated twice: by the
// Kubernetes OpenAPI schemas compiled into kubernetes-models (required fields, types, formats,
// enums) and by the field lists of @kubernetes/client-node's generated models (no unknown or
// misspelt field, which the API server would drop or refuse). The agent's Role is checked
// against the calls the Kubernetes runtime makes, read from its source.

const ROOT = path.resolve('.');

function kubectl(): boolean {
  try {
    execFileSync('kubectl', ['version', '--client'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const hasKubectl = kubectl();
if (!hasKubectl) console.warn('kubernetes.test.ts: SKIPPED, kubectl is not installed, so deploy/kubernetes cannot be rendered with kustomize');
const withKubectl = hasKubectl ? describe : describe.skip;

type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; [k: string]: unknown };

function render(base: string): Promise<Obj[]> {
  return new Promise((resolve, reject) =>
    execFile('kubectl', ['kustomize', path.join(ROOT, 'deploy/kubernetes', base)], { timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`kubectl kustomize ${base}: ${stderr || err.message}`));
      const docs = parseAllDocuments(stdout);
      for (const d of docs) if (d.errors.length) return reject(d.errors[0]);
      resolve(docs.map((d) => d.toJSON() as Obj).filter(Boolean));
    }),
  );
}

/** Validates with the JSON schema kubernetes-models compiled from the Kubernetes OpenAPI document. */
async function schemaProblems(obj: Obj): Promise<string[]> {
  const mod = (await import(`kubernetes-models/${obj.apiVersion}/${obj.kind}`)) as Record<string, new (data: unknown) => { validate(): void }>;
  const Model = mod[obj.kind];
  if (!Model) return [`${obj.kind}: no model for ${obj.apiVersion}`];
  try {
    new Model(obj).validate();
    return [];
  } catch (err) {
    return [`${obj.kind}/${obj.metadata.name}: ${(err as Error).message}`];
  }
}

type AttributeMap = { baseName: string; type: string }[];
const models = k8s as unknown as Record<string, { getAttributeTypeMap?: () => AttributeMap } | undefined>;

/** Every field name must be one the model of its type has: catches typos that validate() lets through. */
function unknownFields(value: unknown, type: string, where: string, out: string[]): void {
  if (value === null || value === undefined) return;
  const array = /^Array<(.+)>$/.exec(type);
  if (array) {
    if (!Array.isArray(value)) out.push(`${where}: not an array`);
    else value.forEach((v, i) => unknownFields(v, array[1]!, `${where}[${i}]`, out));
    return;
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    for (const [k, v] of Object.entries(value as object)) unknownFields(v, map[1]!, `${where}.${k}`, out);
    return;
  }
  const model = models[type]?.getAttributeTypeMap;
  if (!model) return; // string, number, boolean, Date, IntOrString, any
  if (typeof value !== 'object' || Array.isArray(value)) {
    out.push(`${where}: not an object`);
    return;
  }
  const fields = new Map(model().map((a) => [a.baseName, a.type]));
  for (const [k, v] of Object.entries(value)) {
    const t = fields.get(k);
    if (!t) out.push(`${where}.${k}: unknown field of ${type}`);
    else unknownFields(v, t, `${where}.${k}`, out);
  }
}

function modelName(obj: Obj): string {
  const version = obj.apiVersion.split('/').at(-1)!;
  return `${version[0]!.toUpperCase()}${version.slice(1)}${obj.kind}`;
}

async function problems(objects: Obj[]): Promise<string[]> {
  const out: string[] = [];
  for (const o of objects) {
    out.push(...(await schemaProblems(o)));
    if (!models[modelName(o)]) out.push(`${o.kind}: no client-node model ${modelName(o)}`);
    unknownFields(o, modelName(o), `${o.kind}/${o.metadata.name}`, out);
  }
  return out;
}

const byKind = (objects: Obj[], kind: string) => objects.filter((o) => o.kind === kind);
type PodSpec = {
  serviceAccountName?: string;
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number };
  containers: Container[];
  initContainers?: Container[];
};
type Container = {
  args?: string[];
  resources?: { requests?: object; limits?: object };
  securityContext?: { allowPrivilegeEscalation?: boolean; readOnlyRootFilesystem?: boolean; capabilities?: { drop?: string[] } };
  livenessProbe?: { httpGet?: { path: string } };
  readinessProbe?: { httpGet?: { path: string } };
};
const podSpec = (d: Obj) => (d['spec'] as { template: { spec: PodSpec } }).template.spec;

function expectHardened(spec: PodSpec): void {
  expect(spec.securityContext).toMatchObject({ runAsNonRoot: true });
  expect(spec.securityContext!.runAsUser).toBeGreaterThan(0);
  for (const c of [...spec.containers, ...(spec.initContainers ?? [])]) {
    expect(c.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    expect(c.resources?.requests).toBeDefined();
    expect(c.resources?.limits).toBeDefined();
  }
}

withKubectl('deploy/kubernetes/hub', () => {
  let objects: Obj[];
  beforeAll(async () => {
    objects = await render('hub');
  });

  test('renders valid objects: every one passes the Kubernetes schemas and has no unknown field', async () => {
    expect(objects.map((o) => o.kind).sort()).toEqual(['ConfigMap', 'Deployment', 'Namespace', 'PodDisruptionBudget', 'Service', 'ServiceAccount']);
    expect(await problems(objects)).toEqual([]);
  });

  test('several replicas, probes on /healthz and /readyz, a PodDisruptionBudget over the same pods, non-root and hardened', () => {
    const [deployment] = byKind(objects, 'Deployment');
    const spec = deployment!['spec'] as { replicas: number; selector: { matchLabels: Record<string, string> } };
    expect(spec.replicas).toBeGreaterThanOrEqual(2);
    const hub = podSpec(deployment!).containers[0]!;
    expect(hub.livenessProbe?.httpGet?.path).toBe('/healthz');
    expect(hub.readinessProbe?.httpGet?.path).toBe('/readyz');
    expectHardened(podSpec(deployment!));
    const [pdb] = byKind(objects, 'PodDisruptionBudget');
    expect((pdb!['spec'] as { selector: { matchLabels: object } }).selector.matchLabels).toEqual(spec.selector.matchLabels);
    const [service] = byKind(objects, 'Service');
    expect((service!['spec'] as { selector: object }).selector).toEqual(spec.selector.matchLabels);
  });

  test('the environment the hub pod gets (ConfigMap, values, Secret keys) is accepted by the hub’s own configuration loader', () => {
    const [deployment] = byKind(objects, 'Deployment');
    const [configMap] = byKind(objects, 'ConfigMap');
    const container = podSpec(deployment!).containers[0]! as Container & { env: { name: string; value?: string; valueFrom?: unknown }[] };
    const env: Record<string, string> = { ...(configMap!['data'] as Record<string, string>) };
    const secretValues: Record<string, string> = {
      DATABASE_URL: 'postgres://flotilla:secret@db:5432/flotilla?sslmode=verify-full',
      FLOTILLA_ADMIN_TOKEN: 'a'.repeat(48),
      FLOTILLA_MQTT_PASSWORD: 'secret',
    };
    for (const e of container.env) env[e.name] = e.value ?? secretValues[e.name] ?? `unset ${e.name}`;
    const config = loadConfig(env, '/');
    expect(config).toMatchObject({ apiPort: 8080, home: '/var/lib/flotilla', signingKeyFile: '/etc/flotilla/signing-key.pem' });
    expect(config.mqttUrl).toBe(env['MQTT_URL']);
    expect(config.databaseUrl).toBe(secretValues['DATABASE_URL']);
  });

  test('the health paths the probes use are routes the hub serves', async () => {
    const operations = await readFile(path.join(ROOT, 'apps/hub/src/openapi/operations.ts'), 'utf8');
    expect(operations).toContain("path: '/healthz'");
    expect(operations).toContain("path: '/readyz'");
  });

  test('the validation is not blind: a misspelt field and a missing required one are reported', async () => {
    const [deployment] = byKind(objects, 'Deployment');
    const broken = structuredClone(deployment!) as Obj & { spec: { template: { spec: { containers: Record<string, unknown>[] } } } };
    broken.spec.template.spec.containers[0]!['readinesProbe'] = broken.spec.template.spec.containers[0]!['readinessProbe'];
    delete broken.spec.template.spec.containers[0]!['name'];
    (broken.spec.template.spec.containers[0]!['ports'] as { containerPort: unknown }[])[0]!.containerPort = 'http';
    const found = (await problems([broken])).join('\n');
    expect(found).toContain('.containers[0].readinesProbe: unknown field of V1Container');
    expect(found).toContain('containers/0 must have required property name');
    expect(found).toContain('containers/0/ports/0/containerPort must be integer');
  });
});

/** What the Kubernetes runtime calls, read from its source: kinds with their API group and resource, and the verbs. */
async function runtimeCalls(): Promise<{ group: string; resource: string; verbs: string[] }[]> {
  const api = await readFile(path.join(ROOT, 'apps/agent/src/runtime/kubernetes/kube-api.ts'), 'utf8');
  const objects = await readFile(path.join(ROOT, 'apps/agent/src/runtime/kubernetes/objects.ts'), 'utf8');
  const managed = JSON.parse(/MANAGED_KINDS = (\[[^\]]*\])/.exec(objects)![1]!.replace(/'/g, '"')) as string[];
  const paths = new Map<string, { group: string; resource: string }>();
  for (const [, kind, apiPath] of api.matchAll(/^\s+(\w+): \(ns\) => `([^`]+)`/gm)) {
    const m = /^\/(?:api\/v1|apis\/([^/]+)\/[^/]+)\/namespaces\/\$\{ns\}\/([a-z]+)$/.exec(apiPath!)!;
    paths.set(kind!, { group: m[1] ?? '', resource: m[2]! });
  }
  // The client methods used, and the RBAC verb each needs. A server-side apply (PATCH) that
  // creates the object is also authorised as `create`.
  const used = new Set([...api.matchAll(/this\.api\.(\w+)\(/g)].map((m) => m[1]!));
  const verbOf: Record<string, string[]> = { list: ['list'], read: ['get'], patch: ['create', 'patch'], delete: ['delete'] };
  const unknown = [...used].filter((m) => !verbOf[m]);
  if (unknown.length) throw new Error(`kube-api.ts calls ${unknown.join(', ')}: add its verb to this test and to deploy/kubernetes/agent/role.yaml`);
  if (!api.includes('PatchStrategy.ServerSideApply')) throw new Error('kube-api.ts no longer patches by server-side apply: revisit the verbs');
  const managedVerbs = [...used].flatMap((m) => verbOf[m]!);
  if (/this\.watcher\s*\.watch\(/.test(api)) managedVerbs.push('watch');
  // Pods are only listed and watched (listPods, watchManaged); Namespaces are read and applied
  // only until a 403 says the agent is confined to its namespace, so they get no rule.
  expect(api).toMatch(/listPods[\s\S]*listRaw\('v1', 'Pod'/);
  const calls = managed.map((kind) => ({ ...paths.get(kind)!, verbs: [...new Set(managedVerbs)].sort() }));
  calls.push({ ...paths.get('Pod')!, verbs: ['list', 'watch'] });
  return calls;
}

withKubectl('deploy/kubernetes/agent', () => {
  let objects: Obj[];
  beforeAll(async () => {
    objects = await render('agent');
  });

  test('renders valid objects: every one passes the Kubernetes schemas and has no unknown field', async () => {
    expect(objects.map((o) => o.kind).sort()).toEqual(['ConfigMap', 'Deployment', 'Namespace', 'PersistentVolumeClaim', 'Role', 'RoleBinding', 'ServiceAccount']);
    expect(await problems(objects)).toEqual([]);
  });

  test('the Role grants, in the agent’s namespace only, exactly the verbs on exactly the resources the Kubernetes runtime uses', async () => {
    const expected = await runtimeCalls();
    expect(expected.map((c) => c.resource).sort()).toEqual(['deployments', 'horizontalpodautoscalers', 'jobs', 'pods', 'services']);
    expect(objects.filter((o) => o.kind.startsWith('Cluster'))).toEqual([]);
    const [role] = byKind(objects, 'Role');
    const [namespace] = byKind(objects, 'Namespace');
    expect(role!.metadata.namespace).toBe(namespace!.metadata.name);
    const granted = (role!['rules'] as { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }[]).flatMap((r) =>
      r.apiGroups.flatMap((group) => r.resources.map((resource) => ({ group, resource, verbs: [...r.verbs].sort() }))),
    );
    const key = (c: { group: string; resource: string }) => `${c.group}/${c.resource}`;
    expect([...granted].sort((a, b) => key(a).localeCompare(key(b)))).toEqual([...expected].sort((a, b) => key(a).localeCompare(key(b))));
  });

  test('the agent’s and the init container’s command lines are ones `flotilla` accepts (they fail only for want of an enrolment or a hub)', async () => {
    const [deployment] = byKind(objects, 'Deployment');
    const spec = podSpec(deployment!) as PodSpec & { initContainers: (Container & { args: string[] })[] };
    const state = path.join(ROOT, '.tmp', `k8s-agent-${process.pid}`);
    const args = spec.containers[0]!.args!.map((a) => a.replace('$(POD_NAMESPACE)', 'flotilla-edge').replace('/var/lib/flotilla-agent', state));
    const run = await runCli(args);
    expect({ code: run.code, stderr: run.stderr.trim() }).toEqual({ code: 3, stderr: expect.stringContaining(`${state} holds no credentials`) });
    // The init container's shell line, with the ConfigMap's values and a hub that is not there.
    const script = spec.initContainers[0]!.args[0]!;
    const enroll = /exec flotilla (agent enroll .*)$/.exec(script)![1]!;
    const closed = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const { port } = srv.address() as AddressInfo;
        srv.close(() => resolve(port));
      });
    });
    const hub = `http://127.0.0.1:${closed}`;
    const values: Record<string, string> = { ...(byKind(objects, 'ConfigMap')[0]!['data'] as Record<string, string>), FLOTILLA_HUB_URL: hub, FLOTILLA_ENROLLMENT_TOKEN: 'fle_test' };
    const argv = enroll.split(/\s+/).map((w) => w.replace(/^"\$(\w+)"$/, (_, v: string) => values[v] ?? '').replace('/var/lib/flotilla-agent', state));
    const enrolled = await runCli(argv);
    expect({ code: enrolled.code, stderr: enrolled.stderr.trim() }).toEqual({ code: 1, stderr: expect.stringMatching(new RegExp(`^flotilla: cannot reach the hub at ${hub}/`)) });
  });

  test('the agent runs as that ServiceAccount, bound to the Role, with the kubernetes runtime in its own namespace', () => {
    const [deployment] = byKind(objects, 'Deployment');
    const [binding] = byKind(objects, 'RoleBinding');
    const [account] = byKind(objects, 'ServiceAccount');
    const spec = podSpec(deployment!);
    expect(spec.serviceAccountName).toBe(account!.metadata.name);
    expect(binding!['roleRef']).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: byKind(objects, 'Role')[0]!.metadata.name });
    expect(binding!['subjects']).toEqual([{ kind: 'ServiceAccount', name: account!.metadata.name, namespace: account!.metadata.namespace }]);
    const args = spec.containers[0]!.args!;
    expect(args).toEqual(expect.arrayContaining(['agent', 'run', '--runtime=kubernetes', '--namespace=$(POD_NAMESPACE)']));
    expect((deployment!['spec'] as { replicas: number; strategy: { type: string } }).replicas).toBe(1);
    expect((deployment!['spec'] as { strategy: { type: string } }).strategy.type).toBe('Recreate');
    expectHardened(spec);
  });
});
