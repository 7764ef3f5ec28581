import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { readAgentCredentials } from './agent-files.js';
import { type FaultRecord, type FaultTarget, FaultInjector } from './fault-injector.js';
import { HubClient } from './hub-client.js';
import { checkAppliedOnce } from './invariants/applied-once.js';
import { checkAuditTrail } from './invariants/audit-trail.js';
import { checkConvergence } from './invariants/convergence.js';
import { type CheckContext, type InvariantName, type InvariantResult, sleep } from './invariants/invariant.js';
import { type RevocationRecord, checkRevocation, definiteConnect } from './invariants/revocation.js';
import { checkTrackedProcesses } from './invariants/tracked-processes.js';
import { killTrialProcesses } from './proc-scan.js';
import { SeededRandom } from './rng.js';
import { type Intent, ScenarioDriver, type StepKind, type StepRecord } from './scenario.js';
import { type BrokerKind, TrialSystem } from './trial-system.js';

/**
 * One trial: a fresh hub, broker and five agents; the scripted changes with
 * SIGKILLs at random moments; then the five invariants, each with its
 * evidence. Whatever happens, every process of the trial is killed and its
 * directory removed at the end (kept with --keep).
 */

export interface TrialOptions {
  index: number;
  runId: string;
  seed: number;
  broker: BrokerKind;
  /** A database URL on an external server (created for this trial), or null for the hub's embedded Postgres. */
  databaseUrl: string | null;
  agents: number;
  steps: number;
  faults: number;
  chaosSeconds: number;
  convergeSeconds: number;
  restartDelayMs: { min: number; max: number };
  repoRoot: string;
  workDir: string;
  keep: boolean;
  timeoutMs: number;
  /** Environment the trial's processes start from. */
  env: NodeJS.ProcessEnv;
  /** Aborting (Ctrl-C) ends the trial at once; cleanup still runs. */
  signal: AbortSignal;
  log: (msg: string) => void;
}

export interface TrialReport {
  index: number;
  trialId: string;
  seed: number;
  broker: BrokerKind;
  postgres: 'embedded' | 'external';
  startedAt: string;
  durationMs: number;
  /** Set when the trial could not run to its checks (setup failed, timeout): the trial fails. */
  error?: string;
  errorEvidence?: unknown;
  faultTargets: FaultTarget[];
  faults: FaultRecord[];
  /** Exits the harness did not cause (crashes), per unit, with the log tail of the last. */
  crashes: Array<{ unit: string; count: number; exits: Array<{ at: string; code: number | null; signal: string | null; note?: string }>; firstLogTail?: string; lastLogTail?: string }>;
  steps: StepRecord[];
  intent?: Intent;
  invariants: Partial<Record<InvariantName, InvariantResult>>;
  keptDir?: string;
}

const weightedKind = (rng: SeededRandom): Exclude<StepKind, 'revoke'> => {
  const x = rng.next();
  return x < 0.5 ? 'swap' : x < 0.8 ? 'relabel' : 'register';
};

