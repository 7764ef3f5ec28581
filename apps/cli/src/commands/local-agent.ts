import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { EnrollError, enroll, hasCredentials, parseAgentConfig, startAgent, type RunningWorkload } from '../../../agent/src/index.js';
import type { HubConfig } from '../../../hub/src/config/config.js';
import type { HubHandle } from '../../../hub/src/hub.js';

export const LOCAL_AGENT_NAME = 'local';
/** The local agent's /metrics port: 9464 (the agent's usual one) at the first start, then the one it got, kept here. */
const DEFAULT_METRICS_PORT = 9464;
const METRICS_PORT_FILE = 'metrics-port';

export interface LocalAgent {
  /** Its Prometheus endpoint; null when it could not start. */
  metricsUrl: string | null;
  /** Stops the agent and says which workloads keep running and how to stop them. */
  stop(): Promise<void>;
}

async function rememberedPort(file: string): Promise<number> {
  const text = await readFile(file, 'utf8').catch(() => '');
  const port = Number(text.trim());
  return Number.isInteger(port) && port > 0 && port <= 65535 ? port : DEFAULT_METRICS_PORT;
}

/** The checkout or installation root: the first directory above this module with a package.json. */
function packageRoot(): string {
  for (let dir = import.meta.dirname; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) return import.meta.dirname;
  }
}

/**
 * Where the local agent may read from: the hub's own artifact directory
 * (`$FLOTILLA_HOME/artifacts`) and the models the README quick start uses
 * (`test/fixtures/models` of this checkout) for `file:` models, and
 * `$FLOTILLA_HOME/datasets` for fine-tuning data. Never `$FLOTILLA_HOME`
 * itself: the signing key and the admin token live there. More come from
 * FLOTILLA_ARTIFACT_ROOTS / FLOTILLA_DATASET_ROOTS (and the other variables
 * `flotilla agent run` reads).
 */
export function localAgentSourceDirs(home: string): { artifactRoots: string[]; datasetRoots: string[] } {
  return {
    artifactRoots: [path.join(home, 'artifacts'), path.join(packageRoot(), 'test', 'fixtures', 'models')],
    datasetRoots: [path.join(home, 'datasets')],
  };
}

/** What Ctrl-C leaves behind, said plainly: the workloads are not stopped with the hub (as k3s leaves its containers). */
function keptWorkloadsNotice(workloads: RunningWorkload[], stateDir: string): string {
  if (workloads.length === 0) return '';
  const rows = workloads.map((w) => [w.deployment, String(w.pid), w.modelVersion, w.endpoint ?? '- (draining)']);
  const header = ['DEPLOYMENT', 'PID', 'VERSION', 'ENDPOINT'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (cells: string[]) => `  ${cells.map((c, i) => (i < cells.length - 1 ? c.padEnd(widths[i] as number) : c)).join('  ')}`;
  return [
    '',
    `Workloads of the local agent keep running (the next start adopts them):`,
    line(header),
    ...rows.map(line),
    `Stop them with: npx flotilla agent stop-workloads --state-dir ${stateDir}`,
    '',
  ].join('\n');
}

/**
 * The agent beside the hub, as k3s runs one beside its server: enrolled once
 * (through the real enrolment endpoint, with a single-use token minted
 * here) into `<home>/local-agent`, then run with the process runtime and a
 * local /metrics (9464, or any free port when that is taken; the port it
 * got is remembered for the next start, so a Prometheus target stays put).
 */
export async function startLocalAgent(hub: HubHandle, config: HubConfig, log: Logger): Promise<LocalAgent> {
  const stateDir = path.join(config.home, 'local-agent');
  const agentLog = log.child({ component: 'local-agent' });
  if (!(await hasCredentials(stateDir))) {
    // Through the same use case as POST /api/v1/enrollment-tokens: hashed, audited, single use, short-lived.
    const { token } = await hub.useCases.issueEnrollmentToken.execute({
      labels: { 'flotilla.dev/local': 'true' },
      reservedLabels: true,
      uses: 1,
      expiresInSeconds: 60,
      actor: 'system',
      note: 'local agent',
    });
    try {
      await enroll({ hubUrl: hub.localApiUrl, token, name: LOCAL_AGENT_NAME, stateDir });
    } catch (err) {
      if (err instanceof EnrollError && err.code === 'HubRefused') {
        agentLog.warn(
          { err: err.message },
          `the local agent could not enrol: a spoke named "${LOCAL_AGENT_NAME}" exists without its state in ${stateDir}; delete it (DELETE /api/v1/spokes/${LOCAL_AGENT_NAME}) or start with --no-local-agent`,
        );
        return { metricsUrl: null, stop: async () => {} };
      }
      throw err;
    }
    agentLog.info({ stateDir }, 'local agent enrolled');
  }
  const portFile = path.join(stateDir, METRICS_PORT_FILE);
  const dirs = localAgentSourceDirs(config.home);
  for (const dir of [...dirs.artifactRoots, ...dirs.datasetRoots].filter((d) => d.startsWith(config.home))) await mkdir(dir, { recursive: true });
  const agentConfig = parseAgentConfig(
    {
      stateDir,
      runtime: 'process',
      metricsPort: String(await rememberedPort(portFile)),
      cacheMaxBytes: String(config.localAgentCacheBytes),
      artifactRoot: dirs.artifactRoots,
      datasetRoot: dirs.datasetRoots,
    },
    process.cwd(),
    process.env,
  );
  const running = await startAgent(
    { ...agentConfig, metrics: agentConfig.metrics && { ...agentConfig.metrics, orAnyFreePort: true } },
    { logger: agentLog },
  );
  if (running.metricsUrl) await writeFile(portFile, `${new URL(running.metricsUrl).port}\n`);
  return {
    metricsUrl: running.metricsUrl,
    async stop() {
      await running.stop();
      process.stdout.write(keptWorkloadsNotice(running.runningWorkloads(), stateDir));
    },
  };
}
