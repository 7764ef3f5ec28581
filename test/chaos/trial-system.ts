import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { startMosquitto, type RunningMosquitto } from '../support/mosquitto.js';
import { ManagedProcess, type RestartDelay } from './managed-process.js';
import { TRIAL_ENV } from './proc-scan.js';

/**
 * The real system of one trial, each part in its own process: the hub
 * (`flotilla hub --no-local-agent`, embedded Postgres unless a database URL
 * is given), the broker (inside the hub, or a private Mosquitto with dynamic
 * security) and the agents (`flotilla agent enroll`, then `flotilla agent run
 * --runtime process`, each with its own state directory).
 */

const run = promisify(execFile);

export type BrokerKind = 'embedded' | 'mosquitto';

export interface TrialSystemOptions {
  trialId: string;
  /** The trial's private directory (hub home, agents' state, logs). */
  dir: string;
  repoRoot: string;
  broker: BrokerKind;
  /** A throw-away database on an external server; null: the hub's embedded Postgres. */
  databaseUrl: string | null;
  agentNames: string[];
  telemetrySeconds: number;
  /** The environment the processes start from (the harness's own, handed down by its entry point). */
  env: NodeJS.ProcessEnv;
}

export interface AgentUnderTest {
  name: string;
  stateDir: string;
  logFile: string;
  process: ManagedProcess;
}

/** After a crash (not a harness kill), restart like systemd's RestartSec with a growing delay, so a crash loop does not eat the machine. */
const crashBackoff: RestartDelay = (_exit, crashesInARow) => Math.min(8_000, 1_000 * 2 ** Math.max(0, crashesInARow - 1));

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      srv.close(() => (a && typeof a === 'object' ? resolve(a.port) : reject(new Error('no free port'))));
    });
  });
}

/** Mosquitto under the same systemd-like rule: killed, it comes back after the fault's delay. */
export class MosquittoUnit {
  private restartTimer: NodeJS.Timeout | null = null;
  private restarting: Promise<void> | null = null;
  readonly restartErrors: string[] = [];
  lastStartAt = Date.now();

  constructor(readonly broker: RunningMosquitto) {}

  get running(): boolean {
    return this.broker.pid() !== null && this.restartTimer === null && this.restarting === null;
  }

  async crash(restartAfterMs: number): Promise<number | null> {
    const pid = this.broker.pid();
    if (pid === null || !this.running) return null;
    await this.broker.kill();
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      this.restarting = this.broker
        .restart(AbortSignal.timeout(20_000))
        .then(() => {
          this.lastStartAt = Date.now();
        })
        .catch((err: unknown) => {
          this.restartErrors.push((err as Error).message);
        })
        .finally(() => {
          this.restarting = null;
        });
    }, restartAfterMs);
    return pid;
  }

  async settled(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.restartTimer !== null || this.restarting !== null) {
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 50));
    }
    return true;
  }

  async destroy(): Promise<void> {
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    await this.restarting?.catch(() => undefined);
    await this.broker.stop();
  }
}

export class TrialSystem {
  readonly adminToken = `chaos-admin-${randomBytes(16).toString('hex')}`;
  readonly hubHome: string;
  readonly agents = new Map<string, AgentUnderTest>();
  hub: ManagedProcess | null = null;
  mosquitto: MosquittoUnit | null = null;
  apiUrl = '';
  /** The URL the agents were told at enrolment. */
  mqttUrl = '';
  private readonly bin: string;
  private readonly baseEnv: NodeJS.ProcessEnv;

  constructor(readonly opts: TrialSystemOptions) {
    this.hubHome = path.join(opts.dir, 'hub-home');
    this.bin = path.join(opts.repoRoot, 'bin', 'flotilla.js');
    // Every process of the trial carries the marker, and so do their children (inference servers, Postgres).
    this.baseEnv = { ...opts.env, [TRIAL_ENV]: opts.trialId, FLOTILLA_LOG_FORMAT: 'json' };
    delete this.baseEnv.FLOTILLA_URL;
    delete this.baseEnv.FLOTILLA_TOKEN;
  }

