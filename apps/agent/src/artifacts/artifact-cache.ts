import { mkdir, readFile, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ModelRefSchema, type ModelRef } from '@flotilla/contracts';
import type { ArtifactProvider, PreparedArtifact } from '../runtime/runtime.js';
import { ArtifactError, describeError } from './artifact-error.js';
import { downloadOnce, hashFile } from './download.js';
import { FileSource } from './file-source.js';
import { writeFileAtomic } from './fs-atomic.js';
import { guardedFetch } from '../security/guarded-fetch.js';
import { isSourceRefused, type SourcePolicy } from '../security/source-policy.js';
import { filePathOf } from './file-source.js';
import { HttpSource, type FetchLike } from './http-source.js';
import { abortableDelay, backoffDelay, DEFAULT_RETRY_POLICY, validateRetryPolicy, type RetryPolicy } from './retry.js';
import { defaultS3ClientFactory, S3Source, type S3ClientFactory, type S3Settings } from './s3-source.js';
import { SingleFlight } from './single-flight.js';
import { FlotillaSource, type FlotillaSourceSettings } from './flotilla-source.js';
import type { ArtifactSource } from './source.js';
import { layOut, layoutFor } from './triton-layout.js';

/** The subset of a pino logger the cache uses. */
export interface ArtifactLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

const silentLogger: ArtifactLogger = { debug: () => undefined, info: () => undefined, warn: () => undefined };

export interface ArtifactCacheOptions {
  /** Cache directory; blobs, repositories, partial downloads and the retained list live under it. */
  root: string;
  /** Byte budget that `gc` brings the cache under (retained versions permitting). */
  maxBytes: number;
  /** No single artifact may be larger, whatever its ModelRef says. */
  maxArtifactBytes: number;
  /** Which `file:` and `http(s):` sources may be read at all (apps/agent/src/security). */
  sources: SourcePolicy;
  /** Replaces the guarded fetch (which checks each connection's address against `sources`). */
  fetch?: FetchLike;
  /** Default S3 client settings; ignored when `s3Client` is given. */
  s3?: S3Settings;
  s3Client?: S3ClientFactory;
  /** `flotilla:` URIs: the hub's artifact store and this spoke's kept artifacts (none without it). */
  flotilla?: FlotillaSourceSettings;
  /** Where a relative `file:` path is resolved; the process's working directory by default. */
  fileBaseDir?: string;
  logger?: ArtifactLogger;
  retry?: Partial<RetryPolicy>;
  /** An attempt that receives no bytes for this long is abandoned (and resumed by the next one). */
  idleTimeoutMs?: number;
  /** Jitter source for backoff; injectable for reproducible tests. */
  random?: () => number;
  now?: () => Date;
}

/** What the cache knows about a verified blob, stored beside it. */
interface BlobMarker {
  digest: string;
  size: number;
  verifiedAt: string;
  lastUsedAt: string;
}

export interface GcRemoval {
  digest: string;
  bytes: number;
  /** A blob, or an unfinished download of a version nobody retains. */
  kind: 'blob' | 'partial';
  lastUsedAt: string;
}

export interface GcResult {
  removed: GcRemoval[];
  /** Bytes the cache holds after collection. */
  totalBytes: number;
  maxBytes: number;
  /** True when retained versions alone exceed the budget. */
  overBudget: boolean;
}

const HEX = /^[a-f0-9]{64}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;
/** Rewriting the marker on every reconcile would fsync for nothing. */
const TOUCH_INTERVAL_MS = 60_000;

/**
 * The agent's content-addressed model cache: `blobs/sha256/<hex>` holds each
 * verified artifact once, `repos/<hex>/<model>/1/` lays it out as a Triton
 * model repository, `tmp/` keeps partial downloads for resume, `meta/` the
 * verification markers and `retained.json` the versions in use.
 */
