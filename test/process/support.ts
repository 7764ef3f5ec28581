import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DesiredDeployment, DesiredPayload, ModelRef } from '@flotilla/contracts';
import { ArtifactError, type ArtifactErrorReason } from '../../apps/agent/src/artifacts/artifact-error.js';
import type { ArtifactProvider, PreparedArtifact } from '../../apps/agent/src/runtime/runtime.js';
import type { RuntimeReport, WorkloadRuntime } from '../../apps/agent/src/runtime/runtime.js';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures', 'models');
export const CLASSIFIER_V1 = path.join(FIXTURES, 'linear-classifier-1.0.0.onnx');
export const CLASSIFIER_V2 = path.join(FIXTURES, 'linear-classifier-2.0.0.onnx');
export const BUILTIN_ENTRY = path.join(REPO_ROOT, 'dist', 'libs', 'inference-server', 'src', 'main.js');

export async function sha256Of(file: string): Promise<string> {
  return `sha256:${createHash('sha256').update(await readFile(file)).digest('hex')}`;
}

/** Polls `check` until it returns a truthy value; every wait is bounded and abortable, and says what it waited for. */
export async function waitUntil<T>(
  what: string,
  check: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  opts: { timeoutMs?: number; everyMs?: number; signal?: AbortSignal } = {},
): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  for (;;) {
    opts.signal?.throwIfAborted();
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, opts.everyMs ?? 50));
  }
}

/* ----------------------------------------------------- the compiled server */

async function newestSourceMtime(dir: string): Promise<number> {
  let newest = 0;
  for (const name of await readdir(dir)) {
    if (!name.endsWith('.ts') || name.endsWith('.spec.ts')) continue;
    newest = Math.max(newest, (await stat(path.join(dir, name))).mtimeMs);
  }
  return newest;
}

async function isFresh(): Promise<boolean> {
  const srcDir = path.join(REPO_ROOT, 'libs', 'inference-server', 'src');
  const outDir = path.dirname(BUILTIN_ENTRY);
  if (!existsSync(BUILTIN_ENTRY)) return false;
  const newestSource = await newestSourceMtime(srcDir);
  for (const name of await readdir(srcDir)) {
    if (!name.endsWith('.ts') || name.endsWith('.spec.ts')) continue;
    const js = path.join(outDir, name.replace(/\.ts$/, '.js'));
    if (!existsSync(js) || statSync(js).mtimeMs < newestSource) return false;
  }
  return true;
}

function run(command: string, args: string[], cwd: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, output }));
  });
}

/**
 * The process runtime starts the builtin server from dist/, as in
 * production. Tests can run before anyone rebuilt, so this compiles the
 * inference server alone (a few seconds; others' work in progress elsewhere
 * in the repository cannot break it) when dist/ is missing or older than the
 * sources. A lock directory keeps parallel test files from compiling at once.
 */
export async function ensureInferenceServerBuilt(): Promise<string> {
  if (await isFresh()) return BUILTIN_ENTRY;
  const lock = path.join(tmpdir(), `flotilla-inference-server-build-${createHash('sha256').update(REPO_ROOT).digest('hex').slice(0, 12)}.lock`);
  await waitUntil('the inference server build lock', async () => {
    try {
      await mkdir(lock);
      return true;
    } catch {
      // A lock older than five minutes belongs to a test run that died.
      const age = Date.now() - (await stat(lock).catch(() => ({ mtimeMs: Date.now() }))).mtimeMs;
      if (age > 300_000) await rmdir(lock).catch(() => undefined);
      return false;
    }
  }, { timeoutMs: 300_000, everyMs: 200 });
  try {
    if (await isFresh()) return BUILTIN_ENTRY;
    const config = path.join(tmpdir(), `flotilla-inference-server-tsconfig-${process.pid}.json`);
    await writeFile(
      config,
      JSON.stringify({
        extends: path.join(REPO_ROOT, 'tsconfig.build.json'),
        compilerOptions: { rootDir: REPO_ROOT, outDir: path.join(REPO_ROOT, 'dist'), noEmitOnError: true },
        include: [path.join(REPO_ROOT, 'libs', 'inference-server', 'src', '**', '*.ts')],
        exclude: [path.join(REPO_ROOT, '**', '*.spec.ts')],
      }),
    );
    const tsc = path.join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const { code, output } = await run(process.execPath, [tsc, '-p', config], REPO_ROOT);
    await rm(config, { force: true });
    if (code !== 0 || !(await isFresh())) throw new Error(`building the inference server failed (tsc exit ${code}):\n${output}`);
    return BUILTIN_ENTRY;
  } finally {
    await rmdir(lock).catch(() => undefined);
  }
}

/* ------------------------------------------------------------ artifacts */

