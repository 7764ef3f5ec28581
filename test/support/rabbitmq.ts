import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freeTcpPort } from './hub-replicas.js';

/**
 * A private RabbitMQ node (Debian's rabbitmq-server) with its MQTT plugin,
 * the HTTP auth backend and the management API, on free ports, with its own
 * node name, Erlang distribution port and data directory owned by the
 * `rabbitmq` user. Nodes started with the same `cluster` join one another
 * (classic peer discovery), so two of them make a real two-node cluster.
 */

const SERVER = '/usr/lib/rabbitmq/bin/rabbitmq-server';
const CTL = '/usr/lib/rabbitmq/bin/rabbitmqctl';

export function findRabbitMq(): { ok: true } | { ok: false; reason: string } {
  if (!existsSync(SERVER)) return { ok: false, reason: `${SERVER} not found: install Debian's rabbitmq-server (.ci/run does)` };
  try {
    execFileSync('id', ['-u', 'rabbitmq'], { stdio: 'ignore' });
  } catch {
    return { ok: false, reason: 'no `rabbitmq` user' };
  }
  if (process.getuid?.() !== 0) return { ok: false, reason: 'starting a RabbitMQ node as the rabbitmq user needs root' };
  return { ok: true };
}

export interface RabbitCluster {
  /** Erlang cookie and node names shared by the nodes of one cluster. */
  cookie: string;
  names: string[];
}

export function newRabbitCluster(size: number): RabbitCluster {
  const tag = randomBytes(3).toString('hex');
  return { cookie: randomBytes(16).toString('hex').toUpperCase(), names: Array.from({ length: size }, (_, i) => `flotilla-${tag}-${i}@localhost`) };
}

export interface RabbitHooks {
  /** Base URL of the hub's hook server, e.g. http://127.0.0.1:8081 */
  baseUrl: string;
  secret: string;
}

export interface RunningRabbit {
  node: string;
  amqpPort: number;
  mqttPort: number;
  managementPort: number;
  mqttUrl: string;
  amqpUrl: string;
  /** Management API with the default guest administrator (loopback only). */
  adminUrl: string;
  log(): string;
  /** Stops the node (SIGTERM to the server, then SIGKILL after a while). */
  stop(): Promise<void>;
  /** SIGKILL the node: a crashed machine. */
  kill(): Promise<void>;
  /** Removes its files (after stop). */
  remove(): Promise<void>;
  ctl(args: string[]): string;
}

