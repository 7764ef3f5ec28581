import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { findFreePort } from '../../apps/hub/src/common/ports.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { waitFor } from '../support/wait.js';

const MODELS = path.resolve('test/fixtures/models');
const V1 = 'sha256:9a3065dbe5e11b744789cb652460f85cfdb705fa5f4e45a9776f06cdf7ec2ab9';
const V2 = 'sha256:beeb8c914d32bc8b7fa045b721b66b7ae84629aefe79c714d0f87f6358f72b96';
const policy = (version: '1.0.0' | '2.0.0', digest = version === '1.0.0' ? V1 : V2) => `
apiVersion: flotilla.dev/v1
kind: Model
metadata: { name: bridge-defects }
spec:
  task: image-classification
  versions:
    - { version: "1.0.0", uri: "file://${MODELS}/linear-classifier-1.0.0.onnx", digest: "${version === '1.0.0' ? digest : V1}", format: onnx }
    - { version: "2.0.0", uri: "file://${MODELS}/linear-classifier-2.0.0.onnx", digest: "${version === '2.0.0' ? digest : V2}", format: onnx }
---
apiVersion: flotilla.dev/v1
kind: Placement
metadata: { name: local }
spec: { selector: { matchLabels: { flotilla.dev/local: "true" } } }
---
apiVersion: flotilla.dev/v1
kind: ModelDeployment
metadata: { name: bridge-defects-inference }
spec:
  model: { name: bridge-defects, version: "${version}" }
  placement: local
  runtime: builtin
`;

/** softmax(x·W + b) of the fixture classifiers for x = [1, 0, 0, 0] (see test/support/onnx-model.ts). */
const softmax = (z: number[]) => {
  const e = z.map((v) => Math.exp(v - Math.max(...z)));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
};

