import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import ort from 'onnxruntime-node';
import type { Logger } from './logger.js';
import { signatureOf, type ModelSignature } from './signature.js';

/** A model version to serve: its name in URLs, its version string and the ONNX file. */
export interface ModelSource {
  name: string;
  version: string;
  path: string;
}

/** `auto`: CUDA when ONNX Runtime's CUDA provider is installed and works, else CPU. */
export type ExecutionProviderChoice = 'auto' | 'cpu' | 'cuda';
export type ExecutionProvider = 'cuda' | 'cpu';

const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** Versions may carry semver build metadata ("1.0.0+site17"). */
const VERSION_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/;

export function checkModelSource(source: ModelSource): void {
  if (!NAME_PATTERN.test(source.name)) {
    throw new Error(`model name ${JSON.stringify(source.name)} must be 1-128 letters, digits, ".", "_" or "-"`);
  }
  if (!VERSION_PATTERN.test(source.version)) {
    throw new Error(`model version ${JSON.stringify(source.version)} must be 1-128 letters, digits, ".", "_", "+" or "-"`);
  }
}

/**
 * The npm package ships CPU binaries only; its installer adds the CUDA provider
 * library next to the binding when CUDA is wanted. Looking for the library
 * first avoids a failed session creation (and ONNX Runtime's error log) on
 * every CPU-only appliance.
 */
function cudaProviderInstalled(): boolean {
  try {
    const entry = createRequire(import.meta.url).resolve('onnxruntime-node');
    const binDir = path.join(path.dirname(entry), '..', 'bin', 'napi-v6', process.platform, process.arch);
    const lib = process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so';
    return existsSync(path.join(binDir, lib));
  } catch {
    return false;
  }
}

async function createSession(
  modelPath: string,
  choice: ExecutionProviderChoice,
  logger: Logger,
): Promise<{ session: ort.InferenceSession; provider: ExecutionProvider }> {
  const wantCuda = choice === 'cuda' || (choice === 'auto' && cudaProviderInstalled());
  if (wantCuda) {
    try {
      const session = await ort.InferenceSession.create(modelPath, { executionProviders: ['cuda', 'cpu'] });
      return { session, provider: 'cuda' };
    } catch (err) {
      if (choice === 'cuda') throw new Error(`CUDA execution provider requested but unavailable: ${(err as Error).message}`);
      logger.warn({ model: modelPath, err: (err as Error).message }, 'CUDA execution provider unavailable, falling back to CPU');
    }
  }
  const session = await ort.InferenceSession.create(modelPath, { executionProviders: ['cpu'] });
  return { session, provider: 'cpu' };
}

export interface RunResult {
  results: Record<string, ort.Tensor>;
  queueUs: number;
  computeInferUs: number;
}

const microsSince = (start: bigint): number => Number((process.hrtime.bigint() - start) / 1000n);

/**
 * One ONNX Runtime session. Runs are executed one at a time in arrival order:
 * the Node binding runs a session synchronously on the event loop anyway, and
 * an explicit queue makes the queue time Triton reports a real measurement.
 */
export class LoadedModel {
  private tail: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly name: string,
    readonly version: string,
    readonly path: string,
    readonly executionProvider: ExecutionProvider,
    readonly signature: ModelSignature,
    private readonly session: ort.InferenceSession,
  ) {}

  static async load(source: ModelSource, choice: ExecutionProviderChoice, logger: Logger): Promise<LoadedModel> {
    checkModelSource(source);
    if (!existsSync(source.path)) throw new Error(`model ${source.name} version ${source.version}: file ${source.path} does not exist`);
    let created;
    try {
      created = await createSession(source.path, choice, logger);
    } catch (err) {
      throw new Error(`model ${source.name} version ${source.version}: cannot load ${source.path}: ${(err as Error).message}`);
    }
    const signature = signatureOf(created.session);
    return new LoadedModel(source.name, source.version, source.path, created.provider, signature, created.session);
  }

  /** Queues one execution; a request whose client went away (signal aborted) is dropped before it runs. */
  run(feeds: Record<string, ort.Tensor>, outputNames: string[], signal: AbortSignal): Promise<RunResult> {
    const enqueued = process.hrtime.bigint();
    const execution = this.tail.then(async () => {
      signal.throwIfAborted();
      const queueUs = microsSince(enqueued);
      const started = process.hrtime.bigint();
      const results = await this.session.run(feeds, outputNames);
      return { results, queueUs, computeInferUs: microsSince(started) };
    });
    // The chain must go on after a failed run.
    this.tail = execution.catch(() => undefined);
    return execution;
  }

  async dispose(): Promise<void> {
    await this.tail;
    await this.session.release();
  }
}
