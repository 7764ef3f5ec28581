import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { settleWithin, sleep } from '../../support/abort.js';
import type { LaunchCommand, LaunchInfo } from './launch.js';
import { appendLogLine, openLogFile, type LogLimits } from './log-file.js';
import { readProcStat } from '../../support/proc.js';
import type { LedgerEntry } from './ledger.js';
import { isAlive, ownsProcess, sameProcess, signalGroup, waitForPidExit } from './os-process.js';
import type { ProcessRole } from './plan.js';
import { waitUntilReady } from './readiness.js';

/** What a supervised process is, independent of its current pid and port. */
export interface ProcessIdentity {
  instanceId: string;
  deployment: string;
  key: string;
  digest: string;
  modelName: string;
  modelVersion: string;
  launch: LaunchInfo;
}

/** What a supervisor needs from the runtime that owns it. */
export interface SupervisorContext {
  /** Host to probe the workload on (loopback when it binds every address). */
  probeHost: string;
  logFile: string;
  logLimits: LogLimits;
  env: NodeJS.ProcessEnv;
  command(port: number, metricsPort: number | undefined): LaunchCommand;
  /** Environment entries that mark one launch as ours (workload-marker.ts). */
  marks(port: number, metricsPort: number | undefined): Record<string, string>;
  needsMetricsPort: boolean;
  /** A free port, `preferred` if possible, never one promised to another process. */
  allocatePort(preferred: number | undefined, self: SupervisedProcess): Promise<number>;
  restartBackoff: { initialMs: number; maxMs: number };
  /** Ready this long, the process counts as healthy again and its backoff starts over. */
  stableAfterMs: number;
  startupTimeoutMs: number;
  /** How often an adopted process (not our child, so no exit event) is checked for life. */
  watchIntervalMs: number;
  /**
   * Called before every spawn, the process being `launching` (no pid yet):
   * resolves once the ledger holds the intent; a rejection cancels the spawn.
   */
  recordIntent(): Promise<void>;
  /** Its observable state changed (crashed, ready again): the owner re-reports and rewrites the ledger. */
  onChange(): void;
  /** Its pid or port changed: the owner rewrites the ledger. */
  onRelaunched(): void;
  logger: Logger;
  now(): number;
}

export type SupervisedState = 'starting' | 'ready' | 'backoff' | 'stopping' | 'stopped';

export interface ExitRecord {
  code: number | null;
  signal: NodeJS.Signals | null;
  at: number;
  /** Why, in words: "exited with code 1", "killed by SIGKILL", "not ready within 120 s". */
  description: string;
}

function describeExit(code: number | null, signal: NodeJS.Signals | null, detail: string | undefined): string {
  const how = signal ? `killed by ${signal}` : code !== null ? `exited with code ${code}` : 'exited';
  return detail ? `${how} (${detail})` : how;
}

export function formatHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/** How a previous agent's process is taken over; the caller checked that it is ours. */
export interface AdoptedProcess {
  pid: number;
  startTime?: number;
  port: number;
  metricsPort?: number;
  startedAt: string;
  restarts: number;
  role: ProcessRole;
  drainUntil?: number;
  /** Answered ready just now; otherwise it is still starting and is given its startup timeout. */
  ready: boolean;
  command?: string[];
}

/**
 * One workload process under supervision: started detached in its own
 * process group with stdout and stderr in its log file, probed until ready,
 * restarted with exponential backoff when it exits unasked, and stopped with
 * SIGTERM, then SIGKILL after a grace period. A process re-adopted after an
 * agent restart is not our child: its exit is noticed by polling its pid.
 *
 * Its fields change only through its own methods; the runtime reads them.
 */
export class SupervisedProcess {
  private stateValue: SupervisedState = 'starting';
  private pidValue: number | undefined;
  private startTimeValue: number | undefined;
  private portValue: number;
  private metricsPortValue: number | undefined;
  private roleValue: ProcessRole = 'active';
  private drainUntilValue: number | undefined;
  private restartsValue = 0;
  private lastExitValue: ExitRecord | undefined;
  private nextRestartAtValue: number | undefined;
  private readySinceValue: number | undefined;
  private startedAtValue: string;
  /** Between the intent and the spawn's outcome: the ledger holds this launch without a pid. */
  private launchingValue = false;
  private commandValue: string[] | undefined;

