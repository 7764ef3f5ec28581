import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import { generateSigningKeyPair, publicKeyPem } from '@flotilla/contracts';
import { EnrollError, enroll } from '../../apps/agent/src/enroll/enroll.js';
import { appliedEnvelopePath, credentialsPath, readCredentials } from '../../apps/agent/src/state/state-dir.js';
import { freePort } from './support/broker.js';

type Reply = { status: number; body: unknown } | { status: number; raw: string };

/** Mimics the hub's POST /api/v1/enroll: records requests, answers what the test says. */
class FakeHub {
  readonly requests: { method: string; url: string; contentType: string | undefined; body: unknown }[] = [];
  reply: Reply = { status: 500, raw: '' };
  /** Accept the request and never answer. */
  hang = false;
  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(): Promise<FakeHub> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const hub = new FakeHub(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => void hub.handle(req, res));
    return hub;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    this.requests.push({ method: req.method ?? '', url: req.url ?? '', contentType: req.headers['content-type'], body: text ? JSON.parse(text) : null });
    if (this.hang) return;
    res.statusCode = this.reply.status;
    res.setHeader('content-type', 'application/json');
    res.end('raw' in this.reply ? this.reply.raw : JSON.stringify(this.reply.body));
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

const hubKey = publicKeyPem(generateSigningKeyPair().publicKey);
const accepted = (name = 'site-17') => ({
  status: 201,
  body: {
    spoke: { name, labels: { region: 'eu', site: '17' } },
    mqtt: { url: 'mqtt://127.0.0.1:1883', clientId: `spoke-${name}`, username: name, password: 'generated-secret' },
    hubPublicKey: hubKey,
  },
});

describe('enroll against a hub', () => {
  let hub: FakeHub;
  let root: string;
  let stateDir: string;

  beforeEach(async () => {
    hub = await FakeHub.start();
    root = await mkdtemp(join(tmpdir(), 'flotilla-enroll-'));
    stateDir = join(root, 'state');
  });
  afterEach(async () => {
    await hub.stop();
    await rm(root, { recursive: true, force: true });
  });

  it('posts token, name, labels and facts, and writes the credentials it gets back with mode 0600', async () => {
    hub.reply = accepted();
    const credentials = await enroll({
      hubUrl: `${hub.url}/`,
      token: 'enrol-token-1',
      name: 'site-17',
      labels: { region: 'eu' },
      facts: { gpus: 1 },
      stateDir,
    });
    expect(hub.requests).toEqual([
      {
        method: 'POST',
        url: '/api/v1/enroll',
        contentType: 'application/json',
        body: { token: 'enrol-token-1', name: 'site-17', labels: { region: 'eu' }, facts: { gpus: 1 } },
      },
    ]);
    expect(credentials).toMatchObject({
      hubUrl: hub.url,
      spoke: 'site-17',
      labels: { region: 'eu', site: '17' },
      mqtt: { url: 'mqtt://127.0.0.1:1883', clientId: 'spoke-site-17', username: 'site-17', password: 'generated-secret' },
      hubPublicKey: hubKey,
    });
    expect(await readCredentials(stateDir)).toEqual(credentials);
    expect((await stat(credentialsPath(stateDir))).mode & 0o777).toBe(0o600);
    expect((await stat(stateDir)).mode & 0o777).toBe(0o700);
  });

  it('surfaces the hub error body verbatim and writes nothing', async () => {
    hub.reply = { status: 401, body: { error: { code: 'EnrollmentTokenExpired', message: 'token expired at 2025-01-01T00:00:00Z' } } };
    const err = (await enroll({ hubUrl: hub.url, token: 't', name: 'site-17', stateDir }).catch((e: unknown) => e)) as EnrollError;
    expect(err).toBeInstanceOf(EnrollError);
    expect(err.code).toBe('HubRefused');
    expect(err.message).toBe('hub refused enrolment (HTTP 401 EnrollmentTokenExpired): token expired at 2025-01-01T00:00:00Z');
    expect(err.hub).toEqual({ status: 401, error: { code: 'EnrollmentTokenExpired', message: 'token expired at 2025-01-01T00:00:00Z' } });
    await expect(readdir(stateDir)).rejects.toThrow(/ENOENT/);
  });

  it('reports an error response that is not the hub error shape with its status and body', async () => {
    hub.reply = { status: 502, raw: '<html>Bad gateway</html>' };
    await expect(enroll({ hubUrl: hub.url, token: 't', name: 'site-17', stateDir })).rejects.toThrow(
      /refused enrolment with HTTP 502: <html>Bad gateway<\/html>/,
    );
  });

  it.each([
    ['without hubPublicKey', { ...accepted().body, hubPublicKey: undefined }, /hubPublicKey/],
    ['with an MQTT URL that is not one', { ...accepted().body, mqtt: { ...accepted().body.mqtt, url: 'http://x' } }, /mqtt\.url/],
    [
      'with an RSA key',
      { ...accepted().body, hubPublicKey: generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString() },
      /not an Ed25519 public key/,
    ],
  ])('refuses a response %s, naming the field, and writes nothing', async (_what, body, pattern) => {
    hub.reply = { status: 201, body };
    const err = (await enroll({ hubUrl: hub.url, token: 't', name: 'site-17', stateDir }).catch((e: unknown) => e)) as EnrollError;
    expect(err.code).toBe('InvalidResponse');
    expect(err.message).toMatch(pattern);
    await expect(readdir(stateDir)).rejects.toThrow(/ENOENT/);
  });

  it('refuses a 201 whose body is not JSON', async () => {
    hub.reply = { status: 201, raw: 'ok' };
    await expect(enroll({ hubUrl: hub.url, token: 't', name: 'site-17', stateDir })).rejects.toThrow(/body that is not JSON: ok/);
  });

  it('refuses to enrol over existing credentials and says how to start over, without calling the hub', async () => {
    hub.reply = accepted();
    await enroll({ hubUrl: hub.url, token: 't1', name: 'site-17', stateDir });
    const err = (await enroll({ hubUrl: hub.url, token: 't2', name: 'site-17', stateDir }).catch((e: unknown) => e)) as EnrollError;
    expect(err.code).toBe('AlreadyEnrolled');
    expect(err.message).toContain(`already holds credentials as spoke "site-17" with ${hub.url}`);
    expect(err.message).toContain(`delete ${credentialsPath(stateDir)}`);
    expect(hub.requests).toHaveLength(1);
  });

  it('removes an applied envelope left over from an earlier enrolment', async () => {
    hub.reply = accepted();
    await enroll({ hubUrl: hub.url, token: 't', name: 'site-17', stateDir }); // creates the directory
    await rm(credentialsPath(stateDir));
    await writeFile(appliedEnvelopePath(stateDir), '{"old":true}');
    await enroll({ hubUrl: hub.url, token: 't', name: 'site-17', stateDir });
    expect(await readdir(stateDir)).toEqual(['credentials.json']);
  });

  it('names the hub URL when the hub cannot be reached', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const err = (await enroll({ hubUrl: url, token: 't', name: 'site-17', stateDir }).catch((e: unknown) => e)) as EnrollError;
    expect(err.code).toBe('HubUnreachable');
    expect(err.message).toMatch(new RegExp(`cannot reach the hub at ${url}/api/v1/enroll: .*ECONNREFUSED`));
  });

  it.each([
    [{ hubUrl: 'not a url' }, /hub URL "not a url" is not a URL/],
    [{ hubUrl: 'ftp://hub' }, /must be http:\/\/ or https:\/\//],
    [{ name: 'Site 17' }, /name: must be a DNS label/],
    [{ token: '' }, /token:/],
    [{ labels: { 'bad key!': 'x' } }, /labels\.bad key!/],
  ])('refuses bad input %j before calling the hub', async (bad, pattern) => {
    const err = (await enroll({ hubUrl: hub.url, token: 't', name: 'site-17', stateDir, ...bad }).catch((e: unknown) => e)) as EnrollError;
    expect(err.code).toBe('InvalidInput');
    expect(err.message).toMatch(pattern);
    expect(hub.requests).toHaveLength(0);
  });

  it('gives up on a hub that does not answer within the timeout, saying so', async () => {
    hub.hang = true;
    const err = (await enroll({ hubUrl: hub.url, token: 't', name: 'site-17', stateDir, timeoutMs: 50 }).catch((e: unknown) => e)) as EnrollError;
    expect(err.code).toBe('HubUnreachable');
    expect(err.message).toBe(`cannot reach the hub at ${hub.url}/api/v1/enroll: no answer in time`);
  });

  it('gives up when the caller aborts', async () => {
    hub.reply = accepted();
    const controller = new AbortController();
    controller.abort(new Error('operator pressed ctrl-c'));
    await expect(enroll({ hubUrl: hub.url, token: 't', name: 'site-17', stateDir, signal: controller.signal })).rejects.toThrow('operator pressed ctrl-c');
  });

  it('uses an injected fetch', async () => {
    const calls: string[] = [];
    const fetchStub: typeof fetch = async (input) => {
      calls.push(String(input));
      return new Response(JSON.stringify(accepted('site-9').body), { status: 201 });
    };
    const credentials = await enroll({ hubUrl: 'https://hub.example', token: 't', name: 'site-9', stateDir, fetch: fetchStub });
    expect(calls).toEqual(['https://hub.example/api/v1/enroll']);
    expect(credentials.spoke).toBe('site-9');
  });
});
