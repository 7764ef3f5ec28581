/**
 * `npm run chaos`: fault-injection trials with real processes (DESIGN.md
 * section 9, issue 11 item 6).
 *
 *   npm run chaos -- --trials N [--seed S] [--broker embedded|mosquitto|both]
 *                    [--agents 5] [--out DIR] [--postgres embedded|external|mixed]
 *                    [--database-url URL] [--steps 10] [--faults 8]
 *                    [--chaos-seconds 40] [--converge-seconds 30] [--keep]
 *
 * Each trial runs a real hub, broker and agents, makes scripted changes
 * while SIGKILLing them at seeded random moments, then checks the five
 * invariants. Prints what was injected and which invariants held, writes a
 * JSON report, and exits 1 if any invariant was violated or could not be
 * checked (2 on bad flags).
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { renderSummary, summarize } from './report.js';
import type { BrokerKind } from './trial-system.js';
import { type TrialReport, runTrial } from './trial.js';
import { findMosquitto } from '../support/mosquitto.js';
import { startScratchPostgres } from '../support/scratch-postgres.js';

const here = path.dirname(fileURLToPath(import.meta.url));
// dist/test/chaos -> the checkout
const repoRoot = path.resolve(here, '..', '..', '..');

const USAGE = `usage: npm run chaos -- --trials N [--seed S] [--broker embedded|mosquitto|both] [--agents 5] [--out DIR]
         [--postgres embedded|external|mixed] [--database-url URL] [--steps 10] [--faults 8]
         [--chaos-seconds 40] [--converge-seconds 30] [--trial-timeout SECONDS] [--keep]`;

function fail(message: string): never {
  console.error(`${message}\n${USAGE}`);
  process.exit(2);
}

function parse() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        trials: { type: 'string' },
        seed: { type: 'string' },
        broker: { type: 'string', default: 'embedded' },
        agents: { type: 'string', default: '5' },
        out: { type: 'string', default: path.join(repoRoot, 'test', 'chaos', 'results') },
        postgres: { type: 'string', default: 'mixed' },
        'database-url': { type: 'string' },
        steps: { type: 'string', default: '10' },
        faults: { type: 'string', default: '8' },
        'chaos-seconds': { type: 'string', default: '40' },
        'converge-seconds': { type: 'string', default: '30' },
        'trial-timeout': { type: 'string' },
        keep: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
      strict: true,
    }));
  } catch (err) {
    fail((err as Error).message);
  }
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const problems: string[] = [];
  const int = (name: string, v: string | undefined, min: number, max: number): number => {
    const n = Number(v);
    if (v === undefined || !Number.isInteger(n) || n < min || n > max) {
      problems.push(`--${name} must be a whole number from ${min} to ${max}, got ${JSON.stringify(v ?? null)}`);
      return min;
    }
    return n;
  };
  const trials = int('trials', values.trials, 1, 1000);
  const seed = values.seed === undefined ? randomBytes(4).readUInt32BE(0) : int('seed', values.seed, 0, 2 ** 32 - 1);
  const agents = int('agents', values.agents, 2, 20);
  const steps = int('steps', values.steps, 3, 200);
  const faults = int('faults', values.faults, 0, 200);
  const chaosSeconds = int('chaos-seconds', values['chaos-seconds'], 5, 3600);
  const convergeSeconds = int('converge-seconds', values['converge-seconds'], 5, 600);
  // By default a trial may take every bounded wait it has in a row; a short run sets less.
  const trialTimeoutSeconds = int('trial-timeout', values['trial-timeout'] ?? String(240 + chaosSeconds + 4 * convergeSeconds + 120), 60, 24 * 3600);
  if (!['embedded', 'mosquitto', 'both'].includes(values.broker!)) problems.push(`--broker must be embedded, mosquitto or both, got ${JSON.stringify(values.broker)}`);
  if (!['embedded', 'external', 'mixed'].includes(values.postgres!)) problems.push(`--postgres must be embedded, external or mixed, got ${JSON.stringify(values.postgres)}`);
  if (values['database-url'] !== undefined && !/^postgres(ql)?:\/\//.test(values['database-url'])) problems.push(`--database-url must be a postgres:// URL, got ${JSON.stringify(values['database-url'])}`);
  if (values.broker !== 'embedded') {
    const m = findMosquitto();
    if (!m.ok) problems.push(`--broker ${values.broker} needs Mosquitto: ${m.reason}`);
  }
  if (process.platform !== 'linux') problems.push('the chaos harness reads /proc to find inference servers: it runs on Linux only');
  if (problems.length) fail(problems.join('\n'));
  return {
    trials,
    seed,
    broker: values.broker as 'embedded' | 'mosquitto' | 'both',
    agents,
    out: path.resolve(values.out!),
    postgres: values.postgres as 'embedded' | 'external' | 'mixed',
    databaseUrl: values['database-url'],
    steps,
    faults,
    chaosSeconds,
    convergeSeconds,
    trialTimeoutSeconds,
    keep: values.keep!,
  };
}

const log = (msg: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${msg}`);

/** A Postgres server for the trials that use an external database: the one given, or one started here for the run. */
async function externalServer(given: string | undefined): Promise<{ url: string; stop(): Promise<void> }> {
  if (given) return { url: given, stop: async () => {} };
  // Started the way the hub starts its own (as the postgres user when root, so also under /root).
  const scratch = await startScratchPostgres({ max_connections: '200' });
  return { url: scratch.url, stop: () => scratch.stop() };
}

