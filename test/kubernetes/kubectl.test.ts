import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { startFakeKubeApiServer, type FakeKubeApiServer, type FakeKubeApiServerOptions, type JsonObject } from '../support/fake-kube-apiserver/index.js';

const metadataOf = (obj: JsonObject): JsonObject => obj['metadata'] as JsonObject;

/**
 * The fake kube-apiserver driven by the real, unmodified kubectl: discovery,
 * OpenAPI (v3 for field validation and apply's patches, v2 protobuf for
 * client-side validation and explain), server-side printing, the scale
 * subresource, categories and deletion all have to be what kubectl expects,
 * or these commands fail as they would against a broken cluster.
 */
const KUBECTL = '/usr/bin/kubectl';
const HAVE_KUBECTL = existsSync(KUBECTL);
if (!HAVE_KUBECTL) {
  console.warn(`SKIPPING test/kubernetes/kubectl.test.ts: ${KUBECTL} is not installed (Debian: apt-get install kubernetes-client)`);
}
const describeWithKubectl = HAVE_KUBECTL ? describe : describe.skip;

const NS = 'apps';

interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

class Kubectl {
  constructor(
    private readonly kubeconfig: string,
    private readonly cacheDir: string,
  ) {}

  run(args: string[], input?: string): Promise<KubectlResult> {
    return new Promise((resolve, reject) => {
      const child = execFile(
        KUBECTL,
        [`--cache-dir=${this.cacheDir}`, ...args],
        { env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: this.cacheDir, KUBECONFIG: this.kubeconfig }, timeout: 30_000 },
        (err, stdout, stderr) => {
          if (err && typeof err.code !== 'number') {
            reject(err);
            return;
          }
          resolve({ code: err ? Number(err.code) : 0, stdout, stderr });
        },
      );
      if (input !== undefined) child.stdin?.end(input);
    });
  }

  /** Runs and requires success, failing the test with kubectl's own words otherwise. */
  async ok(args: string[], input?: string): Promise<string> {
    const result = await this.run(args, input);
    if (result.code !== 0) throw new Error(`kubectl ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
    return result.stdout;
  }
}

const MANIFEST = `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      nodeSelector:
        nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3
      containers:
        - name: triton
          image: nvcr.io/nvidia/tritonserver:24.08-py3
          ports:
            - {name: http, containerPort: 8000}
          env:
            - {name: MODE, value: serve}
          resources:
            limits: {nvidia.com/gpu: "1"}
---
apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {app: web}
spec:
  selector: {app: web}
  ports:
    - {name: http, port: 8000, targetPort: http}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: web
  labels: {app: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 4
  metrics:
    - type: Resource
      resource: {name: cpu, target: {type: Utilization, averageUtilization: 80}}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
  labels: {app: web}
data: {mode: serve}
`;

const JOB = `
apiVersion: batch/v1
kind: Job
metadata: {name: train}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers: [{name: trainer, image: trainer:1}]
`;

/** A pod as the cluster's controllers would have made it for the Deployment (nothing in the fake schedules pods). */
function runningPod(name: string): JsonObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: NS, labels: { app: 'web' } },
    spec: { nodeName: 'gpu-node-1', containers: [{ name: 'triton', image: 'nvcr.io/nvidia/tritonserver:24.08-py3' }] },
    status: {
      phase: 'Running',
      podIP: '10.244.1.7',
      containerStatuses: [{ name: 'triton', ready: true, restartCount: 2, image: 'nvcr.io/nvidia/tritonserver:24.08-py3', imageID: '', state: { running: { startedAt: '2026-01-01T00:00:00Z' } } }],
    },
  };
}

/** Splits kubectl's table output into header and rows of whitespace-separated cells. */
function table(text: string): { header: string[]; rows: string[][] } {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  return { header: lines[0]!.split(/\s{2,}/), rows: lines.slice(1).map((l) => l.trim().split(/\s{2,}/)) };
}

/** The blocks `kubectl get a,b,c` prints, one table per resource type, separated by blank lines. */
function tables(text: string): { header: string[]; rows: string[][] }[] {
  return text
    .split(/\n\s*\n/)
    .filter((b) => b.trim() !== '')
    .map(table);
}

describeWithKubectl('kubectl against the fake kube-apiserver', () => {
  let fake: FakeKubeApiServer;
  let dir: string;
  let kubectl: Kubectl;
  let manifestPath: string;

  async function start(opts: FakeKubeApiServerOptions = {}): Promise<void> {
    fake = await startFakeKubeApiServer({ namespaces: [NS], namespace: NS, ...opts });
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-kubectl-'));
    const kubeconfig = path.join(dir, 'kubeconfig');
    await writeFile(kubeconfig, fake.kubeconfigYaml);
    manifestPath = path.join(dir, 'web.yaml');
    await writeFile(manifestPath, MANIFEST);
    kubectl = new Kubectl(kubeconfig, path.join(dir, 'cache'));
  }

  afterEach(async () => {
    await fake.close();
    await rm(dir, { recursive: true, force: true });
  });

  describe('a current server (server-side field validation)', () => {
    beforeEach(() => start());

    it('applies a manifest, reports it unchanged on a second apply, and patches a change in place', async () => {
      const created = await kubectl.ok(['apply', '-f', manifestPath]);
      expect(created.trim().split('\n')).toEqual([
        'deployment.apps/web created',
        'service/web created',
        'horizontalpodautoscaler.autoscaling/web created',
        'configmap/web-config created',
      ]);
      const live = fake.store.get('Deployment', NS, 'web')!;
      expect((live['spec'] as JsonObject)['replicas']).toBe(2);
      // kubectl asked the server to enforce the schema rather than checking it itself.
      const creates = fake.requests().filter((r) => r.verb === 'create');
      expect(creates).toHaveLength(4);
      expect(creates.every((r) => r.query['fieldValidation'] === 'Strict')).toBe(true);

      const again = await kubectl.ok(['apply', '-f', manifestPath]);
      expect(again).toContain('deployment.apps/web unchanged');
      // kubectl diff (a server-side dry-run apply) sees nothing to change either.
      expect(await kubectl.run(['diff', '-f', manifestPath])).toMatchObject({ code: 0, stdout: '' });

      await writeFile(manifestPath, MANIFEST.replace('tritonserver:24.08-py3', 'tritonserver:24.09-py3'));
      fake.clearRequests();
      const changed = await kubectl.ok(['apply', '-f', manifestPath]);
      expect(changed).toContain('deployment.apps/web configured');
      const patched = fake.store.get('Deployment', NS, 'web')!;
      const container = ((((patched['spec'] as JsonObject)['template'] as JsonObject)['spec'] as JsonObject)['containers'] as JsonObject[])[0]!;
      expect(container['image']).toBe('nvcr.io/nvidia/tritonserver:24.09-py3');
      // The env list survived: the strategic merge patch kubectl computed from the OpenAPI v3 merge keys merged, not replaced.
      expect(container['env']).toEqual([{ name: 'MODE', value: 'serve' }]);
      const patch = fake.requests().find((r) => r.verb === 'patch' && r.resource === 'deployments');
      expect(patch?.contentType).toBe('application/strategic-merge-patch+json');

      const serverSide = await kubectl.ok(['apply', '--server-side', '--force-conflicts', '-f', manifestPath]);
      expect(serverSide).toContain('deployment.apps/web serverside-applied');
      const managers = (metadataOf(fake.store.get('Deployment', NS, 'web')!)['managedFields'] as JsonObject[]).map((m) => `${String(m['manager'])}/${String(m['operation'])}`);
      expect(managers).toContain('kubectl/Apply');
    });

    it('prints the server-side tables of deployments, services and pods, wide and filtered', async () => {
      await kubectl.ok(['apply', '-f', manifestPath]);
      fake.store.put(runningPod('web-5d9c7-abcde'));
      fake.store.setStatus('Deployment', NS, 'web', { replicas: 2, readyReplicas: 1, updatedReplicas: 2, availableReplicas: 1 });

      const [deployments, services, pods] = tables(await kubectl.ok(['get', 'deployments,services,pods']));
      expect(deployments!.header).toEqual(['NAME', 'READY', 'UP-TO-DATE', 'AVAILABLE', 'AGE']);
      expect(deployments!.rows[0]!.slice(0, 4)).toEqual(['deployment.apps/web', '1/2', '2', '1']);
      expect(deployments!.rows[0]![4]).toMatch(/^\d+s$/);
      expect(services!.header).toEqual(['NAME', 'TYPE', 'CLUSTER-IP', 'EXTERNAL-IP', 'PORT(S)', 'AGE']);
      expect(services!.rows[0]!.slice(0, 5)).toEqual(['service/web', 'ClusterIP', expect.stringMatching(/^10\.96\.\d+\.\d+$/), '<none>', '8000/TCP']);
      expect(pods!.header).toEqual(['NAME', 'READY', 'STATUS', 'RESTARTS', 'AGE']);
      expect(pods!.rows[0]!.slice(0, 4)).toEqual(['pod/web-5d9c7-abcde', '1/1', 'Running', '2']);
      // kubectl asked for Table output; the server answered with it.
      const lists = fake.requests().filter((r) => r.verb === 'list');
      expect(lists.map((r) => r.resource).sort()).toEqual(['deployments', 'pods', 'services']);

      const wide = tables(await kubectl.ok(['get', 'deployments,pods', '-o', 'wide']));
      expect(wide[0]!.header).toEqual(['NAME', 'READY', 'UP-TO-DATE', 'AVAILABLE', 'AGE', 'CONTAINERS', 'IMAGES', 'SELECTOR']);
      expect(wide[0]!.rows[0]!.slice(5)).toEqual(['triton', 'nvcr.io/nvidia/tritonserver:24.08-py3', 'app=web']);
      expect(wide[1]!.header).toEqual(['NAME', 'READY', 'STATUS', 'RESTARTS', 'AGE', 'IP', 'NODE', 'NOMINATED NODE', 'READINESS GATES']);
      expect(wide[1]!.rows[0]!.slice(5)).toEqual(['10.244.1.7', 'gpu-node-1', '<none>', '<none>']);

      const labelled = table(await kubectl.ok(['get', 'deployments', '--show-labels']));
      expect(labelled.header[labelled.header.length - 1]).toBe('LABELS');
      expect(labelled.rows[0]![labelled.rows[0]!.length - 1]).toBe('app=web');

      const selected = table(await kubectl.ok(['get', 'pods', '-l', 'app=web']));
      expect(selected.rows.map((r) => r[0])).toEqual(['web-5d9c7-abcde']);
      const none = await kubectl.run(['get', 'pods', '-l', 'app=other']);
      expect(none.code).toBe(0);
      expect(none.stderr).toContain(`No resources found in ${NS} namespace.`);

      const yaml = parseYaml(await kubectl.ok(['get', 'deployment', 'web', '-o', 'yaml'])) as JsonObject;
      expect(yaml['kind']).toBe('Deployment');
      expect((yaml['spec'] as JsonObject)['replicas']).toBe(2);
      expect(((yaml['status'] as JsonObject)['readyReplicas'])).toBe(1);
    });

    it('scales a deployment through the scale subresource', async () => {
      await kubectl.ok(['apply', '-f', manifestPath]);
      fake.clearRequests();
      expect((await kubectl.ok(['scale', 'deployment/web', '--replicas=3'])).trim()).toBe('deployment.apps/web scaled');
      expect((fake.store.get('Deployment', NS, 'web')!['spec'] as JsonObject)['replicas']).toBe(3);
      const write = fake.requests().find((r) => r.subresource === 'scale' && (r.verb === 'patch' || r.verb === 'update'));
      expect(write?.code).toBe(200);
      expect(await kubectl.ok(['get', 'deployment', 'web', '-o', 'jsonpath={.spec.replicas}'])).toBe('3');
      expect(table(await kubectl.ok(['get', 'deployment', 'web'])).rows[0]![1]).toBe('0/3');

      // A precondition on the current count goes through GET and PUT of the Scale, and fails when stale.
      const stale = await kubectl.run(['scale', 'deployment/web', '--current-replicas=2', '--replicas=5']);
      expect(stale.code).not.toBe(0);
      expect(stale.stderr).toContain('Expected replicas to be 2, was 3');
      expect(await kubectl.ok(['scale', 'deployment/web', '--current-replicas=3', '--replicas=1'])).toContain('scaled');
      expect((fake.store.get('Deployment', NS, 'web')!['spec'] as JsonObject)['replicas']).toBe(1);
    });

    it('lists the "all" category: pods, services, deployments, autoscalers and jobs, not config maps', async () => {
      await kubectl.ok(['apply', '-f', manifestPath]);
      fake.store.put(runningPod('web-5d9c7-abcde'));
      expect(await kubectl.ok(['apply', '-f', '-'], JOB)).toContain('job.batch/train created');
      fake.store.setStatus('Job', NS, 'train', { active: 1, startTime: new Date(Date.now() - 90_000).toISOString().replace(/\.\d+Z$/, 'Z') });
      const names = tables(await kubectl.ok(['get', 'all'])).flatMap((t) => t.rows.map((r) => r[0]));
      expect(names.sort()).toEqual(['deployment.apps/web', 'horizontalpodautoscaler.autoscaling/web', 'job.batch/train', 'pod/web-5d9c7-abcde', 'service/web']);
      const job = tables(await kubectl.ok(['get', 'jobs', '-o', 'wide']))[0]!;
      expect(job.header).toEqual(['NAME', 'STATUS', 'COMPLETIONS', 'DURATION', 'AGE', 'CONTAINERS', 'IMAGES', 'SELECTOR']);
      expect(job.rows[0]!.slice(0, 4)).toEqual(['train', 'Running', '0/1', expect.stringMatching(/^9\ds$/)]);
      expect(job.rows[0]![7]).toMatch(/^batch\.kubernetes\.io\/controller-uid=[0-9a-f-]{36}$/);
      const hpa = tables(await kubectl.ok(['get', 'hpa']))[0]!;
      expect(hpa.header).toEqual(['NAME', 'REFERENCE', 'TARGETS', 'MINPODS', 'MAXPODS', 'REPLICAS', 'AGE']);
      expect(hpa.rows[0]!.slice(0, 6)).toEqual(['web', 'Deployment/web', 'cpu: <unknown>/80%', '1', '4', '0']);
    });

    it('deletes what it applied, and reports NotFound for what is not there', async () => {
      await kubectl.ok(['apply', '-f', manifestPath]);
      const out = await kubectl.ok(['delete', '-f', manifestPath]);
      expect(out.trim().split('\n')).toEqual([
        'deployment.apps "web" deleted',
        'service "web" deleted',
        'horizontalpodautoscaler.autoscaling "web" deleted',
        'configmap "web-config" deleted',
      ]);
      expect(fake.store.list('Deployment', { namespace: NS })).toEqual([]);
      expect(fake.store.list('ConfigMap', { namespace: NS })).toEqual([]);
      const missing = await kubectl.run(['delete', 'deployment', 'web']);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toContain('Error from server (NotFound): deployments.apps "web" not found');
    });

    it('has unknown fields refused by the server under --validate=strict and dropped with a warning under --validate=warn', async () => {
      const bogus = MANIFEST.replace('  replicas: 2\n', '  replicas: 2\n  replicaz: 3\n');
      await writeFile(manifestPath, bogus);
      const strict = await kubectl.run(['apply', '-f', manifestPath]);
      expect(strict.code).toBe(1);
      expect(strict.stderr).toContain(
        'Error from server (BadRequest): error when creating "' + manifestPath + '": Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: unknown field "spec.replicaz"',
      );
      expect(fake.store.get('Deployment', NS, 'web')).toBeUndefined();

      const warn = await kubectl.run(['apply', '--validate=warn', '-f', manifestPath]);
      expect(warn.code).toBe(0);
      expect(warn.stderr).toContain('Warning: unknown field "spec.replicaz"');
      expect(fake.store.get('Deployment', NS, 'web')!['spec']).not.toHaveProperty('replicaz');
    });

    it('refuses a nodeSelector value that is not a label value, with the real server message', async () => {
      await writeFile(manifestPath, MANIFEST.replace('NVIDIA-H100-80GB-HBM3', '"NVIDIA H100 80GB HBM3"'));
      const result = await kubectl.run(['apply', '-f', manifestPath]);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(
        `The Deployment "web" is invalid: spec.template.spec.nodeSelector: Invalid value: "NVIDIA H100 80GB HBM3": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')`,
      );
    });

    it('explains fields from the OpenAPI v3 document', async () => {
      const out = await kubectl.ok(['explain', 'deployment.spec.template.spec.nodeSelector']);
      expect(out).toContain('KIND:       Deployment');
      expect(out).toContain('FIELD: nodeSelector <map[string]string>');
    });
  });

  describe('a server without server-side field validation (before Kubernetes 1.25)', () => {
    beforeEach(() => start({ serverSideFieldValidation: false }));

    it('has kubectl validate against the protobuf /openapi/v2 document itself', async () => {
      await writeFile(manifestPath, MANIFEST.replace('  replicas: 2\n', '  replicas: 2\n  replicaz: 3\n'));
      const bad = await kubectl.run(['apply', '-f', manifestPath]);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toContain('ValidationError(Deployment.spec): unknown field "replicaz" in io.k8s.api.apps.v1.DeploymentSpec');
      expect(fake.requests().some((r) => r.path === '/openapi/v2' && r.code === 200)).toBe(true);
      expect(fake.requests().some((r) => r.verb === 'create')).toBe(false);

      await writeFile(manifestPath, MANIFEST.replace('containerPort: 8000', 'containerPort: "8000"'));
      const mistyped = await kubectl.run(['apply', '-f', manifestPath]);
      expect(mistyped.stderr).toContain(
        'ValidationError(Deployment.spec.template.spec.containers[0].ports[0].containerPort): invalid type for io.k8s.api.core.v1.ContainerPort.containerPort: got "string", expected "integer"',
      );

      await writeFile(manifestPath, MANIFEST);
      expect(await kubectl.ok(['apply', '-f', manifestPath])).toContain('deployment.apps/web created');
    });

    it('explains fields from the protobuf /openapi/v2 document', async () => {
      const out = await kubectl.ok(['explain', 'deployment.spec', '--output=plaintext-openapiv2']);
      expect(out).toContain('RESOURCE: spec <Object>');
      expect(out).toMatch(/replicas\s+<integer>/);
      expect(out).toMatch(/template\s+<Object> -required-/);
    });
  });
});
