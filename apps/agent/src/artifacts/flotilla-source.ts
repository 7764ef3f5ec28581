import { constants, createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { hubArtifactPath, parseFlotillaArtifactUri } from '@flotilla/contracts';
import type { FetchLike } from '../security/guarded-fetch.js';
import type { SourcePolicy } from '../security/source-policy.js';
import { ArtifactError, describeError } from './artifact-error.js';
import { HttpSource } from './http-source.js';
import type { ArtifactSource, OpenRequest, OpenResult } from './source.js';

/** How this agent reaches its hub's artifact store, and what it keeps itself. */
export interface FlotillaSourceSettings {
  /** This spoke's name: `flotilla:spokes/<it>/...` is read locally. */
  spoke: string;
  /** The hub's API base URL, as enrolled (`https://hub.example:8443`). */
  hubUrl: string;
  /** `Authorization` header value for the hub: the spoke's own credentials. */
  authorization: () => string;
  /** The CA certificates pinned at enrolment, trusted for the hub's origin (beside the system's). */
  ca?: string;
  /** Where this spoke keeps a produced artifact it did not upload (keep-local), by sha256 hex. */
  keptArtifactPath: (hex: string) => string;
}

/**
 * Reads `flotilla:` URIs (libs/contracts artifact-uri.ts):
 * `flotilla:artifacts/sha256/<hex>` from the hub's artifact store, through
 * the normal verified HTTP path, with the spoke's credentials sent to the
 * hub's own origin only (never to a redirect elsewhere); and
 * `flotilla:spokes/<spoke>/artifacts/sha256/<hex>` from this spoke's kept
 * artifacts when it is this spoke, or refused with a message naming the
 * spoke that has it.
 */
export class FlotillaSource implements ArtifactSource {
  private readonly http: HttpSource;
  private readonly hubOrigin: string;

  constructor(
    private readonly s: FlotillaSourceSettings,
    fetchFn: FetchLike,
    policy: SourcePolicy,
  ) {
    this.hubOrigin = new URL(s.hubUrl).origin;
    const authorised: FetchLike = (input, init) => {
      if (new URL(input).origin !== this.hubOrigin) return fetchFn(input, init);
      const headers = new Headers(init.headers);
      headers.set('authorization', s.authorization());
      return fetchFn(input, { ...init, headers });
    };
    this.http = new HttpSource(authorised, policy);
  }

  /** The hub URL a `flotilla:artifacts/...` URI is fetched from. */
  hubUrlOf(hex: string): string {
    return `${this.s.hubUrl.replace(/\/+$/, '')}${hubArtifactPath(hex)}`;
  }

  async open(req: OpenRequest): Promise<OpenResult> {
    const where = parseFlotillaArtifactUri(req.uri);
    if (!where) throw new ArtifactError('ArtifactInvalid', `${req.uri} is not a flotilla: artifact URI`, { uri: req.uri, digest: req.digest });
    if (where.kind === 'hub') {
      try {
        return await this.http.open({ ...req, uri: this.hubUrlOf(where.hex) });
      } catch (err) {
        if (err instanceof ArtifactError) throw new ArtifactError(err.reason, `${err.message} (${req.uri}, the hub's artifact store)`, { uri: req.uri, digest: req.digest, cause: err, transient: err.transient });
        throw err;
      }
    }
    if (where.spoke !== this.s.spoke) {
      throw new ArtifactError(
        'ArtifactUnavailable',
        `the artifact of this version is kept only on spoke ${where.spoke} (its fine-tuning job says output.artifact: keep-local); it cannot be fetched here — run the job with output.artifact: upload to serve it on other spokes`,
        { uri: req.uri, digest: req.digest, transient: false },
      );
    }
    const file = this.s.keptArtifactPath(where.hex);
    let handle;
    let size: number;
    try {
      handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
      size = (await handle.stat()).size;
    } catch (err) {
      await handle?.close();
      throw new ArtifactError('ArtifactUnavailable', `the artifact this spoke kept (${req.uri}) is not at ${file}: ${describeError(err)}`, { uri: req.uri, digest: req.digest, cause: err, transient: false });
    }
    if (req.offset > size) {
      await handle.close();
      return { kind: 'restart' };
    }
    return { kind: 'body', resumed: true, totalBytes: size, validator: null, body: createReadStream('', { fd: handle, start: req.offset, signal: req.signal }) };
  }
}
