import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ArtifactUploader, publishProduced, spokeAuthorization } from './artifact-uploader.js';

describe('ArtifactUploader', () => {
  let dir: string;
  let server: Server;
  let url: string;
  const answers: { status: number; body: unknown }[] = [];
  const received: { url: string; headers: IncomingHttpHeaders; body: Buffer }[] = [];
  const bytes = randomBytes(300_000);
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  const upload = { job: 'j', version: '1.0.0-ft.s.abc', digest, file: '', sizeBytes: bytes.length };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'flotilla-uploader-'));
    upload.file = path.join(dir, 'model.onnx');
    await writeFile(upload.file, bytes);
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push({ url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) });
        const a = answers.shift() ?? { status: 500, body: {} };
        res.writeHead(a.status, { 'content-type': 'application/json' }).end(JSON.stringify(a.body));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.close();
    await rm(dir, { recursive: true, force: true });
  });

  const uploader = () => new ArtifactUploader({ hubUrl: url, authorization: () => spokeAuthorization('u', 'p'), retryDelayMs: 10 });
  const stored = { job: 'j', spoke: 's', version: upload.version, digest, sizeBytes: bytes.length, uri: `flotilla:artifacts/sha256/${digest.slice(7)}`, created: true };

  it('streams the file with the spoke credentials and the declared digest; retries a 503, then succeeds', async () => {
    received.length = 0;
    answers.push({ status: 503, body: { error: { code: 'x', message: 'busy' } } }, { status: 200, body: stored });
    await expect(uploader().upload(upload, AbortSignal.timeout(5000))).resolves.toEqual(stored);
    expect(received).toHaveLength(2);
    expect(received[1]!.url).toBe(`/api/v1/finetune-jobs/j/artifacts/${upload.version}`);
    expect(received[1]!.headers).toMatchObject({ authorization: `Basic ${Buffer.from('u:p').toString('base64')}`, 'x-flotilla-digest': digest, 'content-type': 'application/octet-stream', 'content-length': String(bytes.length) });
    expect(Buffer.compare(received[1]!.body, bytes)).toBe(0);
  });

  it('a refusal ends it at once; the run fails saying so and where the model stays', async () => {
    received.length = 0;
    answers.push({ status: 422, body: { error: { code: 'digest_mismatch', message: 'the received bytes have another digest' } } });
    const out = await publishProduced({ job: { name: 'j', output: { artifact: 'upload' } }, spoke: 's', version: upload.version, digest, file: upload.file, sizeBytes: bytes.length, uploader: uploader(), signal: AbortSignal.timeout(5000), progress: async () => undefined });
    expect(received).toHaveLength(1);
    expect(out).toEqual({ ok: false, message: expect.stringMatching(/^upload to the hub failed: the hub refused the upload \(HTTP 422\): the received bytes have another digest; the model stays on this spoke \(flotilla:spokes\/s\/artifacts\/sha256\/[0-9a-f]{64}\)$/) });
  });

  it('keep-local uploads nothing and names the spoke', async () => {
    received.length = 0;
    const out = await publishProduced({ job: { name: 'j', output: { artifact: 'keep-local' } }, spoke: 's', version: upload.version, digest, file: upload.file, sizeBytes: bytes.length, uploader: uploader(), signal: AbortSignal.timeout(5000), progress: async () => undefined });
    expect(out).toEqual({ ok: true, uri: `flotilla:spokes/s/artifacts/sha256/${digest.slice(7)}` });
    expect(received).toHaveLength(0);
  });
});
