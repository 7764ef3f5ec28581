import { parseArgs } from 'node:util';
import type { ExecutionProviderChoice, ModelSource } from './loaded-model.js';

/** What the CLI was asked to do, after arguments and environment were checked together. */
export interface ServerConfig {
  /** Models given with --model; empty when a repository is used. */
  models: ModelSource[];
  modelRepository: string | undefined;
  host: string;
  port: number;
  executionProvider: ExecutionProviderChoice;
  maxRequestBytes: number;
  gracePeriodMs: number;
}

export const USAGE = `Usage: flotilla-inference-server (--model NAME=PATH [--version V] ... | --model-repository DIR)
         [--host H] [--port P] [--execution-provider auto|cpu|cuda]
         [--max-request-bytes N] [--grace-period SECONDS]

Serves ONNX models over the Open Inference Protocol (KServe v2 HTTP) with
Triton-style Prometheus metrics on /metrics.

  --model NAME=PATH          an ONNX file to serve as model NAME (repeatable)
  --version V                version of the --model models (default 1)
  --model-repository DIR     a Triton-layout repository: DIR/<name>/<version>/model.onnx
  --host H                   address to listen on (default 127.0.0.1)
  --port P                   port to listen on, 0 for any free one (default 8000)
  --execution-provider E     auto (CUDA when installed, else CPU), cpu or cuda (default auto)
  --max-request-bytes N      larger request bodies get 413 (default 33554432)
  --grace-period SECONDS     on SIGTERM, how long in-flight requests may finish (default 30)

Environment (overridden by the options): FLOTILLA_MODEL (NAME=PATH, comma-separated),
FLOTILLA_MODEL_VERSION, FLOTILLA_MODEL_REPOSITORY, FLOTILLA_INFERENCE_HOST,
FLOTILLA_INFERENCE_PORT, FLOTILLA_EXECUTION_PROVIDER, FLOTILLA_MAX_REQUEST_BYTES,
FLOTILLA_GRACE_PERIOD.`;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid inference server configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

function integer(value: string, what: string, min: number, max: number, problems: string[]): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < min || n > max) {
    problems.push(`${what} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
    return min;
  }
  return n;
}

/**
 * Parses the command line and environment into one config, reporting every
 * bad value at once. Returns `'help'` for --help.
 */
export function parseServerConfig(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): ServerConfig | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        model: { type: 'string', multiple: true },
        version: { type: 'string' },
        'model-repository': { type: 'string' },
        host: { type: 'string' },
        port: { type: 'string' },
        'execution-provider': { type: 'string' },
        'max-request-bytes': { type: 'string' },
        'grace-period': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw new ConfigError([(err as Error).message]);
  }
  if (values.help) return 'help';

  const problems: string[] = [];
  const modelSpecs = values.model ?? (env.FLOTILLA_MODEL ? env.FLOTILLA_MODEL.split(',').filter((s) => s !== '') : []);
  const version = values.version ?? env.FLOTILLA_MODEL_VERSION ?? '1';
  const modelRepository = values['model-repository'] ?? (values.model ? undefined : env.FLOTILLA_MODEL_REPOSITORY);
  const models: ModelSource[] = [];
  for (const spec of modelSpecs) {
    const eq = spec.indexOf('=');
    if (eq <= 0 || eq === spec.length - 1) {
      problems.push(`--model must be NAME=PATH, got ${JSON.stringify(spec)}`);
      continue;
    }
    models.push({ name: spec.slice(0, eq), version, path: spec.slice(eq + 1) });
  }
  if (models.length > 0 && modelRepository !== undefined) problems.push('give either --model or --model-repository, not both');
  if (models.length === 0 && modelRepository === undefined && problems.length === 0) {
    problems.push('nothing to serve: give --model NAME=PATH or --model-repository DIR');
  }

  const host = values.host ?? env.FLOTILLA_INFERENCE_HOST ?? '127.0.0.1';
  const port = integer(values.port ?? env.FLOTILLA_INFERENCE_PORT ?? '8000', '--port', 0, 65535, problems);
  const provider = values['execution-provider'] ?? env.FLOTILLA_EXECUTION_PROVIDER ?? 'auto';
  if (provider !== 'auto' && provider !== 'cpu' && provider !== 'cuda') {
    problems.push(`--execution-provider must be auto, cpu or cuda, got ${JSON.stringify(provider)}`);
  }
  const maxRequestBytes = integer(
    values['max-request-bytes'] ?? env.FLOTILLA_MAX_REQUEST_BYTES ?? String(32 * 1024 * 1024),
    '--max-request-bytes',
    1024,
    2 ** 31,
    problems,
  );
  const graceSeconds = integer(values['grace-period'] ?? env.FLOTILLA_GRACE_PERIOD ?? '30', '--grace-period', 0, 3600, problems);

  if (problems.length > 0) throw new ConfigError(problems);
  return {
    models,
    modelRepository,
    host,
    port,
    executionProvider: provider as ExecutionProviderChoice,
    maxRequestBytes,
    gracePeriodMs: graceSeconds * 1000,
  };
}
