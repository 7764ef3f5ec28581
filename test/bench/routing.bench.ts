/**
 * `npm run bench:routing`: what smart routing costs, measured in one run.
 *
 *   npm run bench:routing -- [--duration 10] [--connections 10] [--spokes 10000] [--database-url URL]
 *
 * 1. Gateway overhead: the reference inference server (a real process
 *    serving the test ONNX model) called directly and through `flotilla
 *    gateway` (its own process), each loaded by autocannon on loopback; p50,
 *    p99 and mean latency of both, side by side, and their ratio. The route
 *    table the gateway polls is answered by a stub of GET /api/v1/route (the
 *    hub is not on the request path; the gateway asks it every 2 s).
 * 2. Route lookups: the hub's RouteTable loaded from Postgres with N spokes
 *    all serving one model (the worst case: every lookup ranks them all),
 *    then lookups from random callers: lookups per second and p50/p99.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import pg from 'pg';
import pino from 'pino';
import type { RouteResponse } from '@flotilla/contracts';
import { findFreePort } from '../../apps/hub/src/common/ports.js';
import { createDataSource, runMigrations } from '../../apps/hub/src/database/data-source.js';
import { RouteTable } from '../../apps/hub/src/routing/route-table.js';
import { insertRouteSpokes } from '../support/route-fixtures.js';
import { startScratchPostgres } from '../support/scratch-postgres.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..', '..');
const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '10' },
    spokes: { type: 'string', default: '10000' },
    lookups: { type: 'string', default: '20000' },
    'database-url': { type: 'string' },
  },
});
const duration = Number(args.duration);
const connections = Number(args.connections);
const spokeCount = Number(args.spokes);
const lookupCount = Number(args.lookups);
const MODEL_FILE = path.join(repoRoot, 'test/fixtures/models/linear-classifier-1.0.0.onnx');
const INFER = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [1, 0, 0, 0] }] });

const cleanups: Array<() => Promise<void> | void> = [];
const log = (s: string) => process.stdout.write(`${s}\n`);

function waitForLine(child: ChildProcess, pattern: RegExp, what: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`${what} did not start: ${seen.slice(-500)}`)), 30_000);
    const onData = (d: Buffer) => {
      seen += d.toString();
      const m = pattern.exec(seen);
      if (m) {
        clearTimeout(timer);
        resolve(m[1] ?? m[0]);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${what} exited (${code}): ${seen.slice(-500)}`)));
  });
}

async function ready(url: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if ((await fetch(url).then((r) => r.status, () => 0)) === 200) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} never answered 200`);
}

async function load(url: string, headers: Record<string, string> = {}) {
  const r = await autocannon({ url, method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: INFER, connections, duration });
  if (r.errors || r.non2xx) throw new Error(`${url}: ${r.errors} errors, ${r.non2xx} non-2xx answers under load`);
  return r;
}

async function gatewayOverhead() {
  const serverPort = await findFreePort();
  const server = spawn(process.execPath, [path.join(repoRoot, 'dist/libs/inference-server/src/main.js'), '--model', `bridge-defects=${MODEL_FILE}`, '--version', '1.0.0', '--host', '127.0.0.1', '--port', String(serverPort), '--execution-provider', 'cpu'], { stdio: ['ignore', 'pipe', 'pipe'] });
  cleanups.push(() => void server.kill('SIGKILL'));
  const endpoint = `http://127.0.0.1:${serverPort}/v2/models/bridge-defects`;
  await ready(`${endpoint}/ready`);

  // Stub of the hub's route endpoint: one healthy spoke, the server above.
  const table: RouteResponse = {
    model: 'bridge-defects',
    version: null,
    near: null,
    evaluatedAt: new Date().toISOString(),
    items: [
      {
        spoke: 'bench',
        deployment: 'bridge-defects-inference',
        endpoint,
        servingVersion: '1.0.0',
        location: { lat: 45.76, lon: 4.84 },
        region: null,
        distanceKm: null,
        load: 0,
        requestsPerSecond: 0,
        readyReplicas: 1,
        latencyP99Ms: null,
        errorRatio: 0,
        maxErrorRatio: 0.1,
        lastSeenAt: new Date().toISOString(),
        telemetryAt: new Date().toISOString(),
      },
    ],
    excludedCount: 0,
    excluded: [],
  };
  const hub = http.createServer((req, res) => {
    if (req.url?.startsWith('/healthz')) return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ...table, evaluatedAt: new Date().toISOString() }));
  });
  await new Promise<void>((r) => hub.listen(0, '127.0.0.1', r));
  cleanups.push(() => void hub.close());
  const hubUrl = `http://127.0.0.1:${(hub.address() as AddressInfo).port}`;

  const gatewayPort = await findFreePort();
  const gateway = spawn(process.execPath, [path.join(repoRoot, 'bin/flotilla.js'), 'gateway', '--listen', `127.0.0.1:${gatewayPort}`, '--url', hubUrl, '--token', 'bench', '--log-level', 'warn'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  cleanups.push(() => void gateway.kill('SIGTERM'));
  await waitForLine(gateway, /serving KServe v2 at (\S+)/, 'flotilla gateway');
  const gatewayUrl = `http://127.0.0.1:${gatewayPort}/v2/models/bridge-defects/infer`;
  const near = { 'x-client-lat': '45.7', 'x-client-lon': '4.8' };
  const check = await fetch(gatewayUrl, { method: 'POST', headers: { 'content-type': 'application/json', ...near }, body: INFER });
  if (check.status !== 200 || check.headers.get('x-flotilla-spoke') !== 'bench') throw new Error(`gateway answered ${check.status}: ${await check.text()}`);

  log(`gateway overhead on loopback: POST /v2/models/bridge-defects/infer, direct to the inference server and through flotilla gateway`);
  // Warm both paths (JIT, kept-alive sockets), then alternate direct and gateway so drift on a shared machine hits both.
  await probe(`${endpoint}/infer`, {}, 1);
  await probe(gatewayUrl, near, 1);
  const directLat = [await probe(`${endpoint}/infer`, {}, duration)];
  const viaLat = [await probe(gatewayUrl, near, duration)];
  directLat.push(await probe(`${endpoint}/infer`, {}, duration));
  viaLat.push(await probe(gatewayUrl, near, duration));
  const merged = (runs: Float64Array[]) => {
    const all = Float64Array.from(runs.flatMap((r) => [...r])).sort();
    return { n: all.length, p50: quantile(all, 0.5), p99: quantile(all, 0.99) };
  };
  const d = merged(directLat);
  const g = merged(viaLat);
  log(`\n1 client, one request at a time, latency per request (hrtime, microsecond resolution), ${duration} s twice per path:`);
  log('| path | requests | p50 ms | p99 ms |');
  log('|---|---|---|---|');
  log(`| direct to the inference server | ${d.n} | ${d.p50.toFixed(3)} | ${d.p99.toFixed(3)} |`);
  log(`| through flotilla gateway | ${g.n} | ${g.p50.toFixed(3)} | ${g.p99.toFixed(3)} |`);
  log(`ratio gateway/direct: p50 ${(g.p50 / d.p50).toFixed(2)}x, p99 ${(g.p99 / d.p99).toFixed(2)}x; added p50 ${(g.p50 - d.p50).toFixed(3)} ms`);

  const direct = [await load(`${endpoint}/infer`)];
  const via = [await load(gatewayUrl, near)];
  direct.push(await load(`${endpoint}/infer`));
  via.push(await load(gatewayUrl, near));
  const avg = (rs: typeof direct, f: (r: (typeof direct)[number]) => number) => rs.reduce((a, r) => a + f(r), 0) / rs.length;
  const row = (name: string, rs: typeof direct) =>
    `| ${name} | ${avg(rs, (r) => r.latency.p50).toFixed(1)} | ${avg(rs, (r) => r.latency.p99).toFixed(1)} | ${Math.round(avg(rs, (r) => r.requests.average))} | ${rs.reduce((a, r) => a + r.requests.total, 0)} |`;
  log(`\nautocannon, ${connections} connections, ${duration} s twice per path (autocannon records latency in whole milliseconds):`);
  log('| path | p50 ms | p99 ms | req/s | requests |');
  log('|---|---|---|---|---|');
  log(row('direct to the inference server', direct));
  log(row('through flotilla gateway', via));
  const ratio = (f: (r: (typeof direct)[number]) => number) => (avg(via, f) / avg(direct, f)).toFixed(2);
  log(`ratio gateway/direct: p50 ${ratio((r) => r.latency.p50)}x, p99 ${ratio((r) => r.latency.p99)}x, throughput ${ratio((r) => r.requests.average)}x`);
}

const probeAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });

/** One request at a time for `seconds`, each timed with hrtime: latencies in ms. */
async function probe(url: string, headers: Record<string, string>, seconds: number): Promise<Float64Array> {
  const out: number[] = [];
  const body = Buffer.from(INFER);
  const until = Date.now() + seconds * 1000;
  while (Date.now() < until) {
    const a = process.hrtime.bigint();
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(url, { method: 'POST', agent: probeAgent, headers: { 'content-type': 'application/json', 'content-length': body.length, ...headers } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end(body);
    });
    if (status !== 200) throw new Error(`${url} answered ${status}`);
    out.push(Number(process.hrtime.bigint() - a) / 1e6);
  }
  return Float64Array.from(out);
}

