import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import pino from 'pino';
// Only light modules at start: the agent's composition (Kubernetes client, ONNX, collectors) is
// loaded by the commands that run it, so every other CLI command starts in a fraction of the time.
import { AGENT_DEFAULTS, AgentConfigError, type AgentFlags, parseAgentConfig } from '../../../agent/src/config/agent-config.js';
import { EnrollError, enroll } from '../../../agent/src/enroll/enroll.js';
import { LEDGER_FILE } from '../../../agent/src/runtime/process/ledger.js';
import { DEFAULT_STATE_DIR } from '../../../agent/src/state/state-dir.js';
import { StateDirLockedError } from '../../../agent/src/state/state-dir-lock.js';
import { trustCa } from '../client/trust-ca.js';
import { parseLatLon } from '@flotilla/contracts';
import { CliError, EXIT } from '../exit-codes.js';

const repeat = (value: string, previous: string[]) => [...previous, value];

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

/**
 * Where `stop-workloads` looks by default: the local agent of a hub home
 * (`$FLOTILLA_HOME`, else ./.flotilla, as the hub resolves it) when it has a
 * ledger there, else the agent's usual state directory.
 */
function defaultWorkloadStateDir(): string {
  const local = path.resolve(process.env.FLOTILLA_HOME || '.flotilla', 'local-agent');
  return existsSync(path.join(local, LEDGER_FILE)) ? local : DEFAULT_STATE_DIR;
}

const START_ERROR_EXIT = { NotEnrolled: EXIT.invalid, StateDirLocked: EXIT.refused, KubeConfig: EXIT.invalid, MetricsPort: EXIT.failure } as const;

