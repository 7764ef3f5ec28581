import { createServer } from 'node:net';
import { readFile, stat, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ArtifactError } from '../../apps/agent/src/artifacts/index.js';
import { HttpArtifactServer } from './http-artifact-server.js';
import {
  cacheFor,
  modelBytes,
  modelRef,
  partialPath,
  recordingLogger,
  removeDir,
  signal,
  storeContents,
  tempDir,
  waitForFileSize,
} from './artifact-test-kit.js';

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('ArtifactCache with http: sources', () => {
  let dir: string;
  let root: string;
  let server: HttpArtifactServer;

  beforeEach(async () => {
    dir = await tempDir('http-artifacts');
    root = join(dir, 'cache');
    server = await HttpArtifactServer.start();
  });
  afterEach(async () => {
    await server.close();
    await removeDir(dir);
  });

  it('downloads, verifies and lays out an artifact in one request', async () => {
    const body = modelBytes(200_000);
    const ref = modelRef(body, server.serve('/models/m.onnx', body));

    const prepared = await cacheFor(root).ensure(ref, signal());

    expect(await readFile(prepared.modelPath)).toEqual(body);
    expect(server.requests).toEqual([{ path: '/models/m.onnx', range: null, ifRange: null, status: 200, bytesSent: body.length }]);
    expect((await storeContents(root)).tmp).toEqual([]);
  });

  it('resumes a download cut mid-body with Range and fetches only the rest', async () => {
    const body = modelBytes(300_000);
    const ref = modelRef(body, server.serve('/m.onnx', body));
    server.injectFault({ kind: 'cut', afterBytes: 120_000, before: () => waitForFileSize(partialPath(root, ref.digest), 120_000) });

    const prepared = await cacheFor(root).ensure(ref, signal());

    expect(await readFile(prepared.modelPath)).toEqual(body);
    expect(server.requests).toHaveLength(2);
    const [first, second] = server.requests;
    expect(first).toMatchObject({ range: null, status: 200, bytesSent: 120_000 });
    expect(second).toMatchObject({ range: 'bytes=120000-', status: 206, bytesSent: body.length - 120_000 });
    expect(second?.ifRange).toMatch(/^"[0-9a-f]+"$/);
  });

  it('resumes in a later ensure call from the partial file an earlier one left', async () => {
    const body = modelBytes(100_000);
    const ref = modelRef(body, server.serve('/m.onnx', body));
    server.injectFault(
      { kind: 'cut', afterBytes: 40_000, before: () => waitForFileSize(partialPath(root, ref.digest), 40_000) },
      { kind: 'status', status: 503 },
    );
    const err = await cacheFor(root, { retry: { attempts: 2, initialDelayMs: 1, maxDelayMs: 1, factor: 1 } })
      .ensure(ref, signal())
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ reason: 'ArtifactUnavailable', retryable: true });
    expect((err as Error).message).toContain('gave up after 2 attempts');

    await cacheFor(root).ensure(ref, signal());

    expect(server.requests.at(-1)).toMatchObject({ range: 'bytes=40000-', status: 206, bytesSent: 60_000 });
  });

  it('starts over when the server ignores Range and answers 200', async () => {
    const body = modelBytes(150_000);
    const ref = modelRef(body, server.serve('/m.onnx', body, { ranges: false }));
    server.injectFault({ kind: 'cut', afterBytes: 50_000, before: () => waitForFileSize(partialPath(root, ref.digest), 50_000) });

    const prepared = await cacheFor(root).ensure(ref, signal());

    expect(await readFile(prepared.modelPath)).toEqual(body);
    expect(server.requests[1]).toMatchObject({ range: 'bytes=50000-', status: 200, bytesSent: body.length });
  });

  it('starts over when the partial file is longer than the object (416)', async () => {
    const body = modelBytes(1000);
    const ref = modelRef(body, server.serve('/m.onnx', body));
    await mkdir(join(root, 'tmp'), { recursive: true });
    const partial = join(root, 'tmp', `${ref.digest.slice(7)}.partial`);
    await writeFile(partial, modelBytes(1500));
    await writeFile(`${partial}.json`, JSON.stringify({ uri: ref.uri, validator: null }));

    const prepared = await cacheFor(root).ensure(ref, signal());

    expect(await readFile(prepared.modelPath)).toEqual(body);
    expect(server.requests.map((r) => r.status)).toEqual([416, 200]);
  });

  it('retries a 503 with backoff and succeeds within one ensure call', async () => {
    const body = modelBytes(1000);
    const ref = modelRef(body, server.serve('/m.onnx', body));
    server.injectFault({ kind: 'status', status: 503 }, { kind: 'status', status: 502 });
    const logger = recordingLogger();

    await cacheFor(root, { logger }).ensure(ref, signal());

    expect(server.requests.map((r) => r.status)).toEqual([503, 502, 200]);
    expect(logger.entries.filter((e) => e.msg === 'artifact download failed; retrying')).toHaveLength(2);
  });

  it('reports an unreachable URL as ArtifactUnavailable after the bounded attempts', async () => {
    const port = await closedPort();
    const body = modelBytes(10);
    const ref = modelRef(body, `http://127.0.0.1:${port}/m.onnx`);
    const logger = recordingLogger();

    const err = await cacheFor(root, { logger }).ensure(ref, signal()).catch((e: unknown) => e);

    expect(err).toBeInstanceOf(ArtifactError);
    expect(err).toMatchObject({ reason: 'ArtifactUnavailable', retryable: true, uri: ref.uri });
    expect((err as Error).message).toMatch(/cannot reach .*gave up after 3 attempts/);
    expect(((err as Error).cause as ArtifactError).cause).toBeDefined();
    expect(logger.entries.filter((e) => e.level === 'warn')).toHaveLength(2);
  });

  it('does not retry a 404 inside one ensure call', async () => {
    const ref = modelRef(modelBytes(10), `${server.baseUrl}/missing.onnx`);

    const err = await cacheFor(root).ensure(ref, signal()).catch((e: unknown) => e);

    expect(err).toMatchObject({ reason: 'ArtifactUnavailable', retryable: true, transient: false });
    expect((err as Error).message).toContain('404');
    expect(server.requests).toHaveLength(1);
  });

  it('gives up on a server that accepts and never answers after the idle timeout', async () => {
    const body = modelBytes(10);
    const ref = modelRef(body, server.serve('/m.onnx', body));
    server.injectFault({ kind: 'hang' }, { kind: 'hang' });

    const err = await cacheFor(root, { idleTimeoutMs: 100, retry: { attempts: 2, initialDelayMs: 1, maxDelayMs: 1, factor: 1 } })
      .ensure(ref, signal())
      .catch((e: unknown) => e);

    expect(err).toMatchObject({ reason: 'ArtifactUnavailable' });
    expect((err as Error).message).toMatch(/timed out: TimeoutError|no data for 100 ms/);
  });

  it('refuses an artifact whose Content-Length is over the limit without reading it', async () => {
    const body = modelBytes(10_000);
    const ref = modelRef(body, server.serve('/big.onnx', body));

    const err = await cacheFor(root, { maxArtifactBytes: 4096 }).ensure(ref, signal()).catch((e: unknown) => e);

    expect(err).toMatchObject({ reason: 'ArtifactTooLarge', retryable: false });
    expect(await storeContents(root)).toEqual({ blobs: [], tmp: [] });
  });

  it('stops a chunked download as soon as it passes the limit', async () => {
    const body = modelBytes(200_000);
    const ref = modelRef(body, server.serve('/chunked.onnx', body, { contentLength: false }));

    const err = await cacheFor(root, { maxArtifactBytes: 65_536 }).ensure(ref, signal()).catch((e: unknown) => e);

    expect(err).toMatchObject({ reason: 'ArtifactTooLarge' });
    expect((err as Error).message).toMatch(/more than \d+ bytes, over the limit of 65536/);
    expect(await storeContents(root)).toEqual({ blobs: [], tmp: [] });
  });

  it('rejects a download whose digest differs and leaves nothing in the store', async () => {
    const body = modelBytes(50_000);
    const url = server.serve('/m.onnx', body);
    const ref = modelRef(modelBytes(50_000), url);

    const err = await cacheFor(root).ensure(ref, signal()).catch((e: unknown) => e);

    expect(err).toMatchObject({ reason: 'ArtifactDigestMismatch', retryable: false });
    expect((err as Error).message).toContain(`expected ${ref.digest}`);
    expect((err as Error).message).toContain(url);
    expect(await storeContents(root)).toEqual({ blobs: [], tmp: [] });
    expect(server.requests).toHaveLength(1);
  });

  it('shares one download between concurrent ensure calls for the same digest', async () => {
    const body = modelBytes(500_000);
    const url = server.serve('/m.onnx', body);
    const cache = cacheFor(root);

    const results = await Promise.all([
      cache.ensure(modelRef(body, url), signal()),
      cache.ensure(modelRef(body, url), signal()),
      cache.ensure(modelRef(body, url, { name: 'other-name' }), signal()),
    ]);

    expect(server.requests).toHaveLength(1);
    expect(results[0]).toEqual(results[1]);
    expect(await readFile(results[2].modelPath)).toEqual(body);
  });

  it('keeps a shared download going when only one of its callers aborts', async () => {
    const body = modelBytes(100_000);
    const url = server.serve('/m.onnx', body);
    server.injectFault({ kind: 'hang' });
    const cache = cacheFor(root, { idleTimeoutMs: 200 });
    const impatient = new AbortController();

    const first = cache.ensure(modelRef(body, url), impatient.signal);
    const second = cache.ensure(modelRef(body, url), signal());
    impatient.abort(new Error('caller went away'));

    await expect(first).rejects.toThrow('caller went away');
    expect(await readFile((await second).modelPath)).toEqual(body);
  });

  it('aborts the download when its only caller aborts', async () => {
    const body = modelBytes(100);
    const ref = modelRef(body, server.serve('/m.onnx', body));
    server.injectFault({ kind: 'hang' });
    const ac = new AbortController();

    const pending = cacheFor(root).ensure(ref, ac.signal);
    ac.abort(new Error('stop'));

    await expect(pending).rejects.toThrow('stop');
    expect((await storeContents(root)).blobs).toEqual([]);
  });

  it('uses the injected fetch', async () => {
    const body = modelBytes(64);
    const seen: string[] = [];
    const cache = cacheFor(root, {
      fetch: async (input) => {
        seen.push(input);
        return new Response(new Uint8Array(body), { status: 200, headers: { 'content-length': String(body.length) } });
      },
    });

    const prepared = await cache.ensure(modelRef(body, 'https://models.example.test/m.onnx'), signal());

    expect(seen).toEqual(['https://models.example.test/m.onnx']);
    expect((await stat(prepared.modelPath)).size).toBe(64);
  });
});
