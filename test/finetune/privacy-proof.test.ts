import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import pino from 'pino';
import sharp from 'sharp';
import { decodeModel } from '../../apps/agent/src/finetune/onnx-proto.js';
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

describe('privacy proof: no dataset byte leaves the spoke', () => {
  let t: TestHub;
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
    await writeMarkedDataset(path.join(dir, 'site-data-2'), 3);
    await writeFile(path.join(dir, 'site-data-2', 'train', `crack-${MARK.label}`, `${MARK.broken}.png`), Buffer.concat([Buffer.from('\x89PNG\r\n\x1a\n', 'latin1'), Buffer.from(`not an image ${MARK.broken}`)]));
    api = await RecordingProxy.start({ host: '127.0.0.1', port: Number(new URL(t.hub.apiUrl).port) });
    mqtt = await RecordingProxy.start({ host: '127.0.0.1', port: t.hub.mqttPort! });
  }, 60_000);
  afterAll(async () => {
    await agent?.stop();
    await api?.close();
    await mqtt?.close();
    await t?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('captures enrolment, desired state, reports and the upload; no marker and no image byte is in any of it', async () => {
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
  }, 180_000);
});
