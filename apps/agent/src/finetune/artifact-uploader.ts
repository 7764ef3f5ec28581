import { createReadStream } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import { spokeArtifactUri, UploadedArtifactSchema, type UploadedArtifact } from '@flotilla/contracts';

export { keptArtifactDir, spokeAuthorization } from '../artifacts/spoke-artifacts.js';

/** A produced model to hand to the hub (output.artifact: upload). */
export interface ProducedUpload {
  job: string;
  version: string;
  /** `sha256:<hex>` of the file, declared to the hub and checked there on arrival. */
  digest: string;
  file: string;
  sizeBytes: number;
}

export class UploadError extends Error {
  override readonly name = 'UploadError';
  constructor(
    message: string,
    /** Another attempt may succeed (the hub unreachable, 5xx, 429). */
    readonly transient: boolean,
    readonly status: number | null = null,
  ) {
    super(message);
  }
}

export interface ArtifactUploaderOptions {
  /** The hub's API base URL, as enrolled. */
  hubUrl: string;
  /** `Authorization` header value: the spoke's own credentials (HTTP Basic). */
  authorization: () => string;
  /** CA certificates pinned at enrolment, for an https hub. */
  ca?: string;
  /** One attempt's limit (default 10 min). */
  timeoutMs?: number;
  /** Attempts for transient failures, with doubling delays from retryDelayMs (default 5, 1 s). */
  attempts?: number;
  retryDelayMs?: number;
}

/**
 * Streams a produced model to the hub's artifact store
 * (`PUT /api/v1/finetune-jobs/{job}/artifacts/{version}`) with the spoke's
 * own credentials and the digest it declares; the file is read from disk
 * as it is sent, never held whole in memory. Only node:http(s): nothing
 * heavy is loaded for it.
 */
export class ArtifactUploader {
  constructor(private readonly o: ArtifactUploaderOptions) {}

  /** Uploads with retries for transient failures; a refusal (403, 409, 413, 422) ends it at once. */
  async upload(u: ProducedUpload, signal: AbortSignal): Promise<UploadedArtifact> {
    const attempts = this.o.attempts ?? 5;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.once(u, signal);
      } catch (err) {
        if (!(err instanceof UploadError) || !err.transient || attempt >= attempts || signal.aborted) throw err;
        const delay = (this.o.retryDelayMs ?? 1000) * 2 ** (attempt - 1);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, delay);
          signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
        });
      }
    }
  }

  private once(u: ProducedUpload, signal: AbortSignal): Promise<UploadedArtifact> {
    const url = new URL(`${this.o.hubUrl.replace(/\/+$/, '')}/api/v1/finetune-jobs/${encodeURIComponent(u.job)}/artifacts/${encodeURIComponent(u.version)}`);
    const client = url.protocol === 'https:' ? https : http;
    return new Promise<UploadedArtifact>((resolve, reject) => {
      let answered = false;
      const req = client.request(url, {
        method: 'PUT',
        headers: {
          authorization: this.o.authorization(),
          'content-type': 'application/octet-stream',
          'content-length': String(u.sizeBytes),
          'x-flotilla-digest': u.digest,
          accept: 'application/json',
        },
        signal: AbortSignal.any([signal, AbortSignal.timeout(this.o.timeoutMs ?? 600_000)]),
        ...(this.o.ca && url.protocol === 'https:' ? { ca: [...tls.rootCertificates, this.o.ca] } : {}),
      });
      req.once('response', (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size <= 64 * 1024) chunks.push(c);
        });
        res.once('error', (err) => reject(new UploadError(`the hub's answer was cut: ${err.message}`, true)));
        res.once('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const status = res.statusCode ?? 0;
          if (status === 200 || status === 201) {
            const parsed = UploadedArtifactSchema.safeParse(safeJson(text));
            if (parsed.success && parsed.data.digest === u.digest) return resolve(parsed.data);
            return reject(new UploadError(`the hub answered ${status} with an unexpected body`, false, status));
          }
          const why = (safeJson(text) as { error?: { message?: string } } | null)?.error?.message ?? text.slice(0, 300);
          reject(new UploadError(`the hub refused the upload (HTTP ${status}): ${why}`, status === 408 || status === 429 || status >= 500, status));
        });
      });
      req.once('error', (err) => {
        // A hub that answered and closed while the body was still going: the answer counts, not the broken pipe.
        if (!answered) reject(new UploadError(`cannot upload to the hub at ${url.origin}: ${err.message}`, !signal.aborted));
      });
      const body = createReadStream(u.file);
      body.once('error', (err) => req.destroy(err));
      body.pipe(req);
    });
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/**
 * The step after a run passed its gate: where its produced model will be.
 * keep-local: on this spoke (`flotilla:spokes/<spoke>/artifacts/sha256/<hex>`);
 * upload: sent to the hub's store first (`flotilla:artifacts/sha256/<hex>`),
 * and on a refusal or an unreachable hub the run fails saying so (the model
 * stays on this spoke).
 */
export async function publishProduced(p: {
  job: { name: string; output: { artifact: 'keep-local' | 'upload' } };
  spoke: string;
  version: string;
  digest: string;
  file: string;
  sizeBytes: number;
  uploader: Pick<ArtifactUploader, 'upload'> | undefined;
  signal: AbortSignal;
  progress: (message: string) => Promise<void>;
}): Promise<{ ok: true; uri: string } | { ok: false; message: string }> {
  const kept = spokeArtifactUri(p.spoke, p.digest);
  if (p.job.output.artifact === 'keep-local') return { ok: true, uri: kept };
  if (!p.uploader) return { ok: false, message: `output.artifact: upload, but this agent has no hub to upload to; the model stays on this spoke (${kept})` };
  await p.progress(`uploading ${p.version} (${p.sizeBytes} bytes) to the hub's artifact store`);
  try {
    const stored = await p.uploader.upload({ job: p.job.name, version: p.version, digest: p.digest, file: p.file, sizeBytes: p.sizeBytes }, p.signal);
    return { ok: true, uri: stored.uri };
  } catch (err) {
    return { ok: false, message: `upload to the hub failed: ${(err as Error).message}; the model stays on this spoke (${kept})`.slice(0, 2000) };
  }
}
