import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { enroll, parseAgentConfig, startAgent, stopWorkloads, type RunningAgent } from '../../apps/agent/src/index.js';
import { InferenceGateway } from '../../apps/gateway/src/gateway.js';
import { runCli } from '../support/cli.js';
import { startTestHub, type TestHub } from '../support/hub.js';
import { waitFor } from '../support/wait.js';

const MODEL = path.resolve('test/fixtures/models/linear-classifier-1.0.0.onnx');
const POLICY = `
apiVersion: flotilla.dev/v1
kind: Model
metadata: { name: bridge-defects }
spec:
  task: image-classification
  versions: [{ version: "1.0.0", uri: "file://${MODEL}", digest: "sha256:9a3065dbe5e11b744789cb652460f85cfdb705fa5f4e45a9776f06cdf7ec2ab9", format: onnx }]
---
apiVersion: flotilla.dev/v1
kind: Placement
metadata: { name: routed }
spec: { selector: { matchLabels: { fleet: routed } } }
---
apiVersion: flotilla.dev/v1
kind: ModelDeployment
metadata: { name: bridge-defects-inference }
spec: { model: { name: bridge-defects, version: "1.0.0" }, placement: routed, runtime: builtin }
`;
const SITES = [
  { name: 'lyon', location: '45.764,4.8357' },
  { name: 'marseille', location: '43.2965,5.3698' },
  { name: 'paris', location: '48.8566,2.3522' },
];
/** A caller in Villeurbanne, next to Lyon. */
const CALLER = { lat: 45.77, lon: 4.88 };
const INFER = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [1, 0, 0, 0] }] });

