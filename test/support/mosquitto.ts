import { type ChildProcess, spawn } from 'node:child_process';
import { pbkdf2Sync, randomBytes } from 'node:crypto';
import { accessSync, constants } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/**
 * A private Mosquitto for one test file: its own config, dynsec file and
 * persistence in a temp dir, a listener on a free loopback port (a system
 * Mosquitto may already own 1883), and the admin credentials of the dynamic
 * security plugin. It can be stopped, killed and restarted on the same port
 * with the same files, so the dynsec state written by the plugin survives.
 */

export interface MosquittoBinaries {
  binary: string;
  dynsecPlugin: string;
}

export interface StartMosquittoOptions {
  /**
   * Load the dynamic security plugin with a freshly initialised config (admin
   * client only) and refuse anonymous clients; without it the broker is open.
   */
  dynsec?: boolean;
  /** `message_size_limit` in bytes; 0 leaves the broker's default (no limit but the protocol's). */
  messageSizeLimit?: number;
  /** Gives up waiting for the broker to listen. */
  signal?: AbortSignal;
  /** More `mosquitto.conf` lines (e.g. queue limits), appended as given. */
  extraConfig?: string[];
}

export interface RunningMosquitto {
  url: string;
  port: number;
  adminUsername: string;
  adminPassword: string;
  dir: string;
  /** Process id of the running broker, null while stopped. */
  pid(): number | null;
  /** What the broker wrote to stderr so far (its log), for failure messages. */
  log(): string;
  /** SIGTERM and wait for exit; removes the temp dir. */
  stop(): Promise<void>;
  /** SIGKILL and wait for exit, keeping the files for `restart()`. */
  kill(): Promise<void>;
  /** Starts again on the same port with the same config, dynsec file and persistence. */
  restart(signal?: AbortSignal): Promise<void>;
}

const BINARY_CANDIDATES = ['/usr/sbin/mosquitto', '/usr/local/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/bin/mosquitto'];
const PLUGIN_CANDIDATES = [
  `/usr/lib/${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu/mosquitto_dynamic_security.so`,
  '/usr/lib/mosquitto_dynamic_security.so',
  '/usr/local/lib/mosquitto_dynamic_security.so',
];

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function readable(file: string): boolean {
  try {
    accessSync(file, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Where Mosquitto and its dynsec plugin are, or why they cannot be used, so a
 * test can skip loudly on a machine without the `mosquitto` package.
 */
export function findMosquitto(): { ok: true; found: MosquittoBinaries } | { ok: false; reason: string } {
  const onPath = (process.env.PATH ?? '').split(path.delimiter).filter(Boolean).map((d) => path.join(d, 'mosquitto'));
  const binary = [...BINARY_CANDIDATES, ...onPath].find(executable);
  if (!binary) return { ok: false, reason: `no mosquitto binary (looked in ${BINARY_CANDIDATES.join(', ')} and PATH); install the mosquitto package` };
  const dynsecPlugin = PLUGIN_CANDIDATES.find(readable);
  if (!dynsecPlugin) return { ok: false, reason: `no mosquitto_dynamic_security.so (looked in ${PLUGIN_CANDIDATES.join(', ')})` };
  return { ok: true, found: { binary, dynsecPlugin } };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      srv.close(() => (a && typeof a === 'object' ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

/**
 * The file `mosquitto_ctrl dynsec init <file> <admin> <password>` writes,
 * built here so the tests do not depend on mosquitto_ctrl: the password is
 * PBKDF2-SHA512 over a random salt, as the plugin stores it.
 */
export function dynsecInitialConfig(adminUsername: string, adminPassword: string): object {
  const salt = randomBytes(12);
  const iterations = 101;
  return {
    clients: [
      {
        username: adminUsername,
        textName: 'Dynsec admin user',
        password: pbkdf2Sync(adminPassword, salt, iterations, 64, 'sha512').toString('base64'),
        salt: salt.toString('base64'),
        iterations,
        roles: [{ rolename: 'admin' }],
      },
    ],
    roles: [
      {
        rolename: 'admin',
        acls: [
          { acltype: 'publishClientSend', topic: '$CONTROL/dynamic-security/#', allow: true },
          { acltype: 'publishClientReceive', topic: '$CONTROL/dynamic-security/#', allow: true },
          { acltype: 'subscribePattern', topic: '$CONTROL/dynamic-security/#', allow: true },
          { acltype: 'publishClientReceive', topic: '$SYS/#', allow: true },
          { acltype: 'subscribePattern', topic: '$SYS/#', allow: true },
          { acltype: 'publishClientReceive', topic: '#', allow: true },
          { acltype: 'subscribePattern', topic: '#', allow: true },
          { acltype: 'unsubscribePattern', topic: '#', allow: true },
        ],
      },
    ],
    defaultACLAccess: { publishClientSend: false, publishClientReceive: true, subscribe: false, unsubscribe: true },
  };
}

function abortable(signal: AbortSignal | undefined, ms: number): AbortSignal {
  const timeout = AbortSignal.timeout(ms);
  return signal ? AbortSignal.any([signal, timeout]) : timeout;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason as Error);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal.reason as Error);
    };
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function tcpAccepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function waitForExit(child: ChildProcess, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const escalate = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(escalate);
      resolve();
    });
    child.kill(signal);
  });
}

