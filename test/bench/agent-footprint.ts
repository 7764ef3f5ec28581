/**
 * The footprint of a real agent, measured from outside: `flotilla agent
 * enroll`, then `flotilla agent run` in a process of its own, enrolled with a
 * real hub and idle (no workloads); after a settle time its resident set
 * (VmRSS, VmHWM) is read from /proc, then its CPU over an idle window.
 *
 * `measureIdleAgent` is what the fleet benchmark calls to report a real agent
 * beside the simulated ones; `npm run bench:agent` (agent-footprint.bench.ts)
 * starts a hub of its own and prints the figures with Node's own floor.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { sampleProcess } from './proc-stats.js';

const run = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
/** The checkout: this file runs from test/bench (jest) or dist/test/bench (npm scripts). */
const repoRoot = here.includes(`${path.sep}dist${path.sep}`) ? path.resolve(here, '..', '..', '..') : path.resolve(here, '..', '..');
const MIB = 1024 * 1024;

export interface IdleAgentOptions {
  /** The hub's API URL, as handed to `flotilla agent enroll --hub`. */
  hubUrl: string;
  /** An enrolment token with a use left. */
  token: string;
  /** Spoke name; default agent-footprint-<random>. */
  name?: string;
  /** `--runtime`; default process (what an appliance runs). */
  runtime?: 'process' | 'none';
  /** How long the agent runs before RSS is read; default 40 s. */
  settleMs?: number;
  /** The idle window CPU is measured over, after the settle time; default 60 s. */
  cpuWindowMs?: number;
  /** Node flags for the agent process (e.g. --max-semi-space-size=1). */
  nodeArgs?: string[];
  /** More `flotilla agent run` flags; default `--metrics-port 0` (its /metrics on a free port). */
  agentArgs?: string[];
  /** Also count loaded modules and heap in a second, short probe run (node --import agent-probe.mjs). */
  probe?: boolean;
  /** How long the probe run stays up once connected before it is read; default 5 s. */
  probeSettleMs?: number;
  env?: Record<string, string>;
  /** Where state directories go; default a fresh temporary directory, removed at the end. */
  workDir?: string;
}

export interface IdleAgentFootprint {
  pid: number;
  rssMiB: number;
  hwmMiB: number;
  /** Of one core, over the idle window. */
  cpuPercent: number;
  /** V8 heap in use, from the agent's own /metrics (nodejs_heap_size_used_bytes), when it serves one. */
  heapUsedMiB: number | null;
  /** From the probe run (`probe: true`). */
  modules: number | null;
  packages: Record<string, number> | null;
  /** Flotilla's own modules the probe run loaded (file URLs). */
  ownModules: string[] | null;
  settleSeconds: number;
  cpuWindowSeconds: number;
  nodeArgs: string[];
}

interface AgentChild {
  child: ChildProcess;
  /** Resolves once the agent is connected and holds a desired state (applied now, or resumed from its state directory). */
  applied: Promise<void>;
  metricsUrl(): string | null;
  output(): string;
  stop(): Promise<void>;
}

const bin = () => path.join(repoRoot, 'bin', 'flotilla.js');