describe('routing: three real agents serving one model, the route table and the gateway in front of them', () => {
  let t: TestHub;
  let dir: string;
  let gateway: InferenceGateway;
  let gatewayUrl: string;
  const agents = new Map<string, RunningAgent>();
  const log = pino({ level: 'silent' });

  const route = async () => (await t.api('GET', `/api/v1/route?model=bridge-defects&lat=${CALLER.lat}&lon=${CALLER.lon}`)).body;
  const infer = (headers: Record<string, string> = {}) =>
    fetch(`${gatewayUrl}/v2/models/bridge-defects/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-client-lat': String(CALLER.lat), 'x-client-lon': String(CALLER.lon), ...headers },
      body: INFER,
    });

  beforeAll(async () => {
    t = await startTestHub({ FLOTILLA_TELEMETRY_INTERVAL: '5' });
    dir = await mkdtemp(path.join(os.tmpdir(), 'flotilla-routing-'));
    const tok = await t.api('POST', '/api/v1/enrollment-tokens', { uses: 3, labels: { fleet: 'routed' } });
    // One through the CLI's --location, the others through the same enrol call.
    const cli = await runCli(['agent', 'enroll', '--hub', t.hub.apiUrl, '--token', tok.body.token, '--name', 'lyon', '--location', '45.764,4.8357', '--state-dir', path.join(dir, 'lyon')]);
    expect({ code: cli.code, stderr: cli.stderr }).toEqual({ code: 0, stderr: '' });
    for (const s of SITES.slice(1)) {
      const [lat, lon] = s.location.split(',').map(Number) as [number, number];
      await enroll({ hubUrl: t.hub.apiUrl, token: tok.body.token, name: s.name, location: { lat, lon }, stateDir: path.join(dir, s.name) });
    }
    for (const s of SITES) {
      const config = parseAgentConfig({ stateDir: path.join(dir, s.name), runtime: 'process', metricsPort: 'off', gpu: 'none', serveAddress: '127.0.0.1', artifactRoot: [path.dirname(MODEL)] });
      agents.set(s.name, await startAgent(config, { logger: log, processRuntime: { restartBackoff: { initialMs: 200, maxMs: 1_000 } } }));
    }
    expect((await t.api('POST', '/api/v1/apply', POLICY)).status).toBe(200);
    const viewer = await t.api('POST', '/api/v1/api-tokens', { name: 'gateway', role: 'viewer' });
    gateway = new InferenceGateway(
      {
        host: '127.0.0.1',
        port: 0,
        hubUrl: t.hub.apiUrl,
        token: viewer.body.token,
        defaultLocation: null,
        pollMs: 300,
        maxStaleMs: 30_000,
        maxBodyBytes: 64 * 1024,
        maxResponseBytes: 1024 * 1024,
        attemptTimeoutMs: 5_000,
        requestTimeoutMs: 10_000,
        maxAttempts: 3,
        ejectMs: 5_000,
      },
      log,
    );
    gatewayUrl = await gateway.start();
  }, 90_000);

  afterAll(async () => {
    await gateway?.stop();
    for (const a of agents.values()) await a.stop();
    for (const s of SITES) await stopWorkloads(path.join(dir, s.name), { graceMs: 0 });
    await t.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('GET /spokes shows each location; the route lists the three nearest first, as flotilla route does', async () => {
    const spokes = (await t.api('GET', '/api/v1/spokes')).body.items as { name: string; location: unknown }[];
    expect(spokes.map((s) => [s.name, s.location])).toEqual([
      ['lyon', { lat: 45.764, lon: 4.8357 }],
      ['marseille', { lat: 43.2965, lon: 5.3698 }],
      ['paris', { lat: 48.8566, lon: 2.3522 }],
    ]);
    const r = await waitFor('three healthy spokes in the route table', async () => {
      const body = await route();
      return body.items.length === 3 ? body : null;
    }, 60_000, 250);
    expect(r.items.map((i: { spoke: string }) => i.spoke)).toEqual(['lyon', 'marseille', 'paris']);
    for (const i of r.items) expect(i.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v2\/models\/bridge-defects$/);

    const viewer = (await t.api('POST', '/api/v1/api-tokens', { name: 'route-reader', role: 'viewer' })).body.token;
    const cli = await runCli(['route', 'bridge-defects', '--near', `${CALLER.lat},${CALLER.lon}`, '-o', 'json'], { FLOTILLA_URL: t.hub.apiUrl, FLOTILLA_TOKEN: viewer });
    expect(cli.stderr).toBe('');
    expect(JSON.parse(cli.stdout).items.map((i: { spoke: string }) => i.spoke)).toEqual(['lyon', 'marseille', 'paris']);
    const table = await runCli(['route', 'bridge-defects', '--near', '48.85,2.35'], { FLOTILLA_URL: t.hub.apiUrl, FLOTILLA_TOKEN: viewer });
    expect(table.stdout.split('\n')[1]).toMatch(/^1\s+paris\s+0\.\d/);
  });

  test('the gateway sends a caller near Lyon to lyon and names it', async () => {
    const res = await infer();
    expect(res.status).toBe(200);
    expect(res.headers.get('x-flotilla-spoke')).toBe('lyon');
    expect(((await res.json()) as { model_name: string }).model_name).toBe('bridge-defects');
    // Readiness goes to the best spoke too: for a caller in Paris, paris.
    const ready = await fetch(`${gatewayUrl}/v2/models/bridge-defects/ready`, { headers: { 'x-client-lat': '48.85', 'x-client-lon': '2.35' } });
    expect([ready.status, ready.headers.get('x-flotilla-spoke')]).toEqual([200, 'paris']);
  });

  test('when lyon’s inference server is killed, a looping client sees no failed request: marseille answers', async () => {
    const failures: string[] = [];
    const answeredBy = new Set<string>();
    let stop = false;
    const t0 = Date.now();
    const loop = (async () => {
      while (!stop) {
        const res = await infer().catch((err: Error & { cause?: Error }) => `${err.message}: ${err.cause?.message ?? ''}`);
        if (typeof res === 'string') failures.push(`at ${Date.now() - t0} ms: ${res}`);
        else if (res.status !== 200) failures.push(`${res.status} ${await res.text()}`);
        else {
          answeredBy.add(res.headers.get('x-flotilla-spoke') ?? '?');
          await res.arrayBuffer();
        }
      }
    })();
    await new Promise((r) => setTimeout(r, 300));
    const [lyonServer] = agents.get('lyon')!.runningWorkloads();
    process.kill(lyonServer!.pid, 'SIGKILL');
    await waitFor('marseille answering', () => answeredBy.has('marseille') || failures.length > 0, 10_000);
    await new Promise((r) => setTimeout(r, 1_500));
    stop = true;
    await loop;
    expect(failures).toEqual([]);
    expect([...answeredBy].sort()).toEqual(['lyon', 'marseille']);
    const metrics = await (await fetch(`${gatewayUrl}/metrics`)).text();
    expect(metrics).toMatch(/flotilla_gateway_retries_total\{spoke="lyon"\} [1-9]/);
  });

  test('the error-ratio threshold routing uses is the schema field spec.rollout.gates.maxErrorRatio: a bad value is refused, naming it', async () => {
    const bad = POLICY.replace('runtime: builtin }', 'runtime: builtin, rollout: { gates: { maxErrorRatio: 1.5 } } }');
    const r = await t.api('POST', '/api/v1/apply', bad);
    expect(r.status).toBe(400);
    expect(r.body.error.details.problems).toEqual([expect.objectContaining({ field: 'spec.rollout.gates.maxErrorRatio', message: expect.stringMatching(/<=1/) })]);
    const ok = await t.api('POST', '/api/v1/apply', POLICY.replace('runtime: builtin }', 'runtime: builtin, rollout: { gates: { maxErrorRatio: 0.25 } } }'));
    expect(ok.status).toBe(200);
    const table = await waitFor('the new threshold in the route table', async () => {
      const body = await route();
      return body.items.length > 0 && body.items.every((i: { maxErrorRatio: number }) => i.maxErrorRatio === 0.25) ? body : null;
    }, 20_000, 250);
    expect(table.items.length).toBeGreaterThan(0);
  });

  test('a spoke that goes offline leaves the route table; no spoke at all is a 503 with the reason', async () => {
    await agents.get('paris')!.stop();
    const r = await waitFor('paris left out', async () => {
      const body = await route();
      return body.excluded.some((e: { spoke: string }) => e.spoke === 'paris') ? body : null;
    }, 20_000, 200);
    expect(r.items.map((i: { spoke: string }) => i.spoke)).not.toContain('paris');
    expect(r.excluded).toContainEqual({ spoke: 'paris', deployment: 'bridge-defects-inference', reason: 'SpokeOffline' });

    const none = await fetch(`${gatewayUrl}/v2/models/no-such-model/infer`, { method: 'POST', body: INFER });
    expect(none.status).toBe(503);
    expect(((await none.json()) as { error: string }).error).toMatch(/no healthy spoke serves no-such-model/);
    expect((await infer({ 'x-client-lat': 'north' })).status).toBe(400);
    const big = await fetch(`${gatewayUrl}/v2/models/bridge-defects/infer`, { method: 'POST', body: 'x'.repeat(70 * 1024) });
    expect(big.status).toBe(413);
  });
});
