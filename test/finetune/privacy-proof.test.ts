import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import pino from 'pino';
import sharp from 'sharp';
import { decodeModel } from '../../apps/agent/src/finetune/onnx-proto.js';
import { expectedProducedVersion } from '../../apps/hub/src/finetune/register-produced-versions.js';
import { readCredentials } from '../../apps/agent/src/state/state-dir.js';
import { startTestHub, type TestHub } from '../support/hub.js';
import { RecordingProxy } from '../support/recording-proxy.js';
import { waitFor } from '../support/wait.js';
import { startSiteAgent, writeBaseModel, type SiteAgent } from '../support/finetune/site-kit.js';

/**
 * Deliverable 9 of the fine-tuning issue, the privacy proof: a real agent
 * fine-tunes (builtin linear-probe, output.artifact: upload) on a dataset
 * whose label names, file names, PNG text chunks and pixel bytes carry
 * unique markers, and a second job on a dataset with a corrupt image whose
 * name carries one. Every byte between the agent and the hub goes through
 * recording TCP proxies (the API: enrolment, upload; the broker: desired
 * state, status, events, telemetry, both ways), and no marker, in utf8,
 * utf16, base64 or hex, nor any image's bytes, appear in any of it. The
 * capture is proven to work: it holds the job's status report with the
 * dataset fingerprint, counts and metrics, and the upload.
 *
 * The uploaded model is the one thing derived from the data that leaves,
 * by design (output.artifact: upload): it carries the class names (the
 * label directory names) in its metadata, as any classifier must, and
 * nothing else of the dataset, which is checked too.
 */

const RUN = randomBytes(4).toString('hex').toUpperCase();
const MARK = {
  label: `QZXLABEL${RUN}`,
  file: `QZXFILE${RUN}`,
  text: `QZXPNGTEXT${RUN}`,
  broken: `QZXBROKEN${RUN}`,
};
/** A pixel run no protocol writes: the first 8 pixels of every image's first row. */
const PIXELS = Buffer.from('f317a9c24e0b8d61d5fa3c7e29b0ee5146a8137cbd02f96e', 'hex');
const LABELS: Record<string, [number, number, number]> = {
  [`crack-${MARK.label}`]: [200, 60, 60],
  [`spalling-${MARK.label}`]: [60, 200, 60],
  [`rust-${MARK.label}`]: [60, 60, 200],
};

/** A PNG with a tEXt chunk (keyword Comment) right after IHDR. */
function withTextChunk(png: Buffer, text: string): Buffer {
  const data = Buffer.concat([Buffer.from('Comment\0', 'latin1'), Buffer.from(text, 'latin1')]);
  const type = Buffer.from('tEXt', 'latin1');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([type, data])) >>> 0);
  const ihdrEnd = 8 + 8 + 13 + 4;
  return Buffer.concat([png.subarray(0, ihdrEnd), len, type, data, crc, png.subarray(ihdrEnd)]);
}

/** 3 classes x `perClass` 24x24 PNGs with every marker; returns the files' bytes. */
async function writeMarkedDataset(root: string, perClass: number): Promise<Buffer[]> {
  const files: Buffer[] = [];
  let seed = 11;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (const [label, rgb] of Object.entries(LABELS)) {
    await mkdir(path.join(root, 'train', label), { recursive: true });
    for (let i = 0; i < perClass; i++) {
      const size = 24;
      const px = Buffer.alloc(size * size * 3);
      for (let p = 0; p < px.length; p++) px[p] = Math.max(0, Math.min(255, Math.round(rgb[p % 3]! + (random() - 0.5) * 100)));
      PIXELS.copy(px, 0);
      const png = withTextChunk(await sharp(px, { raw: { width: size, height: size, channels: 3 } }).png().toBuffer(), `${MARK.text} site photo ${i}`);
      await writeFile(path.join(root, 'train', label, `${label}-${MARK.file}-${i}.png`), png);
      files.push(png);
    }
  }
  return files;
}

/** The bytes of `b` however they might be written: raw, utf16, hex, base64 (every alignment, and url-safe). */
function encodings(b: Buffer, text: boolean): Buffer[] {
  const out = [b, Buffer.from(b.toString('hex')), Buffer.from(b.toString('hex').toUpperCase())];
  if (text) {
    const s = b.toString('utf8');
    out.push(Buffer.from(s, 'utf16le'), Buffer.from(s, 'utf16le').swap16(), Buffer.from(s.toLowerCase()));
  }
  for (const pad of [0, 1, 2]) {
    const enc = Buffer.concat([Buffer.alloc(pad, 0x20), b]).toString('base64');
    const core = enc.slice([0, 2, 3][pad], enc.length - 4);
    out.push(Buffer.from(core), Buffer.from(core.replaceAll('+', '-').replaceAll('/', '_')));
  }
  return out;
}