  private child: ChildProcess | undefined;
  private consecutiveFailures = 0;
  private stopRequested = false;
  private detached = false;
  /** Why the supervisor itself killed the process, for the exit record. */
  private killReason: string | undefined;
  /** Ends restart timers, readiness polls and the pid watch. */
  private readonly background = new AbortController();
  private readonly events = new EventEmitter();

  private constructor(
    readonly identity: ProcessIdentity,
    private readonly ctx: SupervisorContext,
    port: number,
    metricsPort: number | undefined,
  ) {
    this.portValue = port;
    this.metricsPortValue = metricsPort;
    this.startedAtValue = new Date(ctx.now()).toISOString();
  }

  /**
   * A process not started yet: the owner places it (so that the ledger's
   * snapshot includes it) and then calls `launch`.
   */
  static create(identity: ProcessIdentity, ctx: SupervisorContext, port: number, metricsPort?: number): SupervisedProcess {
    return new SupervisedProcess(identity, ctx, port, metricsPort);
  }

  /** Takes over a process a previous agent started (the caller checked pid and ownership). */
  static adopt(identity: ProcessIdentity, ctx: SupervisorContext, entry: AdoptedProcess): SupervisedProcess {
    const p = new SupervisedProcess(identity, ctx, entry.port, entry.metricsPort);
    p.pidValue = entry.pid;
    p.startTimeValue = entry.startTime;
    p.startedAtValue = entry.startedAt;
    p.restartsValue = entry.restarts;
    p.roleValue = entry.role;
    p.drainUntilValue = entry.drainUntil;
    p.commandValue = entry.command;
    if (entry.ready) {
      p.stateValue = 'ready';
      p.readySinceValue = ctx.now();
    } else {
      p.stateValue = 'starting';
      void p.awaitReadiness(entry.pid);
    }
    void p.watchAdopted(entry.pid);
    return p;
  }

  get state(): SupervisedState {
    return this.stateValue;
  }
  get pid(): number | undefined {
    return this.pidValue;
  }
  get port(): number {
    return this.portValue;
  }
  get metricsPort(): number | undefined {
    return this.metricsPortValue;
  }
  get role(): ProcessRole {
    return this.roleValue;
  }
  get drainUntil(): number | undefined {
    return this.drainUntilValue;
  }
  get restarts(): number {
    return this.restartsValue;
  }
  get lastExit(): ExitRecord | undefined {
    return this.lastExitValue;
  }
  get nextRestartAt(): number | undefined {
    return this.nextRestartAtValue;
  }
  get readySince(): number | undefined {
    return this.readySinceValue;
  }
  get startedAt(): string {
    return this.startedAtValue;
  }

  get adopted(): boolean {
    return this.child === undefined;
  }

  get baseUrl(): string {
    return `http://${formatHost(this.ctx.probeHost)}:${this.port}`;
  }

  /** Replaced by a new version: it keeps serving until `untilMs`, then the runtime stops it. */
  beginDrain(untilMs: number): void {
    this.roleValue = 'draining';
    this.drainUntilValue = untilMs;
  }

  /**
   * What the ledger holds about this process in `role`: with its pid while
   * it runs, without one (an intent) while a spawn is under way, nothing
   * while it waits to restart or after it stopped.
   */
  ledgerEntry(role: LedgerEntry['role']): LedgerEntry | null {
    if (this.state === 'stopped') return null;
    if (this.pidValue === undefined && !this.launchingValue) return null;
    return {
      instanceId: this.identity.instanceId,
      deployment: this.identity.deployment,
      key: this.identity.key,
      digest: this.identity.digest,
      modelName: this.identity.modelName,
      modelVersion: this.identity.modelVersion,
      ...(this.pidValue !== undefined ? { pid: this.pidValue } : {}),
      ...(this.pidValue !== undefined && this.startTimeValue !== undefined ? { startTime: this.startTimeValue } : {}),
      ...(this.state === 'ready' && this.readySinceValue !== undefined ? { readySince: this.readySinceValue } : {}),
      ...(this.commandValue ? { command: this.commandValue } : {}),
      port: this.port,
      ...(this.metricsPort !== undefined ? { metricsPort: this.metricsPort } : {}),
      role,
      ...(role === 'draining' && this.drainUntil !== undefined ? { drainUntil: this.drainUntil } : {}),
      startedAt: this.startedAt,
      restarts: this.restarts,
      launch: this.identity.launch,
    };
  }

