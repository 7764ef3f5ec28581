import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { ModelRef } from '@flotilla/contracts';
import type { GcResult } from '../../apps/agent/src/artifacts/index.js';
import { HttpArtifactServer } from './http-artifact-server.js';
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

describe('ArtifactCache retain and gc', () => {
  let dir: string;
  let root: string;
  let clock: number;
  const now = (): Date => new Date(clock);

  beforeEach(async () => {
    dir = await tempDir('artifact-gc');
    root = join(dir, 'cache');
    await mkdir(join(dir, 'models'));
    clock = Date.parse('2030-01-01T00:00:00Z');
  });
  afterEach(() => removeDir(dir));

  /** Writes a 1000-byte model file and returns its reference. */
  async function version(label: string): Promise<ModelRef> {
    const body = modelBytes(1000);
    const path = join(dir, 'models', `${label}.onnx`);
    await writeFile(path, body);
    return modelRef(body, pathToFileURL(path).href, { version: label });
  }

  /** Ensures each version in turn, ten minutes apart, so their use order is known. */
  async function useInOrder(cache: ReturnType<typeof cacheFor>, refs: ModelRef[]): Promise<void> {
    for (const ref of refs) {
      clock += 10 * 60_000;
      await cache.ensure(ref, signal());
    }
  }

  it('removes unretained versions least recently used first until within the budget', async () => {
    const [a, b, c, d] = await Promise.all(['a', 'b', 'c', 'd'].map(version));
    if (!a || !b || !c || !d) throw new Error('fixture');
    const cache = cacheFor(root, { maxBytes: 2500, now });
    await useInOrder(cache, [a, b, c, d]);
    const result = await cache.retainAndCollect([a]);

    expect(result.removed.map((r) => r.digest)).toEqual([b.digest, c.digest]);
    expect(result).toMatchObject({ totalBytes: 2000, maxBytes: 2500, overBudget: false });
    expect((await storeContents(root)).blobs.sort()).toEqual([a.digest.slice(7), d.digest.slice(7)].sort());
    expect((await readdir(join(root, 'repos'))).sort()).toEqual([a.digest.slice(7), d.digest.slice(7)].sort());
  });

  it('counts a later ensure as a use when ordering removals', async () => {
    const [a, b, c] = await Promise.all(['a', 'b', 'c'].map(version));
    if (!a || !b || !c) throw new Error('fixture');
    const cache = cacheFor(root, { maxBytes: 1000, now });
    await useInOrder(cache, [a, b, c, a]);
    const result = await cache.retainAndCollect([]);

    expect(result.removed.map((r) => r.digest)).toEqual([b.digest, c.digest]);
  });

  it('never removes a retained version, even over budget, and says so', async () => {
    const [a, b] = await Promise.all(['a', 'b'].map(version));
    if (!a || !b) throw new Error('fixture');
    const cache = cacheFor(root, { maxBytes: 0, now });
    await useInOrder(cache, [a, b]);
    const result = await cache.retainAndCollect([a, b]);

    expect(result).toEqual({ removed: [], totalBytes: 2000, maxBytes: 0, overBudget: true });
  });

  it('keeps everything while the cache is within budget', async () => {
    const [a, b] = await Promise.all(['a', 'b'].map(version));
    if (!a || !b) throw new Error('fixture');
    const cache = cacheFor(root, { maxBytes: 10_000, now });
    await useInOrder(cache, [a, b]);
    expect((await cache.retainAndCollect([])).removed).toEqual([]);
  });

  it('persists the retained set so a restarted agent still protects it', async () => {
    const [a, b] = await Promise.all(['a', 'b'].map(version));
    if (!a || !b) throw new Error('fixture');
    const first = cacheFor(root, { maxBytes: 1 << 30, now });
    await useInOrder(first, [a, b]);
    await first.retain([b, b]);

    const restarted = cacheFor(root, { maxBytes: 0, now });
    const result = await restarted.gc();

    expect(result.removed.map((r) => r.digest)).toEqual([a.digest]);
    expect([...(await restarted.retained())]).toEqual([b.digest]);
    expect(JSON.parse(await readFile(join(root, 'retained.json'), 'utf8'))).toMatchObject({ digests: [b.digest] });
  });

  it('removes unfinished downloads of unretained versions before any finished blob', async () => {
    const a = await version('a');
    const cache = cacheFor(root, { maxBytes: 1000, now });
    await useInOrder(cache, [a]);
    const stale = 'f'.repeat(64);
    await writeFile(join(root, 'tmp', `${stale}.partial`), modelBytes(500));
    const result = await cache.retainAndCollect([]);

    expect(result.removed).toEqual([expect.objectContaining({ digest: `sha256:${stale}`, kind: 'partial', bytes: 500 })]);
    expect((await storeContents(root)).blobs).toEqual([a.digest.slice(7)]);
  });

  it('tidies repositories whose blob is gone regardless of the budget', async () => {
    const a = await version('a');
    const cache = cacheFor(root, { maxBytes: 1 << 20, now });
    await useInOrder(cache, [a]);
    const orphan = 'e'.repeat(64);
    await mkdir(join(root, 'repos', orphan, 'old-model', '1'), { recursive: true });
    await cache.retain([a]);

    await cache.gc();

    expect(await readdir(join(root, 'repos'))).toEqual([a.digest.slice(7)]);
  });

  it('leaves a download in progress alone even when nothing is retained', async () => {
    const server = await HttpArtifactServer.start();
    try {
      const body = modelBytes(100_000);
      const ref = modelRef(body, server.serve('/m.onnx', body));
      const cache = cacheFor(root, { maxBytes: 0, now });
      await cache.retain([]);
      let during: GcResult | null = null;
      server.injectFault({
        kind: 'cut',
        afterBytes: 40_000,
        before: async () => {
          await waitForFileSize(partialPath(root, ref.digest), 40_000);
          during = await cache.gc();
        },
      });

      const prepared = await cache.ensure(ref, signal());

      expect(during).toMatchObject({ removed: [], overBudget: true });
      expect(await readFile(prepared.modelPath)).toEqual(body);
      expect(server.requests.at(-1)).toMatchObject({ range: 'bytes=40000-', status: 206 });
    } finally {
      await server.close();
    }
  });

  it('collects on retain, and fetches a collected version again when it is wanted later', async () => {
    const a = await version('a');
    const cache = cacheFor(root, { maxBytes: 0, now });
    await useInOrder(cache, [a]);
    await cache.retain([]);
    expect((await storeContents(root)).blobs).toEqual([]);

    const prepared = await cache.ensure(a, signal());

    expect((await readFile(prepared.modelPath)).length).toBe(1000);
  });
});