export async function startRabbit(o: { cluster: RabbitCluster; index: number; hooks: RabbitHooks; readyTimeoutMs?: number }): Promise<RunningRabbit> {
  const node = o.cluster.names[o.index]!;
  const uid = Number(execFileSync('id', ['-u', 'rabbitmq']).toString().trim());
  const gid = Number(execFileSync('id', ['-g', 'rabbitmq']).toString().trim());
  const dir = await mkdtemp(path.join(os.tmpdir(), 'flotilla-rabbit-'));
  await chmod(dir, 0o755);
  const [amqpPort, mqttPort, managementPort, distPort] = [await freeTcpPort(), await freeTcpPort(), await freeTcpPort(), await freeTcpPort()];
  const hook = (p: string) => `${o.hooks.baseUrl}/rabbitmq/${p}?secret=${o.hooks.secret}`;
  const conf = [
    `listeners.tcp.default = 127.0.0.1:${amqpPort}`,
    `mqtt.listeners.tcp.default = 127.0.0.1:${mqttPort}`,
    'mqtt.allow_anonymous = false',
    'mqtt.vhost = /',
    'mqtt.exchange = amq.topic',
    `management.tcp.port = ${managementPort}`,
    'management.tcp.ip = 127.0.0.1',
    // The internal database keeps only the default guest administrator (loopback, management API); spokes and the hub are asked of the hub.
    'auth_backends.1 = internal',
    'auth_backends.2 = http',
    'auth_http.http_method = post',
    `auth_http.user_path = ${hook('user')}`,
    `auth_http.vhost_path = ${hook('vhost')}`,
    `auth_http.resource_path = ${hook('resource')}`,
    `auth_http.topic_path = ${hook('topic')}`,
    'collect_statistics_interval = 1000',
    'vm_memory_high_watermark.absolute = 400MiB',
    'disk_free_limit.absolute = 10MB',
    'log.console = true',
    'log.console.level = info',
    'log.file = false',
    ...(o.cluster.names.length > 1
      ? ['cluster_formation.peer_discovery_backend = classic_config', ...o.cluster.names.map((n, i) => `cluster_formation.classic_config.nodes.${i + 1} = ${n}`)]
      : []),
  ];
  const files = {
    conf: path.join(dir, 'rabbitmq.conf'),
    plugins: path.join(dir, 'enabled_plugins'),
    env: path.join(dir, 'rabbitmq-env.conf'),
    cookie: path.join(dir, '.erlang.cookie'),
  };
  await writeFile(files.conf, conf.join('\n') + '\n');
  await writeFile(files.plugins, '[rabbitmq_mqtt,rabbitmq_auth_backend_http,rabbitmq_management].\n');
  await writeFile(files.env, '');
  await writeFile(files.cookie, o.cluster.cookie, { mode: 0o400 });
  for (const sub of ['mnesia', 'log']) await mkdir(path.join(dir, sub));
  for (const p of [dir, ...Object.values(files), path.join(dir, 'mnesia'), path.join(dir, 'log')]) await chown(p, uid, gid);
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: dir,
    LANG: 'C.UTF-8',
    RABBITMQ_NODENAME: node,
    RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
    RABBITMQ_NODE_PORT: String(amqpPort),
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_CONFIG_FILE: files.conf,
    RABBITMQ_ENABLED_PLUGINS_FILE: files.plugins,
    RABBITMQ_CONF_ENV_FILE: files.env,
    RABBITMQ_MNESIA_BASE: path.join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: path.join(dir, 'log'),
    RABBITMQ_PID_FILE: path.join(dir, 'rabbit.pid'),
    RABBITMQ_LOGS: '-',
    // Small on a shared 2-core machine.
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '+S 1:1 +A 4',
  };
  let out = '';
  const child: ChildProcess = spawn(SERVER, [], { cwd: dir, env, uid, gid, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const keep = (c: Buffer) => {
    out += c.toString('utf8');
    if (out.length > 300_000) out = out.slice(-150_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const alive = () => child.exitCode === null && child.signalCode === null;
  const deadline = Date.now() + (o.readyTimeoutMs ?? 120_000);
  while (!(await canConnect(mqttPort)) || !(await canConnect(amqpPort))) {
    if (!alive()) throw new Error(`RabbitMQ ${node} exited before it listened:\n${out.slice(-4000)}`);
    if (Date.now() > deadline) {
      process.kill(-child.pid!, 'SIGKILL');
      throw new Error(`RabbitMQ ${node} did not listen in time:\n${out.slice(-4000)}`);
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  const killGroup = (sig: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, sig);
    } catch {
      /* gone */
    }
  };
  return {
    node,
    amqpPort,
    mqttPort,
    managementPort,
    mqttUrl: `mqtt://127.0.0.1:${mqttPort}`,
    amqpUrl: `amqp://127.0.0.1:${amqpPort}`,
    adminUrl: `http://guest:guest@127.0.0.1:${managementPort}`,
    log: () => out,
    async stop() {
      if (!alive()) return;
      killGroup('SIGTERM');
      const t = setTimeout(() => killGroup('SIGKILL'), 20_000);
      await exited;
      clearTimeout(t);
      // epmd and the distribution helpers started for this node go with its process group.
    },
    async kill() {
      if (alive()) killGroup('SIGKILL');
      await exited;
    },
    async remove() {
      await rm(dir, { recursive: true, force: true });
    },
    ctl(args: string[]) {
      return execFileSync(CTL, ['-n', node, ...args], { env: { ...env }, uid, gid, timeout: 60_000 }).toString();
    },
  };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