export class ArtifactCache implements ArtifactProvider {
  private readonly root: string;
  private readonly maxBytes: number;
  private readonly maxArtifactBytes: number;
  private readonly logger: ArtifactLogger;
  private readonly retry: RetryPolicy;
  private readonly idleTimeoutMs: number;
  private readonly random: () => number;
  private readonly now: () => Date;
  private readonly sources: SourcePolicy;
  private readonly fileBaseDir: string;
  private readonly fileSource: FileSource;
  private readonly httpSource: HttpSource;
  private readonly s3Source: S3Source;
  private readonly flotillaSource: FlotillaSource | null;
  private readonly flights = new SingleFlight<number>();
  /** Digests an `ensure` is working on; gc leaves them alone. */
  private readonly inUse = new Map<string, number>();
  private ready: Promise<void> | null = null;
  /** Serializes retain and gc so a collection never reads a half-updated retained set. */
  private bookkeeping: Promise<unknown> = Promise.resolve();

  constructor(opts: ArtifactCacheOptions) {
    const problems: string[] = [];
    if (!opts.root) problems.push('root is required');
    if (!(Number.isSafeInteger(opts.maxBytes) && opts.maxBytes >= 0)) problems.push('maxBytes must be a non-negative integer');
    if (!(Number.isSafeInteger(opts.maxArtifactBytes) && opts.maxArtifactBytes > 0)) problems.push('maxArtifactBytes must be a positive integer');
    if (opts.idleTimeoutMs !== undefined && !(opts.idleTimeoutMs > 0)) problems.push('idleTimeoutMs must be > 0');
    if (problems.length > 0) throw new RangeError(`invalid artifact cache options: ${problems.join('; ')}`);
    this.root = opts.root;
    this.maxBytes = opts.maxBytes;
    this.maxArtifactBytes = opts.maxArtifactBytes;
    this.logger = opts.logger ?? silentLogger;
    this.retry = validateRetryPolicy({ ...DEFAULT_RETRY_POLICY, ...opts.retry });
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 30_000;
    this.random = opts.random ?? Math.random;
    this.now = opts.now ?? (() => new Date());
    this.sources = opts.sources;
    this.fileBaseDir = opts.fileBaseDir ?? process.cwd();
    this.fileSource = new FileSource(this.fileBaseDir, opts.sources);
    this.httpSource = new HttpSource(opts.fetch ?? guardedFetch(opts.sources), opts.sources);
    this.flotillaSource = opts.flotilla ? new FlotillaSource(opts.flotilla, opts.fetch ?? guardedFetch(opts.sources, opts.flotilla.ca), opts.sources) : null;
    this.s3Source = new S3Source(opts.s3Client ?? defaultS3ClientFactory(opts.s3));
  }

  blobPath(hex: string): string {
    return join(this.root, 'blobs', 'sha256', hex);
  }

  private markerPath(hex: string): string {
    return join(this.root, 'meta', 'sha256', `${hex}.json`);
  }

  private repositoryPath(hex: string): string {
    return join(this.root, 'repos', hex);
  }

  private partialPath(hex: string): string {
    return join(this.root, 'tmp', `${hex}.partial`);
  }

  private retainedPath(): string {
    return join(this.root, 'retained.json');
  }

