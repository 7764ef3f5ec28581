import 'reflect-metadata';
import type { Command } from 'commander';
import { ConfigError, loadConfig } from '../../../hub/src/config/config.js';
import { createLogger } from '../../../hub/src/logger.js';
import { CliError, EXIT } from '../exit-codes.js';

/** Stop within this long after SIGINT/SIGTERM, even if something hangs. */
const STOP_DEADLINE_MS = 9_000;

/** Start failures users can act on become one sentence (exit 1) instead of a stack trace. */
async function asStartError(err: unknown): Promise<unknown> {
  const { PortInUseError } = await import('../../../hub/src/common/ports.js');
  const { EmbeddedPostgresError } = await import('../../../hub/src/database/embedded-postgres.js');
  if (err instanceof PortInUseError || err instanceof EmbeddedPostgresError) return new CliError(err.message, EXIT.failure);
  return err;
}

function configOrExit() {
  try {
    return loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(err.message, EXIT.usage);
    throw err;
  }
}

export function registerHub(program: Command): void {
  const hub = program
    .command('hub')
    .description('run the hub: admin API, broker (embedded unless MQTT_URL), Postgres (embedded unless DATABASE_URL)')
    .option('--local-agent', 'also enrol and run one local agent with the process runtime (default with the embedded broker)')
    .option('--no-local-agent', 'do not run the local agent')
    .action(async (opts: { localAgent?: boolean }) => {
      const config = configOrExit();
      const log = createLogger(config.logLevel, config.logFormat);
      // Loaded here so that client commands never pull in NestJS, TypeORM or embedded Postgres.
      const { startHub } = await import('../../../hub/src/hub.js');
      let handle;
      try {
        handle = await startHub(config, log);
      } catch (err) {
        throw await asStartError(err);
      }
      const localAgent = opts.localAgent ?? !config.mqttUrl;
      const stops: Array<() => Promise<void>> = [];
      let agentMetricsUrl: string | null = null;
      if (localAgent) {
        const { startLocalAgent } = await import('./local-agent.js');
        const started = await startLocalAgent(handle, config, log);
        stops.push(started.stop);
        agentMetricsUrl = started.metricsUrl;
      }
      const banner = [
        '',
        `Flotilla hub is up.`,
        `  API:          ${handle.apiUrl}   (OpenAPI: ${handle.apiUrl}/api/docs)`,
        `  MQTT:         ${handle.mqttUrl}`,
        ...(handle.httpsUrl ? [`  HTTPS:        ${handle.httpsUrl}   (all interfaces; plain HTTP and MQTT above serve ${config.apiHost} only)`] : []),
        ...(handle.mqttsUrl ? [`  MQTT/TLS:     ${handle.mqttsUrl}`] : []),
        ...(handle.caFile ? [`  CA:           ${handle.caFile}   (agents: flotilla agent enroll --ca; CLI: --ca or FLOTILLA_CA)`] : []),
        `  Admin token:  ${handle.adminTokenLocation === 'FLOTILLA_ADMIN_TOKEN' ? 'from FLOTILLA_ADMIN_TOKEN' : handle.adminTokenLocation}`,
        `  Data:         ${config.home}`,
        localAgent ? `  Local agent:  enrolled as "local" (process runtime)` : `  Local agent:  off`,
        ...(agentMetricsUrl ? [`                metrics: ${agentMetricsUrl}`] : []),
        `Try: FLOTILLA_URL=${handle.apiUrl} FLOTILLA_TOKEN=$(cat ${handle.adminTokenLocation.startsWith('/') ? handle.adminTokenLocation : '<token>'}) npx flotilla get spokes`,
        '',
      ].join('\n');
      // JSON logs own stdout (collectors parse it line by line): the banner goes to stderr then, and into one log line.
      if (config.logFormat === 'json') {
        log.info({ api: handle.apiUrl, mqtt: handle.mqttUrl, https: handle.httpsUrl, mqtts: handle.mqttsUrl, ca: handle.caFile, adminToken: handle.adminTokenLocation, home: config.home }, 'Flotilla hub is up');
        process.stderr.write(banner + '\n');
      } else {
        process.stdout.write(banner + '\n');
      }
      await new Promise<void>((resolve) => {
        let stopping = false;
        const onStop = (why: NodeJS.Signals | Error) => {
          if (stopping) return;
          stopping = true;
          if (why instanceof Error) {
            log.fatal(why.message);
            process.exitCode = EXIT.failure;
          } else {
            log.info({ signal: why }, 'stopping');
          }
          const deadline = setTimeout(() => {
            log.error('stop deadline passed; exiting');
            process.exit(EXIT.failure);
          }, STOP_DEADLINE_MS);
          deadline.unref();
          (async () => {
            for (const s of stops.reverse()) await s().catch((err) => log.error({ err }, 'local agent stop failed'));
            await handle.stop();
          })().finally(() => {
            clearTimeout(deadline);
            resolve();
          });
        };
        process.once('SIGINT', onStop);
        process.once('SIGTERM', onStop);
        void handle.failed.then(onStop);
      });
    });

  hub
    .command('migrate')
    .description('apply pending database migrations and exit')
    .action(async () => {
      const config = configOrExit();
      const log = createLogger(config.logLevel, config.logFormat);
      const { createDataSource, runMigrations } = await import('../../../hub/src/database/data-source.js');
      const { startEmbeddedPostgres } = await import('../../../hub/src/database/embedded-postgres.js');
      let stopDb: (() => Promise<void>) | null = null;
      let url = config.databaseUrl;
      if (!url) {
        const db = await startEmbeddedPostgres(config.home, log.child({ component: 'embedded-postgres' })).catch(async (err: unknown) => {
          throw await asStartError(err);
        });
        stopDb = db.stop;
        url = db.url;
      }
      const ds = createDataSource(url);
      try {
        await ds.initialize();
        const ran = await runMigrations(ds);
        process.stdout.write(ran.length ? `applied: ${ran.join(', ')}\n` : 'schema is up to date\n');
      } finally {
        if (ds.isInitialized) await ds.destroy();
        if (stopDb) await stopDb();
      }
    });
}
