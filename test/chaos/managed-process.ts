import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, statSync } from 'node:fs';

/**
 * One long-running process of a trial (the hub, an agent), supervised the
 * way systemd's `Restart=always` would: whenever it exits, for whatever
 * reason, it is started again after a delay, until the trial stops
 * supervising it. It runs in its own process group so that cleanup reaches
 * whatever it left behind (an orphaned embedded Postgres, say), and its
 * output goes straight to a log file, which survives a SIGKILL.
 */

export interface ManagedProcessSpec {
  /** Name in reports, e.g. `hub` or `agent chaos-3`. */
  name: string;
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  cwd?: string;
  /** stdout and stderr are appended here, across restarts. */
  logFile: string;
}

export interface ExitRecord {
  pid: number;
  at: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** True when the harness killed it (a fault); false when it exited by itself. */
  killedByHarness: boolean;
  /** The end of its log at that moment, for a crash. */
  logTail?: string;
}

/** Delay before a restart: the fault's own (random) delay, or systemd-like backoff after a crash. */
export type RestartDelay = (exit: ExitRecord, crashesInARow: number) => number;

export class ManagedProcess {
  private child: ChildProcess | null = null;
  private supervising = false;
  private killedByHarness = false;
  private crashesInARow = 0;
  private restartTimer: NodeJS.Timeout | null = null;
  private pendingDelay: number | null = null;
  private exitWaiters: Array<() => void> = [];
  readonly exits: ExitRecord[] = [];
  /** Every pid this process had: cleanup signals each one's process group. */
  readonly pids: number[] = [];
  /** When the last start (first or restart) happened. */
  lastStartAt = 0;
  starts = 0;

  constructor(
    readonly spec: ManagedProcessSpec,
    private readonly restartDelay: RestartDelay,
  ) {}

  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  get running(): boolean {
    return this.child !== null;
  }

  /** A restart is scheduled (killed or crashed, not started again yet). */
  get restarting(): boolean {
    return this.restartTimer !== null;
  }

  start(): void {
    this.supervising = true;
    this.spawnNow();
  }

  private spawnNow(): void {
    this.restartTimer = null;
    const fd = openSync(this.spec.logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(this.spec.command, this.spec.args, {
        env: this.spec.env,
        cwd: this.spec.cwd,
        stdio: ['ignore', fd, fd],
        detached: true,
      });
    } finally {
      closeSync(fd);
    }
    this.child = child;
    this.killedByHarness = false;
    this.lastStartAt = Date.now();
    this.starts += 1;
    if (child.pid !== undefined) this.pids.push(child.pid);
    child.once('exit', (code, signal) => {
      const exit: ExitRecord = { pid: child.pid ?? -1, at: Date.now(), code, signal, killedByHarness: this.killedByHarness };
      if (!exit.killedByHarness) exit.logTail = this.logTail(3000);
      this.exits.push(exit);
      this.child = null;
      for (const w of this.exitWaiters.splice(0)) w();
      if (!this.supervising) return;
      this.crashesInARow = exit.killedByHarness ? 0 : this.crashesInARow + 1;
      const delay = this.pendingDelay ?? this.restartDelay(exit, this.crashesInARow);
      this.pendingDelay = null;
      this.restartTimer = setTimeout(() => {
        if (this.supervising) this.spawnNow();
        else this.restartTimer = null;
      }, delay);
    });
  }

  /**
   * The fault: SIGKILL to the process itself (not its group, as when the
   * kernel's OOM killer or a crash takes it), restarted after `restartAfterMs`.
   * Returns the pid killed, or null when it was not running.
   */
  crash(restartAfterMs: number): number | null {
    const pid = this.child?.pid;
    if (pid === undefined || this.child === null) return null;
    this.killedByHarness = true;
    this.pendingDelay = restartAfterMs;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      return null;
    }
    return pid;
  }

  /** Waits until a scheduled restart has happened (or supervision stopped). */
  async settled(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.supervising && (this.restartTimer !== null || this.child === null)) {
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 50));
    }
    return true;
  }

  /** Stops supervising and kills every process group it ever led (SIGKILL: cleanup, not a test of shutdown). */
  async destroy(): Promise<void> {
    this.supervising = false;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    const exited = this.child ? new Promise<void>((r) => this.exitWaiters.push(r)) : Promise.resolve();
    for (const pid of this.pids) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // The group is gone already.
      }
    }
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
  }

  logTail(bytes: number): string {
    try {
      const size = statSync(this.spec.logFile).size;
      const text = readFileSync(this.spec.logFile, 'utf8');
      return size > bytes ? text.slice(-bytes) : text;
    } catch {
      return '';
    }
  }
}
