import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The hub under test: the real `flotilla hub` command in its own process, so
 * its CPU and memory are its own and the simulated fleet cannot borrow its
 * event loop.
 */

export interface HubProcess {
  pid: number;
  apiUrl: string;
  /** What the hub wrote to stderr/stdout (warnings and errors: it runs at FLOTILLA_LOG_LEVEL=warn). */
  output(): string;
  /** Exit code, or undefined while it runs. */
  exitCode(): number | null | undefined;
  stop(): Promise<number | null>;
}

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export async function startHubProcess(env: Record<string, string>, apiPort: number, nodeArgs: string[] = []): Promise<HubProcess> {
  const bin = path.join(repoRoot, 'bin', 'flotilla.js');
  const child: ChildProcess = spawn(process.execPath, [...nodeArgs, bin, 'hub', '--no-local-agent'], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const keep = (chunk: Buffer) => {
    out += chunk.toString('utf8');
    if (out.length > 200_000) out = out.slice(-100_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the hub exited with ${child.exitCode} before it was ready:\n${out.slice(-4000)}`);
    const ok = await fetch(`${apiUrl}/readyz`).then((r) => r.ok, () => false);
    if (ok) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the hub was not ready within 120 s:\n${out.slice(-4000)}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    pid: child.pid!,
    apiUrl,
    output: () => out,
    exitCode: () => (child.exitCode === null && child.signalCode === null ? undefined : child.exitCode),
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGINT');
      const t = setTimeout(() => child.kill('SIGKILL'), 20_000);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
}
