import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import path from 'node:path';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * How to start a workload, kept in the ledger so that a re-adopted process
 * can be restarted after the agent itself restarted. Ports are not part of
 * it: a restart may need another one.
 */
export type LaunchInfo =
  | { runtime: 'builtin'; modelName: string; modelVersion: string; modelPath: string; executionProvider: 'auto' | 'cpu' }
  | { runtime: 'triton'; binary: string; repositoryPath: string };

export interface LaunchCommand {
  command: string;
  args: string[];
}

export interface LaunchContext {
  host: string;
  port: number;
  /** Triton serves metrics on a port of its own. */
  metricsPort?: number;
  /** Node binary and compiled entry of the builtin server. */
  nodePath: string;
  builtinEntry: string;
  /** How long a workload may finish requests after SIGTERM. */
  graceSeconds: number;
}

export function launchCommand(info: LaunchInfo, ctx: LaunchContext): LaunchCommand {
  if (info.runtime === 'builtin') {
    return {
      command: ctx.nodePath,
      args: [
        ctx.builtinEntry,
        '--model', `${info.modelName}=${info.modelPath}`,
        '--version', info.modelVersion,
        '--host', ctx.host,
        '--port', String(ctx.port),
        '--execution-provider', info.executionProvider,
        '--grace-period', String(ctx.graceSeconds),
      ],
    };
  }
  const args = [
    `--model-repository=${info.repositoryPath}`,
    `--http-address=${ctx.host}`,
    `--http-port=${ctx.port}`,
    // One Triton per deployment: gRPC's fixed port 8001 would collide between them.
    '--allow-grpc=false',
  ];
  args.push(...(ctx.metricsPort !== undefined ? ['--allow-metrics=true', `--metrics-port=${ctx.metricsPort}`] : ['--allow-metrics=false']));
  return { command: info.binary, args };
}

/**
 * The compiled builtin server: `dist/libs/inference-server/src/main.js` at the
 * root of the checkout or installation. Found by walking up from this module
 * to the package root, so it resolves the same from dist/ (production) and
 * from the TypeScript sources (tests).
 */
export function defaultBuiltinEntry(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, 'package.json'))) return path.join(dir, 'dist', 'libs', 'inference-server', 'src', 'main.js');
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('cannot find the package root above the agent to locate the builtin inference server');
    dir = parent;
  }
}

/** The first executable `name` on `searchPath` (PATH syntax), or null. */
export async function findExecutable(name: string, searchPath: string | undefined): Promise<string | null> {
  if (name.includes('/')) return (await isExecutable(name)) ? name : null;
  for (const dir of (searchPath ?? '').split(path.delimiter)) {
    if (dir === '') continue;
    const candidate = path.join(dir, name);
    if (await isExecutable(candidate)) return candidate;
  }
  return null;
}

async function isExecutable(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return (await stat(file)).isFile();
  } catch {
    return false;
  }
}
