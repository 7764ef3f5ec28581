import { createReadStream } from 'node:fs';
import { link, mkdir, open, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';

/** An artifact in the store: its sha256 (hex) and size. */
export interface StoredArtifact {
  hex: string;
  sizeBytes: number;
}

/**
 * The hub's content-addressed artifact store: fine-tuned models spokes
 * uploaded (output.artifact: upload), kept once per sha256. Uploads are
 * received and verified into a staging file first (receive-artifact.ts);
 * `put` then moves the verified file in, so nothing unverified is ever
 * stored or served.
 */
export interface ArtifactStore {
  /** Where it keeps artifacts, for logs and docs (`/var/lib/flotilla/artifacts-store`, `s3://bucket/prefix`). */
  readonly location: string;
  /** The directory uploads are staged in while they are received and hashed (always local). */
  readonly stagingDir: string;
  /** Stores a verified staged file under its digest (idempotent); the staged file is consumed. */
  put(artifact: StoredArtifact, stagedFile: string): Promise<{ created: boolean }>;
  /** The artifact, or null when the store does not hold it. */
  stat(hex: string): Promise<StoredArtifact | null>;
  /** Its bytes from `start` on, streamed. */
  read(hex: string, start: number): Promise<Readable>;
}

/** `$FLOTILLA_HOME/artifacts-store`: `sha256/<hex>` per artifact, `tmp/` for uploads under way. */
export class FilesystemArtifactStore implements ArtifactStore {
  readonly stagingDir: string;
  readonly location: string;

  constructor(private readonly root: string) {
    this.location = root;
    this.stagingDir = path.join(root, 'tmp');
  }

  private blob(hex: string): string {
    return path.join(this.root, 'sha256', hex);
  }

  async put(artifact: StoredArtifact, stagedFile: string): Promise<{ created: boolean }> {
    await mkdir(path.join(this.root, 'sha256'), { recursive: true });
    const target = this.blob(artifact.hex);
    try {
      // link() fails when the blob exists: a second upload of the same bytes keeps the first.
      await link(stagedFile, target);
      const dir = await open(path.dirname(target), 'r');
      await dir.sync().finally(() => dir.close());
      return { created: true };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      return { created: false };
    } finally {
      await rm(stagedFile, { force: true });
    }
  }

  async stat(hex: string): Promise<StoredArtifact | null> {
    const st = await stat(this.blob(hex)).catch(() => null);
    return st?.isFile() ? { hex, sizeBytes: st.size } : null;
  }

  async read(hex: string, start: number): Promise<Readable> {
    return createReadStream(this.blob(hex), { start });
  }
}

/** Staged uploads older than this were left by a hub that stopped while receiving them. */
const STALE_STAGING_MS = 3600_000;

/**
 * Makes the staging directory and removes uploads a crash left half-received
 * (only old ones: another hub replica may share the directory).
 */
export async function prepareStaging(store: ArtifactStore, now = Date.now()): Promise<void> {
  await mkdir(store.stagingDir, { recursive: true });
  for (const name of await readdir(store.stagingDir)) {
    const file = path.join(store.stagingDir, name);
    const st = await stat(file).catch(() => null);
    if (st && now - st.mtimeMs > STALE_STAGING_MS) await rm(file, { force: true });
  }
}
