import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ModelRef } from '@flotilla/contracts';
import { ArtifactCache, type ArtifactCacheOptions, type ArtifactLogger } from '../../apps/agent/src/artifacts/index.js';
import { testSourcePolicy } from '../support/source-policy.js';

export function sha256(body: Buffer): string {
  return `sha256:${createHash('sha256').update(body).digest('hex')}`;
}

/** Random bytes standing in for a model file. */
export function modelBytes(size: number): Buffer {
  return randomBytes(size);
}

export function modelRef(body: Buffer, uri: string, overrides: Partial<ModelRef> = {}): ModelRef {
  return { name: 'bridge-defects', version: '1.0.0', digest: sha256(body), uri, format: 'onnx', ...overrides };
}

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `flotilla-${prefix}-`));
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** Everything under the cache's blob and temp directories, to prove nothing unverified was kept. */
export async function storeContents(root: string): Promise<{ blobs: string[]; tmp: string[] }> {
  const list = async (dir: string): Promise<string[]> => (await readdir(dir).catch(() => [] as string[])).sort();
  return { blobs: await list(join(root, 'blobs', 'sha256')), tmp: await list(join(root, 'tmp')) };
}

/** A logger that remembers what it was told, so tests can count retries. */
export function recordingLogger(): ArtifactLogger & { entries: Array<{ level: string; msg: string; obj: object }> } {
  const entries: Array<{ level: string; msg: string; obj: object }> = [];
  const at = (level: string) => (obj: object, msg: string) => void entries.push({ level, msg, obj });
  return { entries, debug: at('debug'), info: at('info'), warn: at('warn') };
}

/** Small, fast defaults: retries without real waiting, no jitter. */
export function cacheFor(root: string, opts: Partial<ArtifactCacheOptions> = {}): ArtifactCache {
  return new ArtifactCache({
    root,
    maxBytes: 1 << 30,
    maxArtifactBytes: 1 << 26,
    retry: { attempts: 3, initialDelayMs: 1, maxDelayMs: 5, factor: 2 },
    random: () => 0.5,
    sources: testSourcePolicy(),
    ...opts,
  });
}

export function signal(): AbortSignal {
  return new AbortController().signal;
}

/** The partial download of a digest in a cache root. */
export function partialPath(root: string, digest: string): string {
  return join(root, 'tmp', `${digest.slice('sha256:'.length)}.partial`);
}

/** Polls until a file has reached `size` bytes; bounded, so a broken test fails instead of hanging. */
export async function waitForFileSize(path: string, size: number, signal?: AbortSignal): Promise<void> {
  for (let i = 0; i < 2000; i += 1) {
    const st = await stat(path).catch(() => null);
    if (st && st.size >= size) return;
    await sleep(5, undefined, { signal });
  }
  throw new Error(`${path} never reached ${size} bytes`);
}
