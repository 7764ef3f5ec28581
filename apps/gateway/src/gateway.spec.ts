import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import type { RouteItem } from '@flotilla/contracts';
import { InferenceGateway } from './gateway.js';

/**
 * The gateway's forwarding path against real HTTP servers on loopback: spokes
 * that echo what they got (or fail in chosen ways) and a hub that answers the
 * route table. What the three-agent end-to-end test (test/e2e/routing.test.ts)
 * cannot arrange: large and slow bodies, a 5xx before the body arrived,
 * answers cut off, rankings that change with the table.
 */

type Behaviour = 'echo' | 'fail-500-early' | 'fail-503-after-body';

interface Spoke {
  name: string;
  server: http.Server;
  endpoint: string;
  behaviour: Behaviour;
  /** Bodies received, by their digest. */
  received: string[];
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function startSpoke(name: string, behaviour: Behaviour): Promise<Spoke> {
  const spoke: Spoke = { name, server: http.createServer(), endpoint: '', behaviour, received: [] };
  spoke.server.on('request', (req, res) => {
    if (spoke.behaviour === 'fail-500-early') {
      // Answers before reading the body, as a spoke whose model crashed might.
      res.writeHead(500, { 'content-type': 'application/json', connection: 'close' }).end(JSON.stringify({ error: `model on ${name} is not loaded` }));
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      spoke.received.push(sha(body));
      if (spoke.behaviour === 'fail-503-after-body') {
        res.writeHead(503, { 'content-type': 'text/plain' }).end('overloaded');
        return;
      }
      // The answer: the body echoed back.
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-digest': sha(body), 'content-length': body.length }).end(body);
    });
  });
  await new Promise<void>((r) => spoke.server.listen(0, '127.0.0.1', r));
  spoke.endpoint = `http://127.0.0.1:${(spoke.server.address() as AddressInfo).port}/v2/models/m`;
  return spoke;
}

function item(spoke: string, endpoint: string, lat: number, lon: number): RouteItem {
  const now = new Date().toISOString();
  return {
    spoke,
    deployment: 'm-inference',
    endpoint,
    servingVersion: '1',
    location: { lat, lon },
    region: null,
    distanceKm: null,
    load: 0,
    requestsPerSecond: 0,
    readyReplicas: 1,
    latencyP99Ms: null,
    errorRatio: 0,
    maxErrorRatio: 0.05,
    lastSeenAt: now,
    telemetryAt: now,
  };
}

