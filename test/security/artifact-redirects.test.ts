import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ArtifactCache } from '../../apps/agent/src/artifacts/index.js';
import { guardedFetch } from '../../apps/agent/src/security/guarded-fetch.js';
import { SourcePolicy, SourceRefusedError } from '../../apps/agent/src/security/source-policy.js';
import { modelBytes, modelRef, sha256 } from '../artifacts/artifact-test-kit.js';

/**
 * The http(s) half of finding 4 at the agent's own boundary: a redirect
 * from an allowed server to a private address is not followed, and a name
 * that resolves to loopback is refused at connection time (what a DNS
 * rebinding would exploit), with nothing fetched.
 */
describe('http(s) artifact sources under the source policy', () => {
  let allowed: Server;
  let internal: Server;
  let allowedOrigin: string;
  let internalPort: number;
  let internalHits = 0;
  let root: string;
  const body = modelBytes(256);

  const listen = async (server: Server) => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return (server.address() as AddressInfo).port;
  };

  beforeAll(async () => {
    internal = createServer((_req, res) => {
      internalHits += 1;
      res.end(body);
    });
    internalPort = await listen(internal);
    // Stands for the agent's hub (its one trusted origin), answering with a redirect inwards.
    allowed = createServer((req, res) => {
      if (req.url === '/model.onnx') res.end(body);
      else res.writeHead(302, { location: `http://127.0.0.1:${internalPort}/secret` }).end();
    });
    allowedOrigin = `http://127.0.0.1:${await listen(allowed)}`;
    root = await mkdtemp(path.join(os.tmpdir(), 'redirects-'));
  });

  afterAll(async () => {
    await new Promise((r) => allowed?.close(r));
    await new Promise((r) => internal?.close(r));
    await rm(root, { recursive: true, force: true });
  });

  const policy = () => new SourcePolicy({ artifactRoots: [], datasetRoots: [], allowPrivateArtifactHosts: false, artifactHostCidrs: [], trustedOrigins: [allowedOrigin], trainerRegistries: [] });
  const cache = () => new ArtifactCache({ root, maxBytes: 1 << 20, maxArtifactBytes: 1 << 20, sources: policy(), retry: { attempts: 1 } });

  test('the trusted origin serves; its redirect to a private address is refused and never followed', async () => {
    await expect(cache().ensure(modelRef(body, `${allowedOrigin}/model.onnx`), AbortSignal.timeout(10_000))).resolves.toEqual(expect.objectContaining({ digest: sha256(body) }));
    const err = await cache()
      .ensure(modelRef(modelBytes(300), `${allowedOrigin}/moved.onnx`, { version: '2' }), AbortSignal.timeout(10_000))
      .then(() => null, (e: unknown) => e as { reason: string; message: string });
    expect(err).toEqual(expect.objectContaining({ reason: 'SourceRefused' }));
    expect(err?.message).toContain(`http://127.0.0.1:${internalPort}/secret: 127.0.0.1:${internalPort} resolves to 127.0.0.1`);
    expect(internalHits).toBe(0);
  });

  test('a name resolving to loopback is refused by the connection itself, before any byte is sent', async () => {
    const refused = await guardedFetch(policy())(`http://localhost:${internalPort}/secret`, {}).then(() => null, (e: unknown) => e);
    expect(refused).toBeInstanceOf(SourceRefusedError);
    expect(internalHits).toBe(0);
    expect(await readdir(path.join(root, 'tmp'))).toEqual([]);
  });
});
