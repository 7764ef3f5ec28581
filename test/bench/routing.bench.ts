/**
 * `npm run bench:routing`: what smart routing costs, measured in one run.
 *
 *   npm run bench:routing -- [--duration 10] [--models tiny,mobilenet] [--connections 1,10]
 *                            [--spokes 10000] [--lookups 20000] [--database-url URL] [--profile DIR]
 *
 * 1. Gateway overhead, for two models served by the reference inference
 *    server (one real process) and loaded by autocannon on loopback, directly
 *    and through `flotilla gateway` (its own process), at 1 and at 10
 *    connections:
 *    - `tiny`: the test fixture linear classifier (4 inputs), answered in a
 *      fraction of a millisecond: the worst case for any proxy hop;
 *    - `mobilenet`: a real vision model, the MobileNetV2 the `nsfwjs` npm
 *      package ships, converted to ONNX here at bench time (as the
 *      fine-tuning backbone is), fed one 224x224x3 image as KServe v2 JSON.
 *    Latency is each answer's own time (autocannon's hrtime per response,
 *    microsecond resolution, not its whole-millisecond histogram); direct
 *    and gateway runs alternate, twice each, so drift on a shared machine
 *    hits both. Reported: p50/p99 of both, their ratio, the milliseconds the
 *    gateway adds, throughput, and the load average around each run. The
 *    route table the gateway polls comes from a stub of GET /api/v1/route
 *    (the hub is not on the request path; the gateway asks it every 2 s).
 * 2. Route lookups: the hub's RouteTable loaded from Postgres with N spokes
 *    all serving one model (the worst case: every lookup ranks them all),
 *    then lookups from random callers: lookups per second and p50/p99.
 *
 * Nothing here asserts a timing: the figures are printed, ratios included.
 * `--profile DIR` runs the gateway under `node --cpu-prof` (profile in DIR).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import pg from 'pg';
import pino from 'pino';
import type { RouteItem, RouteResponse } from '@flotilla/contracts';
import { convertNsfwjsMobilenet } from '../../apps/agent/src/finetune/backbones/nsfwjs-mobilenet.js';
import { findFreePort } from '../../apps/hub/src/common/ports.js';
import { createDataSource, runMigrations } from '../../apps/hub/src/database/data-source.js';
import { RouteTable } from '../../apps/hub/src/routing/route-table.js';
import { insertRouteSpokes } from '../support/route-fixtures.js';
import { procAvailable, sampleProcess } from './proc-stats.js';
import { startScratchPostgres } from '../support/scratch-postgres.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..', '..');
const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    models: { type: 'string', default: 'tiny,mobilenet' },
    connections: { type: 'string', default: '1,10' },
    spokes: { type: 'string', default: '10000' },
    lookups: { type: 'string', default: '20000' },
    'database-url': { type: 'string' },
    profile: { type: 'string' },
  },
});
const duration = Number(args.duration);
const connectionCounts = args.connections.split(',').map(Number);
const spokeCount = Number(args.spokes);
const lookupCount = Number(args.lookups);

interface BenchModel {
  key: string;
  /** Model name served and routed. */
  name: string;
  what: string;
  file: () => Promise<string>;
  body: () => Buffer;
}

const MODELS: BenchModel[] = [
  {
    key: 'tiny',
    name: 'bridge-defects',
    what: 'test fixture linear classifier, input [1,4]',
    file: () => Promise.resolve(path.join(repoRoot, 'test/fixtures/models/linear-classifier-1.0.0.onnx')),
    body: () => Buffer.from(JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [1, 0, 0, 0] }] })),
  },
  {
    key: 'mobilenet',
    name: 'mobilenet-v2',
    what: 'MobileNetV2 224x224 (nsfwjs 4.4.0, converted to ONNX), one image [1,224,224,3] as JSON',
    file: async () => {
      const t0 = Date.now();
      const backbone = convertNsfwjsMobilenet();
      const file = path.join(workDir, 'mobilenet-v2.onnx');
      await writeFile(file, backbone.bytes);
      log(`converted the nsfwjs MobileNetV2 to ONNX in ${Date.now() - t0} ms (${(backbone.bytes.length / 1e6).toFixed(1)} MB, ${backbone.digest.slice(0, 19)}...)`);
      return file;
    },
    body: () => {
      // A fixed pseudo-random image, pixels scaled to 0..1 as nsfwjs feeds them (3 decimals: what a client would send).
      const n = 224 * 224 * 3;
      const data = new Array<number>(n);
      let s = 1;
      for (let i = 0; i < n; i++) {
        s = (s * 1103515245 + 12345) % 2147483648;
        data[i] = Math.round(((s >>> 8) % 256) / 0.255) / 1000;
      }
      return Buffer.from(JSON.stringify({ inputs: [{ name: 'input_1', shape: [1, 224, 224, 3], datatype: 'FP32', data }] }));
    },
  },
];
const selected = args.models.split(',').filter(Boolean).map((k) => {
  const m = MODELS.find((x) => x.key === k);
  if (!m) throw new Error(`--models: unknown ${k} (known: ${MODELS.map((x) => x.key).join(', ')})`);
  return m;
});