export function registerAgent(program: Command): void {
  const agent = program.command('agent').description('the edge agent: enrol once, then run');

  agent
    .command('enroll')
    .description('enrol this appliance with the hub using a one-time enrolment token (writes the state directory)')
    .requiredOption('--hub <url>', 'hub API URL, e.g. https://hub:8443 (plain http only on the hub machine)')
    .requiredOption('--token <token>', 'enrolment token')
    .requiredOption('--name <name>', 'spoke name (DNS label)')
    .option('--labels <k=v,...>', 'labels to ask for (the token’s labels win)')
    .option('--location <lat,lon>', 'where the appliance is, in decimal degrees, e.g. 45.76,4.84 (for routing; the token’s location wins)')
    .option('--state-dir <dir>', 'state directory', DEFAULT_STATE_DIR)
    .option('--ca <file>', 'CA certificate the https:// hub must chain to, pinned with the one the hub hands out (default: $FLOTILLA_CA)')
    .action(async (o: { hub: string; token: string; name: string; labels?: string; location?: string; stateDir: string; ca?: string }) => {
      try {
        const labels = parseLabels(o.labels);
        const ca = trustCa(o.ca ?? process.env.FLOTILLA_CA);
        const location = o.location === undefined ? undefined : parseLatLon(o.location);
        if (typeof location === 'string') throw new CliError(`--location: ${location}`, EXIT.usage);
        const creds = await enroll({
          hubUrl: o.hub,
          token: o.token,
          name: o.name,
          stateDir: path.resolve(o.stateDir),
          ...(labels ? { labels } : {}),
          ...(ca ? { ca } : {}),
          ...(location ? { location } : {}),
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
    .option('--runtime <kind>', 'process | kubernetes | none', AGENT_DEFAULTS.runtime)
    .option('--kubeconfig <file>', 'kubeconfig (kubernetes runtime; in-cluster config otherwise)')
    .option('--namespace <ns>', 'namespace for workloads (kubernetes runtime)', AGENT_DEFAULTS.namespace)
    .option('--mqtt-url <url>', 'broker URL, overriding the one given at enrolment')
    .option('--metrics-port <port>', 'local Prometheus /metrics port (0: any free port; off: none)', AGENT_DEFAULTS.metricsPort)
    .option('--metrics-host <host>', 'address for /metrics', AGENT_DEFAULTS.metricsHost)
    .option('--gpu <source>', 'GPU discovery: nvidia-smi | dcgm=URL | none', AGENT_DEFAULTS.gpu)
    .option('--cache-max-bytes <bytes>', 'model cache budget; unused versions beyond it are collected (0: keep only what is in use)', AGENT_DEFAULTS.cacheMaxBytes)
    .option('--log-level <level>', 'log level', process.env.FLOTILLA_LOG_LEVEL || AGENT_DEFAULTS.logLevel)
    .option('--serve-address <addr>', 'address inference servers listen on (process runtime; 0.0.0.0: every interface)', AGENT_DEFAULTS.serveAddress)
    .option('--advertise-host <host>', 'host name or address clients reach this appliance at, used in reported endpoints (process runtime; NodePort host under kubernetes)')
    .option('--service-type <type>', 'kubernetes runtime: ClusterIP (endpoint: the cluster IP) or NodePort (endpoint: --advertise-host and the node port)', AGENT_DEFAULTS.serviceType)
    .option('--ingress-url <url>', 'kubernetes runtime: report endpoints under this URL, which your ingress routes /v2/models/NAME from')
    .option('--artifact-root <dir>', 'directory file: model URIs may point into; repeatable (also $FLOTILLA_ARTIFACT_ROOTS, ":"-separated)', repeat, [])
    .option('--dataset-root <dir>', 'directory FineTuneJob datasets may be under; repeatable (also $FLOTILLA_DATASET_ROOTS)', repeat, [])
    .option('--trainer-registry <registry>', 'registry (host[/path]) trainer images may come from; repeatable (also $FLOTILLA_TRAINER_REGISTRIES, ","-separated)', repeat, [])
    .option('--allow-private-artifact-hosts', 'fetch http(s) models from loopback, link-local and private addresses too (also $FLOTILLA_ALLOW_PRIVATE_ARTIFACT_HOSTS=true)')
    .option('--artifact-host-cidr <cidr>', 'a private range http(s) models may come from (10.20.0.0/16); repeatable (also $FLOTILLA_ARTIFACT_HOST_CIDRS)', repeat, [])
    .option('--source-policy <file>', 'JSON file with artifactRoots, datasetRoots, trainerRegistries, artifactHostCidrs, allowPrivateArtifactHosts (added to the flags)')
    .action(async (o: AgentFlags) => {
      const config = (() => {
        try {
          return parseAgentConfig(o, process.cwd(), process.env);
        } catch (err) {
          if (err instanceof AgentConfigError) throw new CliError(err.message, EXIT.usage);
          throw err;
        }
      })();
      const log = pino({ level: config.logLevel, base: { service: 'flotilla-agent' }, timestamp: pino.stdTimeFunctions.isoTime });
      const { startAgent, AgentStartError } = await import('../../../agent/src/compose.js');
      const running = await startAgent(config, { logger: log }).catch((err: unknown) => {
        if (err instanceof AgentStartError) throw new CliError(err.message, START_ERROR_EXIT[err.code]);
        throw err;
      });
      await new Promise<void>((resolve) => {
        const onSignal = () => void running.stop().finally(resolve);
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
      });
    });

  agent
    .command('stop-workloads')
    .description('stop every workload process an agent started and left running (the agent keeps them running when it stops); refuses while an agent runs on the state directory')
    .option('--state-dir <dir>', `state directory (default: the local agent's under $FLOTILLA_HOME when there is one, else ${DEFAULT_STATE_DIR})`)
    .option('--grace-period <seconds>', 'SIGTERM, then SIGKILL after this long', '30')
    .action(async (o: { stateDir?: string; gracePeriod: string }) => {
      const grace = Number(o.gracePeriod);
      if (!Number.isFinite(grace) || grace < 0 || grace > 3600) throw new CliError(`--grace-period must be seconds between 0 and 3600 (got ${JSON.stringify(o.gracePeriod)})`, EXIT.usage);
      const stateDir = path.resolve(o.stateDir ?? defaultWorkloadStateDir());
      if (!existsSync(stateDir)) throw new CliError(`${stateDir} does not exist: no agent ran there (give --state-dir)`, EXIT.invalid);
      const { stopWorkloads } = await import('../../../agent/src/runtime/process/stop-workloads.js');
      const result = await stopWorkloads(stateDir, { graceMs: grace * 1000 }).catch((err: unknown) => {
        if (err instanceof StateDirLockedError) throw new CliError(`${err.message} and supervises these workloads: stop that agent first, then run this again`, EXIT.refused);
        throw err;
      });
      if (result.ledgerProblem) process.stderr.write(`warning: ${result.ledgerProblem}; stopped what carried the state directory's marks\n`);
      if (result.stopped.length === 0) {
        process.stdout.write(`no workload processes running for ${stateDir}\n`);
        return;
      }
      for (const s of result.stopped) {
        process.stdout.write(`${s.how === 'still running' ? 'could not stop' : 'stopped'} ${s.deployment} (pid ${s.pid})${s.how === 'SIGKILL' ? ' with SIGKILL after the grace period' : ''}\n`);
      }
      if (result.stopped.some((s) => s.how === 'still running')) throw new CliError('some workload processes are still running', EXIT.failure);
    });
}