describe('flotilla hub with its local agent (process runtime) serving a model', () => {
  let db: TestDatabase;
  let home: string;
  let hub: ChildProcess;
  let api: string;
  const token = 'local-agent-test-token-0123456789';
  let output = '';

  const call = async (method: string, route: string, body?: string) => {
    const r = await fetch(api + route, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/yaml' },
      body,
    });
    return { status: r.status, body: (await r.json()) as any };
  };
  const local = async () => (await call('GET', '/api/v1/spokes/local')).body;
  const deployment = async () => (await local()).workloads?.deployments?.find((d: { name: string }) => d.name === 'bridge-defects-inference');
  const infer = async (endpoint: string) => {
    const r = await fetch(`${endpoint}/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [1, 0, 0, 0] }] }),
    });
    if (!r.ok) throw new Error(`infer ${r.status}: ${await r.text()}`);
    const out = (await r.json()) as { model_version: string; outputs: { name: string; data: number[] }[] };
    return { version: out.model_version, probabilities: out.outputs.find((o) => o.name === 'probabilities')!.data };
  };

  beforeAll(async () => {
    db = await createTestDatabase();
    home = await mkdtemp(path.join(os.tmpdir(), 'flotilla-local-'));
    const [apiPort, mqttPort] = [await findFreePort(), await findFreePort()];
    api = `http://127.0.0.1:${apiPort}`;
    hub = spawn(process.execPath, ['bin/flotilla.js', 'hub'], {
      env: {
        ...process.env,
        FLOTILLA_HOME: home,
        DATABASE_URL: db.url,
        FLOTILLA_API_PORT: String(apiPort),
        FLOTILLA_API_HOST: '127.0.0.1',
        FLOTILLA_MQTT_PORT: String(mqttPort),
        FLOTILLA_MQTT_HOST: '127.0.0.1',
        FLOTILLA_ADMIN_TOKEN: token,
        FLOTILLA_LOG_LEVEL: 'warn',
        // Keep nothing unused, so deletion empties the cache.
        FLOTILLA_LOCAL_AGENT_CACHE_BYTES: '0',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    hub.stdout!.on('data', (d) => (output += d));
    hub.stderr!.on('data', (d) => (output += d));
    await waitFor('the local agent online', async () => (await local()).connection === 'online', 60_000, 200);
  }, 90_000);

  afterAll(async () => {
    if (hub.exitCode === null) {
      hub.kill('SIGTERM');
      await new Promise((r) => hub.once('exit', r));
    }
    await db.drop();
    await rm(home, { recursive: true, force: true });
  });

  test('applying a builtin ModelDeployment makes the local agent serve it: Ready with its endpoint, right outputs', async () => {
    expect((await call('POST', '/api/v1/apply', policy('1.0.0'))).status).toBe(200);
    const d = await waitFor('deployment Ready on the local spoke', async () => {
      const x = await deployment();
      return x?.phase === 'Ready' && x.endpoint ? x : null;
    }, 60_000, 200);
    expect(d).toMatchObject({ servingVersion: '1.0.0', compliance: 'Compliant', endpoint: expect.stringMatching(/\/v2\/models\/bridge-defects$/) });
    const out = await infer(d.endpoint);
    // v1: W row 0 = [1, 0, 0], b = [0.5, 0, -0.5] -> logits [1.5, 0, -0.5]
    const expected = softmax([1.5, 0, -0.5]);
    out.probabilities.forEach((p, i) => expect(p).toBeCloseTo(expected[i]!, 5));
    const compliance = await call('GET', '/api/v1/deployments/bridge-defects-inference');
    expect(compliance.status).toBe(200);
  });

  test('a new version replaces the old with no failed request', async () => {
    const before = await deployment();
    let failures = 0;
    let served = 0;
    let stop = false;
    const seenVersions = new Set<string>();
    const loop = (async () => {
      while (!stop) {
        const current = (await deployment().catch(() => null))?.endpoint ?? before.endpoint;
        try {
          seenVersions.add((await infer(current)).version);
          served++;
        } catch {
          failures++;
        }
      }
    })();
    // What the hub says while the swap runs: never Compliant unless 2.0.0 serves.
    const verdicts: { state: string; reason: string; servingVersion: string | null }[] = [];
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const c = (await call('GET', '/api/v1/deployments/bridge-defects-inference')).body?.compliance?.spokes?.[0];
        if (c) verdicts.push({ state: c.state, reason: c.reason, servingVersion: c.servingVersion });
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    expect((await call('POST', '/api/v1/apply', policy('2.0.0'))).status).toBe(200);
    await waitFor('the hub calls 2.0.0 Compliant', async () => verdicts.some((v) => v.state === 'Compliant' && v.servingVersion === '2.0.0'), 60_000, 100);
    watching = false;
    await watcher;
    const afterApply = verdicts.slice(verdicts.findIndex((v) => v.state !== 'Compliant' || v.servingVersion === '2.0.0'));
    expect(afterApply.filter((v) => v.state === 'Compliant' && v.servingVersion !== '2.0.0')).toEqual([]);
    expect(afterApply.some((v) => v.state === 'Pending')).toBe(true);
    const d = await waitFor('2.0.0 serving', async () => {
      const x = await deployment();
      return x?.servingVersion === '2.0.0' && x.phase === 'Ready' ? x : null;
    }, 60_000, 200);
    await waitFor('requests answered by 2.0.0', () => seenVersions.has('2.0.0'), 20_000);
    stop = true;
    await loop;
    expect({ failures, servedSomething: served > 10 }).toEqual({ failures: 0, servedSomething: true });
    expect(d.endpoint).not.toBe(before.endpoint);
  });

  test('an artifact with the wrong digest is never started and the condition says ArtifactDigestMismatch', async () => {
    const wrong = 'sha256:' + '0'.repeat(64);
    // Registered versions are immutable (409), so the bad artifact comes as a new version whose digest lies about the file.
    const mislabelled = policy('1.0.0')
      .replace('    - { version: "2.0.0"', `    - { version: "1.0.1", uri: "file://${MODELS}/linear-classifier-1.0.0.onnx", digest: "${wrong}", format: onnx }
    - { version: "2.0.0"`)
      .replace('model: { name: bridge-defects, version: "1.0.0" }', 'model: { name: bridge-defects, version: "1.0.1" }');
    expect((await call('POST', '/api/v1/apply', mislabelled)).status).toBe(200);
    expect((await call('POST', '/api/v1/apply', policy('1.0.0', wrong))).status).toBe(409);
    const d = await waitFor('digest mismatch reported', async () => {
      const x = await deployment();
      return x?.conditions?.some((c: { reason: string }) => c.reason === 'ArtifactDigestMismatch') ? x : null;
    }, 60_000, 200);
    expect(d.servingVersion).not.toBe('1.0.1');
  });

  test('deleting the deployment stops the process and the cache collects the files', async () => {
    const serving = (await deployment()).endpoint as string;
    // Objects applied above belong to the API token's source; prune them through it.
    const r = await call('POST', `/api/v1/apply?prune=true&source=${encodeURIComponent('api:bootstrap-admin')}`, `apiVersion: flotilla.dev/v1\nkind: Placement\nmetadata: { name: local }\nspec: { selector: { matchLabels: { flotilla.dev/local: "true" } } }\n`);
    expect(r.status).toBe(200);
    expect(r.body.objects).toEqual(expect.arrayContaining([{ kind: 'ModelDeployment', name: 'bridge-defects-inference', action: 'deleted' }]));
    await waitFor('deployment gone from the spoke', async () => (await local()).workloads.deployments.length === 0, 60_000, 200);
    await waitFor('its server stopped', () => fetch(`${serving}/ready`).then(() => false, () => true), 60_000, 200);
    const blobs = path.join(home, 'local-agent', 'cache', 'blobs', 'sha256');
    await waitFor('cache collected', async () => (await readdir(blobs).catch(() => [])).length === 0, 60_000, 200);
  });

  test('Ctrl-C (SIGINT) stops the hub cleanly', async () => {
    hub.kill('SIGINT');
    const code = await new Promise<number | null>((r) => hub.once('exit', r));
    expect({ code, output: code === 0 ? '' : output.slice(-2000) }).toEqual({ code: 0, output: '' });
  });
});