class MosquittoProcess implements RunningMosquitto {
  private child: ChildProcess | null = null;
  private stderr = '';

  constructor(
    private readonly binary: string,
    private readonly configFile: string,
    readonly dir: string,
    readonly port: number,
    readonly adminUsername: string,
    readonly adminPassword: string,
  ) {}

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  log(): string {
    return this.stderr;
  }

  pid(): number | null {
    return this.child?.pid ?? null;
  }

  /** Spawns the broker and resolves once its listener accepts TCP connections. */
  async spawn(signal?: AbortSignal): Promise<void> {
    const child = spawn(this.binary, ['-c', this.configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      this.stderr += chunk;
    });
    const exited = new Promise<never>((_, reject) =>
      child.once('exit', (code, sig) =>
        reject(new Error(`mosquitto exited before listening (code ${code}, signal ${sig}):\n${this.stderr}`)),
      ),
    );
    exited.catch(() => {});
    const deadline = abortable(signal, 15_000);
    const listening = (async () => {
      while (!(await tcpAccepts(this.port))) await sleep(50, deadline);
    })();
    try {
      await Promise.race([listening, exited]);
    } catch (err) {
      child.kill('SIGKILL');
      if (deadline.aborted) throw new Error(`mosquitto did not listen on ${this.port}: ${String(deadline.reason)}\n${this.stderr}`);
      throw err;
    }
  }

  async kill(): Promise<void> {
    if (this.child) await waitForExit(this.child, 'SIGKILL', 0);
    this.child = null;
  }

  async restart(signal?: AbortSignal): Promise<void> {
    if (this.child) await waitForExit(this.child, 'SIGTERM', 5_000);
    this.stderr += '--- restart ---\n';
    await this.spawn(signal);
  }

  async stop(): Promise<void> {
    if (this.child) await waitForExit(this.child, 'SIGTERM', 5_000);
    this.child = null;
    await rm(this.dir, { recursive: true, force: true });
  }
}

/**
 * Starts a Mosquitto of its own for a test. Throws if the binary or plugin is
 * missing: call `findMosquitto()` first to skip with a reason instead.
 */
export async function startMosquitto(opts: StartMosquittoOptions = {}): Promise<RunningMosquitto> {
  const found = findMosquitto();
  if (!found.ok) throw new Error(found.reason);
  const { binary, dynsecPlugin } = found.found;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'flotilla-mosquitto-'));
  const adminUsername = 'dynsec-admin';
  const adminPassword = randomBytes(18).toString('base64url');
  const dynsecFile = path.join(dir, 'dynamic-security.json');
  if (opts.dynsec) await writeFile(dynsecFile, JSON.stringify(dynsecInitialConfig(adminUsername, adminPassword), null, 2), { mode: 0o600 });
  // A port picked free can be taken before mosquitto binds it: try a few.
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const configFile = path.join(dir, 'mosquitto.conf');
    const lines = [
      `listener ${port} 127.0.0.1`,
      `allow_anonymous ${opts.dynsec ? 'false' : 'true'}`,
      'persistence true',
      `persistence_location ${dir}/`,
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      'log_type notice',
      'log_type information',
      'connection_messages true',
    ];
    // As root, mosquitto would drop to the `mosquitto` user, which cannot write this private temp dir.
    if (process.getuid?.() === 0) lines.push('user root');
    if (opts.messageSizeLimit) lines.push(`message_size_limit ${opts.messageSizeLimit}`);
    if (opts.extraConfig) lines.push(...opts.extraConfig);
    if (opts.dynsec) lines.push(`plugin ${dynsecPlugin}`, `plugin_opt_config_file ${dynsecFile}`);
    await writeFile(configFile, `${lines.join('\n')}\n`);
    const broker = new MosquittoProcess(binary, configFile, dir, port, adminUsername, adminPassword);
    try {
      await broker.spawn(opts.signal);
      return broker;
    } catch (err) {
      lastError = err;
      if (opts.signal?.aborted) break;
    }
  }
  await rm(dir, { recursive: true, force: true });
  throw lastError;
}
