import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { expectedProducedVersion } from '../../apps/hub/src/finetune/register-produced-versions.js';
import { startTestHub, type TestHub } from '../support/hub.js';
import { waitFor } from '../support/wait.js';
import { writeColourDataset } from '../support/finetune/onnx-backbone.js';
import { startSiteAgent, writeBaseModel, type SiteAgent } from '../support/finetune/site-kit.js';

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/**
 * output.artifact: upload, end to end with a real hub and two real agents
 * (process runtime): the spoke that trained uploads its model to the hub's
 * artifact store, the registry points at the store, and another spoke fetches
 * it through its verified cache and serves it. The upload route refuses a
 * wrong digest, another spoke's job, API tokens; a keep-local version placed
 * on another spoke says which spoke has it.
 */
describe('produced artifacts in the hub store', () => {
  let t: TestHub;
  let dir: string;
  let a: SiteAgent;
  let b: SiteAgent;
  let base: Awaited<ReturnType<typeof writeBaseModel>>;
  const log = pino({ level: process.env.FLOTILLA_TEST_LOG ?? 'silent' });

  beforeAll(async () => {
    t = await startTestHub();
    dir = await mkdtemp(path.join(os.tmpdir(), 'flotilla-artifact-upload-'));
    base = await writeBaseModel(dir);
    await writeColourDataset(path.join(dir, 'data'), 8);
    a = await startSiteAgent(t, { name: 'site-a', site: 'a', dir, artifactRoot: dir, datasetRoot: path.join(dir, 'data'), log });
    b = await startSiteAgent(t, { name: 'site-b', site: 'b', dir, artifactRoot: dir, log });
  }, 60_000);
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await t?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const placements = `---
apiVersion: flotilla.dev/v1
kind: Placement
metadata: { name: site-a }
spec: { selector: { matchLabels: { site: a } } }
---
apiVersion: flotilla.dev/v1
kind: Placement
metadata: { name: site-b }
spec: { selector: { matchLabels: { site: b } } }
`;
  const job = () => `---
apiVersion: flotilla.dev/v1
kind: FineTuneJob
metadata: { name: site-a-tuning }
spec:
  baseModel: { name: bridge-defects, version: "1.0.0" }
  placement: site-a
  dataset: { path: ${path.join(dir, 'data')}, format: imagefolder }
  trainer: { builtin: linear-probe, hyperparameters: { epochs: 30 } }
  evaluation: { metric: accuracy, holdoutFraction: 0.25, threshold: 0.5 }
  output: { model: bridge-defects, artifact: upload }
  promote: manual
`;
  const deployment = (name: string, version: string, placement: string) => `---
apiVersion: flotilla.dev/v1
kind: ModelDeployment
metadata: { name: ${name} }
spec:
  model: { name: bridge-defects, version: "${version}" }
  placement: ${placement}
  runtime: builtin
  replicas: { min: 1, max: 1 }
`;
  const compliance = async (deploymentName: string, spoke: string) =>
    ((await t.api('GET', `/api/v1/deployments/${deploymentName}`)).body.compliance?.spokes ?? []).find((s: { spoke: string }) => s.spoke === spoke);

  let produced: { version: string; digest: string; uri: string };

  it('uploads the produced model after the gate; the registry points at the hub store, where the bytes are, checked', async () => {
    const applied = await t.api('POST', '/api/v1/apply', base.yaml + placements + job());
    expect(applied.status).toBe(200);
    const run = await waitFor('the run to succeed on site-a', async () => {
      const r = (await t.api('GET', '/api/v1/finetune-jobs/site-a-tuning')).body.runs?.spokes?.[0];
      if (r?.state === 'Failed') throw new Error(`run failed: ${r.message}`);
      return r?.state === 'Succeeded' ? r : null;
    }, 90_000, 200);
    const version = await waitFor('the produced version in the registry', async () => {
      const r = await t.api('GET', `/api/v1/models/bridge-defects/versions/${run.producedVersion}`);
      return r.status === 200 ? r.body : null;
    }, 20_000, 200);
    const hex = version.digest.slice('sha256:'.length);
    expect(version.uri).toBe(`flotilla:artifacts/sha256/${hex}`);
    expect(version.lineage).toMatchObject({ spoke: 'site-a' });
    produced = { version: version.version, digest: version.digest, uri: version.uri };

    // The store holds exactly the bytes the spoke kept, under their digest; nothing is left staged.
    const kept = await readFile(path.join(a.stateDir, 'finetune', 'produced', `sha256-${hex}`, 'model.onnx'));
    const stored = await readFile(path.join(t.home, 'artifacts-store', 'sha256', hex));
    expect(sha256(stored)).toBe(hex);
    expect(Buffer.compare(stored, kept)).toBe(0);
    expect(await readdir(path.join(t.home, 'artifacts-store', 'tmp'))).toEqual([]);
    const audit = (await t.api('GET', '/api/v1/audit-events?target=artifact/')).body.items;
    expect(audit).toEqual([expect.objectContaining({ actor: 'spoke:site-a', action: 'artifact.upload', target: `artifact/sha256/${hex}` })]);

    // Admins download it, whole and from an offset, with its digest.
    const whole = await fetch(`${t.hub.apiUrl}/api/v1/artifacts/sha256/${hex}`, { headers: { authorization: `Bearer ${t.adminToken}` } });
    expect(whole.status).toBe(200);
    expect(whole.headers.get('x-flotilla-digest')).toBe(version.digest);
    expect(sha256(new Uint8Array(await whole.arrayBuffer()))).toBe(hex);
    const tail = await fetch(`${t.hub.apiUrl}/api/v1/artifacts/sha256/${hex}`, { headers: { authorization: `Bearer ${t.adminToken}`, range: 'bytes=100-' } });
    expect(tail.status).toBe(206);
    expect(Buffer.compare(Buffer.from(await tail.arrayBuffer()), stored.subarray(100))).toBe(0);
    // A spoke whose desired state does not use it may not.
    expect((await fetch(`${t.hub.apiUrl}/api/v1/artifacts/sha256/${hex}`, { headers: { authorization: await b.authorization() } })).status).toBe(403);
  }, 150_000);

  it('refuses a digest that does not match (422, nothing kept), another spoke\'s job and API tokens (403), no credentials (401)', async () => {
    const bytes = randomBytes(4096);
    const declared = `sha256:${'ab'.repeat(32)}`;
    const put = async (auth: string | null, o: { job?: string; version?: string; digest?: string } = {}) => {
      const digest = o.digest ?? declared;
      const version = o.version ?? expectedProducedVersion('1.0.0', 'site-a', digest);
      const headers: Record<string, string> = { 'content-type': 'application/octet-stream', 'x-flotilla-digest': digest };
      if (auth) headers.authorization = auth;
      const res = await fetch(`${t.hub.apiUrl}/api/v1/finetune-jobs/${o.job ?? 'site-a-tuning'}/artifacts/${version}`, { method: 'PUT', headers, body: bytes });
      return { status: res.status, body: (await res.json()) as { error?: { code: string; message: string } } };
    };
    const mismatch = await put(await a.authorization());
    expect(mismatch.status).toBe(422);
    expect(mismatch.body.error?.code).toBe('digest_mismatch');
    const store = path.join(t.home, 'artifacts-store');
    await expect(stat(path.join(store, 'sha256', sha256(bytes)))).rejects.toThrow();
    await expect(stat(path.join(store, 'sha256', declared.slice(7)))).rejects.toThrow();
    expect(await readdir(path.join(store, 'tmp'))).toEqual([]);

    // site-b: the job is not placed on it (whatever version it names).
    const otherSpoke = await put(await b.authorization(), { version: expectedProducedVersion('1.0.0', 'site-b', declared) });
    expect(otherSpoke.status).toBe(403);
    expect(otherSpoke.body.error?.message).toContain('not placed on spoke site-b');
    // site-a, but a version another spoke's run would be named: not the one it produced.
    expect((await put(await a.authorization(), { version: expectedProducedVersion('1.0.0', 'site-b', declared) })).status).toBe(403);
    expect((await put(`Bearer ${t.adminToken}`)).status).toBe(403);
    expect((await put(null)).status).toBe(401);
    expect((await put(`Basic ${Buffer.from('site-a:wrong').toString('base64')}`)).status).toBe(401);
    // The right bytes are accepted again (idempotent): nothing new is created.
    const real = await readFile(path.join(store, 'sha256', produced.digest.slice(7)));
    const again = await fetch(`${t.hub.apiUrl}/api/v1/finetune-jobs/site-a-tuning/artifacts/${produced.version}`, {
      method: 'PUT',
      headers: { authorization: await a.authorization(), 'content-type': 'application/octet-stream', 'x-flotilla-digest': produced.digest },
      body: real,
    });
    expect(again.status).toBe(200);
    expect(await again.json()).toMatchObject({ created: false, uri: produced.uri, sizeBytes: real.length });
  });

  it('another spoke serves the uploaded version: fetched from the hub store through its verified cache, Ready', async () => {
    expect((await t.api('POST', '/api/v1/apply', deployment('tuned-on-b', produced.version, 'site-b'))).status).toBe(200);
    const status = await waitFor('site-b serving the uploaded version', async () => {
      const s = await compliance('tuned-on-b', 'site-b');
      return s?.state === 'Compliant' ? s : null;
    }, 60_000, 200);
    expect(status.servingVersion).toBe(produced.version);
    // site-b's cache holds the blob, verified, under its digest.
    const cached = await readFile(path.join(b.stateDir, 'cache', 'blobs', 'sha256', produced.digest.slice(7)));
    expect(sha256(cached)).toBe(produced.digest.slice(7));
    // And it answers inference.
    const endpoint: string = status.endpoint;
    const meta = await fetch(endpoint);
    expect(meta.status).toBe(200);
    expect(await meta.json()).toMatchObject({ versions: [produced.version], outputs: [expect.objectContaining({ shape: [-1, 3] })] });
    const infer = await fetch(`${endpoint}/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ inputs: [{ name: 'image', datatype: 'FP32', shape: [1, 32, 32, 3], data: new Array(32 * 32 * 3).fill(128) }] }),
    });
    expect(infer.status).toBe(200);
    const probabilities = ((await infer.json()) as { outputs: { data: number[] }[] }).outputs[0]!.data;
    expect(probabilities).toHaveLength(3);
    expect(probabilities.reduce((x, y) => x + y, 0)).toBeCloseTo(1, 4);
  }, 90_000);

  it('a keep-local version placed on another spoke says which spoke has it', async () => {
    const digest = `sha256:${'cd'.repeat(32)}`;
    const registered = await t.api('POST', '/api/v1/models/bridge-defects/versions', { version: 'kept-on-a', digest, uri: `flotilla:spokes/site-a/artifacts/sha256/${'cd'.repeat(32)}`, format: 'onnx' });
    expect(registered.status).toBe(201);
    expect((await t.api('POST', '/api/v1/apply', deployment('kept-on-b', 'kept-on-a', 'site-b'))).status).toBe(200);
    const status = await waitFor('site-b to say where the artifact is', async () => {
      const s = await compliance('kept-on-b', 'site-b');
      return s?.message?.includes('kept only on spoke site-a') ? s : null;
    }, 30_000, 200);
    expect(status.state).not.toBe('Compliant');
    expect(status.message).toContain('output.artifact: keep-local');
  }, 60_000);
});