  /** Starts the broker and the hub, and waits until the hub answers /readyz. */
  async start(timeoutMs: number): Promise<void> {
    const apiPort = await freePort();
    const env: NodeJS.ProcessEnv = {
      ...this.baseEnv,
      FLOTILLA_HOME: this.hubHome,
      FLOTILLA_API_PORT: String(apiPort),
      FLOTILLA_API_HOST: '127.0.0.1',
      // TLS listeners on ports of their own: trials and other hubs on this machine start side by side.
      FLOTILLA_HTTPS_PORT: String(await freePort()),
      FLOTILLA_MQTTS_PORT: String(await freePort()),
      FLOTILLA_TLS_HOST: '127.0.0.1',
      FLOTILLA_ADMIN_TOKEN: this.adminToken,
      FLOTILLA_LOG_LEVEL: 'info',
      FLOTILLA_TELEMETRY_INTERVAL: String(this.opts.telemetrySeconds),
    };
    for (const k of ['DATABASE_URL', 'MQTT_URL', 'FLOTILLA_BROKER_AUTH', 'FLOTILLA_MQTT_USERNAME', 'FLOTILLA_MQTT_PASSWORD', 'FLOTILLA_MQTT_PORT', 'FLOTILLA_MQTT_HOST']) delete env[k];
    if (this.opts.databaseUrl) env.DATABASE_URL = this.opts.databaseUrl;
    if (this.opts.broker === 'mosquitto') {
      const m = await startMosquitto({
        dynsec: true,
        messageSizeLimit: 262144,
        extraConfig: ['max_inflight_messages 100', 'max_queued_messages 100000', 'max_queued_bytes 0'],
        signal: AbortSignal.timeout(30_000),
      });
      this.mosquitto = new MosquittoUnit(m);
      Object.assign(env, {
        MQTT_URL: m.url,
        FLOTILLA_BROKER_AUTH: 'mosquitto-dynsec',
        FLOTILLA_MQTT_USERNAME: m.adminUsername,
        FLOTILLA_MQTT_PASSWORD: m.adminPassword,
      });
      this.mqttUrl = m.url;
    } else {
      // Fixed for the whole trial: agents keep the URL they were given at enrolment.
      const mqttPort = await freePort();
      Object.assign(env, { FLOTILLA_MQTT_PORT: String(mqttPort), FLOTILLA_MQTT_HOST: '127.0.0.1' });
      this.mqttUrl = `mqtt://127.0.0.1:${mqttPort}`;
    }
    this.apiUrl = `http://127.0.0.1:${apiPort}`;
    this.hub = new ManagedProcess(
      { name: 'hub', command: process.execPath, args: [this.bin, 'hub', '--no-local-agent'], env, cwd: this.opts.dir, logFile: path.join(this.opts.dir, 'hub.log') },
      crashBackoff,
    );
    this.hub.start();
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const ok = await fetch(`${this.apiUrl}/readyz`, { signal: AbortSignal.timeout(2_000) }).then((r) => r.ok, () => false);
      if (ok) return;
      if (Date.now() > deadline) throw new Error(`the hub was not ready within ${timeoutMs / 1000} s; end of hub.log:\n${this.hub.logTail(3000)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** `flotilla agent enroll` for every agent, side by side, each in its own process. */
  async enrollAgents(token: string, labelsOf: (name: string) => Record<string, string>): Promise<void> {
    await Promise.all(
      this.opts.agentNames.map(async (name) => {
        const stateDir = path.join(this.opts.dir, 'agents', name);
        const labels = Object.entries(labelsOf(name)).map(([k, v]) => `${k}=${v}`).join(',');
        try {
          await run(process.execPath, [this.bin, 'agent', 'enroll', '--hub', this.apiUrl, '--token', token, '--name', name, '--labels', labels, '--state-dir', stateDir], {
            env: this.baseEnv,
            timeout: 60_000,
          });
        } catch (err) {
          const e = err as { stderr?: string; message: string };
          throw new Error(`flotilla agent enroll --name ${name} failed: ${e.stderr || e.message}`);
        }
        const logFile = path.join(this.opts.dir, 'agents', `${name}.log`);
        const proc = new ManagedProcess(
          {
            name: `agent ${name}`,
            command: process.execPath,
            // The scenario's models are the repository's fixtures (file: URIs), the one place these agents may read them from.
            args: [this.bin, 'agent', 'run', '--state-dir', stateDir, '--runtime', 'process', '--metrics-port', 'off', '--gpu', 'none', '--log-level', 'info', '--artifact-root', path.join(this.opts.repoRoot, 'test', 'fixtures', 'models')],
            env: this.baseEnv,
            cwd: this.opts.dir,
            logFile,
          },
          crashBackoff,
        );
        this.agents.set(name, { name, stateDir, logFile, process: proc });
      }),
    );
  }

  startAgents(): void {
    for (const a of this.agents.values()) a.process.start();
  }

  /** The embedded Postgres' postmaster, from `<home>/postgres/postmaster.pid` (null with an external database or when absent). */
  async embeddedPostmasterPid(): Promise<number | null> {
    if (this.opts.databaseUrl) return null;
    try {
      const first = (await readFile(path.join(this.hubHome, 'postgres', 'postmaster.pid'), 'utf8')).split('\n')[0];
      const pid = Number(first);
      return Number.isInteger(pid) && pid > 0 ? pid : null;
    } catch {
      return null;
    }
  }

  /** Waits until every restart the faults scheduled has happened. */
  async settled(timeoutMs: number): Promise<boolean> {
    const units = [this.hub, ...[...this.agents.values()].map((a) => a.process)].filter((u): u is ManagedProcess => u !== null);
    const results = await Promise.all([...units.map((u) => u.settled(timeoutMs)), this.mosquitto ? this.mosquitto.settled(timeoutMs) : Promise.resolve(true)]);
    return results.every(Boolean);
  }

  async destroy(): Promise<void> {
    await Promise.all([...this.agents.values()].map((a) => a.process.destroy()));
    await this.hub?.destroy();
    await this.mosquitto?.destroy().catch(() => undefined);
  }
}
