import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { hubArtifactUri, spokeArtifactUri, type ModelRef } from '@flotilla/contracts';
import { ArtifactCache } from '../../apps/agent/src/artifacts/index.js';
import { testSourcePolicy } from '../support/source-policy.js';

/**
 * The agent's cache reading `flotilla:` URIs: the hub's store over HTTP with
 * the spoke's credentials, which go to the hub's origin and never to a
 * redirect elsewhere; an artifact kept on this spoke read from its own copy;
 * one kept on another spoke refused, naming that spoke.
 */
describe('flotilla: artifact URIs in the agent cache', () => {
  let dir: string;
  let hub: Server;
  let elsewhere: Server;
  let hubUrl: string;
  let elsewhereUrl: string;
  const seen: { server: string; url: string; headers: IncomingHttpHeaders }[] = [];
  const bytes = randomBytes(50_000);
  const hex = createHash('sha256').update(bytes).digest('hex');
  const moved = randomBytes(30_000);
  const movedHex = createHash('sha256').update(moved).digest('hex');
  const AUTH = `Basic ${Buffer.from('spoke-user:spoke-password').toString('base64')}`;

  const listen = async (s: Server) => {
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
  };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'flotilla-flotilla-uri-'));
    hub = createServer((req, res) => {
      seen.push({ server: 'hub', url: req.url ?? '', headers: req.headers });
      if (req.headers.authorization !== AUTH) return void res.writeHead(401).end();
      if (req.url === `/api/v1/artifacts/sha256/${hex}`) return void res.writeHead(200, { 'content-length': String(bytes.length) }).end(bytes);
      if (req.url === `/api/v1/artifacts/sha256/${movedHex}`) return void res.writeHead(302, { location: `${elsewhereUrl}/blob` }).end();
      res.writeHead(404).end();
    });
    elsewhere = createServer((req, res) => {
      seen.push({ server: 'elsewhere', url: req.url ?? '', headers: req.headers });
      res.writeHead(200, { 'content-length': String(moved.length) }).end(moved);
    });
    hubUrl = await listen(hub);
    elsewhereUrl = await listen(elsewhere);
  });
  afterAll(async () => {
    hub?.close();
    elsewhere?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const cacheFor = (name: string) =>
    new ArtifactCache({
      root: path.join(dir, name),
      maxBytes: 1 << 30,
      maxArtifactBytes: 1 << 30,
      sources: testSourcePolicy({ trustedOrigins: [hubUrl] }),
      retry: { attempts: 1 },
      flotilla: { spoke: 'site-a', hubUrl, authorization: () => AUTH, keptArtifactPath: (h) => path.join(dir, 'kept', h, 'model.onnx') },
    });
  const ref = (uri: string, digestHex: string): ModelRef => ({ name: 'tuned', version: '1.0.0-ft.x', digest: `sha256:${digestHex}`, uri, format: 'onnx' });

  it("fetches flotilla:artifacts/... from the hub's store with the spoke's credentials, verified", async () => {
    const got = await cacheFor('a').ensure(ref(hubArtifactUri(`sha256:${hex}`), hex), AbortSignal.timeout(10_000));
    expect(got.digest).toBe(`sha256:${hex}`);
    expect(seen.find((s) => s.server === 'hub' && s.url.endsWith(hex))?.headers.authorization).toBe(AUTH);
  });

  it('sends the credentials to the hub only: a redirect elsewhere is followed without them', async () => {
    await cacheFor('b').ensure(ref(hubArtifactUri(`sha256:${movedHex}`), movedHex), AbortSignal.timeout(10_000));
    const away = seen.filter((s) => s.server === 'elsewhere');
    expect(away).toHaveLength(1);
    expect(away[0]!.headers.authorization).toBeUndefined();
  });

  it('reads an artifact this spoke kept from its own copy, and refuses one kept on another spoke, naming it', async () => {
    await mkdir(path.join(dir, 'kept', hex), { recursive: true });
    await writeFile(path.join(dir, 'kept', hex, 'model.onnx'), bytes);
    const before = seen.length;
    const own = await cacheFor('c').ensure(ref(spokeArtifactUri('site-a', `sha256:${hex}`), hex), AbortSignal.timeout(10_000));
    expect(own.digest).toBe(`sha256:${hex}`);
    expect(seen.length).toBe(before);
    await expect(cacheFor('d').ensure(ref(spokeArtifactUri('site-b', `sha256:${hex}`), hex), AbortSignal.timeout(10_000))).rejects.toMatchObject({
      reason: 'ArtifactUnavailable',
      message: expect.stringContaining('kept only on spoke site-b'),
    });
  });
});