/** Which of the named needles occur in the haystack (by name). */
function found(hay: Buffer, needles: Record<string, Buffer[]>): string[] {
  return Object.entries(needles)
    .filter(([, forms]) => forms.some((f) => hay.includes(f)))
    .map(([name]) => name);
}

describe('fine-tuning privacy proof, and the produced model uploaded and served elsewhere', () => {
  let t: TestHub;
  /** The spoke that serves what bridge-9 produced (not behind the proxies). */
  let other: SiteAgent;
  let produced: { version: string; digest: string; uri: string };
  let dir: string;
  let api: RecordingProxy;
  let mqtt: RecordingProxy;
  let agent: SiteAgent;
  let images: Buffer[];
  const log = pino({ level: process.env.FLOTILLA_TEST_LOG ?? 'silent' });

  beforeAll(async () => {
    t = await startTestHub();
    dir = await mkdtemp(path.join(os.tmpdir(), 'flotilla-privacy-'));
    images = await writeMarkedDataset(path.join(dir, 'site-data'), 6);
    // The second job's dataset: readable images, and one that is not, named with a marker.
    await writeMarkedDataset(path.join(dir, 'site-data-2'), 6);
    await writeFile(path.join(dir, 'site-data-2', 'train', `crack-${MARK.label}`, `${MARK.broken}.png`), Buffer.concat([Buffer.from('\x89PNG\r\n\x1a\n', 'latin1'), Buffer.from(`not an image ${MARK.broken}`)]));
    api = await RecordingProxy.start({ host: '127.0.0.1', port: Number(new URL(t.hub.apiUrl).port) });
    mqtt = await RecordingProxy.start({ host: '127.0.0.1', port: t.hub.mqttPort! });
  }, 60_000);
  afterAll(async () => {
    await agent?.stop();
    await other?.stop();
    await api?.close();
    await mqtt?.close();
    await t?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('privacy proof: captures enrolment, desired state, reports and the upload; no marker and no image byte is in any of it', async () => {
    const base = await writeBaseModel(dir);
    // Enrolled and run through the proxies: every byte the agent and the hub exchange is recorded.
    agent = await startSiteAgent(t, { name: 'bridge-9', site: 'nine', dir, artifactRoot: dir, datasetRoot: dir, hubUrl: `http://${api.url}`, mqttUrl: `mqtt://${mqtt.url}`, log });
    const job = (name: string, data: string, artifact: string) => `---
apiVersion: flotilla.dev/v1
kind: FineTuneJob
metadata: { name: ${name} }
spec:
  baseModel: { name: bridge-defects, version: "1.0.0" }
  placement: site-nine
  dataset: { path: ${path.join(dir, data)}, format: imagefolder }
  trainer: { builtin: linear-probe, hyperparameters: { epochs: 20 } }
  evaluation: { metric: accuracy, holdoutFraction: 0.34, threshold: 0 }
  output: { model: bridge-defects, artifact: ${artifact} }
  promote: manual
`;
    const applied = await t.api(
      'POST',
      '/api/v1/apply',
      `${base.yaml}---
apiVersion: flotilla.dev/v1
kind: Placement
metadata: { name: site-nine }
spec: { selector: { matchLabels: { site: nine } } }
${job('privacy-tuning', 'site-data', 'upload')}${job('privacy-broken', 'site-data-2', 'keep-local')}`,
    );
    expect(applied.status).toBe(200);
    const runOf = async (name: string) => (await t.api('GET', `/api/v1/finetune-jobs/${name}`)).body.runs?.spokes?.[0];
    const good = await waitFor('the marked run to succeed', async () => {
      const r = await runOf('privacy-tuning');
      if (r?.state === 'Failed') throw new Error(r.message);
      return r?.state === 'Succeeded' ? r : null;
    }, 90_000, 200);
    const broken = await waitFor('the corrupt-image run to fail', async () => {
      const r = await runOf('privacy-broken');
      return r?.state === 'Failed' ? r : null;
    }, 90_000, 200);
    const version = await waitFor('the produced version', async () => {
      const r = await t.api('GET', `/api/v1/models/bridge-defects/versions/${good.producedVersion}`);
      return r.status === 200 ? r.body : null;
    }, 20_000, 200);
    // Reports flow every few hundred ms: let the last ones (the failure) cross before reading the capture.
    await new Promise((r) => setTimeout(r, 1500));
    await agent.stop();

    const upApi = api.upBytes();
    const downApi = api.downBytes();
    const upMqtt = mqtt.upBytes();
    const downMqtt = mqtt.downBytes();

    // The capture worked: enrolment, the signed desired state with the jobs, the status report with the
    // fingerprint, counts and metrics, the failure, and the upload all went through the proxies.
    const fingerprint: string = version.lineage.datasetFingerprint;
    expect(fingerprint).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(upApi.includes('POST /api/v1/enroll')).toBe(true);
    expect(upApi.includes(`PUT /api/v1/finetune-jobs/privacy-tuning/artifacts/${good.producedVersion}`)).toBe(true);
    expect(downMqtt.includes('"privacy-tuning"')).toBe(true);
    expect(upMqtt.includes(fingerprint)).toBe(true);
    expect(upMqtt.includes('"dataset.images":18')).toBe(true);
    expect(upMqtt.includes('"dataset.classes":3')).toBe(true);
    expect(upMqtt.includes(`"accuracy":${good.metrics.accuracy}`)).toBe(true);
    expect(upMqtt.includes(JSON.stringify(broken.message).slice(1, -1))).toBe(true);
    // The failure says what went wrong, with the file redacted: `image <dataset file> cannot be decoded: ...`.
    expect(broken.message).toMatch(/image <dataset file> cannot be decoded/);

    const model = await readFile(path.join(t.home, 'artifacts-store', 'sha256', version.digest.slice(7)));
    const at = upApi.indexOf(model);
    expect(at).toBeGreaterThan(0);
    // Everything but the uploaded model: no marker in any form, no pixel run, no piece of any image file.
    const rest = { apiUp: Buffer.concat([upApi.subarray(0, at), upApi.subarray(at + model.length)]), apiDown: downApi, mqttUp: upMqtt, mqttDown: downMqtt };
    const needles: Record<string, Buffer[]> = {
      ...Object.fromEntries(Object.entries(MARK).map(([k, m]) => [`marker ${k}`, encodings(Buffer.from(m), true)])),
      'pixel run': encodings(PIXELS, false),
      ...Object.fromEntries(images.map((png, i) => [`image ${i} bytes`, encodings(png.subarray(png.length - 60, png.length - 28), false)])),
    };
    for (const [where, bytes] of Object.entries(rest)) expect({ where, found: found(bytes, needles) }).toEqual({ where, found: [] });
    // The checker can fail: the same search finds each kind of needle where it is, also encoded.
    expect(found(Buffer.concat(images), needles)).toEqual(expect.arrayContaining(['marker text', 'image 0 bytes', 'image 17 bytes']));
    expect(found(Buffer.from(images[5]!.toString('base64')), needles)).toEqual(['marker text', 'image 5 bytes']);
    expect(found(Buffer.from(`x${images[7]!.toString('base64')}`), needles)).toEqual(['marker text', 'image 7 bytes']);
    expect(found(await sharp(images[3]!).raw().toBuffer(), needles)).toEqual(['pixel run']);
    expect(found(Buffer.from(JSON.stringify({ file: `train/crack-${MARK.label}/x-${MARK.file}-1.png` }), 'utf16le'), needles)).toEqual(['marker label', 'marker file']);

    // The model that left: the class names are in its labels metadata (what a classifier is), nothing else of the data.
    const { label, ...others } = MARK;
    const notInModel = { ...Object.fromEntries(Object.entries(others).map(([k, m]) => [`marker ${k}`, encodings(Buffer.from(m), true)])), 'pixel run': encodings(PIXELS, false) };
    expect(found(model, notInModel)).toEqual([]);
    const labelsProp = decodeModel(model, 'the uploaded model').metadata_props?.find((p) => p.value.includes(label));
    expect(JSON.parse(labelsProp?.value ?? '[]')).toEqual(Object.keys(LABELS).sort());
    const occurrences = (hay: Buffer, needle: string) => hay.toString('latin1').split(needle).length - 1;
    expect(occurrences(model, label)).toBe(3);

    // What the hub keeps from the spoke holds no marker either.
    const stored = JSON.stringify(await t.hub.dataSource.query(`SELECT job_statuses, deployment_statuses, conditions FROM spokes`)) +
      JSON.stringify(await t.hub.dataSource.query(`SELECT * FROM model_versions`)) +
      JSON.stringify(await t.hub.dataSource.query(`SELECT * FROM audit_events WHERE actor LIKE 'spoke:%'`));
    expect(stored).toContain(fingerprint);
    for (const m of Object.values(MARK)) expect(stored).not.toContain(m);
    expect(createHash('sha256').update(model).digest('hex')).toBe(version.digest.slice(7));

    // The upload: the registry points at the hub store, which holds exactly the bytes the spoke kept; nothing is left staged.
    expect(version.uri).toBe(`flotilla:artifacts/sha256/${version.digest.slice(7)}`);
    const kept = await readFile(path.join(agent.stateDir, 'finetune', 'produced', `sha256-${version.digest.slice(7)}`, 'model.onnx'));
    expect(Buffer.compare(model, kept)).toBe(0);
    expect(await readdir(path.join(t.home, 'artifacts-store', 'tmp'))).toEqual([]);
    const audit = (await t.api('GET', '/api/v1/audit-events?target=artifact/')).body.items;
    expect(audit).toEqual([expect.objectContaining({ actor: 'spoke:bridge-9', action: 'artifact.upload', target: `artifact/sha256/${version.digest.slice(7)}` })]);
    produced = { version: version.version, digest: version.digest, uri: version.uri };
  }, 180_000);

  const deployment = (name: string, version: string) => `---
apiVersion: flotilla.dev/v1
kind: Placement
metadata: { name: site-ten }
spec: { selector: { matchLabels: { site: ten } } }
---
apiVersion: flotilla.dev/v1
kind: ModelDeployment
metadata: { name: ${name} }
spec:
  model: { name: bridge-defects, version: "${version}" }
  placement: site-ten
  runtime: builtin
  replicas: { min: 1, max: 1 }
`;
  const compliance = async (deploymentName: string, spoke: string) =>
    ((await t.api('GET', `/api/v1/deployments/${deploymentName}`)).body.compliance?.spokes ?? []).find((s: { spoke: string }) => s.spoke === spoke);
  const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

  it('another spoke serves the uploaded version: fetched from the hub store over HTTPS with its credentials, verified, Ready, answering', async () => {
    expect(produced).toBeDefined();
    // Enrolled over HTTPS with the hub's generated CA: the download is verified against the CA pinned at enrolment.
    other = await startSiteAgent(t, { name: 'bridge-10', site: 'ten', dir, artifactRoot: dir, hubUrl: t.hub.httpsUrl!, ca: await readFile(t.hub.caFile!, 'utf8'), log });
    expect((await readCredentials(other.stateDir)).hubUrl).toMatch(/^https:/);
    expect((await t.api('POST', '/api/v1/apply', deployment('tuned-on-ten', produced.version))).status).toBe(200);
    const status = await waitFor('bridge-10 serving the uploaded version', async () => {
      const s = await compliance('tuned-on-ten', 'bridge-10');
      return s?.state === 'Compliant' ? s : null;
    }, 60_000, 200);
    expect(status.servingVersion).toBe(produced.version);
    const cached = await readFile(path.join(other.stateDir, 'cache', 'blobs', 'sha256', produced.digest.slice(7)));
    expect(sha256(cached)).toBe(produced.digest.slice(7));
    const meta = await fetch(status.endpoint);
    expect(meta.status).toBe(200);
    expect(await meta.json()).toMatchObject({ versions: [produced.version], outputs: [expect.objectContaining({ shape: [-1, 3] })] });
    const infer = await fetch(`${status.endpoint}/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ inputs: [{ name: 'image', datatype: 'FP32', shape: [1, 32, 32, 3], data: new Array(32 * 32 * 3).fill(128) }] }),
    });
    expect(infer.status).toBe(200);
    const probabilities = ((await infer.json()) as { outputs: { data: number[] }[] }).outputs[0]!.data;
    expect(probabilities).toHaveLength(3);
    expect(probabilities.reduce((x, y) => x + y, 0)).toBeCloseTo(1, 4);
    // Admins download it, whole and from an offset; a spoke whose desired state does not use it may not.
    const hex = produced.digest.slice(7);
    const whole = await fetch(`${t.hub.apiUrl}/api/v1/artifacts/sha256/${hex}`, { headers: { authorization: `Bearer ${t.adminToken}` } });
    expect(whole.headers.get('x-flotilla-digest')).toBe(produced.digest);
    const stored = Buffer.from(await whole.arrayBuffer());
    expect(sha256(stored)).toBe(hex);
    const tail = await fetch(`${t.hub.apiUrl}/api/v1/artifacts/sha256/${hex}`, { headers: { authorization: `Bearer ${t.adminToken}`, range: 'bytes=100-' } });
    expect(tail.status).toBe(206);
    expect(Buffer.compare(Buffer.from(await tail.arrayBuffer()), stored.subarray(100))).toBe(0);
    // bridge-9 produced it but is given no deployment of it: its desired state does not use the digest.
    expect((await fetch(`${t.hub.apiUrl}/api/v1/artifacts/sha256/${hex}`, { headers: { authorization: await agent.authorization() } })).status).toBe(403);
  }, 120_000);

  it("upload refusals: a wrong digest (422, nothing kept), another spoke's job, another spoke's version, API tokens (403), bad credentials (401)", async () => {
    const bytes = randomBytes(4096);
    const declared = `sha256:${'ab'.repeat(32)}`;
    const put = async (auth: string | null, o: { version?: string } = {}) => {
      const headers: Record<string, string> = { 'content-type': 'application/octet-stream', 'x-flotilla-digest': declared };
      if (auth) headers.authorization = auth;
      const res = await fetch(`${t.hub.apiUrl}/api/v1/finetune-jobs/privacy-tuning/artifacts/${o.version ?? expectedProducedVersion('1.0.0', 'bridge-9', declared)}`, { method: 'PUT', headers, body: bytes });
      return { status: res.status, body: (await res.json()) as { error?: { code: string; message: string } } };
    };
    const mismatch = await put(await agent.authorization());
    expect(mismatch.status).toBe(422);
    expect(mismatch.body.error?.code).toBe('digest_mismatch');
    const store = path.join(t.home, 'artifacts-store');
    expect((await readdir(path.join(store, 'sha256'))).sort()).toEqual([produced.digest.slice(7)]);
    expect(await readdir(path.join(store, 'tmp'))).toEqual([]);
    // bridge-10: the job is not placed on it (whatever version it names).
    const otherSpoke = await put(await other.authorization(), { version: expectedProducedVersion('1.0.0', 'bridge-10', declared) });
    expect(otherSpoke.status).toBe(403);
    expect(otherSpoke.body.error?.message).toContain('not placed on spoke bridge-10');
    // bridge-9, but under the name another spoke's run would give: not a version it produced.
    expect((await put(await agent.authorization(), { version: expectedProducedVersion('1.0.0', 'bridge-10', declared) })).status).toBe(403);
    expect((await put(`Bearer ${t.adminToken}`)).status).toBe(403);
    expect((await put(null)).status).toBe(401);
    expect((await put(`Basic ${Buffer.from('bridge-9:wrong').toString('base64')}`)).status).toBe(401);
    // A keep-local job: nothing is uploaded for it.
    expect((await fetch(`${t.hub.apiUrl}/api/v1/finetune-jobs/privacy-broken/artifacts/${expectedProducedVersion('1.0.0', 'bridge-9', declared)}`, {
      method: 'PUT',
      headers: { authorization: await agent.authorization(), 'content-type': 'application/octet-stream', 'x-flotilla-digest': declared },
      body: bytes,
    })).status).toBe(409);
  });

  it('a keep-local version placed on another spoke says which spoke has it', async () => {
    const digest = `sha256:${'cd'.repeat(32)}`;
    const registered = await t.api('POST', '/api/v1/models/bridge-defects/versions', { version: 'kept-on-9', digest, uri: `flotilla:spokes/bridge-9/artifacts/sha256/${'cd'.repeat(32)}`, format: 'onnx' });
    expect(registered.status).toBe(201);
    expect((await t.api('POST', '/api/v1/apply', deployment('kept-on-ten', 'kept-on-9'))).status).toBe(200);
    const status = await waitFor('bridge-10 to say where the artifact is', async () => {
      const s = await compliance('kept-on-ten', 'bridge-10');
      return s?.message?.includes('kept only on spoke bridge-9') ? s : null;
    }, 30_000, 200);
    expect(status.state).not.toBe('Compliant');
    expect(status.message).toContain('output.artifact: keep-local');
  }, 60_000);
});
