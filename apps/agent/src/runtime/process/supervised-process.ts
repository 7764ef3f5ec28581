import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { settleWithin, sleep } from '../../support/abort.js';
import type { LaunchCommand, LaunchInfo } from './launch.js';
import { appendLogLine, openLogFile, type LogLimits } from './log-file.js';
import { INSTANCE_ENV, isAlive, ownsProcess, signalGroup, waitForPidExit } from './os-process.js';
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
  needsMetricsPort: boolean;
  /** A free port, `preferred` if possible, never one promised to another process. */
  allocatePort(preferred: number | undefined, self: SupervisedProcess): Promise<number>;
  restartBackoff: { initialMs: number; maxMs: number };
  /** Ready this long, the process counts as healthy again and its backoff starts over. */
  stableAfterMs: number;
  startupTimeoutMs: number;
  /** How often an adopted process (not our child, so no exit event) is checked for life. */
  watchIntervalMs: number;
  /** Its observable state changed (crashed, ready again): the owner re-reports. */
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

/**
 * One workload process under supervision: started detached in its own
 * process group with stdout and stderr in its log file, probed until ready,
 * restarted with exponential backoff when it exits unasked, and stopped with
 * SIGTERM, then SIGKILL after a grace period. A process re-adopted after an
 * agent restart is not our child: its exit is noticed by polling its pid.
 */
export class SupervisedProcess {
  state: SupervisedState = 'starting';
  pid: number | undefined;
  port: number;
  metricsPort: number | undefined;
  role: ProcessRole = 'active';
  drainUntil: number | undefined;
  restarts = 0;
  lastExit: ExitRecord | undefined;
  nextRestartAt: number | undefined;
  readySince: number | undefined;
  startedAt: string;

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
    this.port = port;
    this.metricsPort = metricsPort;
    this.startedAt = new Date(ctx.now()).toISOString();
  }

  /** Starts a new process; resolves once it is spawned (not yet ready: see `whenSettled`). */
  static async start(identity: ProcessIdentity, ctx: SupervisorContext, port: number, metricsPort?: number): Promise<SupervisedProcess> {
    const p = new SupervisedProcess(identity, ctx, port, metricsPort);
    await p.launch();
    return p;
  }

  /** Takes over a ready process a previous agent started (the caller checked pid, ownership and readiness). */
  static adopt(
    identity: ProcessIdentity,
    ctx: SupervisorContext,
    entry: { pid: number; port: number; metricsPort?: number; startedAt: string; restarts: number; role: ProcessRole; drainUntil?: number },
  ): SupervisedProcess {
    const p = new SupervisedProcess(identity, ctx, entry.port, entry.metricsPort);
    p.pid = entry.pid;
    p.state = 'ready';
    p.readySince = ctx.now();
    p.startedAt = entry.startedAt;
    p.restarts = entry.restarts;
    p.role = entry.role;
    p.drainUntil = entry.drainUntil;
    void p.watchAdopted(entry.pid);
    return p;
  }

  get adopted(): boolean {
    return this.child === undefined;
  }

  get baseUrl(): string {
    return `http://${formatHost(this.ctx.probeHost)}:${this.port}`;
  }

  private setState(state: SupervisedState): void {
    this.state = state;
    this.events.emit('state', state);
  }

  private async launch(): Promise<void> {
    const { command, args } = this.ctx.command(this.port, this.metricsPort);
    const log = await openLogFile(this.ctx.logFile, this.ctx.logLimits);
    let child: ChildProcess;
    let spawned: Promise<Error | null>;
    try {
      // detached: its own process group, so it outlives the agent and a stop reaches its children too.
      child = spawn(command, args, {
        detached: true,
        stdio: ['ignore', log.fd, log.fd],
        env: { ...this.ctx.env, [INSTANCE_ENV]: this.identity.instanceId },
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
    const spawnError = await spawned;
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
    this.pid = child.pid;
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
        this.readySince = this.ctx.now();
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
    this.pid = undefined;
    this.lastExit = { code, signal, at: now, description: describeExit(code, signal, detail) };
    if (this.stopRequested) {
      this.setState('stopped');
      return;
    }
    const stable = this.readySince !== undefined && now - this.readySince >= this.ctx.stableAfterMs;
    this.consecutiveFailures = stable ? 1 : this.consecutiveFailures + 1;
    this.restarts += 1;
    this.readySince = undefined;
    const { initialMs, maxMs } = this.ctx.restartBackoff;
    const delay = Math.min(maxMs, initialMs * 2 ** Math.min(this.consecutiveFailures - 1, 30));
    this.nextRestartAt = now + delay;
    this.setState('backoff');
    const message = `${this.lastExit.description}; restart ${this.restarts} in ${delay} ms`;
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
      this.port = await this.ctx.allocatePort(this.port, this);
      if (this.ctx.needsMetricsPort) this.metricsPort = await this.ctx.allocatePort(this.metricsPort, this);
    } catch (err) {
      this.handleExit(null, null, `no port to restart on: ${(err as Error).message}`);
      return;
    }
    // A stop or detach may have come while the port was being found.
    if (this.background.signal.aborted) return;
    this.nextRestartAt = undefined;
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
    if (!child && (await ownsProcess(pid, this.identity.instanceId)) !== true) {
      this.ctx.logger.warn({ deployment: this.identity.deployment, pid }, 'not stopping a pid that no longer carries our instance marker');
      this.pid = undefined;
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
    this.pid = undefined;
    this.setState('stopped');
  }

  /** Ends supervision and leaves the process running (the agent stops, its workloads do not). */
  detach(): void {
    this.detached = true;
    this.background.abort();
  }
}