export async function runTrial(o: TrialOptions): Promise<TrialReport> {
  const trialId = `${o.runId}-t${o.index}`;
  const started = Date.now();
  const rng = new SeededRandom(o.seed);
  const dir = await mkdtemp(path.join(o.workDir, `trial-${o.index}-`));
  // As root, Postgres runs as `postgres` and must traverse down to the hub's home.
  if (process.getuid?.() === 0) await chmod(dir, 0o711);
  await mkdir(path.join(dir, 'agents'), { recursive: true });
  const agentNames = Array.from({ length: o.agents }, (_, i) => `chaos-${i + 1}`);
  const system = new TrialSystem({ trialId, dir, repoRoot: o.repoRoot, broker: o.broker, databaseUrl: o.databaseUrl, agentNames, telemetrySeconds: 10, env: o.env });
  const targets: FaultTarget[] = ['hub', ...(o.broker === 'mosquitto' ? (['broker'] as const) : []), ...(o.databaseUrl ? [] : (['postgres'] as const)), 'agent'];
  const injector = new FaultInjector(system, rng.fork('faults'), targets, o.restartDelayMs);
  const report: TrialReport = {
    index: o.index,
    trialId,
    seed: o.seed,
    broker: o.broker,
    postgres: o.databaseUrl ? 'external' : 'embedded',
    startedAt: new Date(started).toISOString(),
    durationMs: 0,
    faultTargets: targets,
    faults: injector.faults,
    crashes: [],
    steps: [],
    invariants: {},
  };
  let driver: ScenarioDriver | null = null;
  // Where the trial is, named in a timeout's message: a hang says which wait did not end.
  let phase = 'starting the hub';
  const body = async () => {
    o.log(`trial ${o.index}: starting hub (${report.postgres} Postgres, ${o.broker} broker) and ${o.agents} agents in ${dir}`);
    await system.start(120_000);
    const api = new HubClient(system.apiUrl, system.adminToken, `chaos-t${o.index}`);
    driver = new ScenarioDriver(api, rng.fork('steps'), o.repoRoot, agentNames, 60_000);
    report.steps = driver.steps;
    report.intent = driver.intent;
    phase = 'setup (model, versions, placements, enrolment token)';
    const token = await driver.setup();
    phase = 'enrolling the agents';
    const enrolStart = Date.now();
    await system.enrollAgents(token, (name) => ({ ring: driver!.ringOf(name) }));
    for (const n of agentNames) driver.recordEnrolment(n, enrolStart);
    system.startAgents();
    phase = 'initial convergence';
    await waitInitialConvergence(api, agentNames, 120_000, system);
    o.log(`trial ${o.index}: fleet converged; chaos for ${o.chaosSeconds} s (${o.steps} steps, ${o.faults} faults on ${targets.join(', ')})`);

    // The spoke to revoke, and a control: its credentials work before.
    const victim = rng.fork('victim').pick(agentNames);
    const creds = await readAgentCredentials(system.agents.get(victim)!.stateDir);
    phase = 'control connect of the spoke to revoke';
    const revocation: RevocationRecord = { spoke: victim, creds, control: await definiteConnect(creds, 'control', 15_000), afterRevoke: null };

    phase = 'chaos window';
    await chaos(o, rng, driver, injector, revocation);
    phase = 'waiting for the restarts the faults scheduled';
    o.log(`trial ${o.index}: chaos over (${injector.faults.filter((f) => !f.skipped).length} faults); waiting for restarts`);
    await system.settled(60_000);
    const recoveredAt = Date.now();
    const ctx: CheckContext = { system, api, driver, trialId, recoveredAt, convergeMs: o.convergeSeconds * 1000 };
    phase = 'checking convergence and tracked processes';
    const [convergence, processes] = await Promise.all([checkConvergence(ctx), checkTrackedProcesses(ctx)]);
    report.invariants.convergence = convergence;
    phase = 'checking the other invariants';
    report.invariants.appliedOnce = await checkAppliedOnce(ctx);
    report.invariants.noUntrackedProcess = processes;
    report.invariants.revokedCannotConnect = await checkRevocation(ctx, revocation);
    report.invariants.everyChangeAudited = await checkAuditTrail(ctx);
  };
  let timer: NodeJS.Timeout | undefined;
  try {
    const running = body();
    running.catch(() => undefined);
    await Promise.race([
      running,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`trial timed out after ${Math.round(o.timeoutMs / 1000)} s, during: ${phase}; steps so far: ${JSON.stringify(driver?.steps.map((st) => [st.kind, st.outcome, st.attempts.length]) ?? [])}`)), o.timeoutMs);
        o.signal.addEventListener('abort', () => reject(new Error('interrupted')), { once: true });
      }),
    ]);
  } catch (err) {
    report.error = (err as Error).message;
    report.errorEvidence = {
      phase,
      faults: injector.faults.map((f) => ({ at: new Date(f.at).toISOString(), unit: f.unit, skipped: f.skipped ?? null })),
      hubLogTail: system.hub?.logTail(3000),
      hubExits: system.hub?.exits.slice(-3),
      agentLogTails: Object.fromEntries([...system.agents.values()].map((a) => [a.name, a.process.logTail(600)])),
    };
    o.log(`trial ${o.index}: ERROR ${report.error.split('\n')[0]}`);
  } finally {
    clearTimeout(timer);
    for (const unit of [system.hub, ...[...system.agents.values()].map((a) => a.process)]) {
      if (!unit) continue;
      const crashes = unit.exits.filter((e) => !e.killedByHarness);
      if (crashes.length > 0) {
        report.crashes.push({
          unit: unit.spec.name,
          count: crashes.length,
          exits: crashes.slice(0, 10).map((e) => ({
            at: new Date(e.at).toISOString(),
            code: e.code,
            signal: e.signal,
            ...(e.signal === 'SIGKILL' ? { note: 'SIGKILL not sent by the harness (OOM killer, or another process on the machine)' } : {}),
          })),
          firstLogTail: crashes[0]!.logTail,
          lastLogTail: crashes.at(-1)!.logTail,
        });
      }
    }
    await system.destroy();
    await killTrialProcesses(trialId);
    report.durationMs = Date.now() - started;
    if (o.keep) report.keptDir = dir;
    else await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
  return report;
}