  private setState(state: SupervisedState): void {
    this.stateValue = state;
    this.events.emit('state', state);
  }

  /**
   * Starts the process: the intent goes to the ledger first, then the
   * spawn. Resolves once it is spawned (not yet ready: see `whenSettled`);
   * a failed spawn is handled like a crash (restart with backoff).
   */
  async launch(): Promise<void> {
    const { command, args } = this.ctx.command(this.port, this.metricsPort);
    this.commandValue = [command, ...args];
    this.launchingValue = true;
    try {
      await this.ctx.recordIntent();
    } catch (err) {
      this.launchingValue = false;
      this.handleExit(null, null, `not started: the ledger could not record it (${(err as Error).message})`);
      return;
    }
    if (this.stopRequested || this.detached) {
      this.launchingValue = false;
      return;
    }
    let child: ChildProcess;
    let spawned: Promise<Error | null>;
    try {
      const log = await openLogFile(this.ctx.logFile, this.ctx.logLimits);
      try {
        // detached: its own process group, so it outlives the agent and a stop reaches its children too.
        child = spawn(command, args, {
          detached: true,
          stdio: ['ignore', log.fd, log.fd],
          env: { ...this.ctx.env, ...this.ctx.marks(this.port, this.metricsPort) },
        });
        // Listen before any await: 'spawn' or 'error' follows on the next tick.
        spawned = new Promise<Error | null>((resolve) => {
          child.once('spawn', () => resolve(null));
          child.once('error', (err) => resolve(err));
        });
      } finally {
        // The child holds its own copy of the descriptor.
        await log.close();
      }
    } catch (err) {
      this.launchingValue = false;
      throw err;
    }
    const spawnError = await spawned;
    const startTime = spawnError ? undefined : (await readProcStat(child.pid as number))?.startTime;
    this.launchingValue = false;
    if (!spawnError && this.stopRequested) {
      // Stopped while this (re)start was under way: the new process must not outlive the stop.
      signalGroup(child.pid as number, 'SIGTERM');
      return;
    }
    if (spawnError) {
      this.handleExit(null, null, `could not start ${command}: ${spawnError.message}`);
      return;
    }
    child.unref();
    this.child = child;
    this.pidValue = child.pid;
    this.startTimeValue = startTime;
    this.killReason = undefined;
    child.once('exit', (code, signal) => {
      if (this.child !== child || this.detached) return;
      this.child = undefined;
      this.handleExit(code, signal, this.killReason);
    });
    this.setState('starting');
    this.ctx.logger.info({ deployment: this.identity.deployment, pid: this.pid, port: this.port }, 'workload process started');
    this.ctx.onRelaunched();
    void this.awaitReadiness(child.pid as number);
  }

  private async awaitReadiness(pid: number): Promise<void> {
    const current = () => this.pid === pid && this.state === 'starting';
    try {
      const outcome = await waitUntilReady(this.baseUrl, {
        timeoutMs: this.ctx.startupTimeoutMs,
        running: current,
        signal: this.background.signal,
      });
      if (!current()) return;
      if (outcome === 'ready') {
        this.readySinceValue = this.ctx.now();
        this.setState('ready');
        this.ctx.onChange();
      } else if (outcome === 'timeout') {
        this.killReason = `not ready within ${Math.round(this.ctx.startupTimeoutMs / 1000)} s`;
        signalGroup(pid, 'SIGKILL');
      }
    } catch {
      // Aborted: supervision ended.
    }
  }

  /** A re-adopted process is not our child; its end is only visible by polling. */
  private async watchAdopted(pid: number): Promise<void> {
    try {
      while (this.pid === pid) {
        await sleep(this.ctx.watchIntervalMs, this.background.signal);
        if (this.pid === pid && !(await isAlive(pid))) {
          this.handleExit(null, null, 'exit status unknown: it was started by a previous agent');
        }
      }
    } catch {
      // Aborted: supervision ended.
    }
  }

