import { readFile, rename, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import type { HubConfig } from '../config/config.js';

/** Asks the kernel for a free TCP port on `host`. */
export function findFreePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

export class PortInUseError extends Error {
  constructor(
    readonly port: number,
    readonly variable: string,
    what: string,
    message = `port ${port} (${what}) is already in use; set ${variable} to another port`,
  ) {
    super(message);
    this.name = 'PortInUseError';
  }
}

/** True when `port` can be bound on `host` now. */
export function portIsFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE' || err.code === 'EACCES') resolve(false);
      else reject(err);
    });
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

/** Resolves when `port` can be bound on `host`; rejects with PortInUseError naming `variable` otherwise. */
export async function assertPortFree(host: string, port: number, variable: string, what: string): Promise<void> {
  if (!(await portIsFree(host, port))) throw new PortInUseError(port, variable, what);
}

/** The ports a hub took, as `$FLOTILLA_HOME/ports.json` keeps them. */
interface RememberedPorts {
  api?: number;
  mqtt?: number;
  https?: number;
  mqtts?: number;
}

const isPort = (v: unknown): v is number => Number.isInteger(v) && (v as number) > 0 && (v as number) <= 65535;

async function readRemembered(file: string): Promise<RememberedPorts> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return {};
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = null;
  }
  const p = parsed as RememberedPorts | null;
  if (!p || typeof p !== 'object' || [p.api, p.mqtt, p.https, p.mqtts].some((v) => v !== undefined && !isPort(v))) {
    throw new Error(`${file} is not {"api": PORT, "mqtt": PORT}; fix or delete it (the next start then takes the default ports again)`);
  }
  return p;
}

interface PortRole {
  key: keyof RememberedPorts;
  variable: string;
  what: string;
  host: string;
  configured: number;
  explicit: boolean;
}

/** How far past a taken default the next free port is looked for. */
const SEARCH_SPAN = 50;

/**
 * Chooses the API and embedded-broker ports, as DESIGN.md section 3 says:
 * a port named by a variable always wins and must be free; otherwise the one
 * remembered in `$FLOTILLA_HOME/ports.json` (enrolled agents connect to it,
 * so it never silently changes: if it is taken the start stops and says
 * which file remembers it); otherwise the default, or the next free port
 * above it when it is taken (a system Mosquitto on 1883, say), which is
 * then remembered for the next starts.
 */
export async function choosePorts(
  config: HubConfig,
  log: { info(msg: string): void; warn(msg: string): void },
): Promise<{ apiPort: number; mqttPort: number; tls?: HubConfig['tls'] }> {
  const file = path.join(config.home, 'ports.json');
  const remembered = await readRemembered(file);
  const roles: PortRole[] = [
    { key: 'api', variable: 'FLOTILLA_API_PORT', what: 'admin API', host: config.apiHost, configured: config.apiPort, explicit: config.explicitPorts.api },
  ];
  if (!config.mqttUrl) {
    roles.push({ key: 'mqtt', variable: 'FLOTILLA_MQTT_PORT', what: 'embedded MQTT broker', host: config.mqttHost, configured: config.mqttPort, explicit: config.explicitPorts.mqtt });
  }
  const t = config.tls;
  if (t.enabled) {
    roles.push({ key: 'https', variable: 'FLOTILLA_HTTPS_PORT', what: 'admin API over HTTPS', host: t.host, configured: t.httpsPort, explicit: config.explicitPorts.https });
    if (!config.mqttUrl) {
      roles.push({ key: 'mqtts', variable: 'FLOTILLA_MQTTS_PORT', what: 'embedded MQTT broker over TLS', host: t.host, configured: t.mqttsPort, explicit: config.explicitPorts.mqtts });
    }
  }
  const chosen: RememberedPorts = {};
  for (const role of roles) {
    const kept = remembered[role.key];
    if (role.explicit) {
      if (role.configured !== 0) await assertPortFree(role.host, role.configured, role.variable, role.what);
      chosen[role.key] = role.configured;
    } else if (kept !== undefined) {
      if (!(await portIsFree(role.host, kept))) {
        throw new PortInUseError(
          kept,
          role.variable,
          role.what,
          `port ${kept} (${role.what}) is already in use; ${file} remembers it from an earlier start because enrolled agents depend on it: stop what holds it, set ${role.variable} to use another port for this start, or change it in that file for good (agents enrolled with ${kept} must then be enrolled again)`,
        );
      }
      chosen[role.key] = kept;
    } else {
      const taken = new Set(Object.values(chosen));
      let port: number | null = null;
      for (let p = role.configured; p <= Math.min(role.configured + SEARCH_SPAN, 65535); p++) {
        if (!taken.has(p) && (await portIsFree(role.host, p))) {
          port = p;
          break;
        }
      }
      if (port === null) {
        throw new PortInUseError(role.configured, role.variable, role.what, `ports ${role.configured} to ${role.configured + SEARCH_SPAN} (${role.what}) are all in use; set ${role.variable} to a free port`);
      }
      if (port !== role.configured) log.warn(`port ${role.configured} (${role.what}) is in use; taking ${port}, and keeping it for later starts (${file})`);
      chosen[role.key] = port;
    }
  }
  // What a variable names is for this start only: a failed or one-off start with a variable never changes what agents rely on.
  const toRemember: RememberedPorts = { ...remembered };
  for (const role of roles) if (!role.explicit) toRemember[role.key] = chosen[role.key];
  if ((['api', 'mqtt', 'https', 'mqtts'] as const).some((k) => toRemember[k] !== remembered[k])) {
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(toRemember, null, 2) + '\n', { mode: 0o644 });
    await rename(tmp, file);
  }
  return {
    apiPort: chosen.api ?? config.apiPort,
    mqttPort: chosen.mqtt ?? config.mqttPort,
    ...(t.enabled ? { tls: { ...t, httpsPort: chosen.https ?? t.httpsPort, mqttsPort: chosen.mqtts ?? t.mqttsPort } } : {}),
  };
}
