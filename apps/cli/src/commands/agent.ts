import path from 'node:path';
import type { Command } from 'commander';
import pino from 'pino';
import type { GpuDiscovery } from '../../../agent/src/health/index.js';
import { DEFAULT_STATE_DIR, EnrollError, enroll, hasCredentials, readCredentials, runAgent } from '../../../agent/src/index.js';
import { CliError, EXIT } from '../exit-codes.js';
import { createRuntime, type RuntimeKind } from './runtimes.js';

function parseLabels(text: string | undefined): Record<string, string> | undefined {
  if (!text) return undefined;
  const labels: Record<string, string> = {};
  for (const pair of text.split(',').filter(Boolean)) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new CliError(`--labels: "${pair}" is not key=value`, EXIT.usage);
    labels[pair.slice(0, eq).trim()] = pair.slice(eq + 1).trim();
  }
  return labels;
}

export function registerAgent(program: Command): void {
  const agent = program.command('agent').description('the edge agent: enrol once, then run');

  agent
    .command('enroll')
    .description('enrol this appliance with the hub using a one-time enrolment token (writes the state directory)')
    .requiredOption('--hub <url>', 'hub API URL, e.g. http://hub:8080')
    .requiredOption('--token <token>', 'enrolment token')
    .requiredOption('--name <name>', 'spoke name (DNS label)')
    .option('--labels <k=v,...>', 'labels to ask for (the token’s labels win)')
    .option('--state-dir <dir>', 'state directory', DEFAULT_STATE_DIR)
    .action(async (o: { hub: string; token: string; name: string; labels?: string; stateDir: string }) => {
      try {
        const labels = parseLabels(o.labels);
        const creds = await enroll({
          hubUrl: o.hub,
          token: o.token,
          name: o.name,
          stateDir: path.resolve(o.stateDir),
          ...(labels ? { labels } : {}),
        });
        process.stdout.write(`enrolled as "${creds.spoke}"; state in ${path.resolve(o.stateDir)}\nnext: flotilla agent run --state-dir ${o.stateDir}\n`);
      } catch (err) {
        if (err instanceof EnrollError) {
          const code = err.code === 'InvalidInput' || err.code === 'AlreadyEnrolled' ? EXIT.invalid : err.code === 'HubRefused' ? EXIT.refused : EXIT.failure;
          throw new CliError(err.message, code);
        }
        throw err;
      }
    });

  agent
    .command('run')
    .description('run the agent daemon: follows the hub, keeps workloads running offline')
    .option('--state-dir <dir>', 'state directory', DEFAULT_STATE_DIR)
    .option('--runtime <kind>', 'process | kubernetes | none', 'process')
    .option('--kubeconfig <file>', 'kubeconfig (kubernetes runtime; in-cluster config otherwise)')
    .option('--namespace <ns>', 'namespace for workloads (kubernetes runtime)', 'flotilla')
    .option('--mqtt-url <url>', 'broker URL, overriding the one given at enrolment')
    .option('--metrics-port <port>', 'local Prometheus /metrics port (0: any free port; off: none)', '9464')
    .option('--metrics-host <host>', 'address for /metrics', '127.0.0.1')
    .option('--gpu <source>', 'GPU discovery: nvidia-smi | dcgm=URL | none', 'nvidia-smi')
    .option('--cache-max-bytes <bytes>', 'model cache budget; unused versions beyond it are collected (0: keep only what is in use)', String(50 * 1024 ** 3))
    .option('--log-level <level>', 'log level', process.env.FLOTILLA_LOG_LEVEL ?? 'info')
    .action(async (o: { stateDir: string; runtime: string; kubeconfig?: string; namespace: string; mqttUrl?: string; logLevel: string; metricsPort: string; metricsHost: string; gpu: string; cacheMaxBytes: string }) => {
      if (!['process', 'kubernetes', 'none'].includes(o.runtime)) throw new CliError(`--runtime must be process, kubernetes or none (got ${o.runtime})`, EXIT.usage);
      const stateDir = path.resolve(o.stateDir);
      if (!(await hasCredentials(stateDir))) {
        throw new CliError(`${stateDir} holds no credentials: run "flotilla agent enroll" first`, EXIT.invalid);
      }
      const metricsPort = o.metricsPort === 'off' ? null : Number(o.metricsPort);
      if (metricsPort !== null && (!Number.isInteger(metricsPort) || metricsPort < 0 || metricsPort > 65535)) {
        throw new CliError(`--metrics-port must be a TCP port or "off" (got ${o.metricsPort})`, EXIT.usage);
      }
      const gpu: GpuDiscovery =
        o.gpu === 'none' ? { kind: 'none' } : o.gpu === 'nvidia-smi' ? { kind: 'nvidia-smi' } : o.gpu.startsWith('dcgm=') ? { kind: 'dcgm', url: o.gpu.slice(5) } : (() => {
          throw new CliError(`--gpu must be nvidia-smi, dcgm=URL or none (got ${o.gpu})`, EXIT.usage);
        })();
      const cacheBytes = Number(o.cacheMaxBytes);
      if (!Number.isSafeInteger(cacheBytes) || cacheBytes < 0) throw new CliError(`--cache-max-bytes must be a whole number of bytes (got ${o.cacheMaxBytes})`, EXIT.usage);
      const log = pino({ level: o.logLevel, base: { service: 'flotilla-agent' }, timestamp: pino.stdTimeFunctions.isoTime });
      const creds = await readCredentials(stateDir);
      const runtime = await createRuntime(o.runtime as RuntimeKind, {
        spoke: creds.spoke,
        stateDir,
        log,
        namespace: o.namespace,
        metricsPort,
        metricsHost: o.metricsHost,
        gpu,
        cacheBytes,
        ...(o.kubeconfig ? { kubeconfig: o.kubeconfig } : {}),
      });
      if (runtime.metrics) log.info({ url: runtime.metrics.url }, 'agent metrics served');
      const controller = new AbortController();
      const handle = await runAgent({
        stateDir,
        runtime: runtime.runtime,
        logger: log,
        signal: controller.signal,
        ...(o.mqttUrl ? { mqttUrlOverride: o.mqttUrl } : {}),
        ...runtime.extras,
      });
      await new Promise<void>((resolve) => {
        const onSignal = () => {
          void handle
            .stop()
            .then(() => runtime.close())
            .finally(resolve);
        };
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
      });
    });
}