async function createDatabase(serverUrl: string): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `flotilla_chaos_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const u = new URL(serverUrl);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: serverUrl });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

async function main(): Promise<number> {
  const args = parse();
  const runId = `chaos-${Date.now().toString(36)}-${randomBytes(2).toString('hex')}`;
  const workDir = await mkdtemp(path.join(os.tmpdir(), 'flotilla-chaos-'));
  if (process.getuid?.() === 0) await chmod(workDir, 0o711);
  const brokers: BrokerKind[] = args.broker === 'both' ? ['embedded', 'mosquitto'] : [args.broker];
  log(`${args.trials} trial(s), seed ${args.seed}, broker ${args.broker}, Postgres ${args.postgres}, ${args.agents} agents, ${args.steps} steps and ${args.faults} faults in ${args.chaosSeconds} s per trial`);
  let server: { url: string; stop(): Promise<void> } | null = null;
  const reports: TrialReport[] = [];
  const startedAt = new Date();
  const interrupt = new AbortController();
  const onSignal = () => {
    if (interrupt.signal.aborted) process.exit(130); // a second Ctrl-C: leave now
    interrupt.abort();
    log('interrupted: cleaning up the current trial, then stopping (Ctrl-C again to leave at once)');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    for (let i = 1; i <= args.trials && !interrupt.signal.aborted; i++) {
      // mixed: embedded and external Postgres in turn, each with every broker asked for.
      const external = args.postgres === 'external' || (args.postgres === 'mixed' && Math.floor((i - 1) / brokers.length) % 2 === 1);
      let db: { url: string; drop(): Promise<void> } | null = null;
      if (external) {
        server ??= await externalServer(args.databaseUrl);
        db = await createDatabase(server.url);
      }
      try {
        const report = await runTrial({
          index: i,
          runId,
          // One seed per trial, derived from the run's: any trial can be replayed alone with --seed and --trials 1.
          seed: (args.seed + Math.imul(i - 1, 0x9e3779b1)) >>> 0,
          broker: brokers[(i - 1) % brokers.length]!,
          databaseUrl: db?.url ?? null,
          agents: args.agents,
          steps: args.steps,
          faults: args.faults,
          chaosSeconds: args.chaosSeconds,
          convergeSeconds: args.convergeSeconds,
          restartDelayMs: { min: 200, max: 2500 },
          repoRoot,
          workDir,
          keep: args.keep,
          timeoutMs: args.trialTimeoutSeconds * 1000,
          env: process.env,
          signal: interrupt.signal,
          log,
        });
        reports.push(report);
        const held = Object.entries(report.invariants).filter(([, r]) => r!.status === 'held').length;
        const converged = report.invariants.convergence?.measured?.convergedAfterRecoveryMs;
        const when = typeof converged === 'number' ? `, converged ${(converged / 1000).toFixed(1)} s after the last restart` : '';
        log(`trial ${i}: ${report.error ? 'error' : `${held}/5 invariants held${when}`} in ${Math.round(report.durationMs / 1000)} s`);
      } finally {
        await db?.drop().catch((err: Error) => log(`cannot drop the trial database: ${err.message}`));
      }
    }
  } finally {
    await server?.stop().catch(() => undefined);
    if (!args.keep) await rm(workDir, { recursive: true, force: true }).catch(() => undefined);
  }
  const summary = summarize(reports);
  await mkdir(args.out, { recursive: true });
  const file = path.join(args.out, `chaos-${args.broker}-${args.trials}x-seed${args.seed}.json`);
  const full = {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    // First trial's seed is the run's; trial i used seed + (i-1) * 0x9e3779b1 (mod 2^32).
    seed: args.seed,
    args: { ...args, databaseUrl: args.databaseUrl ? '(given)' : undefined },
    machine: { cpus: os.cpus().length, memoryBytes: os.totalmem(), node: process.version, platform: `${os.type()} ${os.release()}` },
    summary,
    trials: reports,
  };
  await writeFile(file, `${JSON.stringify(full, null, 2)}\n`);
  console.log(renderSummary(summary, reports, file));
  if (interrupt.signal.aborted) {
    console.log(`interrupted after ${reports.length} of ${args.trials} trials`);
    return 130;
  }
  return summary.ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
