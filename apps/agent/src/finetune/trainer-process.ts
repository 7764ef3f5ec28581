import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MAX_TRAINER_LINE, OUTPUT_FILES, parseTrainerLine, TRAINER_LINE_PREFIX, type TrainerEvent } from './trainer-contract.js';

/** How a trainer run ended. */
export type TrainerEnd = 'succeeded' | 'failed' | 'timed-out' | 'memory-exceeded' | 'cancelled';

export interface TrainerOutcome {
  end: TrainerEnd;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** The `failure` file, else the last stderr lines, else why the agent stopped it (local only: may name dataset files). */
  failure?: string;
  /** Largest resident set seen, in bytes (Linux; 0 elsewhere). */
  peakRssBytes: number;
  /** stdout lines that looked like contract lines but were not (malformed JSON, unknown event, too long): ignored and counted. */
  ignoredLines: number;
}

export interface TrainerRunOptions {
  command: string;
  args: string[];
  env: Record<string, string>;
  /** Working directory (default: the agent's). */
  cwd?: string;
  outputDir: string;
  onEvent: (e: TrainerEvent) => void;
  /** Non-contract stdout and all stderr lines, for the agent's log. */
  onLog?: (line: string, stream: 'stdout' | 'stderr') => void;
  timeoutMs?: number;
  memoryLimitBytes?: number;
  /** Between SIGTERM and SIGKILL. */
  graceMs?: number;
  signal?: AbortSignal;
  /** How often RSS is sampled for the memory limit. */
  memoryPollMs?: number;
}

const TAIL_LINES = 20;

/** Resident set of a process group leader and its direct children, from /proc (Linux). */
async function residentBytes(pid: number): Promise<number> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(status);
    let total = m ? Number(m[1]) * 1024 : 0;
    const children = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
    for (const child of children.split(/\s+/).filter((s) => s !== '')) total += await residentBytes(Number(child));
    return total;
  } catch {
    return 0;
  }
}

/**
 * Runs one trainer as a supervised child process in its own process group:
 * contract lines on stdout become events, a timeout, a memory limit or an
 * abort stops it with SIGTERM then SIGKILL after the grace period. The agent
 * process itself never loads the training code.
 */
export class TrainerProcess {
  static run(opts: TrainerRunOptions): Promise<TrainerOutcome> {
    return new TrainerProcess(opts).start();
  }

  private stopReason: TrainerEnd | null = null;
  private stopDetail = '';
  private peakRss = 0;
  private ignored = 0;
  private readonly stderrTail: string[] = [];

  private constructor(private readonly opts: TrainerRunOptions) {}

  private start(): Promise<TrainerOutcome> {
    const { opts } = this;
    if (opts.signal?.aborted) return Promise.resolve({ end: 'cancelled', exitCode: null, signal: null, failure: 'cancelled before it started', peakRssBytes: 0, ignoredLines: 0 });
    const child = spawn(opts.command, opts.args, { env: opts.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true, ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}) });
    const timers: NodeJS.Timeout[] = [];
    let exited = false;
    const kill = (sig: NodeJS.Signals) => {
      if (exited || child.pid === undefined) return;
      try {
        process.kill(-child.pid, sig);
      } catch {
        child.kill(sig);
      }
    };
    const stop = (reason: TrainerEnd, detail: string) => {
      if (this.stopReason !== null || exited) return;
      this.stopReason = reason;
      this.stopDetail = detail;
      kill('SIGTERM');
      const t = setTimeout(() => kill('SIGKILL'), opts.graceMs ?? 10_000);
      t.unref();
      timers.push(t);
    };
    if (opts.timeoutMs !== undefined) timers.push(setTimeout(() => stop('timed-out', `stopped after the ${Math.round(opts.timeoutMs! / 1000)} s timeout`), opts.timeoutMs));
    const onAbort = () => stop('cancelled', 'cancelled');
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (child.pid !== undefined) {
      const poll = setInterval(() => {
        void residentBytes(child.pid!).then((rss) => {
          this.peakRss = Math.max(this.peakRss, rss);
          if (opts.memoryLimitBytes !== undefined && rss > opts.memoryLimitBytes) {
            stop('memory-exceeded', `stopped: resident memory ${Math.round(rss / 2 ** 20)} MiB is above the ${Math.round(opts.memoryLimitBytes / 2 ** 20)} MiB limit`);
          }
        });
      }, opts.memoryPollMs ?? 250);
      timers.push(poll);
    }
    this.lines(child.stdout, (line) => {
      const e = parseTrainerLine(line);
      if (e) opts.onEvent(e);
      else {
        if (line.startsWith(TRAINER_LINE_PREFIX.trim())) this.ignored += 1;
        opts.onLog?.(line.slice(0, MAX_TRAINER_LINE), 'stdout');
      }
    });
    this.lines(child.stderr, (line) => {
      this.stderrTail.push(line);
      if (this.stderrTail.length > TAIL_LINES) this.stderrTail.shift();
      opts.onLog?.(line, 'stderr');
    }, false);
    return new Promise((resolve) => {
      const finish = async (exitCode: number | null, signal: NodeJS.Signals | null, spawnError?: Error) => {
        exited = true;
        for (const t of timers) clearTimeout(t);
        opts.signal?.removeEventListener('abort', onAbort);
        const failureFile = await readFile(path.join(opts.outputDir, OUTPUT_FILES.failure), 'utf8').catch(() => null);
        const end: TrainerEnd = this.stopReason ?? (exitCode === 0 && failureFile === null ? 'succeeded' : 'failed');
        const failure =
          end === 'succeeded'
            ? undefined
            : [this.stopDetail, spawnError?.message, failureFile?.slice(0, MAX_TRAINER_LINE).trim(), this.stopReason === null && !failureFile ? this.stderrTail.join('\n').slice(-MAX_TRAINER_LINE) : '', exitCode !== null && exitCode !== 0 && !failureFile && this.stderrTail.length === 0 ? `exited with code ${exitCode}` : '', signal && this.stopReason === null ? `killed by ${signal}` : '']
                .filter((s): s is string => s !== undefined && s !== '')
                .join('; ');
        resolve({ end, exitCode, signal, failure, peakRssBytes: this.peakRss, ignoredLines: this.ignored });
      };
      child.once('error', (err) => void finish(null, null, err));
      child.once('close', (code, sig) => void finish(code, sig));
    });
  }

  private lines(stream: NodeJS.ReadableStream | null, onLine: (line: string) => void, countOversize = true): void {
    if (!stream) return;
    let buffer = '';
    /** Inside a line already longer than the bound: dropped up to its end, counted once. */
    let skipping = false;
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      buffer += chunk;
      let nl = buffer.indexOf('\n');
      while (nl >= 0) {
        if (skipping) skipping = false;
        else onLine(buffer.slice(0, nl));
        buffer = buffer.slice(nl + 1);
        nl = buffer.indexOf('\n');
      }
      // A line longer than the bound is not a contract line: drop what cannot be one.
      if (buffer.length > MAX_TRAINER_LINE) {
        if (!skipping && countOversize) this.ignored += 1;
        skipping = true;
        buffer = '';
      }
    });
    stream.on('end', () => {
      if (buffer !== '' && !skipping) onLine(buffer);
    });
  }
}

/** The compiled linear-probe entry, `dist/apps/agent/src/finetune/linear-probe-main.js` at the package root. */
export function defaultLinearProbeEntry(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, 'package.json'))) return path.join(dir, 'dist', 'apps', 'agent', 'src', 'finetune', 'linear-probe-main.js');
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('cannot find the package root above the agent to locate the linear-probe trainer');
    dir = parent;
  }
}