const cleanups: Array<() => Promise<void> | void> = [];
const log = (s: string) => process.stdout.write(`${s}\n`);
let workDir = '';

function waitForLine(child: ChildProcess, pattern: RegExp, what: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`${what} did not start: ${seen.slice(-500)}`)), 60_000);
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
  for (let i = 0; i < 600; i++) {
    if ((await fetch(url).then((r) => r.status, () => 0)) === 200) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} never answered 200`);
}

interface Run {
  latencies: number[];
  requests: number;
  seconds: number;
}

/** autocannon for `seconds`, keeping every answer's own latency (fractional ms from hrtime). */
async function load(url: string, body: Buffer, headers: Record<string, string>, connections: number, seconds: number): Promise<Run> {
  const latencies: number[] = [];
  const run = autocannon({ url, method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body, connections, duration: seconds, timeout: 60 });
  run.on('response', (_c, status, _b, ms) => {
    if (status === 200) latencies.push(ms);
  });
  const r = await run;
  if (r.errors || r.non2xx) throw new Error(`${url}: ${r.errors} errors, ${r.non2xx} non-2xx answers under load`);
  return { latencies, requests: r.requests.total, seconds: r.duration };
}

function summary(runs: Run[]) {
  const all = Float64Array.from(runs.flatMap((r) => r.latencies)).sort();
  const requests = runs.reduce((a, r) => a + r.requests, 0);
  const seconds = runs.reduce((a, r) => a + r.seconds, 0);
  return { n: all.length, p50: quantile(all, 0.5), p99: quantile(all, 0.99), rps: requests / seconds };
}

const load1 = () => os.loadavg()[0] as number;

async function gatewayOverhead(): Promise<void> {
  workDir = await mkdtemp(path.join(os.tmpdir(), 'flotilla-routing-bench-'));
  cleanups.push(() => rm(workDir, { recursive: true, force: true }));
  const files = await Promise.all(selected.map((m) => m.file()));
  const serverPort = await findFreePort();
  const server = spawn(
    process.execPath,
    [
      path.join(repoRoot, 'dist/libs/inference-server/src/main.js'),
      ...selected.flatMap((m, i) => ['--model', `${m.name}=${files[i]}`]),
      '--version',
      '1.0.0',
      '--host',
      '127.0.0.1',
      '--port',
      String(serverPort),
      '--execution-provider',
      'cpu',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  cleanups.push(() => void server.kill('SIGKILL'));
  const endpointOf = (m: BenchModel) => `http://127.0.0.1:${serverPort}/v2/models/${m.name}`;
  for (const m of selected) await ready(`${endpointOf(m)}/ready`);

  // Stub of the hub's route endpoint: one healthy spoke per model, the server above.
  const itemOf = (m: BenchModel): RouteItem => ({
    spoke: 'bench',
    deployment: `${m.name}-inference`,
    endpoint: endpointOf(m),
    servingVersion: '1.0.0',
    location: { lat: 45.76, lon: 4.84 },
    region: null,
    distanceKm: null,
    load: 0,
    requestsPerSecond: 0,
    readyReplicas: 1,
    latencyP99Ms: null,
    errorRatio: 0,
    maxErrorRatio: 0.05,
    lastSeenAt: new Date().toISOString(),
    telemetryAt: new Date().toISOString(),
  });
  const hub = http.createServer((req, res) => {
    if (req.url?.startsWith('/healthz')) return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
    const model = new URL(req.url ?? '/', 'http://hub').searchParams.get('model');
    const m = selected.find((x) => x.name === model);
    const table: RouteResponse = { model: model ?? '', version: null, near: null, evaluatedAt: new Date().toISOString(), items: m ? [itemOf(m)] : [], excludedCount: 0, excluded: [] };
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(table));
  });
  await new Promise<void>((r) => hub.listen(0, '127.0.0.1', r));
  cleanups.push(() => void hub.close());
  const hubUrl = `http://127.0.0.1:${(hub.address() as AddressInfo).port}`;

  const gatewayPort = await findFreePort();
  const nodeArgs = args.profile ? ['--cpu-prof', '--cpu-prof-dir', path.resolve(args.profile)] : [];
  const gateway = spawn(process.execPath, [...nodeArgs, path.join(repoRoot, 'bin/flotilla.js'), 'gateway', '--listen', `127.0.0.1:${gatewayPort}`, '--url', hubUrl, '--token', 'bench', '--log-level', 'warn'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const gatewayExited = new Promise<void>((r) => gateway.once('exit', () => r()));
  cleanups.push(async () => {
    gateway.kill('SIGTERM');
    await gatewayExited;
  });
  await waitForLine(gateway, /serving KServe v2 at (\S+)/, 'flotilla gateway');
  const gatewayCpu = () => (gateway.pid === undefined ? 0 : (sampleProcess(gateway.pid)?.cpuSeconds ?? 0));
  const near = { 'x-client-lat': '45.7', 'x-client-lon': '4.8' };

  log(`gateway overhead on loopback (${os.cpus().length} CPUs, Node ${process.versions.node}); load average at start ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  const rows: string[] = [];
  for (const m of selected) {
    const body = m.body();
    const direct = `${endpointOf(m)}/infer`;
    const via = `http://127.0.0.1:${gatewayPort}/v2/models/${m.name}/infer`;
    const check = await fetch(via, { method: 'POST', headers: { 'content-type': 'application/json', ...near }, body: new Uint8Array(body) });
    if (check.status !== 200 || check.headers.get('x-flotilla-spoke') !== 'bench') throw new Error(`gateway answered ${check.status}: ${await check.text()}`);
    for (const connections of connectionCounts) {
      // Warm both paths (JIT, kept-alive sockets), then alternate direct and gateway.
      await load(direct, body, {}, connections, 1);
      await load(via, body, near, connections, 1);
      const loads: number[] = [load1()];
      const d: Run[] = [];
      const g: Run[] = [];
      let gatewayCpuS = 0;
      for (let rep = 0; rep < 2; rep++) {
        d.push(await load(direct, body, {}, connections, duration));
        loads.push(load1());
        const cpu0 = gatewayCpu();
        g.push(await load(via, body, near, connections, duration));
        gatewayCpuS += gatewayCpu() - cpu0;
        loads.push(load1());
      }
      const ds = summary(d);
      const gs = summary(g);
      const cpuPerRequest = procAvailable ? `${Math.round((gatewayCpuS * 1e6) / gs.n)}` : 'n/a';
      const row = `| ${m.key} | ${connections} | ${ds.p50.toFixed(3)} / ${ds.p99.toFixed(3)} | ${gs.p50.toFixed(3)} / ${gs.p99.toFixed(3)} | ${(gs.p50 / ds.p50).toFixed(2)}x / ${(gs.p99 / ds.p99).toFixed(2)}x | ${(gs.p50 - ds.p50).toFixed(3)} / ${(gs.p99 - ds.p99).toFixed(3)} | ${Math.round(ds.rps)} / ${Math.round(gs.rps)} (${(gs.rps / ds.rps).toFixed(2)}x) | ${ds.n} / ${gs.n} | ${cpuPerRequest} | ${Math.min(...loads).toFixed(2)}-${Math.max(...loads).toFixed(2)} |`;
      rows.push(row);
      log(`${m.key} (${m.what}; request ${(body.length / 1024).toFixed(1)} KiB), ${connections} connection(s), ${duration} s twice per path:\n  ${row}`);
    }
  }
  log('\nlatency per answer (autocannon, hrtime); direct = straight to the inference server, gateway = through flotilla gateway; gateway CPU = the gateway process’s user+system time over its runs per answer; 1-min load average over the runs');
  log('| model | connections | direct p50 / p99 ms | gateway p50 / p99 ms | ratio p50 / p99 | added p50 / p99 ms | req/s direct / gateway | answers direct / gateway | gateway CPU µs/request | load avg |');
  log('|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) log(r);
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
  if (selected.length > 0) await gatewayOverhead();
  if (spokeCount > 0) await routeLookups();
} finally {
  for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => undefined);
}
