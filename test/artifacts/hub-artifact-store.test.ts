import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { S3Client } from '@aws-sdk/client-s3';
import { FilesystemArtifactStore, type ArtifactStore } from '../../apps/hub/src/artifacts/artifact-store.js';
import { receiveArtifact } from '../../apps/hub/src/artifacts/receive-artifact.js';
import { S3ArtifactStore } from '../../apps/hub/src/artifacts/s3-artifact-store.js';
import { FakeS3 } from '../support/fake-s3.js';

/**
 * The hub's artifact store behind its two back ends: the filesystem (what
 * `npm start` uses) and S3 (through the real @aws-sdk/client-s3, against the
 * S3 look-alike of test/support, not a real S3), and the staged receive that
 * checks the size limit and the digest before anything is stored.
 */
describe('hub artifact store', () => {
  let dir: string;
  let s3: FakeS3;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'flotilla-hub-store-'));
    s3 = await FakeS3.start();
  });
  afterAll(async () => {
    await s3?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const bytes = randomBytes(200_000);
  const hex = createHash('sha256').update(bytes).digest('hex');

  async function roundTrip(store: ArtifactStore): Promise<void> {
    expect(await store.stat(hex)).toBeNull();
    const received = await receiveArtifact(Readable.from([bytes.subarray(0, 70_000), bytes.subarray(70_000)]), { stagingDir: store.stagingDir, limit: 1 << 20, declaredHex: hex, declaredLength: bytes.length });
    expect(await store.put({ hex, sizeBytes: received.sizeBytes }, received.file)).toEqual({ created: true });
    expect(await readdir(store.stagingDir)).toEqual([]);
    expect(await store.stat(hex)).toEqual({ hex, sizeBytes: bytes.length });
    const whole = Buffer.concat(await (await store.read(hex, 0)).toArray());
    expect(Buffer.compare(whole, bytes)).toBe(0);
    const tail = Buffer.concat(await (await store.read(hex, 150_000)).toArray());
    expect(Buffer.compare(tail, bytes.subarray(150_000))).toBe(0);
    // The same bytes again: kept once, the staged copy consumed.
    const again = path.join(store.stagingDir, 'again.partial');
    await writeFile(again, bytes);
    expect(await store.put({ hex, sizeBytes: bytes.length }, again)).toEqual({ created: false });
    expect(await readdir(store.stagingDir)).toEqual([]);
  }

  it('filesystem: content-addressed under sha256/<hex>, read from an offset, idempotent', async () => {
    const root = path.join(dir, 'fs-store');
    const store = new FilesystemArtifactStore(root);
    await (await import('node:fs/promises')).mkdir(store.stagingDir, { recursive: true });
    await roundTrip(store);
    expect(await readdir(path.join(root, 'sha256'))).toEqual([hex]);
  });

  it('S3 (real SDK, fake server): PutObject with the length, HeadObject, ranged GetObject, under prefix/sha256/<hex>', async () => {
    const client = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'AKIAFAKE', secretAccessKey: 'fake' }, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED', maxAttempts: 1 });
    const staging = path.join(dir, 's3-staging');
    await (await import('node:fs/promises')).mkdir(staging, { recursive: true });
    const store = new S3ArtifactStore({ bucket: 'models', prefix: 'flotilla/artifacts', endpoint: s3.endpoint, stagingDir: staging, client });
    await roundTrip(store);
    expect(Buffer.compare(s3.getObject('models', `flotilla/artifacts/sha256/${hex}`) ?? Buffer.alloc(0), bytes)).toBe(0);
    expect(s3.requests.filter((r) => r.method === 'PUT')).toEqual([expect.objectContaining({ key: `flotilla/artifacts/sha256/${hex}`, signed: true, status: 200 })]);
    client.destroy();
  });

  it('a receive over the limit or with another digest keeps nothing', async () => {
    const staging = path.join(dir, 'limits');
    await (await import('node:fs/promises')).mkdir(staging, { recursive: true });
    await expect(receiveArtifact(Readable.from([bytes]), { stagingDir: staging, limit: 100_000, declaredHex: hex, declaredLength: null })).rejects.toMatchObject({ status: 413, code: 'payload_too_large' });
    await expect(receiveArtifact(Readable.from([bytes]), { stagingDir: staging, limit: 1 << 20, declaredHex: 'ab'.repeat(32), declaredLength: null })).rejects.toMatchObject({ status: 422, code: 'digest_mismatch' });
    await expect(receiveArtifact(Readable.from([bytes]), { stagingDir: staging, limit: 1 << 20, declaredHex: hex, declaredLength: bytes.length + 1 })).rejects.toMatchObject({ status: 400, code: 'upload_incomplete' });
    expect(await readdir(staging)).toEqual([]);
  });
});