function startAgentProcess(stateDir: string, o: IdleAgentOptions, extraNodeArgs: string[], env: Record<string, string>): AgentChild {
  const args = [
    ...(o.nodeArgs ?? []),
    ...extraNodeArgs,
    bin(),
    'agent',
    'run',
    '--state-dir',
    stateDir,
    '--runtime',
    o.runtime ?? 'process',
    ...(o.agentArgs ?? ['--metrics-port', '0']),
  ];
  const child = spawn(process.execPath, args, {
    env: { ...process.env, FLOTILLA_LOG_LEVEL: 'info', ...o.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let metricsUrl: string | null = null;
  let markApplied!: () => void;
  let failed!: (err: Error) => void;
  const applied = new Promise<void>((resolve, reject) => {
    markApplied = resolve;
    failed = reject;
  });
  let partial = '';
  let connected = false;
  let holds = false;
  child.stdout!.on('data', (chunk: Buffer) => {
    const text = chunk.toString('utf8');
    out = (out + text).slice(-100_000);
    partial += text;
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      let rec: { msg?: string; url?: string };
      try {
        rec = JSON.parse(line) as { msg?: string; url?: string };
      } catch {
        continue;
      }
      if (rec.msg === 'agent metrics served' && rec.url) metricsUrl = rec.url;
      if (rec.msg === 'connected to the broker') connected = true;
      if (rec.msg === 'applied desired state' || rec.msg === 'resuming the last applied desired state') holds = true;
      if (connected && holds) markApplied();
    }
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    out = (out + chunk.toString('utf8')).slice(-100_000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.once('exit', (code, signal) => failed(new Error(`the agent exited (${code ?? signal}) before it applied a desired state:\n${out.slice(-4000)}`)));
  return {
    child,
    applied,
    metricsUrl: () => metricsUrl,
    output: () => out,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(t);
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (t = setTimeout(() => reject(new Error(`${what} within ${ms / 1000} s`)), ms)))]);
  } finally {
    clearTimeout(t);
  }
}

async function heapFromMetrics(url: string | null): Promise<number | null> {
  if (!url) return null;
  const text = await fetch(url).then((r) => (r.ok ? r.text() : ''), () => '');
  const m = /^nodejs_heap_size_used_bytes(?:\{[^}]*\})? ([0-9.e+]+)/m.exec(text);
  return m ? Number(m[1]) / MIB : null;
}

/**
 * Enrols one real agent with `hubUrl`, runs it idle for `settleMs`, reads its
 * RSS, then its CPU over `cpuWindowMs`. Stops it and removes its state at the end.
 */
export async function measureIdleAgent(o: IdleAgentOptions): Promise<IdleAgentFootprint> {
  const settleMs = o.settleMs ?? 40_000;
  const cpuWindowMs = o.cpuWindowMs ?? 60_000;
  const work = o.workDir ?? (await mkdtemp(path.join(os.tmpdir(), 'flotilla-agent-footprint-')));
  const name = o.name ?? `agent-footprint-${Math.random().toString(36).slice(2, 8)}`;
  const stateDir = path.join(work, name);
  try {
    await run(process.execPath, [bin(), 'agent', 'enroll', '--hub', o.hubUrl, '--token', o.token, '--name', name, '--state-dir', stateDir], {
      env: { ...process.env, ...o.env },
    });
    const agent = startAgentProcess(stateDir, o, [], {});
    let result: IdleAgentFootprint;
    try {
      const started = Date.now();
      await withDeadline(agent.applied, 60_000, 'the agent did not apply its first desired state');
      await sleep(Math.max(0, settleMs - (Date.now() - started)));
      const pid = agent.child.pid!;
      const at = sampleProcess(pid);
      if (!at) throw new Error(`the agent (pid ${pid}) is gone:\n${agent.output().slice(-4000)}`);
      const heapUsedMiB = await heapFromMetrics(agent.metricsUrl());
      const t0 = process.hrtime.bigint();
      await sleep(cpuWindowMs);
      const after = sampleProcess(pid);
      if (!after) throw new Error(`the agent (pid ${pid}) died during the idle window:\n${agent.output().slice(-4000)}`);
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      result = {
        pid,
        rssMiB: at.rssBytes / MIB,
        hwmMiB: Math.max(at.peakRssBytes, after.peakRssBytes) / MIB,
        cpuPercent: ((after.cpuSeconds - at.cpuSeconds) / seconds) * 100,
        heapUsedMiB,
        modules: null,
        packages: null,
        ownModules: null,
        settleSeconds: settleMs / 1000,
        cpuWindowSeconds: seconds,
        nodeArgs: o.nodeArgs ?? [],
      };
    } finally {
      await agent.stop();
    }
    if (o.probe) {
      // A second, short run of the same enrolled agent, with the module-counting preload.
      const probeOut = path.join(work, `${name}.probe.json`);
      const probe = startAgentProcess(stateDir, o, ['--import', path.join(repoRoot, 'test', 'bench', 'agent-probe.mjs')], { FLOTILLA_AGENT_PROBE_OUT: probeOut });
      try {
        await withDeadline(probe.applied, 60_000, 'the probe agent did not apply its first desired state');
        await sleep(o.probeSettleMs ?? 5_000);
        probe.child.kill('SIGUSR2');
        for (let i = 0; i < 50; i++) {
          const text = await readFile(probeOut, 'utf8').catch(() => null);
          if (text) {
            const p = JSON.parse(text) as { modules: number; packages: Record<string, number>; own: string[]; memory: { heapUsed: number } };
            result.modules = p.modules;
            result.packages = p.packages;
            result.ownModules = p.own;
            result.heapUsedMiB ??= p.memory.heapUsed / MIB;
            break;
          }
          await sleep(100);
        }
      } finally {
        await probe.stop();
      }
    }
    return result;
  } finally {
    if (!o.workDir) await rm(work, { recursive: true, force: true });
  }
}

/** Node itself, doing nothing (`node -e 'setInterval(() => {}, 1e6)'`), measured the same way: the floor. */
export async function measureIdleNode(nodeArgs: string[] = [], settleMs = 5_000): Promise<{ rssMiB: number; hwmMiB: number }> {
  const child = spawn(process.execPath, [...nodeArgs, '-e', 'setInterval(() => {}, 1e6)'], { stdio: 'ignore' });
  try {
    await sleep(settleMs);
    const s = sampleProcess(child.pid!);
    if (!s) throw new Error('the idle node process exited');
    return { rssMiB: s.rssBytes / MIB, hwmMiB: s.peakRssBytes / MIB };
  } finally {
    child.kill('SIGKILL');
  }
}
