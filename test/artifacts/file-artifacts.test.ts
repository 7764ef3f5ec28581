import { chmod, lstat, readFile, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ArtifactError } from '../../apps/agent/src/artifacts/index.js';
import { cacheFor, modelBytes, modelRef, recordingLogger, removeDir, signal, storeContents, tempDir } from './artifact-test-kit.js';

describe('ArtifactCache with file: sources', () => {
  let dir: string;
  let root: string;
  let models: string;

  beforeEach(async () => {
    dir = await tempDir('file-artifacts');
    root = join(dir, 'cache');
    models = join(dir, 'models');
    await mkdir(models, { recursive: true });
  });
  afterEach(() => removeDir(dir));

  it('lays a verified file:/// artifact out as a Triton repository hard-linked to its blob', async () => {
    const body = modelBytes(4096);
    const src = join(models, 'model v1.onnx');
    await writeFile(src, body);
    const ref = modelRef(body, pathToFileURL(src).href);

    const prepared = await cacheFor(root).ensure(ref, signal());

    const hex = ref.digest.slice(7);
    expect(prepared).toEqual({
      repositoryPath: join(root, 'repos', hex),
      modelPath: join(root, 'repos', hex, 'bridge-defects', '1', 'model.onnx'),
      digest: ref.digest,
    });
    expect(await readFile(prepared.modelPath)).toEqual(body);
    const [model, blob] = await Promise.all([stat(prepared.modelPath), stat(join(root, 'blobs', 'sha256', hex))]);
    expect(model.ino).toBe(blob.ino);
    expect(blob.mode & 0o777).toBe(0o444);
    expect(await readFile(join(prepared.repositoryPath, 'bridge-defects', 'config.pbtxt'), 'utf8')).toBe(
      'name: "bridge-defects"\nplatform: "onnxruntime_onnx"\nbackend: "onnxruntime"\nmax_batch_size: 0\n',
    );
  });

  it('resolves a relative file: path against the configured base directory', async () => {
    const body = modelBytes(100);
    await writeFile(join(models, 'm.pt'), body);
    const ref = modelRef(body, 'file:models/m.pt', { format: 'torchscript', name: 'ranker' });

    const prepared = await cacheFor(root, { fileBaseDir: dir }).ensure(ref, signal());

    expect(prepared.modelPath).toBe(join(prepared.repositoryPath, 'ranker', '1', 'model.pt'));
    expect(await readFile(join(prepared.repositoryPath, 'ranker', 'config.pbtxt'), 'utf8')).toContain('platform: "pytorch_libtorch"');
  });

  it('serves a second ensure from the store without reading the source again', async () => {
    const body = modelBytes(1000);
    const src = join(models, 'm.onnx');
    await writeFile(src, body);
    const ref = modelRef(body, pathToFileURL(src).href);
    const cache = cacheFor(root);
    await cache.ensure(ref, signal());

    await rm(src);
    const again = await cache.ensure(ref, signal());

    expect(await readFile(again.modelPath)).toEqual(body);
  });

  it('lays the same blob out under each model name that uses it', async () => {
    const body = modelBytes(256);
    const src = join(models, 'm.onnx');
    await writeFile(src, body);
    const cache = cacheFor(root);

    const a = await cache.ensure(modelRef(body, pathToFileURL(src).href, { name: 'alpha' }), signal());
    const b = await cache.ensure(modelRef(body, pathToFileURL(src).href, { name: 'beta' }), signal());

    expect(a.repositoryPath).toBe(b.repositoryPath);
    expect((await stat(a.modelPath)).ino).toBe((await stat(b.modelPath)).ino);
    expect((await storeContents(root)).blobs).toHaveLength(1);
  });

  it('re-hashes a cached blob whose marker is missing and keeps it when it is intact', async () => {
    const body = modelBytes(2048);
    const src = join(models, 'm.onnx');
    await writeFile(src, body);
    const ref = modelRef(body, pathToFileURL(src).href);
    await cacheFor(root).ensure(ref, signal());
    await rm(join(root, 'meta', 'sha256', `${ref.digest.slice(7)}.json`));
    await rm(src);
    const logger = recordingLogger();

    const prepared = await cacheFor(root, { logger }).ensure(ref, signal());

    expect(await readFile(prepared.modelPath)).toEqual(body);
    expect(logger.entries.map((e) => e.msg)).toContain('cached artifact re-verified');
  });

  it('fetches again when a cached blob was altered behind its marker', async () => {
    const body = modelBytes(2048);
    const src = join(models, 'm.onnx');
    await writeFile(src, body);
    const ref = modelRef(body, pathToFileURL(src).href);
    await cacheFor(root).ensure(ref, signal());
    const blob = join(root, 'blobs', 'sha256', ref.digest.slice(7));
    await chmod(blob, 0o644);
    await writeFile(blob, Buffer.concat([body, Buffer.from('tampered')]));

    const prepared = await cacheFor(root).ensure(ref, signal());

    expect(await readFile(prepared.modelPath)).toEqual(body);
    expect(await readFile(blob)).toEqual(body);
  });

  it('rejects a file whose content does not match the digest and stores nothing', async () => {
    const body = modelBytes(512);
    const src = join(models, 'm.onnx');
    await writeFile(src, body);
    const ref = modelRef(modelBytes(512), pathToFileURL(src).href);

    const err = await cacheFor(root).ensure(ref, signal()).catch((e: unknown) => e);

    expect(err).toBeInstanceOf(ArtifactError);
    expect(err).toMatchObject({ reason: 'ArtifactDigestMismatch', retryable: false, uri: ref.uri, digest: ref.digest });
    expect((err as Error).message).toContain(ref.digest);
    expect((err as Error).message).toContain(ref.uri);
    expect(await storeContents(root)).toEqual({ blobs: [], tmp: [] });
    expect(await lstat(join(root, 'repos', ref.digest.slice(7))).catch(() => null)).toBeNull();
  });

  it('reports a missing file as ArtifactUnavailable without retrying it', async () => {
    const ref = modelRef(modelBytes(8), pathToFileURL(join(models, 'absent.onnx')).href);
    const logger = recordingLogger();

    const err = await cacheFor(root, { logger }).ensure(ref, signal()).catch((e: unknown) => e);

    expect(err).toMatchObject({ name: 'ArtifactError', reason: 'ArtifactUnavailable', retryable: true, transient: false });
    expect((err as Error).message).toContain('ENOENT');
    expect(logger.entries.filter((e) => e.level === 'warn')).toHaveLength(0);
  });

  it('refuses a file larger than maxArtifactBytes before copying it', async () => {
    const body = modelBytes(5000);
    const src = join(models, 'big.onnx');
    await writeFile(src, body);

    const err = await cacheFor(root, { maxArtifactBytes: 4096 })
      .ensure(modelRef(body, pathToFileURL(src).href), signal())
      .catch((e: unknown) => e);

    expect(err).toMatchObject({ reason: 'ArtifactTooLarge' });
    expect((err as Error).message).toMatch(/5000 bytes, over the limit of 4096 bytes \(maxArtifactBytes/);
    expect(await storeContents(root)).toEqual({ blobs: [], tmp: [] });
  });

  it('refuses a file larger than the sizeBytes its model reference declares', async () => {
    const body = modelBytes(300);
    const src = join(models, 'm.onnx');
    await writeFile(src, body);

    const err = await cacheFor(root)
      .ensure(modelRef(body, pathToFileURL(src).href, { sizeBytes: 200 }), signal())
      .catch((e: unknown) => e);

    expect(err).toMatchObject({ reason: 'ArtifactTooLarge' });
    expect((err as Error).message).toContain('sizeBytes');
  });

  it('rejects the savedmodel format, which is a directory tree, as ArtifactInvalid', async () => {
    const body = modelBytes(10);
    const err = await cacheFor(root)
      .ensure(modelRef(body, 'file:/nowhere', { format: 'savedmodel' }), signal())
      .catch((e: unknown) => e);

    expect(err).toMatchObject({ reason: 'ArtifactInvalid', retryable: false });
    expect((err as Error).message).toContain('savedmodel');
  });

  it('rejects a malformed model reference as ArtifactInvalid naming the bad field', async () => {
    const body = modelBytes(10);
    const err = await cacheFor(root)
      .ensure({ ...modelRef(body, 'file:/x'), digest: 'sha256:XYZ' }, signal())
      .catch((e: unknown) => e);

    expect(err).toMatchObject({ reason: 'ArtifactInvalid' });
    expect((err as Error).message).toContain('digest');
  });

  it('rejects at once when the signal is already aborted', async () => {
    const ac = new AbortController();
    ac.abort(new Error('shutting down'));
    const body = modelBytes(10);

    await expect(cacheFor(root).ensure(modelRef(body, 'file:/x'), ac.signal)).rejects.toThrow('shutting down');
  });

  it('rejects invalid options with one message naming each problem', () => {
    expect(() => cacheFor(root, { maxBytes: -1, maxArtifactBytes: 0 })).toThrow(
      /maxBytes must be a non-negative integer; maxArtifactBytes must be a positive integer/,
    );
  });
});