/** Before any fault: every spoke enrolled, online and at its desired generation. */
async function waitInitialConvergence(api: HubClient, names: string[], timeoutMs: number, system: TrialSystem): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = null;
  for (;;) {
    const rows = await api.readAll<{ name: string; connection: string; desiredGeneration: number; observedGeneration: number }>('/api/v1/spokes');
    if (rows) {
      last = rows.map((r) => ({ name: r.name, connection: r.connection, desired: r.desiredGeneration, observed: r.observedGeneration }));
      const byName = new Map(rows.map((r) => [r.name, r]));
      if (names.every((n) => byName.get(n)?.connection === 'online' && byName.get(n)!.desiredGeneration > 0 && byName.get(n)!.observedGeneration === byName.get(n)!.desiredGeneration)) return;
    }
    if (Date.now() > deadline) {
      const agentTails = Object.fromEntries([...system.agents.values()].map((a) => [a.name, a.process.logTail(800)]));
      throw Object.assign(new Error(`the fleet did not converge within ${timeoutMs / 1000} s of the start, before any fault: ${JSON.stringify(last)}`), { agentTails });
    }
    await sleep(500);
  }
}

/**
 * The chaos window: the steps at seeded random times, each fault either at a
 * random time of the window or a random delay after a step's request went
 * out (so that some land in the middle of an apply), the revocation once.
 */
async function chaos(o: TrialOptions, rng: SeededRandom, driver: ScenarioDriver, injector: FaultInjector, revocation: RevocationRecord): Promise<void> {
  const plan = rng.fork('plan');
  const windowMs = o.chaosSeconds * 1000;
  const kinds: StepKind[] = Array.from({ length: o.steps }, () => weightedKind(plan));
  const revokeAt = plan.int(Math.floor(o.steps / 3), Math.max(Math.floor(o.steps / 3), o.steps - 2));
  kinds[revokeAt] = 'revoke';
  const stepTimes = kinds.map(() => plan.between(0, windowMs * 0.85)).sort((a, b) => a - b);
  const coupled = new Map<number, Array<{ target: FaultTarget; offsetMs: number }>>();
  const timed: Array<{ target: FaultTarget; atMs: number }> = [];
  // Each kind of target at least once when the budget allows, the rest at random.
  const targets = Array.from({ length: o.faults }, (_, i) => (i < injector.targets.length && o.faults >= injector.targets.length ? injector.targets[i]! : injector.pickTarget()));
  for (const target of targets) {
    if (plan.chance(0.5)) {
      const step = plan.int(0, o.steps - 1);
      coupled.set(step, [...(coupled.get(step) ?? []), { target, offsetMs: plan.int(0, 1500) }]);
    } else {
      timed.push({ target, atMs: plan.between(0, windowMs) });
    }
  }
  // Half the trials also kill the hub within 400 ms of the revocation's request: between its commit
  // and the broker's update is where a revocation can be lost.
  if (plan.chance(0.5)) coupled.set(revokeAt, [...(coupled.get(revokeAt) ?? []), { target: 'hub', offsetMs: plan.int(0, 400) }]);
  const t0 = Date.now();
  const pending: Promise<unknown>[] = [];
  const timers: NodeJS.Timeout[] = [];
  for (const f of timed) {
    pending.push(
      new Promise<void>((resolve) => {
        timers.push(setTimeout(() => void injector.inject(f.target, `timer +${Math.round(f.atMs)} ms`).finally(resolve), f.atMs));
      }),
    );
  }
  try {
    for (let i = 0; i < kinds.length; i++) {
      const wait = t0 + stepTimes[i]! - Date.now();
      if (wait > 0) await sleep(wait);
      for (const f of coupled.get(i) ?? []) {
        pending.push(new Promise<void>((resolve) => timers.push(setTimeout(() => void injector.inject(f.target, `step ${i} +${f.offsetMs} ms`).finally(resolve), f.offsetMs))));
      }
      const kind = kinds[i]!;
      if (kind === 'revoke') {
        const rec = await driver.revoke(revocation.spoke);
        if (rec.outcome === 'committed') revocation.afterRevoke = await definiteConnect(revocation.creds, 'right after the revocation', 15_000);
      } else {
        await driver.step(kind);
      }
    }
    await Promise.all(pending);
  } finally {
    for (const t of timers) clearTimeout(t);
  }
}
