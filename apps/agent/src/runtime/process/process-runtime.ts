import { mkdir, readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { pino, type Logger } from 'pino';
import type { Condition, DesiredDeployment, DesiredPayload, JobRunStatus, ModelRef } from '@flotilla/contracts';
import type { FineTuneRunnerOptions } from '../../finetune/finetune-runner.js';
import { nextTransition } from '../../schedule/index.js';
import type { ArtifactProvider, RuntimeReport, WorkloadRuntime } from '../runtime.js';
import { DrainScheduler } from './executors/drain-scheduler.js';
import type { ExecutorDeps } from './executors/executor-deps.js';
import { PlanExecutor } from './executors/plan-executor.js';
import { defaultBuiltinEntry } from './launch.js';
import { LaunchPreparer } from './launch-preparer.js';
import { ProcessLedger } from './ledger.js';
import { LazyFineTuneRunner } from './lazy-finetune.js';
import { LedgerRecovery } from './ledger-recovery.js';
import { capLogFile, type LogLimits } from './log-file.js';
import { planProcesses, wantedNow, type Step } from './plan.js';
import { LocalPortAllocator, type PortAllocator } from './ports.js';
import { ProcessFactory } from './process-factory.js';
import { StartFailures } from './start-failures.js';
import { deploymentStatus, endpointUrl } from './status.js';
import { formatHost, type SupervisedProcess } from './supervised-process.js';
import { RuntimeTimers } from './timers.js';
import { WorkloadTable } from './workload-table.js';

export interface ProcessRuntimeOptions {
  /** Agent state directory: the ledger goes here, workload logs under `logs/`; workloads carry it in their marks. */
  stateDir: string;
  /** Spoke name, in each workload's `FLOTILLA_WORKLOAD` mark (default: the machine's name). */
  spoke?: string;
  /** The verified model cache; nothing is started from a path it did not hand out. */
  artifacts: ArtifactProvider;
  /** Address workloads listen on (default 127.0.0.1). */
  host?: string;
  /** Host in reported endpoint URLs (default: `host`, or the machine's name when `host` is a wildcard). */
  advertiseHost?: string;
  /** Ports to hand out; default: any free port the OS offers. */
  portRange?: { min: number; max: number };
  /** Replaces the default allocator (tests, or a site's own port plan). */
  ports?: PortAllocator;
  logger?: Logger;
  /** `tritonserver` binary; default: looked up on PATH. */
  tritonServerPath?: string;
  /** Compiled builtin server entry (default: dist/libs/inference-server/src/main.js) and the node to run it. */
  builtinEntry?: string;
  nodePath?: string;
  /** Environment of workload processes (default: the agent's). */
  env?: NodeJS.ProcessEnv;
  now?: () => Date;
  /** Crash restarts: doubling from initialMs (1 s) up to maxMs (60 s). */
  restartBackoff?: { initialMs?: number; maxMs?: number };
  /** Ready this long (60 s), a process's restart backoff starts over. */
  stableAfterMs?: number;
  /** A process not ready after this long (120 s) is killed and restarted. */
  startupTimeoutMs?: number;
  /** SIGTERM to SIGKILL (30 s). */
  stopGraceMs?: number;
  /** After a version switch, the old process keeps serving this long (30 s) for clients still using its endpoint. */
  drainMs?: number;
  /** Retry of a start that failed for good (digest mismatch, no Triton): doubling from initialMs (10 s) to maxMs (5 min). */
  failureBackoff?: { initialMs?: number; maxMs?: number };
  /** Workload log size cap (10 MiB) and rotated files kept (3). */
  logMaxBytes?: number;
  logKeep?: number;
  /** How often a re-adopted process is checked for life (2 s). */
  watchIntervalMs?: number;
  /** Fine-tuning runs (dataset source policy, limits); the rest comes from these options. */
  fineTune?: Pick<FineTuneRunnerOptions, 'datasetPolicy' | 'timeoutMs' | 'threads' | 'linearProbeEntry' | 'gpuCount' | 'schedulePollMs' | 'evaluateEntry' | 'uploader'>;
}

/** A workload process the runtime leaves running, as said at shutdown. */
export interface RunningWorkload {
  deployment: string;
  pid: number;
  modelVersion: string;
  /** The endpoint clients use (the active process), null for one that drains or is a candidate. */
  endpoint: string | null;
}

const isWildcard = (host: string): boolean => host === '0.0.0.0' || host === '::' || host === '';

/**
 * Runs inference workloads as supervised local processes, for appliances
 * without a cluster and for the local agent beside the hub: one process per
 * deployment while its schedule wants replicas, the builtin ONNX server or
 * `tritonserver`. Level-based: each reconcile reads the supervised processes
 * (WorkloadTable), plans with `planProcesses` and carries the plan out
 * (PlanExecutor, one executor per step kind). The ledger in the state
 * directory (ProcessLedger) records every spawn before it happens, and
 * LedgerRecovery squares it with the running processes when a restarted
 * agent starts, so nothing it started is ever left untracked.
 */
export class ProcessRuntime implements WorkloadRuntime {
  readonly kind = 'process' as const;

  private readonly logsDir: string;
  private readonly probeHost: string;
  private readonly endpointHost: string;
  private readonly logger: Logger;
  private readonly artifacts: ArtifactProvider;
  private readonly now: () => Date;
  private readonly stopGraceMs: number;
  private readonly logLimits: LogLimits;

  private readonly table = new WorkloadTable();
  private readonly ledger: ProcessLedger;
  private readonly failures: StartFailures;
  private readonly executor: PlanExecutor;
  private readonly drains: DrainScheduler;
  private readonly recovery: LedgerRecovery;
  /** Loaded with the first FineTuneJob (lazy-finetune.ts). */
  private readonly fineTune: LazyFineTuneRunner;
  private readonly timers = new RuntimeTimers();
  private readonly conditions = new Map<string, Condition[]>();
  private readonly listeners = new Set<() => void>();
  /** Wakes the core at the next schedule boundary; one at a time, re-armed by every reconcile. */
  private transitionTimer: NodeJS.Timeout | undefined;
  private readonly closing = new AbortController();
  private initialized = false;
  private closed = false;
  /** Reconciles, drain stops and close run one at a time. */
  private tail: Promise<unknown> = Promise.resolve();

  constructor(opts: ProcessRuntimeOptions) {
    const stateDir = path.resolve(opts.stateDir);
    const host = opts.host ?? '127.0.0.1';
    this.logsDir = path.join(stateDir, 'logs');
    this.artifacts = opts.artifacts;
    this.probeHost = isWildcard(host) ? (host === '::' ? '::1' : '127.0.0.1') : host;
    this.endpointHost = opts.advertiseHost ?? (isWildcard(host) ? hostname() : host);
    this.logger = opts.logger ?? pino({ enabled: false });
    this.now = opts.now ?? (() => new Date());
    this.stopGraceMs = opts.stopGraceMs ?? 30_000;
    const drainMs = opts.drainMs ?? 30_000;
    const startupTimeoutMs = opts.startupTimeoutMs ?? 120_000;
    const env = opts.env ?? process.env;
    this.logLimits = { maxBytes: opts.logMaxBytes ?? 10 * 1024 * 1024, keep: opts.logKeep ?? 3 };
    this.ledger = new ProcessLedger(stateDir);
    this.failures = new StartFailures(
      { initialMs: opts.failureBackoff?.initialMs ?? 10_000, maxMs: opts.failureBackoff?.maxMs ?? 300_000 },
      this.now,
      this.logger,
    );
    this.fineTune = new LazyFineTuneRunner({
      ...opts.fineTune,
      stateDir,
      spoke: opts.spoke ?? hostname(),
      artifacts: opts.artifacts,
      logger: this.logger.child({ component: 'finetune' }),
      nodePath: opts.nodePath ?? process.execPath,
      stopGraceMs: this.stopGraceMs,
      now: this.now,
      changed: () => this.emitChange(),
    });
    const factory = new ProcessFactory(
      {
        spoke: opts.spoke ?? hostname(),
        stateDir,
        logsDir: this.logsDir,
        host,
        probeHost: this.probeHost,
        env,
        nodePath: opts.nodePath ?? process.execPath,
        builtinEntry: opts.builtinEntry ?? defaultBuiltinEntry(),
        logLimits: this.logLimits,
        restartBackoff: { initialMs: opts.restartBackoff?.initialMs ?? 1000, maxMs: opts.restartBackoff?.maxMs ?? 60_000 },
        stableAfterMs: opts.stableAfterMs ?? 60_000,
        startupTimeoutMs,
        stopGraceMs: this.stopGraceMs,
        watchIntervalMs: opts.watchIntervalMs ?? 2000,
        logger: this.logger,
        now: this.now,
      },
      this.table,
      opts.ports ?? new LocalPortAllocator(host === '' ? '0.0.0.0' : host, opts.portRange),
      {
        recordIntent: () => this.ledger.write(() => this.table.ledgerSnapshot()),
        persist: () => void this.persist(),
        changed: () => this.emitChange(),
      },
    );
    const deps: ExecutorDeps = {
      table: this.table,
      factory,
      preparer: new LaunchPreparer({ artifacts: opts.artifacts, failures: this.failures, tritonServerPath: opts.tritonServerPath, env }),
      failures: this.failures,
      persist: () => this.persist(),
      logger: this.logger,
      stopGraceMs: this.stopGraceMs,
      drainMs,
      now: this.now,
    };
    this.executor = new PlanExecutor(deps);
    this.drains = new DrainScheduler({
      table: this.table,
      timers: this.timers,
      exclusive: (fn) => this.exclusive(fn),
      persist: () => this.persist(),
      changed: () => this.emitChange(),
      isClosed: () => this.closed,
      logger: this.logger,
      stopGraceMs: this.stopGraceMs,
      drainMs,
      now: this.now,
    });
    this.recovery = new LedgerRecovery({
      stateDir,
      ledger: this.ledger,
      table: this.table,
      factory,
      drains: this.drains,
      probeHost: this.probeHost,
      stopGraceMs: this.stopGraceMs,
      startupTimeoutMs,
      logger: this.logger,
      now: this.now,
    });
  }

  onChange(listener: () => void): void {
    this.listeners.add(listener);
  }

  async reconcile(desired: DesiredPayload, signal: AbortSignal): Promise<RuntimeReport> {
    if (this.closed) throw new Error('the process runtime is closed');
    const combined = AbortSignal.any([signal, this.closing.signal]);
    return this.exclusive(async () => {
      combined.throwIfAborted();
      if (!this.initialized) {
        await mkdir(this.logsDir, { recursive: true, mode: 0o750 });
        await this.recovery.recover(desired.deployments, combined);
        this.initialized = true;
      }
      for (const name of this.table.deployments()) await capLogFile(path.join(this.logsDir, `${name}.log`), this.logLimits).catch(() => false);
      const planNow = this.now();
      const steps = planProcesses(this.table.observe(this.failures.all()), desired.deployments, planNow);
      const switched: SupervisedProcess[] = [];
      try {
        await this.executor.execute(steps, combined, switched);
      } finally {
        // The drain clock starts when the new endpoint is reported, not when it came up.
        for (const old of switched) this.drains.begin(old);
      }
      this.forgetRemoved(desired.deployments);
      await this.persist();
      await this.retainArtifacts(desired);
      this.armTransitionTimer(desired.deployments, planNow);
      const jobs = await this.fineTune.reconcile(desired.fineTuneJobs, desired.deployments.map((d) => d.model));
      return this.report(desired, steps, planNow, jobs);
    });
  }

  /**
   * Where each serving workload exposes Prometheus metrics, for the health
   * collector: the builtin server on its HTTP port, Triton on its own
   * metrics port (which the endpoint URL does not reveal).
   */
  metricsEndpoints(): { deployment: string; url: string }[] {
    return this.table.all().flatMap((p) => {
      if (p !== this.table.active(p.identity.deployment) || p.state !== 'ready') return [];
      const port = p.identity.launch.runtime === 'triton' ? p.metricsPort : p.port;
      return port === undefined ? [] : [{ deployment: p.identity.deployment, url: `http://${formatHost(this.probeHost)}:${port}/metrics` }];
    });
  }

  /** The workload processes running now, e.g. to say at shutdown which ones keep running. */
  runningWorkloads(): RunningWorkload[] {
    return this.table.all().flatMap((p) => {
      if (p.pid === undefined) return [];
      const active = p === this.table.active(p.identity.deployment);
      return [
        {
          deployment: p.identity.deployment,
          pid: p.pid,
          modelVersion: p.identity.modelVersion,
          endpoint: active ? endpointUrl(this.endpointHost, p.port, p.identity.modelName) : null,
        },
      ];
    });
  }

  /** The `restart` command: stops the serving process; the next reconcile starts a new one on the same port. */
  async restartDeployment(deployment: string): Promise<boolean> {
    return this.exclusive(async () => {
      const p = this.table.active(deployment);
      if (!p) return false;
      await p.stop(Math.min(this.stopGraceMs, 5_000));
      this.table.remove(p);
      await this.persist();
      this.emitChange();
      return true;
    });
  }

  /** The `diagnostics` command: the tail of each workload's log file, oldest deployments first, within `maxBytes`. */
  async recentLogs(maxBytes: number): Promise<Record<string, string[]>> {
    const out: Record<string, string[]> = {};
    const names = this.table.deployments().sort();
    const share = Math.floor(maxBytes / Math.max(1, names.length));
    for (const name of names) {
      const text = await readFile(path.join(this.logsDir, `${name}.log`), 'utf8').catch(() => '');
      const lines: string[] = [];
      let used = 0;
      for (const line of text.split('\n').reverse()) {
        if (!line) continue;
        const kept = line.length > 1000 ? `${line.slice(0, 1000)}…` : line;
        if (used + kept.length > share || lines.length >= 200) break;
        lines.unshift(kept);
        used += kept.length;
      }
      out[name] = lines;
    }
    return out;
  }

  async close(opts: { stopWorkloads?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.closing.abort(new Error('the process runtime is closing'));
    this.timers.clear();
    // A run under way is left unfinished in its record and run again by the next agent.
    await this.fineTune.close();
    await this.exclusive(async () => {
      const all = this.table.all();
      if (opts.stopWorkloads) {
        await Promise.all(all.map((p) => p.stop(this.stopGraceMs)));
        this.table.clear();
      } else {
        for (const p of all) p.detach();
      }
      await this.persist();
    });
    this.listeners.clear();
  }

  /* ------------------------------------------------------------ plumbing */

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn);
    this.tail = run.catch(() => undefined);
    return run;
  }

  private emitChange(): void {
    if (this.closed) return;
    for (const listener of this.listeners) {
      try {
        listener();
      } catch (err) {
        this.logger.error({ err }, 'runtime change listener failed');
      }
    }
  }

  /** Writes the ledger from the table; a failure is logged (the next write retries), not thrown. */
  private persist(): Promise<void> {
    return this.ledger.write(() => this.table.ledgerSnapshot()).catch((err: unknown) => this.logger.error({ err }, 'cannot write the process ledger'));
  }

  /* -------------------------------------------------------------- report */

  private forgetRemoved(desired: readonly DesiredDeployment[]): void {
    const names = new Set(desired.map((d) => d.name));
    this.table.forgetRemoved(names);
    for (const name of new Set([...this.failures.deployments(), ...this.conditions.keys()])) {
      if (names.has(name) || this.table.isKnown(name)) continue;
      this.failures.clear(name);
      this.conditions.delete(name);
    }
  }

  private async retainArtifacts(desired: DesiredPayload): Promise<void> {
    const inUse = new Map<string, ModelRef>();
    for (const d of desired.deployments) inUse.set(d.model.digest, d.model);
    for (const j of desired.fineTuneJobs) inUse.set(j.baseModel.digest, j.baseModel);
    try {
      await this.artifacts.retain([...inUse.values()]);
    } catch (err) {
      this.logger.warn({ err }, 'could not tell the artifact cache which models are in use');
    }
  }

  /** Wakes the core at the next schedule boundary, so scaling happens on time even with no hub. */
  private armTransitionTimer(desired: readonly DesiredDeployment[], now: Date): void {
    let earliest: number | undefined;
    for (const d of desired) {
      if (!d.schedule) continue;
      try {
        const t = nextTransition(d.schedule, now)?.getTime();
        if (t !== undefined && (earliest === undefined || t < earliest)) earliest = t;
      } catch {
        // Reported as InvalidSchedule in the status.
      }
    }
    this.timers.cancel(this.transitionTimer);
    this.transitionTimer = undefined;
    if (earliest !== undefined) this.transitionTimer = this.timers.after(earliest - now.getTime() + 250, () => this.emitChange());
  }

  private report(desired: DesiredPayload, steps: Step[], planNow: Date, jobs: JobRunStatus[]): RuntimeReport {
    const now = this.now();
    const deployments = desired.deployments.map((d) => {
      const active = this.table.active(d.name);
      const status = deploymentStatus({
        deployment: d,
        wanted: wantedNow(d, planNow),
        active: active && {
          state: active.state,
          key: active.identity.key,
          port: active.port,
          modelName: active.identity.modelName,
          modelVersion: active.identity.modelVersion,
          restarts: active.restarts,
          lastExit: active.lastExit,
          nextRestartAt: active.nextRestartAt,
        },
        failure: this.failures.get(d.name),
        holds: steps.filter((s): s is Extract<Step, { kind: 'hold' }> => s.kind === 'hold' && s.deployment === d.name),
        endpointHost: this.endpointHost,
        previous: this.conditions.get(d.name) ?? [],
        now,
      });
      this.conditions.set(d.name, status.conditions);
      return status;
    });
    return { deployments, jobs };
  }
}
