import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { pino, type Logger } from 'pino';
import type { Condition, DesiredDeployment, DesiredPayload, ModelRef } from '@flotilla/contracts';
import { isArtifactError } from '../../artifacts/artifact-error.js';
import { sleep } from '../../support/abort.js';
import { nextTransition } from '../../schedule/index.js';
import type { ArtifactProvider, RuntimeReport, WorkloadRuntime } from '../runtime.js';
import { defaultBuiltinEntry, findExecutable, launchCommand, type LaunchInfo } from './launch.js';
import { emptyLedger, readLedger, writeLedger, type LedgerEntry } from './ledger.js';
import { capLogFile, type LogLimits } from './log-file.js';
import { isAlive, ownsProcess, signalGroup, waitForPidExit } from './os-process.js';
import { planProcesses, wantedNow, type Observed, type ObservedProcess, type Step } from './plan.js';
import { LocalPortAllocator, type PortAllocator } from './ports.js';
import { probeReady } from './readiness.js';
import { deploymentStatus, type FailureView } from './status.js';
import { formatHost, SupervisedProcess, type ProcessIdentity, type SupervisorContext } from './supervised-process.js';

export interface ProcessRuntimeOptions {
  /** Agent state directory: the ledger goes here, workload logs under `logs/`. */
  stateDir: string;
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
}

interface Slot {
  active: SupervisedProcess | undefined;
  /** A new version starting beside `active` during a replace. */
  candidate: SupervisedProcess | undefined;
  draining: SupervisedProcess[];
}

interface FailureRecord extends FailureView {
  deployment: string;
  retryAt: number;
  attempts: number;
}

const isWildcard = (host: string): boolean => host === '0.0.0.0' || host === '::' || host === '';
const JOBS_MESSAGE = 'fine-tuning jobs are not run by the process runtime';
/** setTimeout's longest delay; later schedule transitions are re-armed at each reconcile. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Runs inference workloads as supervised local processes, for appliances
 * without a cluster and for the local agent beside the hub: one process per
 * deployment while its schedule wants replicas, the builtin ONNX server or
 * `tritonserver`. Level-based: each reconcile reads the supervised processes,
 * plans with `planProcesses` and carries the plan out. A ledger in the state
 * directory lets a restarted agent re-adopt its running workloads.
 */
export class ProcessRuntime implements WorkloadRuntime {
  readonly kind = 'process' as const;

  private readonly stateDir: string;
  private readonly logsDir: string;
  private readonly artifacts: ArtifactProvider;
  private readonly host: string;
  private readonly probeHost: string;
  private readonly endpointHost: string;
  private readonly allocator: PortAllocator;
  private readonly logger: Logger;
  private readonly tritonServerPath: string | undefined;
  private readonly builtinEntry: string;
  private readonly nodePath: string;
  private readonly env: NodeJS.ProcessEnv;
  private readonly now: () => Date;
  private readonly restartBackoff: { initialMs: number; maxMs: number };
  private readonly failureBackoff: { initialMs: number; maxMs: number };
  private readonly stableAfterMs: number;
  private readonly startupTimeoutMs: number;
  private readonly stopGraceMs: number;
  private readonly drainMs: number;
  private readonly logLimits: LogLimits;
  private readonly watchIntervalMs: number;

  private readonly slots = new Map<string, Slot>();
  private readonly failures = new Map<string, FailureRecord>();
  private readonly conditions = new Map<string, Condition[]>();
  private ports: Record<string, number> = {};
  private readonly listeners = new Set<() => void>();
  private readonly timers = new Set<NodeJS.Timeout>();
  /** Wakes the core at the next schedule boundary; one at a time, re-armed by every reconcile. */
  private transitionTimer: NodeJS.Timeout | undefined;
  private readonly closing = new AbortController();
  private initialized = false;
  private closed = false;
  /** Reconciles, drain stops and close run one at a time. */
  private tail: Promise<unknown> = Promise.resolve();
  private ledgerTail: Promise<void> = Promise.resolve();

