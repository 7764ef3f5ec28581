/**
 * `flotilla:` artifact URIs: where a fine-tuned model's bytes are, in words
 * every spoke reads the same whatever URL it reaches its hub by.
 *
 * - `flotilla:artifacts/sha256/<hex>`: in the hub's artifact store
 *   (output.artifact: upload); an agent fetches it from its own hub,
 *   `GET /api/v1/artifacts/sha256/<hex>`, with its spoke credentials.
 * - `flotilla:spokes/<spoke>/artifacts/sha256/<hex>`: kept on that spoke
 *   only (output.artifact: keep-local); only that spoke can serve it.
 */
export type FlotillaArtifactLocation = { kind: 'hub'; hex: string } | { kind: 'spoke'; spoke: string; hex: string };

const HUB = /^flotilla:artifacts\/sha256\/([a-f0-9]{64})$/;
const SPOKE = /^flotilla:spokes\/([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)\/artifacts\/sha256\/([a-f0-9]{64})$/;

const hexOf = (digest: string): string => {
  const m = /^sha256:([a-f0-9]{64})$/.exec(digest);
  if (!m) throw new RangeError(`"${digest}" is not a sha256: digest`);
  return m[1] as string;
};

/** The URI of an artifact in the hub's store. */
export function hubArtifactUri(digest: string): string {
  return `flotilla:artifacts/sha256/${hexOf(digest)}`;
}

/** The URI of an artifact kept on one spoke (keep-local). */
export function spokeArtifactUri(spoke: string, digest: string): string {
  return `flotilla:spokes/${spoke}/artifacts/sha256/${hexOf(digest)}`;
}

/** Reads a `flotilla:` URI; null for anything else (a malformed `flotilla:` URI included). */
export function parseFlotillaArtifactUri(uri: string): FlotillaArtifactLocation | null {
  const hub = HUB.exec(uri);
  if (hub) return { kind: 'hub', hex: hub[1] as string };
  const spoke = SPOKE.exec(uri);
  if (spoke) return { kind: 'spoke', spoke: spoke[1] as string, hex: spoke[3] as string };
  return null;
}

/** The download path of an artifact in the hub's store, under the API prefix. */
export function hubArtifactPath(hex: string): string {
  return `/api/v1/artifacts/sha256/${hex}`;
}
