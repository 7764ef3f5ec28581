import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GetObjectCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { ArtifactError, defaultS3ClientFactory, type S3ClientFactory } from '../../apps/agent/src/artifacts/index.js';
import { FakeS3 } from '../support/fake-s3.js';
import {
  cacheFor,
  modelBytes,
  modelRef,
  partialPath,
  removeDir,
  signal,
  storeContents,
  tempDir,
  waitForFileSize,
} from './artifact-test-kit.js';

const credentials = { accessKeyId: 'AKIAFAKEFAKEFAKE', secretAccessKey: 'fake-secret' };

describe('ArtifactCache with s3: sources (fake S3, real SDK)', () => {
  let dir: string;
  let root: string;
  let s3: FakeS3;
  let s3Client: S3ClientFactory;

  beforeEach(async () => {
    dir = await tempDir('s3-artifacts');
    root = join(dir, 'cache');
    s3 = await FakeS3.start();
    // The cache's own default factory, pointed at the fake as one would at MinIO.
    s3Client = defaultS3ClientFactory({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials });
  });
  afterEach(async () => {
    await s3.close();
    await removeDir(dir);
  });

  it('downloads s3://bucket/key with a signed path-style GetObject and verifies it', async () => {
    const body = modelBytes(250_000);
    s3.putObject('models', 'bridge/v1/model.onnx', body);
    const ref = modelRef(body, 's3://models/bridge/v1/model.onnx');

    const prepared = await cacheFor(root, { s3Client }).ensure(ref, signal());

    expect(await readFile(prepared.modelPath)).toEqual(body);
    expect(s3.requests).toEqual([
      expect.objectContaining({ method: 'GET', bucket: 'models', key: 'bridge/v1/model.onnx', range: null, signed: true, status: 200 }),
    ]);
  });

  it('resumes a cut GetObject with Range and If-Match, fetching only the rest', async () => {
    const body = modelBytes(300_000);
    const etag = s3.putObject('models', 'm.onnx', body);
    const ref = modelRef(body, 's3://models/m.onnx');
    s3.injectFault({ kind: 'cut', afterBytes: 100_000, before: () => waitForFileSize(partialPath(root, ref.digest), 100_000) });

    const prepared = await cacheFor(root, { s3Client }).ensure(ref, signal());

    expect(await readFile(prepared.modelPath)).toEqual(body);
    const gets = s3.requests.filter((r) => r.method === 'GET');
    expect(gets).toHaveLength(2);
    expect(gets[1]).toMatchObject({ range: 'bytes=100000-', status: 206, ifMatch: etag, bytesSent: body.length - 100_000 });
  });

  it('starts over when the object changed since the partial download began', async () => {
    const old = modelBytes(80_000);
    s3.putObject('models', 'm.onnx', old);
    const body = modelBytes(90_000);
    const ref = modelRef(body, 's3://models/m.onnx');
    s3.injectFault({ kind: 'cut', afterBytes: 30_000, before: () => waitForFileSize(partialPath(root, ref.digest), 30_000) });
    // First ensure sees the old object, is cut, and gives up with a partial file on disk.
    const first = await cacheFor(root, { s3Client, retry: { attempts: 1, initialDelayMs: 1, maxDelayMs: 1, factor: 1 } })
      .ensure(ref, signal())
      .catch((e: unknown) => e);
    expect(first).toMatchObject({ reason: 'ArtifactUnavailable' });
    s3.putObject('models', 'm.onnx', body);

    const prepared = await cacheFor(root, { s3Client }).ensure(ref, signal());

    expect(await readFile(prepared.modelPath)).toEqual(body);
    const statuses = s3.requests.filter((r) => r.method === 'GET').map((r) => r.status);
    expect(statuses.slice(-2)).toEqual([412, 200]);
  });

  it('reports NoSuchKey as ArtifactUnavailable without retrying', async () => {
    const ref = modelRef(modelBytes(10), 's3://models/absent.onnx');

    const err = await cacheFor(root, { s3Client }).ensure(ref, signal()).catch((e: unknown) => e);

    expect(err).toBeInstanceOf(ArtifactError);
    expect(err).toMatchObject({ reason: 'ArtifactUnavailable', retryable: true, transient: false });
    expect((err as Error).message).toMatch(/404.*NoSuchKey/);
    expect(s3.requests).toHaveLength(1);
  });

  it('retries a 503 SlowDown and then succeeds', async () => {
    const body = modelBytes(1000);
    s3.putObject('models', 'm.onnx', body);
    s3.injectFault({ kind: 'status', status: 503, code: 'SlowDown' });

    await cacheFor(root, { s3Client }).ensure(modelRef(body, 's3://models/m.onnx'), signal());

    expect(s3.requests.map((r) => r.status)).toEqual([503, 200]);
  });

  it('gives up on an unreachable endpoint after the bounded attempts', async () => {
    await s3.close();
    const ref = modelRef(modelBytes(10), 's3://models/m.onnx');

    const err = await cacheFor(root, { s3Client }).ensure(ref, signal()).catch((e: unknown) => e);

    expect(err).toMatchObject({ reason: 'ArtifactUnavailable', retryable: true });
    expect((err as Error).message).toContain('gave up after 3 attempts');
    s3 = await FakeS3.start();
  });

  it('rejects a wrong digest and stores nothing', async () => {
    const body = modelBytes(5000);
    s3.putObject('models', 'm.onnx', body);
    const ref = modelRef(modelBytes(5000), 's3://models/m.onnx');

    const err = await cacheFor(root, { s3Client }).ensure(ref, signal()).catch((e: unknown) => e);

    expect(err).toMatchObject({ reason: 'ArtifactDigestMismatch' });
    expect(await storeContents(root)).toEqual({ blobs: [], tmp: [] });
  });

  it('refuses an object larger than the limit from its Content-Length', async () => {
    const body = modelBytes(20_000);
    s3.putObject('models', 'm.onnx', body);

    const err = await cacheFor(root, { s3Client, maxArtifactBytes: 10_000 })
      .ensure(modelRef(body, 's3://models/m.onnx'), signal())
      .catch((e: unknown) => e);

    expect(err).toMatchObject({ reason: 'ArtifactTooLarge' });
  });

  it('rejects an s3 URI without a key as ArtifactInvalid', async () => {
    const err = await cacheFor(root, { s3Client })
      .ensure(modelRef(modelBytes(1), 's3://bucket-only'), signal())
      .catch((e: unknown) => e);

    expect(err).toMatchObject({ reason: 'ArtifactInvalid' });
  });

  it('abandons a GetObject that never answers after the idle timeout and tries again', async () => {
    s3.injectFault({ kind: 'hang' });
    const body = modelBytes(10);
    s3.putObject('models', 'm.onnx', body);

    const prepared = await cacheFor(root, { s3Client, idleTimeoutMs: 150 }).ensure(modelRef(body, 's3://models/m.onnx'), signal());

    expect(await readFile(prepared.modelPath)).toEqual(body);
    expect(s3.requests.map((r) => r.status)).toEqual([-1, 200]);
  });
});