function quantile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number;
}

async function routeLookups() {
  let databaseUrl: string;
  if (args['database-url']) {
    const base = args['database-url'];
    const name = `flotilla_routebench_${randomBytes(4).toString('hex')}`;
    const admin = new pg.Client({ connectionString: base });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    await admin.end();
    const u = new URL(base);
    u.pathname = `/${name}`;
    databaseUrl = u.toString();
    cleanups.push(async () => {
      const c = new pg.Client({ connectionString: base });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    });
  } else {
    const scratch = await startScratchPostgres();
    cleanups.push(() => scratch.stop());
    databaseUrl = scratch.url;
  }
  const ds = createDataSource(databaseUrl);
  await ds.initialize();
  cleanups.push(() => ds.destroy());
  await runMigrations(ds);
  // Spread over Europe, all serving the model: every lookup has every spoke to rank.
  const rnd = (min: number, max: number) => min + Math.random() * (max - min);
  await insertRouteSpokes(
    ds,
    Array.from({ length: spokeCount }, (_, i) => ({
      name: `site-${String(i).padStart(5, '0')}`,
      location: i % 10 === 9 ? null : { lat: rnd(36, 60), lon: rnd(-9, 25) },
      requestsPerSecond: rnd(0, 50),
      latencyP99Ms: rnd(5, 80),
      errorRatio: i % 50 === 0 ? 0.5 : 0,
    })),
  );
  const table = new RouteTable(ds, 3600, pino({ level: 'silent' }));
  const t0 = process.hrtime.bigint();
  await table.rebuild();
  const rebuildMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const times = new Float64Array(lookupCount);
  let candidates = 0;
  const start = process.hrtime.bigint();
  for (let i = 0; i < lookupCount; i++) {
    const a = process.hrtime.bigint();
    const r = table.lookup({ model: 'bridge-defects', near: { lat: rnd(36, 60), lon: rnd(-9, 25) }, limit: 10 });
    times[i] = Number(process.hrtime.bigint() - a) / 1e6;
    candidates = spokeCount - r.excludedCount;
  }
  const totalS = Number(process.hrtime.bigint() - start) / 1e9;
  times.sort();
  const q = (p: number) => quantile(times, p);
  log(`\nroute lookups: RouteTable with ${spokeCount} spokes serving the model (loaded from Postgres in ${rebuildMs.toFixed(0)} ms; ${table.size} entries, ${candidates} healthy candidates ranked per lookup), limit 10, random callers`);
  log(`| lookups | lookups/s | p50 ms | p99 ms | max ms |`);
  log('|---|---|---|---|---|');
  log(`| ${lookupCount} | ${Math.round(lookupCount / totalS)} | ${q(0.5).toFixed(3)} | ${q(0.99).toFixed(3)} | ${(times[times.length - 1] as number).toFixed(3)} |`);
}

try {
  await gatewayOverhead();
  await routeLookups();
} finally {
  for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => undefined);
}