  constructor(opts: ProcessRuntimeOptions) {
    this.stateDir = opts.stateDir;
    this.logsDir = path.join(opts.stateDir, 'logs');
    this.artifacts = opts.artifacts;
    this.host = opts.host ?? '127.0.0.1';
    this.probeHost = isWildcard(this.host) ? (this.host === '::' ? '::1' : '127.0.0.1') : this.host;
    this.endpointHost = opts.advertiseHost ?? (isWildcard(this.host) ? hostname() : this.host);
    this.allocator = opts.ports ?? new LocalPortAllocator(this.host === '' ? '0.0.0.0' : this.host, opts.portRange);
    this.logger = opts.logger ?? pino({ enabled: false });
    this.tritonServerPath = opts.tritonServerPath;
    this.builtinEntry = opts.builtinEntry ?? defaultBuiltinEntry();
    this.nodePath = opts.nodePath ?? process.execPath;
    this.env = opts.env ?? process.env;
    this.now = opts.now ?? (() => new Date());
    this.restartBackoff = { initialMs: opts.restartBackoff?.initialMs ?? 1000, maxMs: opts.restartBackoff?.maxMs ?? 60_000 };
    this.failureBackoff = { initialMs: opts.failureBackoff?.initialMs ?? 10_000, maxMs: opts.failureBackoff?.maxMs ?? 300_000 };
    this.stableAfterMs = opts.stableAfterMs ?? 60_000;
    this.startupTimeoutMs = opts.startupTimeoutMs ?? 120_000;
    this.stopGraceMs = opts.stopGraceMs ?? 30_000;
    this.drainMs = opts.drainMs ?? 30_000;
    this.logLimits = { maxBytes: opts.logMaxBytes ?? 10 * 1024 * 1024, keep: opts.logKeep ?? 3 };
    this.watchIntervalMs = opts.watchIntervalMs ?? 2000;
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
        await this.adoptFromLedger(combined);
        this.initialized = true;
      }
      for (const name of this.slots.keys()) await capLogFile(this.logFile(name), this.logLimits).catch(() => false);
      const planNow = this.now();
      const steps = planProcesses(this.observe(), desired.deployments, planNow);
      const switched: SupervisedProcess[] = [];
      try {
        await this.execute(steps, combined, switched);
      } finally {
        // The drain clock starts when the new endpoint is reported, not when it came up.
        for (const old of switched) this.startDrain(old);
      }
      this.forgetRemoved(desired.deployments);
      await this.persistLedger();
      await this.retainArtifacts(desired.deployments);
      this.armTransitionTimer(desired.deployments, planNow);
      return this.report(desired, steps, planNow);
    });
  }

  /**
   * Where each serving workload exposes Prometheus metrics, for the health
   * collector: the builtin server on its HTTP port, Triton on its own
   * metrics port (which the endpoint URL does not reveal).
   */
  metricsEndpoints(): { deployment: string; url: string }[] {
    return [...this.slots.values()].flatMap((s) => {
      const p = s.active;
      if (!p || p.state !== 'ready') return [];
      const port = p.identity.launch.runtime === 'triton' ? p.metricsPort : p.port;
      return port === undefined ? [] : [{ deployment: p.identity.deployment, url: `http://${formatHost(this.probeHost)}:${port}/metrics` }];
    });
  }

  async close(opts: { stopWorkloads?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.closing.abort(new Error('the process runtime is closing'));
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    await this.exclusive(async () => {
      const all = [...this.slots.values()].flatMap((s) => [s.active, s.candidate, ...s.draining]).filter((p) => p !== undefined);
      if (opts.stopWorkloads) {
        await Promise.all(all.map((p) => p.stop(this.stopGraceMs)));
        this.slots.clear();
      } else {
        for (const p of all) p.detach();
      }
      await this.persistLedger();
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

  private timer(ms: number, fn: () => void): NodeJS.Timeout {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, Math.min(Math.max(0, ms), MAX_TIMER_MS));
    t.unref();
    this.timers.add(t);
    return t;
  }

  private logFile(deployment: string): string {
    return path.join(this.logsDir, `${deployment}.log`);
  }

  private slot(deployment: string): Slot {
    let s = this.slots.get(deployment);
    if (!s) {
      s = { active: undefined, candidate: undefined, draining: [] };
      this.slots.set(deployment, s);
    }
    return s;
  }

  private allProcesses(): SupervisedProcess[] {
    return [...this.slots.values()].flatMap((s) => [s.active, s.candidate, ...s.draining]).filter((p) => p !== undefined);
  }

  private find(instanceId: string): SupervisedProcess | undefined {
    return this.allProcesses().find((p) => p.identity.instanceId === instanceId);
  }

  private remove(p: SupervisedProcess): void {
    const s = this.slots.get(p.identity.deployment);
    if (!s) return;
    if (s.active === p) s.active = undefined;
    if (s.candidate === p) s.candidate = undefined;
    s.draining = s.draining.filter((x) => x !== p);
  }

  /** A free port for `deployment`, never one held or remembered for another process. */
  private async allocate(deployment: string, preferred: number | undefined, self?: SupervisedProcess, extraAvoid: number[] = []): Promise<number> {
    const avoid = new Set<number>(extraAvoid);
    for (const p of this.allProcesses()) {
      if (p === self) continue;
      avoid.add(p.port);
      if (p.metricsPort !== undefined) avoid.add(p.metricsPort);
    }
    for (const [name, port] of Object.entries(this.ports)) if (name !== deployment) avoid.add(port);
    return this.allocator.allocate({ preferred, avoid });
  }

  private supervisorContext(identity: ProcessIdentity): SupervisorContext {
    return {
      probeHost: this.probeHost,
      logFile: this.logFile(identity.deployment),
      logLimits: this.logLimits,
      env: this.env,
      command: (port, metricsPort) =>
        launchCommand(identity.launch, {
          host: this.host,
          port,
          metricsPort,
          nodePath: this.nodePath,
          builtinEntry: this.builtinEntry,
          // The server's own drain must end before our SIGKILL.
          graceSeconds: Math.max(1, Math.floor(this.stopGraceMs / 1000) - 1),
        }),
      needsMetricsPort: identity.launch.runtime === 'triton',
      allocatePort: (preferred, self) => this.allocate(identity.deployment, preferred, self),
      restartBackoff: this.restartBackoff,
      stableAfterMs: this.stableAfterMs,
      startupTimeoutMs: this.startupTimeoutMs,
      watchIntervalMs: this.watchIntervalMs,
      onChange: () => this.emitChange(),
      onRelaunched: () => {
        const s = this.slots.get(identity.deployment);
        if (s?.active?.identity === identity) this.ports[identity.deployment] = s.active.port;
        void this.persistLedger();
      },
      logger: this.logger,
      now: () => this.now().getTime(),
    };
  }

  /* ------------------------------------------------------------- observe */

  private observe(): Observed {
    const view = (p: SupervisedProcess, role: 'active' | 'draining'): ObservedProcess => ({
      instanceId: p.identity.instanceId,
      deployment: p.identity.deployment,
      key: p.identity.key,
      role,
      state: p.state === 'ready' ? 'ready' : p.state === 'starting' ? 'starting' : 'backoff',
      ...(role === 'draining' && p.drainUntil !== undefined ? { drainUntil: p.drainUntil } : {}),
    });
    const processes: ObservedProcess[] = [];
    for (const s of this.slots.values()) {
      if (s.active) processes.push(view(s.active, 'active'));
      for (const p of s.draining) processes.push(view(p, 'draining'));
    }
    return { processes, failures: [...this.failures.values()] };
  }

  /* ------------------------------------------------------------- execute */

  /** Runs the plan, deployments side by side; collects in `switched` the processes a new version replaced. */
  private async execute(steps: Step[], signal: AbortSignal, switched: SupervisedProcess[]): Promise<void> {
    const byDeployment = new Map<string, Step[]>();
    for (const step of steps) byDeployment.set(step.deployment, [...(byDeployment.get(step.deployment) ?? []), step]);
    const results = await Promise.allSettled(
      [...byDeployment.values()].map(async (group) => {
        for (const step of group) {
          const old = await this.executeStep(step, signal);
          if (old) switched.push(old);
        }
      }),
    );
    if (signal.aborted) throw signal.reason;
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  private async executeStep(step: Step, signal: AbortSignal): Promise<SupervisedProcess | undefined> {
    switch (step.kind) {
      case 'keep':
      case 'hold':
        return undefined;
      case 'stop': {
        const p = this.find(step.process.instanceId);
        if (!p) return undefined;
        this.logger.info({ deployment: step.deployment, pid: p.pid, why: step.why }, 'stopping workload process');
        await p.stop(this.stopGraceMs);
        this.remove(p);
        await this.persistLedger();
        return undefined;
      }
      case 'start':
        await this.start(step.spec, step.key, signal);
        return undefined;
      case 'replace':
        return this.replace(step.spec, step.key, step.old, signal);
    }
  }

  private async start(spec: DesiredDeployment, key: string, signal: AbortSignal): Promise<void> {
    const launch = await this.prepare(spec, key, signal);
    if (!launch) return;
    const p = await this.spawnOrRecord(spec, key, launch, this.ports[spec.name]);
    if (!p) return;
    this.slot(spec.name).active = p;
    this.ports[spec.name] = p.port;
    this.failures.delete(spec.name);
    await this.persistLedger();
    // Ready or crashed (then supervised with backoff): either way the status says which.
    await p.whenSettled(signal);
  }

  /** Starts the new version on a new port beside the old; returns the old process once the new one serves. */
  private async replace(spec: DesiredDeployment, key: string, oldView: ObservedProcess, signal: AbortSignal): Promise<SupervisedProcess | undefined> {
    const launch = await this.prepare(spec, key, signal);
    if (!launch) return undefined;
    const slot = this.slot(spec.name);
    const candidate = await this.spawnOrRecord(spec, key, launch, undefined);
    if (!candidate) return undefined;
    slot.candidate = candidate;
    await this.persistLedger();
    let outcome: 'ready' | 'failed';
    try {
      outcome = await candidate.whenSettled(signal);
    } catch (err) {
      slot.candidate = undefined;
      await candidate.stop(this.stopGraceMs);
      await this.persistLedger();
      throw err;
    }
    slot.candidate = undefined;
    if (outcome === 'failed') {
      const why = candidate.lastExit?.description ?? 'it stopped';
      await candidate.stop(this.stopGraceMs);
      this.recordFailure(spec, key, 'StartupFailed', `version ${spec.model.version} did not become ready: ${why}; see ${this.logFile(spec.name)}`, false);
      await this.persistLedger();
      return undefined;
    }
    const old = this.find(oldView.instanceId);
    slot.active = candidate;
    this.ports[spec.name] = candidate.port;
    this.failures.delete(spec.name);
    this.logger.info(
      { deployment: spec.name, version: spec.model.version, port: candidate.port, oldPort: old?.port },
      'new version ready; switching the endpoint',
    );
    if (!old) return undefined;
    if (old.state !== 'ready') {
      // Not serving anyone: nothing to drain.
      this.remove(old);
      await old.stop(this.stopGraceMs);
      return undefined;
    }
    old.role = 'draining';
    // Provisional: reset when the reconcile reports the new endpoint; stands if that never happens.
    old.drainUntil = this.now().getTime() + this.drainMs;
    slot.draining.push(old);
    return old;
  }

  private startDrain(old: SupervisedProcess): void {
    old.drainUntil = this.now().getTime() + this.drainMs;
    this.armDrainTimer(old);
  }

  private armDrainTimer(p: SupervisedProcess): void {
    this.timer((p.drainUntil ?? 0) - this.now().getTime(), () => {
      void this.exclusive(async () => {
        if (this.closed || !this.slots.get(p.identity.deployment)?.draining.includes(p)) return;
        this.logger.info({ deployment: p.identity.deployment, pid: p.pid }, 'stopping the replaced version after draining');
        await p.stop(this.stopGraceMs);
        this.remove(p);
        await this.persistLedger();
      }).then(
        () => this.emitChange(),
        (err: unknown) => this.logger.error({ err }, 'stopping a drained process failed'),
      );
    });
  }

  /** A port or the log file can be unavailable for a while (range full, disk full): report it and retry at the next reconcile. */
  private async spawnOrRecord(spec: DesiredDeployment, key: string, launch: LaunchInfo, preferredPort: number | undefined): Promise<SupervisedProcess | null> {
    try {
      return await this.spawn(spec, key, launch, preferredPort);
    } catch (err) {
      this.recordFailure(spec, key, 'StartFailed', `cannot start a process: ${(err as Error).message}`, true);
      return null;
    }
  }

  private async spawn(spec: DesiredDeployment, key: string, launch: LaunchInfo, preferredPort: number | undefined): Promise<SupervisedProcess> {
    const identity: ProcessIdentity = {
      instanceId: randomUUID(),
      deployment: spec.name,
      key,
      digest: spec.model.digest,
      modelName: spec.model.name,
      modelVersion: spec.model.version,
      launch,
    };
    const port = await this.allocate(spec.name, preferredPort);
    const metricsPort = launch.runtime === 'triton' ? await this.allocate(spec.name, undefined, undefined, [port]) : undefined;
    return SupervisedProcess.start(identity, this.supervisorContext(identity), port, metricsPort);
  }

  private async findTriton(): Promise<string | null> {
    return findExecutable(this.tritonServerPath ?? 'tritonserver', this.env.PATH);
  }

  /** Everything a start needs before a process exists; a problem is recorded as the deployment's failure. */
  private async prepare(spec: DesiredDeployment, key: string, signal: AbortSignal): Promise<LaunchInfo | null> {
    try {
      if (spec.runtime === 'triton') {
        // Checked before fetching the model: no point downloading what cannot be served.
        const binary = await this.findTriton();
        if (!binary) {
          const where = this.tritonServerPath ? `at ${this.tritonServerPath}` : `on PATH (${this.env.PATH ?? ''})`;
          this.recordFailure(
            spec,
            key,
            'TritonNotInstalled',
            `runtime triton needs the tritonserver binary, which is not installed ${where}; install NVIDIA Triton Inference Server on this appliance or use runtime: builtin`,
            false,
          );
          return null;
        }
        const artifact = await this.artifacts.ensure(spec.model, signal);
        if (!this.verified(spec, key, artifact.digest)) return null;
        return { runtime: 'triton', binary, repositoryPath: artifact.repositoryPath };
      }
      if (spec.model.format !== 'onnx') {
        this.recordFailure(spec, key, 'UnsupportedModelFormat', `the builtin server serves ONNX models, not ${spec.model.format}; use runtime: triton`, false);
        return null;
      }
      const artifact = await this.artifacts.ensure(spec.model, signal);
      if (!this.verified(spec, key, artifact.digest)) return null;
      return {
        runtime: 'builtin',
        modelName: spec.model.name,
        modelVersion: spec.model.version,
        modelPath: artifact.modelPath,
        executionProvider: spec.resources.gpu > 0 ? 'auto' : 'cpu',
      };
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      if (isArtifactError(err)) {
        this.recordFailure(spec, key, err.reason, err.message, err.retryable);
        return null;
      }
      throw err;
    }
  }

  private verified(spec: DesiredDeployment, key: string, digest: string): boolean {
    if (digest === spec.model.digest) return true;
    this.recordFailure(spec, key, 'ArtifactDigestMismatch', `the cache handed out ${digest} for ${spec.model.digest}; not serving it`, false);
    return false;
  }

  private recordFailure(spec: DesiredDeployment, key: string, reason: string, message: string, retryable: boolean): void {
    const previous = this.failures.get(spec.name);
    const attempts = previous && previous.key === key && previous.reason === reason ? previous.attempts + 1 : 1;
    const { initialMs, maxMs } = this.failureBackoff;
    // Retryable failures wait for the core's requeue; the others back off so a broken artifact is not fetched in a loop.
    const delay = retryable ? 0 : Math.min(maxMs, initialMs * 2 ** Math.min(attempts - 1, 30));
    this.failures.set(spec.name, { deployment: spec.name, key, reason, message, retryable, attempts, retryAt: this.now().getTime() + delay });
    this.logger.warn({ deployment: spec.name, reason, retryable, retryInMs: delay }, message);
  }

  /* -------------------------------------------------------------- ledger */

  private persistLedger(): Promise<void> {
    this.ledgerTail = this.ledgerTail
      .then(async () => {
        const entries: LedgerEntry[] = [];
        for (const s of this.slots.values()) {
          const roles: [SupervisedProcess | undefined, LedgerEntry['role']][] = [
            [s.active, 'active'],
            [s.candidate, 'candidate'],
            ...s.draining.map((p): [SupervisedProcess, LedgerEntry['role']] => [p, 'draining']),
          ];
          for (const [p, role] of roles) {
            if (!p || p.pid === undefined || p.state === 'stopped') continue;
            entries.push({
              instanceId: p.identity.instanceId,
              deployment: p.identity.deployment,
              key: p.identity.key,
              digest: p.identity.digest,
              modelName: p.identity.modelName,
              modelVersion: p.identity.modelVersion,
              pid: p.pid,
              port: p.port,
              ...(p.metricsPort !== undefined ? { metricsPort: p.metricsPort } : {}),
              role,
              ...(role === 'draining' && p.drainUntil !== undefined ? { drainUntil: p.drainUntil } : {}),
              startedAt: p.startedAt,
              restarts: p.restarts,
              launch: p.identity.launch,
            });
          }
        }
        await writeLedger(this.stateDir, { ...emptyLedger(), processes: entries, ports: { ...this.ports } });
      })
      .catch((err: unknown) => this.logger.error({ err }, 'cannot write the process ledger'));
    return this.ledgerTail;
  }

  /**
   * After an agent restart: re-adopts ledger processes that still run, are
   * ours (instance marker) and answer ready; stops ours that do not answer;
   * leaves any pid that now belongs to someone else alone.
   */
  private async adoptFromLedger(signal: AbortSignal): Promise<void> {
    const { ledger, problem } = await readLedger(this.stateDir);
    if (problem) this.logger.warn({ problem }, 'ignoring an unreadable process ledger; processes it listed are left alone');
    this.ports = { ...ledger.ports };
    for (const entry of ledger.processes) {
      if (!(await isAlive(entry.pid))) continue;
      const owned = await ownsProcess(entry.pid, entry.instanceId);
      if (owned === false) {
        this.logger.info({ pid: entry.pid, deployment: entry.deployment }, 'ledger pid now belongs to another process; leaving it alone');
        continue;
      }
      const ready = entry.role !== 'candidate' && (await this.answersReady(entry.port, signal));
      if (!ready) {
        if (owned === true) {
          this.logger.warn({ pid: entry.pid, deployment: entry.deployment, role: entry.role }, 'stopping an orphaned workload process');
          signalGroup(entry.pid, 'SIGTERM');
          if (!(await waitForPidExit(entry.pid, this.stopGraceMs, signal))) signalGroup(entry.pid, 'SIGKILL');
        }
        continue;
      }
      const identity: ProcessIdentity = {
        instanceId: entry.instanceId,
        deployment: entry.deployment,
        key: entry.key,
        digest: entry.digest,
        modelName: entry.modelName,
        modelVersion: entry.modelVersion,
        launch: entry.launch,
      };
      const slot = this.slot(entry.deployment);
      const asDraining = entry.role === 'draining' || slot.active !== undefined;
      const p = SupervisedProcess.adopt(identity, this.supervisorContext(identity), {
        pid: entry.pid,
        port: entry.port,
        ...(entry.metricsPort !== undefined ? { metricsPort: entry.metricsPort } : {}),
        startedAt: entry.startedAt,
        restarts: entry.restarts,
        role: asDraining ? 'draining' : 'active',
        drainUntil: asDraining ? (entry.drainUntil ?? this.now().getTime()) : undefined,
      });
      this.logger.info({ pid: entry.pid, deployment: entry.deployment, port: entry.port }, 're-adopted a running workload process');
      if (asDraining) {
        slot.draining.push(p);
        this.armDrainTimer(p);
      } else {
        slot.active = p;
      }
    }
    await this.persistLedger();
  }

  private async answersReady(port: number, signal: AbortSignal): Promise<boolean> {
    const url = `http://${formatHost(this.probeHost)}:${port}`;
    for (let attempt = 0; attempt < 3; attempt += 1) {
      if (await probeReady(url, 2000, signal)) return true;
      signal.throwIfAborted();
      await sleep(200, signal);
    }
    return false;
  }

  /* -------------------------------------------------------------- report */

  private forgetRemoved(desired: readonly DesiredDeployment[]): void {
    const names = new Set(desired.map((d) => d.name));
    for (const [name, s] of this.slots) {
      if (!names.has(name) && !s.active && !s.candidate && s.draining.length === 0) this.slots.delete(name);
    }
    for (const name of [...this.failures.keys(), ...this.conditions.keys(), ...Object.keys(this.ports)]) {
      if (names.has(name) || this.slots.has(name)) continue;
      this.failures.delete(name);
      this.conditions.delete(name);
      delete this.ports[name];
    }
  }

  private async retainArtifacts(desired: readonly DesiredDeployment[]): Promise<void> {
    const inUse = new Map<string, ModelRef>();
    for (const d of desired) inUse.set(d.model.digest, d.model);
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
    if (this.transitionTimer) {
      clearTimeout(this.transitionTimer);
      this.timers.delete(this.transitionTimer);
      this.transitionTimer = undefined;
    }
    if (earliest !== undefined) this.transitionTimer = this.timer(earliest - now.getTime() + 250, () => this.emitChange());
  }

  private report(desired: DesiredPayload, steps: Step[], planNow: Date): RuntimeReport {
    const now = this.now();
    const deployments = desired.deployments.map((d) => {
      const active = this.slots.get(d.name)?.active;
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
    const jobs = desired.fineTuneJobs.map((j) => ({
      name: j.name,
      phase: 'Pending' as const,
      progress: 0,
      metrics: {},
      producedVersion: null,
      message: JOBS_MESSAGE,
    }));
    return { deployments, jobs };
  }
}