describe('FakeS3', () => {
  let s3: FakeS3;
  let client: S3Client;
  beforeEach(async () => {
    s3 = await FakeS3.start();
    client = new S3Client({ endpoint: s3.endpoint, region: 'eu-west-1', forcePathStyle: true, credentials, maxAttempts: 1 });
  });
  afterEach(async () => {
    client.destroy();
    await s3.close();
  });

  it('answers HeadObject with the size and ETag the SDK reads', async () => {
    const etag = s3.putObject('b', 'dir/x.bin', Buffer.from('hello world'));

    const head = await client.send(new HeadObjectCommand({ Bucket: 'b', Key: 'dir/x.bin' }));

    expect(head).toMatchObject({ ContentLength: 11, ETag: etag });
    expect(s3.requests[0]).toMatchObject({ method: 'HEAD', signed: true });
  });

  it('answers a ranged GetObject with 206 and Content-Range', async () => {
    s3.putObject('b', 'x', Buffer.from('0123456789'));

    const out = await client.send(new GetObjectCommand({ Bucket: 'b', Key: 'x', Range: 'bytes=4-' }));

    expect(out.$metadata.httpStatusCode).toBe(206);
    expect(out.ContentRange).toBe('bytes 4-9/10');
    expect(await out.Body?.transformToString()).toBe('456789');
  });

  it('answers HeadObject for a missing key with a 404 NotFound', async () => {
    const err = await client.send(new HeadObjectCommand({ Bucket: 'b', Key: 'nope' })).catch((e: unknown) => e);

    expect(err).toMatchObject({ name: 'NotFound', $metadata: { httpStatusCode: 404 } });
  });

  it('refuses an unsigned request', async () => {
    const res = await fetch(`${s3.endpoint}/b/x`);

    expect(res.status).toBe(403);
    expect(await res.text()).toContain('<Code>AccessDenied</Code>');
  });
});