/**
 * A stand-in for the agent's artifact cache (someone else's module): it
 * serves local model files by digest, laid out as a Triton repository, and
 * can be told to fail the way the real cache does.
 */
export class FixtureArtifacts implements ArtifactProvider {
  readonly ensured: string[] = [];
  readonly retained: string[][] = [];
  private readonly failures = new Map<string, ArtifactErrorReason>();

  constructor(
    private readonly root: string,
    private readonly files: Map<string, string>,
  ) {}

  static async create(files: Record<string, string>): Promise<FixtureArtifacts> {
    const root = await mkdtemp(path.join(tmpdir(), 'flotilla-artifacts-'));
    const byDigest = new Map<string, string>();
    for (const file of Object.values(files)) byDigest.set(await sha256Of(file), file);
    return new FixtureArtifacts(root, byDigest);
  }

  failWith(digest: string, reason: ArtifactErrorReason | null): void {
    if (reason) this.failures.set(digest, reason);
    else this.failures.delete(digest);
  }

  async ensure(model: ModelRef, signal: AbortSignal): Promise<PreparedArtifact> {
    signal.throwIfAborted();
    this.ensured.push(model.digest);
    const reason = this.failures.get(model.digest);
    if (reason) {
      const message =
        reason === 'ArtifactDigestMismatch'
          ? `${model.uri}: content has a different sha256 than ${model.digest}`
          : `${model.uri}: source unreachable`;
      throw new ArtifactError(reason, message, { uri: model.uri, digest: model.digest });
    }
    const source = this.files.get(model.digest);
    if (!source) throw new ArtifactError('ArtifactUnavailable', `${model.uri}: not found`, { uri: model.uri, digest: model.digest });
    const versionDir = path.join(this.root, model.digest.slice(7, 19), model.name, '1');
    await mkdir(versionDir, { recursive: true });
    const modelPath = path.join(versionDir, 'model.onnx');
    await copyFile(source, modelPath);
    return { repositoryPath: path.dirname(path.dirname(versionDir)), modelPath, digest: model.digest };
  }

  async retain(models: ModelRef[]): Promise<void> {
    this.retained.push(models.map((m) => m.digest));
  }

  async dispose(): Promise<void> {
    await rm(this.root, { recursive: true, force: true });
  }
}

/* ---------------------------------------------------------- desired state */

export function builtinDeployment(name: string, model: { version: string; digest: string }, over: Partial<DesiredDeployment> = {}): DesiredDeployment {
  return {
    name,
    model: { name: 'classifier', version: model.version, digest: model.digest, uri: `file:///models/classifier-${model.version}.onnx`, format: 'onnx' },
    runtime: 'builtin',
    resources: { gpu: 0 },
    replicas: { min: 1, max: 1 },
    remediation: 'enforce',
    ...over,
  };
}

export function payload(deployments: DesiredDeployment[]): DesiredPayload {
  return { settings: { telemetryIntervalSeconds: 30 }, deployments, fineTuneJobs: [] };
}

/**
 * Reconciles until `done` accepts the report, reconciling again whenever the
 * runtime reports a change by itself (and at least every 200 ms), as the
 * agent core would.
 */
export async function reconcileUntil(
  runtime: WorkloadRuntime,
  desired: DesiredPayload,
  what: string,
  done: (report: RuntimeReport) => boolean,
  timeoutMs = 60_000,
): Promise<RuntimeReport> {
  let report: RuntimeReport | undefined;
  await waitUntil(
    what,
    async () => {
      report = await runtime.reconcile(desired, AbortSignal.timeout(timeoutMs));
      return done(report);
    },
    { timeoutMs, everyMs: 200 },
  );
  return report as RuntimeReport;
}

/* ------------------------------------------------------------- inference */

export const ONE_INPUT = { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] };

/** Logits the classifier fixtures give for ONE_INPUT, by version: worked out by hand from their weights. */
export const EXPECTED_LOGITS: Record<string, number[]> = {
  // v1: [x0 + x3 + 0.5, x1 + x3, x2 + x3 - 0.5]
  '1.0.0': [5.5, 6, 6.5],
  // v2: [2 x0 - 0.5, 2 x1, 2 x2 + 0.5]
  '2.0.0': [1.5, 4, 6.5],
};

export async function infer(endpoint: string, body: unknown = ONE_INPUT): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${endpoint}/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

export function logitsOf(json: Record<string, unknown>): number[] {
  const outputs = json.outputs as { name: string; data: number[] }[];
  return outputs.find((o) => o.name === 'logits')?.data ?? [];
}

export async function tempStateDir(): Promise<string> {
  return mkdtemp(path.join(tmpdir(), 'flotilla-process-runtime-'));
}
