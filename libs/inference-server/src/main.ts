import { pino } from 'pino';
import { ConfigError, parseServerConfig, USAGE } from './cli-args.js';
import { readModelRepository } from './model-repository.js';
import { startInferenceServer } from './server.js';

/**
 * CLI entry of Flotilla's reference inference server (`runtime: builtin`).
 * Logs JSON lines to stdout; the line with msg "inference server ready" says
 * it accepts requests. SIGTERM or SIGINT drains in-flight requests, then exits 0.
 */
async function main(): Promise<number> {
  let config;
  try {
    config = parseServerConfig(process.argv.slice(2), process.env);
  } catch (err) {
    process.stderr.write(`${err instanceof ConfigError ? err.message : String(err)}\n\n${USAGE}\n`);
    return 2;
  }
  if (config === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const logger = pino({ name: 'flotilla-inference-server' });
  const models = config.modelRepository !== undefined ? await readModelRepository(config.modelRepository) : config.models;
  const server = await startInferenceServer({
    models,
    host: config.host,
    port: config.port,
    executionProvider: config.executionProvider,
    maxRequestBytes: config.maxRequestBytes,
    logger,
  });
  logger.info({ url: server.url, pid: process.pid, models: server.models }, 'inference server ready');

  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  logger.info({ signal, graceMs: config.gracePeriodMs }, 'shutting down: finishing in-flight requests');
  await server.close({ graceMs: config.gracePeriodMs });
  logger.info({}, 'stopped');
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`flotilla-inference-server: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
