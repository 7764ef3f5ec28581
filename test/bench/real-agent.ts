import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sampleProcess } from './proc-stats.js';

/**
 * A real agent's own footprint beside the simulated ones: `flotilla agent
 * enroll` then `flotilla agent run` (process runtime, no workloads placed on
 * it), enrolled against the benchmark's hub, measured from outside through
 * /proc after `idleSeconds`. Kept small on purpose: `npm run bench` and the
 * agent-footprint work measure the same thing the same way.
 */

export interface RealAgentFootprint {
  runtime: 'process';
  idleSeconds: number;
  /** VmRSS after idleSeconds. */
  rssBytes: number;
  /** VmHWM over the run (startup included). */
  peakRssBytes: number;
  /** CPU over the whole run, and over its second half (the idle rate). */
  cpuSeconds: number;
  idleCpuCoreFraction: number;
  online: boolean;
}

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const bin = path.join(repoRoot, 'bin', 'flotilla.js');

function run(args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`flotilla ${args.slice(0, 2).join(' ')} exited ${code}: ${out.slice(-2000)}`))));
  });
}

export async function measureRealAgent(opts: {
  hubUrl: string;
  token: string;
  name: string;
  idleSeconds: number;
  /** Whether the hub sees the agent online (asked at the end). */
  isOnline: () => Promise<boolean>;
}): Promise<RealAgentFootprint> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'flotilla-bench-agent-'));
  const env = { ...process.env, FLOTILLA_LOG_LEVEL: 'warn' };
  try {
    await run(['agent', 'enroll', '--hub', opts.hubUrl, '--token', opts.token, '--name', opts.name, '--state-dir', dir], env);
    const child = spawn(
      process.execPath,
      [bin, 'agent', 'run', '--state-dir', dir, '--runtime', 'process', '--metrics-port', 'off', '--gpu', 'none', '--log-level', 'warn'],
      { env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()).length > 100_000 && (out = out.slice(-50_000)));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()).length > 100_000 && (out = out.slice(-50_000)));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    try {
      await new Promise((r) => setTimeout(r, (opts.idleSeconds * 1000) / 2));
      const half = sampleProcess(child.pid!);
      await new Promise((r) => setTimeout(r, (opts.idleSeconds * 1000) / 2));
      const end = sampleProcess(child.pid!);
      if (!half || !end) throw new Error(`the agent exited: ${out.slice(-2000)}`);
      return {
        runtime: 'process',
        idleSeconds: opts.idleSeconds,
        rssBytes: end.rssBytes,
        peakRssBytes: end.peakRssBytes,
        cpuSeconds: end.cpuSeconds,
        idleCpuCoreFraction: (end.cpuSeconds - half.cpuSeconds) / (opts.idleSeconds / 2),
        online: await opts.isOnline(),
      };
    } finally {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