  private handleExit(code: number | null, signal: NodeJS.Signals | null, detail: string | undefined): void {
    const now = this.ctx.now();
    this.pidValue = undefined;
    this.startTimeValue = undefined;
    const exit: ExitRecord = { code, signal, at: now, description: describeExit(code, signal, detail) };
    this.lastExitValue = exit;
    if (this.stopRequested) {
      this.setState('stopped');
      return;
    }
    const stable = this.readySince !== undefined && now - this.readySince >= this.ctx.stableAfterMs;
    this.consecutiveFailures = stable ? 1 : this.consecutiveFailures + 1;
    this.restartsValue += 1;
    this.readySinceValue = undefined;
    const { initialMs, maxMs } = this.ctx.restartBackoff;
    const delay = Math.min(maxMs, initialMs * 2 ** Math.min(this.consecutiveFailures - 1, 30));
    this.nextRestartAtValue = now + delay;
    this.setState('backoff');
    const message = `${exit.description}; restart ${this.restarts} in ${delay} ms`;
    this.ctx.logger.warn({ deployment: this.identity.deployment, code, signal, restarts: this.restarts, delayMs: delay }, `workload process ${message}`);
    void appendLogLine(this.ctx.logFile, `process ${message}`).catch(() => undefined);
    this.ctx.onChange();
    sleep(delay, this.background.signal).then(
      () => this.relaunch(),
      () => undefined,
    );
  }

  private async relaunch(): Promise<void> {
    if (this.stopRequested || this.detached) return;
    try {
      this.portValue = await this.ctx.allocatePort(this.port, this);
      if (this.ctx.needsMetricsPort) this.metricsPortValue = await this.ctx.allocatePort(this.metricsPort, this);
    } catch (err) {
      this.handleExit(null, null, `no port to restart on: ${(err as Error).message}`);
      return;
    }
    // A stop or detach may have come while the port was being found.
    if (this.background.signal.aborted) return;
    this.nextRestartAtValue = undefined;
    await this.launch();
  }

  /**
   * Resolves `ready` once the process answers readiness, `failed` if it
   * exits (or is stopped) first. Rejects when `signal` aborts.
   */
  whenSettled(signal: AbortSignal): Promise<'ready' | 'failed'> {
    const settled = (s: SupervisedState) => (s === 'ready' ? 'ready' : s === 'starting' ? null : 'failed');
    const now = settled(this.state);
    if (now) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const onState = (s: SupervisedState) => {
        const outcome = settled(s);
        if (!outcome) return;
        cleanup();
        resolve(outcome);
      };
      const onAbort = () => {
        cleanup();
        reject(signal.reason);
      };
      const cleanup = () => {
        this.events.off('state', onState);
        signal.removeEventListener('abort', onAbort);
      };
      this.events.on('state', onState);
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * SIGTERM to the process group, SIGKILL after `graceMs`. An adopted pid is
   * signalled only if /proc confirms it still carries our instance marker.
   */
  async stop(graceMs: number): Promise<void> {
    if (this.state === 'stopped') return;
    this.stopRequested = true;
    this.background.abort();
    const pid = this.pid;
    if (pid === undefined) {
      this.setState('stopped');
      return;
    }
    this.setState('stopping');
    const child = this.child;
    if (!child && ((await ownsProcess(pid, this.identity.instanceId)) !== true || !(await sameProcess(pid, this.startTimeValue)))) {
      this.ctx.logger.warn({ deployment: this.identity.deployment, pid }, 'not stopping a pid that no longer carries our instance marker');
      this.pidValue = undefined;
      this.setState('stopped');
      return;
    }
    const exited = (timeoutMs: number): Promise<boolean> =>
      child
        ? settleWithin(
            new Promise<boolean>((resolve) => {
              if (child.exitCode !== null || child.signalCode !== null) resolve(true);
              else child.once('exit', () => resolve(true));
            }),
            timeoutMs,
            false,
          )
        : waitForPidExit(pid, timeoutMs);
    signalGroup(pid, 'SIGTERM');
    if (!(await exited(graceMs))) {
      this.ctx.logger.warn({ deployment: this.identity.deployment, pid, graceMs }, 'workload ignored SIGTERM; sending SIGKILL');
      signalGroup(pid, 'SIGKILL');
      await exited(10_000);
    }
    this.pidValue = undefined;
    this.setState('stopped');
  }

  /** Ends supervision and leaves the process running (the agent stops, its workloads do not). */
  detach(): void {
    this.detached = true;
    this.background.abort();
  }
}
