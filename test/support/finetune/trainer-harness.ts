import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LinearProbeMetricsFile } from '../../../apps/agent/src/finetune/linear-probe.js';
import type { LinearProbeSpec } from '../../../apps/agent/src/finetune/linear-probe-spec.js';
import type { TrainerEvent } from '../../../apps/agent/src/finetune/trainer-contract.js';
import { defaultLinearProbeEntry, TrainerProcess, type TrainerOutcome } from '../../../apps/agent/src/finetune/trainer-process.js';

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const SERVER_ENTRY = path.join(REPO_ROOT, 'dist', 'libs', 'inference-server', 'src', 'main.js');

/** ONNX Runtime's native tensors cannot cross Jest's VM realm, so training runs as the agent runs it: in a child process. */
export async function trainInChild(spec: LinearProbeSpec, extra: { timeoutMs?: number; memoryLimitBytes?: number; signal?: AbortSignal } = {}): Promise<{ outcome: TrainerOutcome; events: TrainerEvent[]; metrics: LinearProbeMetricsFile | null }> {
  const entry = defaultLinearProbeEntry();
  if (!existsSync(entry)) throw new Error(`${entry} is missing: run npm run build first`);
  await mkdir(spec.outputDir, { recursive: true });
  const specFile = path.join(spec.outputDir, '..', `${path.basename(spec.outputDir)}.spec.json`);
  await writeFile(specFile, JSON.stringify(spec));
  const events: TrainerEvent[] = [];
  const outcome = await TrainerProcess.run({
    command: process.execPath,
    args: [entry, specFile],
    env: { PATH: process.env.PATH ?? '' },
    outputDir: spec.outputDir,
    onEvent: (e) => events.push(e),
    graceMs: 2000,
    ...extra,
  });
  const metrics = (await readFile(path.join(spec.outputDir, 'metrics.json'), 'utf8').then((t) => JSON.parse(t) as LinearProbeMetricsFile).catch(() => null));
  return { outcome, events, metrics };
}

export interface RunningServer {
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** The builtin inference server over a Triton-layout repository, as a process (see test/process). */
export async function startServer(repository: string): Promise<RunningServer> {
  const child = spawn(process.execPath, [SERVER_ENTRY, '--model-repository', repository, '--port', '0', '--execution-provider', 'cpu', '--grace-period', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    let buffer = '';
    let stderr = '';
    child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
    child.stdout?.on('data', (c: Buffer) => {
      buffer += c.toString();
      for (const line of buffer.split('\n')) if (line.includes('"msg":"inference server ready"')) resolve((JSON.parse(line) as { url: string }).url);
    });
    child.once('exit', (code) => reject(new Error(`inference server exited with ${code}: ${stderr}`)));
  });
  return {
    url,
    child,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

export async function inferImage(url: string, model: string, pixels: Uint8Array | Float32Array, size: number): Promise<number[]> {
  const res = await fetch(`${url}/v2/models/${model}/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ inputs: [{ name: 'image', datatype: 'FP32', shape: [1, size, size, 3], data: [...pixels] }] }),
  });
  if (res.status !== 200) throw new Error(`infer answered ${res.status}: ${await res.text()}`);
  const body = (await res.json()) as { outputs: { name: string; data: number[] }[] };
  return body.outputs.find((o) => o.name === 'probabilities')!.data;
}