  async ensure(model: ModelRef, signal: AbortSignal): Promise<PreparedArtifact> {
    signal.throwIfAborted();
    const parsed = ModelRefSchema.safeParse(model);
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
      throw new ArtifactError('ArtifactInvalid', `invalid model reference: ${issues}`, {
        uri: String((model as Partial<ModelRef> | null)?.uri ?? ''),
        digest: String((model as Partial<ModelRef> | null)?.digest ?? ''),
      });
    }
    const ref = parsed.data;
    const layout = layoutFor(ref.format);
    if (!layout) {
      throw new ArtifactError(
        'ArtifactInvalid',
        `format "${ref.format}" of ${ref.name}@${ref.version} is a directory tree, which the cache does not lay out`,
        { uri: ref.uri, digest: ref.digest },
      );
    }
    const hex = ref.digest.slice('sha256:'.length);
    await this.refuseDisallowed(ref);
    this.inUse.set(hex, (this.inUse.get(hex) ?? 0) + 1);
    try {
      await this.prepareDirs();
      await this.flights.run(hex, signal, (shared) => this.materialise(ref, hex, shared));
      signal.throwIfAborted();
      const repositoryPath = this.repositoryPath(hex);
      const modelPath = await layOut(repositoryPath, ref.name, layout, this.blobPath(hex));
      await this.touch(hex);
      return { repositoryPath, modelPath, digest: ref.digest };
    } finally {
      const left = (this.inUse.get(hex) ?? 1) - 1;
      if (left > 0) this.inUse.set(hex, left);
      else this.inUse.delete(hex);
    }
  }

  /**
   * A URI the source policy refuses is refused even when a blob with its
   * digest is cached already, so a refusal reads the same whatever the cache
   * holds. Only the refusal counts here: a missing file or an unreachable
   * name is for the download to report (a cached blob still serves offline).
   */
  private async refuseDisallowed(ref: ModelRef): Promise<void> {
    try {
      if (ref.uri.startsWith('file:')) await this.sources.resolveArtifactFile(filePathOf(ref.uri, this.fileBaseDir), ref.uri);
      else if (/^https?:\/\//.test(ref.uri)) await this.sources.checkArtifactUrl(ref.uri);
    } catch (err) {
      if (isSourceRefused(err)) throw new ArtifactError('SourceRefused', err.message, { uri: ref.uri, digest: ref.digest, cause: err });
    }
  }

  /** Releases pooled connections; pending `ensure` calls should be aborted first. */
  close(): void {
    this.s3Source.close();
  }

  /**
   * Records the versions in use (persisted, so a restarted agent still
   * protects them) and then collects what else the budget cannot hold. A
   * failed collection is logged, not thrown: the record is what matters.
   */
  async retain(models: ModelRef[]): Promise<void> {
    await this.record(models);
    try {
      await this.gc();
    } catch (err) {
      this.logger.warn({ err: describeError(err) }, 'artifact collection failed');
    }
  }

  /** `retain`, returning what the collection removed. */
  async retainAndCollect(models: ModelRef[]): Promise<GcResult> {
    await this.record(models);
    return this.gc();
  }

  private async record(models: ModelRef[]): Promise<void> {
    const digests = [...new Set(models.map((m) => m.digest).filter((d) => typeof d === 'string' && DIGEST.test(d)))].sort();
    await this.exclusively(async () => {
      await this.prepareDirs();
      await writeFileAtomic(this.retainedPath(), `${JSON.stringify({ digests, updatedAt: this.now().toISOString() }, null, 2)}\n`);
    });
  }

  /** The digests last passed to `retain`, as persisted (survives restarts). */
  async retained(): Promise<Set<string>> {
    try {
      const parsed = JSON.parse(await readFile(this.retainedPath(), 'utf8')) as { digests?: unknown };
      if (!Array.isArray(parsed.digests)) return new Set();
      return new Set(parsed.digests.filter((d): d is string => typeof d === 'string'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.logger.warn({ err: describeError(err) }, 'retained list unreadable; treating every version as collectable');
      }
      return new Set();
    }
  }

  /**
   * Removes what is not retained, least recently used first, until the cache
   * is within `maxBytes`. Retained versions and those an `ensure` is working
   * on are never removed; repositories and markers left without a blob are
   * tidied regardless of the budget.
   */
  async gc(): Promise<GcResult> {
    return this.exclusively(async () => {
      await this.prepareDirs();
      const retained = await this.retained();
      const isKept = (hex: string): boolean => retained.has(`sha256:${hex}`) || this.inUse.has(hex) || this.flights.has(hex);

      const items: Array<{ hex: string; kind: 'blob' | 'partial'; path: string; bytes: number; lastUsed: number }> = [];
      for (const name of await readdir(join(this.root, 'blobs', 'sha256'))) {
        if (!HEX.test(name)) continue;
        const st = await stat(this.blobPath(name)).catch(() => null);
        if (!st) continue;
        const marker = await this.readMarker(name);
        const lastUsed = marker ? Date.parse(marker.lastUsedAt) : st.mtimeMs;
        items.push({ hex: name, kind: 'blob', path: this.blobPath(name), bytes: st.size, lastUsed: Number.isNaN(lastUsed) ? 0 : lastUsed });
      }
      for (const name of await readdir(join(this.root, 'tmp'))) {
        const m = /^([a-f0-9]{64})\.partial$/.exec(name);
        if (!m?.[1]) continue;
        const st = await stat(join(this.root, 'tmp', name)).catch(() => null);
        if (!st) continue;
        items.push({ hex: m[1], kind: 'partial', path: join(this.root, 'tmp', name), bytes: st.size, lastUsed: st.mtimeMs });
      }

      let total = items.reduce((sum, i) => sum + i.bytes, 0);
      const removed: GcRemoval[] = [];
      // Unfinished downloads go before finished ones; within a kind, oldest use first.
      const candidates = items
        .filter((i) => !isKept(i.hex))
        .sort((a, b) => (a.kind === b.kind ? a.lastUsed - b.lastUsed || a.hex.localeCompare(b.hex) : a.kind === 'partial' ? -1 : 1));
      for (const item of candidates) {
        if (total <= this.maxBytes) break;
        if (item.kind === 'blob') {
          await rm(this.repositoryPath(item.hex), { recursive: true, force: true });
          await rm(item.path, { force: true });
          await rm(this.markerPath(item.hex), { force: true });
        } else {
          await rm(item.path, { force: true });
          await rm(`${item.path}.json`, { force: true });
        }
        total -= item.bytes;
        removed.push({ digest: `sha256:${item.hex}`, bytes: item.bytes, kind: item.kind, lastUsedAt: new Date(item.lastUsed).toISOString() });
        this.logger.info({ digest: `sha256:${item.hex}`, bytes: item.bytes, kind: item.kind }, 'artifact collected');
      }

      const blobs = new Set(items.filter((i) => i.kind === 'blob' && !removed.some((r) => r.kind === 'blob' && r.digest === `sha256:${i.hex}`)).map((i) => i.hex));
      for (const name of await readdir(join(this.root, 'repos'))) {
        if (HEX.test(name) && !blobs.has(name) && !isKept(name)) await rm(this.repositoryPath(name), { recursive: true, force: true });
      }
      for (const name of await readdir(join(this.root, 'meta', 'sha256'))) {
        const hex = name.replace(/\.json$/, '');
        if (HEX.test(hex) && !blobs.has(hex) && !isKept(hex)) await rm(this.markerPath(hex), { force: true });
      }
      return { removed, totalBytes: total, maxBytes: this.maxBytes, overBudget: total > this.maxBytes };
    });
  }

  private async exclusively<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.bookkeeping.then(fn, fn);
    this.bookkeeping = run.catch(() => undefined);
    return run;
  }

  private prepareDirs(): Promise<void> {
    this.ready ??= (async () => {
      for (const dir of [['blobs', 'sha256'], ['meta', 'sha256'], ['repos'], ['tmp']]) {
        await mkdir(join(this.root, ...dir), { recursive: true });
      }
    })().catch((err: unknown) => {
      this.ready = null;
      throw err;
    });
    return this.ready;
  }

  /** Makes the verified blob exist; resolves with its size. Shared by concurrent callers. */
  private async materialise(ref: ModelRef, hex: string, signal: AbortSignal): Promise<number> {
    const present = await this.verifyPresent(ref, hex, signal);
    if (present !== null) return present;

    const source = this.sourceFor(ref);
    const limitFromRef = ref.sizeBytes !== undefined && ref.sizeBytes < this.maxArtifactBytes;
    const limit = limitFromRef ? (ref.sizeBytes as number) : this.maxArtifactBytes;
    const limitSource = limitFromRef ? 'sizeBytes of the model reference' : 'maxArtifactBytes of the cache';
    for (let attempt = 1; ; attempt += 1) {
      try {
        const result = await downloadOnce({
          source,
          uri: ref.uri,
          digest: ref.digest,
          hex,
          partialPath: this.partialPath(hex),
          blobPath: this.blobPath(hex),
          limit,
          limitSource,
          idleTimeoutMs: this.idleTimeoutMs,
          signal,
        });
        const at = this.now().toISOString();
        await this.writeMarker(hex, { digest: ref.digest, size: result.size, verifiedAt: at, lastUsedAt: at });
        this.logger.info(
          { digest: ref.digest, uri: ref.uri, bytes: result.size, resumedFrom: result.resumedFrom, attempt },
          'artifact downloaded and verified',
        );
        return result.size;
      } catch (err) {
        if (!(err instanceof ArtifactError) || !err.transient) throw err;
        if (attempt >= this.retry.attempts) {
          throw new ArtifactError('ArtifactUnavailable', `${err.message} (gave up after ${attempt} attempts)`, {
            uri: ref.uri,
            digest: ref.digest,
            cause: err,
            transient: false,
          });
        }
        const delay = backoffDelay(this.retry, attempt, this.random);
        this.logger.warn({ digest: ref.digest, uri: ref.uri, attempt, delayMs: Math.round(delay), err: err.message }, 'artifact download failed; retrying');
        await abortableDelay(delay, signal);
      }
    }
  }

  /**
   * A blob on disk is trusted when its marker records the same digest and
   * size (cheap); without a marker it is re-hashed in full. A blob that fails
   * either check is removed so that it is fetched again.
   */
  private async verifyPresent(ref: ModelRef, hex: string, signal: AbortSignal): Promise<number | null> {
    const st = await stat(this.blobPath(hex)).catch(() => null);
    if (!st) return null;
    const marker = await this.readMarker(hex);
    if (marker && marker.digest === ref.digest && marker.size === st.size) return st.size;
    if (!marker) {
      const { hex: actual, size } = await hashFile(this.blobPath(hex), signal);
      if (actual === hex) {
        const at = this.now().toISOString();
        await this.writeMarker(hex, { digest: ref.digest, size, verifiedAt: at, lastUsedAt: at });
        this.logger.info({ digest: ref.digest, bytes: size }, 'cached artifact re-verified');
        return size;
      }
    }
    this.logger.warn({ digest: ref.digest, size: st.size, markerSize: marker?.size ?? null }, 'cached artifact failed verification; fetching it again');
    await rm(this.repositoryPath(hex), { recursive: true, force: true });
    await rm(this.blobPath(hex), { force: true });
    await rm(this.markerPath(hex), { force: true });
    return null;
  }

  private sourceFor(ref: ModelRef): ArtifactSource {
    if (ref.uri.startsWith('file:')) return this.fileSource;
    if (ref.uri.startsWith('http://') || ref.uri.startsWith('https://')) return this.httpSource;
    if (ref.uri.startsWith('s3://')) return this.s3Source;
    if (ref.uri.startsWith('flotilla:') && this.flotillaSource) return this.flotillaSource;
    throw new ArtifactError('ArtifactInvalid', `no source for ${ref.uri}`, { uri: ref.uri, digest: ref.digest });
  }

  private async readMarker(hex: string): Promise<BlobMarker | null> {
    try {
      const m = JSON.parse(await readFile(this.markerPath(hex), 'utf8')) as Partial<BlobMarker>;
      if (typeof m.digest !== 'string' || typeof m.size !== 'number' || typeof m.lastUsedAt !== 'string' || typeof m.verifiedAt !== 'string') return null;
      return { digest: m.digest, size: m.size, verifiedAt: m.verifiedAt, lastUsedAt: m.lastUsedAt };
    } catch {
      return null;
    }
  }

  private async writeMarker(hex: string, marker: BlobMarker): Promise<void> {
    await writeFileAtomic(this.markerPath(hex), `${JSON.stringify(marker)}\n`);
  }

  /** Records a use for least-recently-used collection. */
  private async touch(hex: string): Promise<void> {
    const marker = await this.readMarker(hex);
    if (!marker) return;
    const now = this.now();
    if (now.getTime() - Date.parse(marker.lastUsedAt) < TOUCH_INTERVAL_MS) return;
    await this.writeMarker(hex, { ...marker, lastUsedAt: now.toISOString() });
  }
}