describe('InferenceGateway forwarding (real HTTP on loopback)', () => {
  const LYON = { lat: 45.76, lon: 4.84 };
  const PARIS = { lat: 48.86, lon: 2.35 };
  let spokes: Record<'lyon' | 'paris' | 'brest', Spoke>;
  let table: RouteItem[];
  let hub: http.Server;
  let gateway: InferenceGateway;
  let url: string;

  const call = (body: Buffer | undefined, near = LYON, headers: Record<string, string> = {}) =>
    fetch(`${url}/v2/models/m/infer`, { method: 'POST', headers: { 'x-client-lat': String(near.lat), 'x-client-lon': String(near.lon), ...headers }, body: body ? new Uint8Array(body) : undefined });

  beforeAll(async () => {
    spokes = { lyon: await startSpoke('lyon', 'echo'), paris: await startSpoke('paris', 'echo'), brest: await startSpoke('brest', 'echo') };
    table = [item('lyon', spokes.lyon.endpoint, LYON.lat, LYON.lon), item('paris', spokes.paris.endpoint, PARIS.lat, PARIS.lon), item('brest', spokes.brest.endpoint, 48.39, -4.49)];
    hub = http.createServer((req, res) => {
      if (req.url?.startsWith('/healthz')) return void res.writeHead(200).end('{}');
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ model: 'm', version: null, near: null, evaluatedAt: new Date().toISOString(), items: table, excludedCount: 0, excluded: [] }));
    });
    await new Promise<void>((r) => hub.listen(0, '127.0.0.1', r));
    gateway = new InferenceGateway(
      {
        host: '127.0.0.1',
        port: 0,
        hubUrl: `http://127.0.0.1:${(hub.address() as AddressInfo).port}`,
        token: 't',
        defaultLocation: null,
        pollMs: 100,
        maxStaleMs: 30_000,
        maxBodyBytes: 4 * 1024 * 1024,
        maxResponseBytes: 8 * 1024 * 1024,
        attemptTimeoutMs: 5_000,
        requestTimeoutMs: 10_000,
        maxAttempts: 3,
        ejectMs: 60_000,
      },
      pino({ level: 'silent' }),
    );
    url = await gateway.start();
  });

  afterAll(async () => {
    await gateway.stop();
    await new Promise((r) => hub.close(r));
    for (const s of Object.values(spokes)) {
      s.server.closeAllConnections();
      await new Promise((r) => s.server.close(r));
    }
  });

  beforeEach(() => {
    for (const s of Object.values(spokes)) {
      s.behaviour = 'echo';
      s.received = [];
    }
  });

  test('a 3 MB body goes to the nearest spoke and its answer comes back byte for byte, the spoke named', async () => {
    const body = Buffer.alloc(3 * 1024 * 1024);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7919) & 0xff;
    const res = await call(body);
    const back = Buffer.from(await res.arrayBuffer());
    expect([res.status, res.headers.get('x-flotilla-spoke'), res.headers.get('x-flotilla-attempts')]).toEqual([200, 'lyon', '1']);
    expect(res.headers.get('x-digest')).toBeNull(); // answer headers other than the KServe ones stay behind
    expect(sha(back)).toBe(sha(body));
    expect(spokes.lyon.received).toEqual([sha(body)]);
    // A caller in Paris goes to paris: rankings are per caller location.
    const fromParis = await call(Buffer.from('{}'), PARIS);
    expect(fromParis.headers.get('x-flotilla-spoke')).toBe('paris');
  });

  test('a spoke that answers 500 before the body arrived: the whole body, sent slowly, goes to the next spoke', async () => {
    spokes.lyon.behaviour = 'fail-500-early';
    const parts = [Buffer.alloc(200_000, 1), Buffer.alloc(300_000, 2), Buffer.alloc(100_000, 3)];
    const whole = Buffer.concat(parts);
    const port = Number(new URL(url).port);
    const answer = await new Promise<{ status: number; spoke: string; attempts: string; body: Buffer }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/v2/models/m/infer', headers: { 'x-client-lat': '45.76', 'x-client-lon': '4.84' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, spoke: String(res.headers['x-flotilla-spoke']), attempts: String(res.headers['x-flotilla-attempts']), body: Buffer.concat(chunks) }),
        );
      });
      req.on('error', reject);
      // Chunked, with pauses: the first spoke fails while most of the body is still to come.
      void (async () => {
        for (const p of parts) {
          req.write(p);
          await new Promise((r) => setTimeout(r, 150));
        }
        req.end();
      })();
    });
    expect([answer.status, answer.spoke, answer.attempts]).toEqual([200, 'paris', '2']);
    expect(spokes.paris.received).toEqual([sha(whole)]);
    expect(sha(answer.body)).toBe(sha(whole));
    const metrics = await (await fetch(`${url}/metrics`)).text();
    // A 500, or the socket lyon closed under the body still being sent: either way one failed attempt.
    expect(metrics).toMatch(/flotilla_gateway_upstream_errors_total\{spoke="lyon",reason="(http_500|ECONNRESET|EPIPE)"\} 1/);
    expect(metrics).toMatch(/flotilla_gateway_retries_total\{spoke="lyon"\} 1/);
    expect(metrics).toMatch(/flotilla_gateway_requests_total\{model="m",spoke="paris",code="200"\} [1-9]/);
  });

  test('a closed port and a 503 are passed over; when every spoke fails, a 503 names each failure and what the spoke said', async () => {
    // lyon is ejected since the last test (a circuit open for a minute): tried last.
    spokes.paris.behaviour = 'fail-503-after-body';
    const body = Buffer.from(JSON.stringify({ inputs: [] }));
    const ok = await call(body, PARIS);
    expect([ok.status, ok.headers.get('x-flotilla-spoke')]).toEqual([200, 'brest']);
    expect(spokes.paris.received).toEqual([sha(body)]);

    spokes.brest.behaviour = 'fail-500-early';
    spokes.lyon.behaviour = 'fail-500-early';
    const none = await call(body, PARIS);
    expect(none.status).toBe(503);
    const { error } = (await none.json()) as { error: string };
    expect(error).toMatch(/^no spoke could serve m: /);
    expect(error).toContain('paris: HTTP 503: overloaded');
    expect(error).toContain('brest: HTTP 500: model on brest is not loaded');
    expect(error).toContain('lyon: HTTP 500: model on lyon is not loaded');
  });

  test('bodies over the bound are refused with 413, declared or streamed; no spoke sees them', async () => {
    const big = Buffer.alloc(4 * 1024 * 1024 + 1);
    const declared = await call(big);
    expect(declared.status).toBe(413);
    expect(((await declared.json()) as { error: string }).error).toMatch(/over the gateway's limit of 4194304/);
    const port = Number(new URL(url).port);
    const streamed = await new Promise<number>((resolve) => {
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/v2/models/m/infer' }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', () => resolve(-1));
      for (let i = 0; i < 5; i++) req.write(Buffer.alloc(1024 * 1024));
      req.end();
    });
    expect(streamed).toBe(413);
    for (const s of Object.values(spokes)) expect(s.received).toEqual([]);
  });

  test('a new route table replaces the cached rankings: a spoke gone from it is no longer chosen', async () => {
    const before = await call(Buffer.from('{}'), PARIS);
    expect(before.headers.get('x-flotilla-spoke')).toBe('paris');
    table = table.filter((i) => i.spoke !== 'paris');
    const after = await (async () => {
      for (let i = 0; i < 50; i++) {
        const r = await call(Buffer.from('{}'), PARIS);
        await r.arrayBuffer();
        if (r.headers.get('x-flotilla-spoke') !== 'paris') return r.headers.get('x-flotilla-spoke');
        await new Promise((res) => setTimeout(res, 50));
      }
      return 'paris';
    })();
    // Paris's caller now goes to the nearest spoke left (both left failed in the test before: ejected alike, so rank order holds).
    expect(after).toBe('lyon');
  });
});
