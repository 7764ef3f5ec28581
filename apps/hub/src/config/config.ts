import net from 'node:net';
import path from 'node:path';
import { z } from 'zod';

/**
 * The hub's whole configuration, read from the environment once at start.
 * Nothing else in the hub reads process.env: everything receives HubConfig.
 */
export interface HubConfig {
  home: string;
  databaseUrl: string | null;
  mqttUrl: string | null;
  apiPort: number;
  apiHost: string;
  mqttPort: number;
  mqttHost: string;
  /**
   * Which ports a variable named. The others are the defaults, taken at the
   * first start (or the next free ones) and then remembered in
   * `$FLOTILLA_HOME/ports.json` (see choosePorts).
   */
  explicitPorts: { api: boolean; mqtt: boolean };
  adminToken: string | null;
  signingKeyFile: string | null;
  brokerAuth: 'embedded' | 'mosquitto-dynsec' | 'http';
  /** Credentials of the hub's own MQTT client and of the dynsec admin on an external broker. */
  mqttUsername: string | null;
  mqttPassword: string | null;
  telemetryIntervalSeconds: number;
  /** Spokes an apply's or delete's answer lists before it summarises and points at a report (default 100). */
  applySpokesInAnswer?: number;
  /** Byte budget of the local agent's model cache; unused versions beyond it are collected. */
  localAgentCacheBytes: number;
  publicUrl: string | null;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** `pretty` (one readable line per event) or `json` (one JSON object per line, for collectors). */
  logFormat: 'pretty' | 'json';
  /**
   * Reverse proxies whose X-Forwarded-For is believed (Express `trust proxy`:
   * addresses, CIDRs, or loopback / linklocal / uniquelocal). Empty: none,
   * and the client address is always the socket's.
   */
  trustProxy: string[];
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

const port = (name: string, fallback: number) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return fallback;
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0 || n > 65535) {
        ctx.addIssue({ code: 'custom', message: `${name}=${JSON.stringify(v)} is not a TCP port (0-65535)` });
        return z.NEVER;
      }
      return n;
    });

const url = (name: string, protocols: string[]) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return null;
      let parsed: URL;
      try {
        parsed = new URL(v);
      } catch {
        ctx.addIssue({ code: 'custom', message: `${name} is not a URL` });
        return z.NEVER;
      }
      if (!protocols.includes(parsed.protocol)) {
        ctx.addIssue({ code: 'custom', message: `${name} must use ${protocols.join(' or ')} (got ${parsed.protocol})` });
        return z.NEVER;
      }
      return v;
    });

const PROXY_NAMES = ['loopback', 'linklocal', 'uniquelocal'];

const trustProxy = z
  .string()
  .optional()
  .transform((v, ctx) => {
    const entries = (v ?? '').split(',').map((x) => x.trim()).filter(Boolean);
    const bad = entries.filter((x) => {
      if (PROXY_NAMES.includes(x)) return false;
      const [ip, bits, ...rest] = x.split('/');
      const family = net.isIP(ip ?? '');
      if (!family || rest.length > 0) return true;
      return bits !== undefined && !(/^\d+$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128));
    });
    if (bad.length > 0) {
      ctx.addIssue({ code: 'custom', message: `FLOTILLA_TRUST_PROXY: ${bad.join(', ')} is not an address, a CIDR or one of ${PROXY_NAMES.join(', ')}` });
      return z.NEVER;
    }
    return entries;
  });

const EnvSchema = z.object({
  FLOTILLA_HOME: z.string().optional(),
  DATABASE_URL: url('DATABASE_URL', ['postgres:', 'postgresql:']),
  MQTT_URL: url('MQTT_URL', ['mqtt:', 'mqtts:', 'tcp:', 'ssl:', 'ws:', 'wss:']),
  FLOTILLA_API_PORT: port('FLOTILLA_API_PORT', 8080),
  FLOTILLA_API_HOST: z.string().optional().default('0.0.0.0'),
  FLOTILLA_MQTT_PORT: port('FLOTILLA_MQTT_PORT', 1883),
  FLOTILLA_MQTT_HOST: z.string().optional().default('0.0.0.0'),
  FLOTILLA_ADMIN_TOKEN: z
    .string()
    .optional()
    .refine((v) => v === undefined || v === '' || v.length >= 24, {
      message: 'FLOTILLA_ADMIN_TOKEN must be at least 24 characters',
    }),
  FLOTILLA_SIGNING_KEY: z.string().optional(),
  FLOTILLA_BROKER_AUTH: z
    .enum(['embedded', 'mosquitto-dynsec', 'http'], {
      message: 'FLOTILLA_BROKER_AUTH must be one of embedded, mosquitto-dynsec, http',
    })
    .optional(),
  FLOTILLA_MQTT_USERNAME: z.string().optional(),
  FLOTILLA_MQTT_PASSWORD: z.string().optional(),
  FLOTILLA_TELEMETRY_INTERVAL: z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return 30;
      const n = Number(v);
      if (!Number.isInteger(n) || n < 5 || n > 3600) {
        ctx.addIssue({ code: 'custom', message: `FLOTILLA_TELEMETRY_INTERVAL=${JSON.stringify(v)} must be whole seconds between 5 and 3600` });
        return z.NEVER;
      }
      return n;
    }),
  FLOTILLA_APPLY_SPOKES_IN_ANSWER: z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return 100;
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 500) {
        ctx.addIssue({ code: 'custom', message: `FLOTILLA_APPLY_SPOKES_IN_ANSWER=${JSON.stringify(v)} must be a whole number from 1 to 500` });
        return z.NEVER;
      }
      return n;
    }),
  FLOTILLA_PUBLIC_URL: url('FLOTILLA_PUBLIC_URL', ['http:', 'https:']),
  FLOTILLA_LOCAL_AGENT_CACHE_BYTES: z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return 10 * 1024 ** 3;
      const n = Number(v);
      if (!Number.isSafeInteger(n) || n < 0) {
        ctx.addIssue({ code: 'custom', message: `FLOTILLA_LOCAL_AGENT_CACHE_BYTES=${JSON.stringify(v)} must be a whole number of bytes` });
        return z.NEVER;
      }
      return n;
    }),
  FLOTILLA_LOG_LEVEL: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
      message: 'FLOTILLA_LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent',
    })
    .optional()
    .default('info'),
  FLOTILLA_TRUST_PROXY: trustProxy,
  FLOTILLA_LOG_FORMAT: z.preprocess(
    (v) => (v === '' ? undefined : v),
    z.enum(['pretty', 'json'], { message: 'FLOTILLA_LOG_FORMAT must be pretty or json (default: pretty on a terminal, json otherwise)' }).optional(),
  ),
});

const given = (v: string | undefined) => v !== undefined && v !== '';

/**
 * Parses the environment; throws one ConfigError naming every bad variable.
 * `terminal` says whether logs go to a terminal (pretty logs by default).
 */
export function loadConfig(env: NodeJS.ProcessEnv, cwd: string = process.cwd(), terminal: boolean = process.stdout.isTTY === true): HubConfig {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((i) => {
        const name = String(i.path[0] ?? '');
        return i.message.includes(name) ? i.message : `${name}: ${i.message}`;
      }),
    );
  }
  const e = parsed.data;
  const problems: string[] = [];
  const brokerAuth = e.FLOTILLA_BROKER_AUTH ?? (e.MQTT_URL ? 'mosquitto-dynsec' : 'embedded');
  if (brokerAuth === 'embedded' && e.MQTT_URL) {
    problems.push('FLOTILLA_BROKER_AUTH=embedded needs the embedded broker: unset MQTT_URL or choose mosquitto-dynsec or http');
  }
  if (brokerAuth !== 'embedded' && !e.MQTT_URL) {
    problems.push(`FLOTILLA_BROKER_AUTH=${brokerAuth} needs MQTT_URL (the external broker)`);
  }
  if (brokerAuth === 'mosquitto-dynsec' && (!e.FLOTILLA_MQTT_USERNAME || !e.FLOTILLA_MQTT_PASSWORD)) {
    problems.push('FLOTILLA_BROKER_AUTH=mosquitto-dynsec needs FLOTILLA_MQTT_USERNAME and FLOTILLA_MQTT_PASSWORD (the dynamic-security admin the hub provisions spokes with)');
  }
  if (brokerAuth === 'http') {
    problems.push('FLOTILLA_BROKER_AUTH=http (EMQX/VerneMQ/HiveMQ auth hooks) is not implemented yet; use embedded or mosquitto-dynsec');
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    home: path.resolve(cwd, e.FLOTILLA_HOME || '.flotilla'),
    databaseUrl: e.DATABASE_URL,
    mqttUrl: e.MQTT_URL,
    apiPort: e.FLOTILLA_API_PORT,
    apiHost: e.FLOTILLA_API_HOST,
    mqttPort: e.FLOTILLA_MQTT_PORT,
    mqttHost: e.FLOTILLA_MQTT_HOST,
    explicitPorts: { api: given(env.FLOTILLA_API_PORT), mqtt: given(env.FLOTILLA_MQTT_PORT) },
    adminToken: e.FLOTILLA_ADMIN_TOKEN || null,
    signingKeyFile: e.FLOTILLA_SIGNING_KEY || null,
    brokerAuth,
    mqttUsername: e.FLOTILLA_MQTT_USERNAME || null,
    mqttPassword: e.FLOTILLA_MQTT_PASSWORD || null,
    telemetryIntervalSeconds: e.FLOTILLA_TELEMETRY_INTERVAL,
    applySpokesInAnswer: e.FLOTILLA_APPLY_SPOKES_IN_ANSWER,
    localAgentCacheBytes: e.FLOTILLA_LOCAL_AGENT_CACHE_BYTES,
    publicUrl: e.FLOTILLA_PUBLIC_URL,
    logLevel: e.FLOTILLA_LOG_LEVEL,
    logFormat: e.FLOTILLA_LOG_FORMAT ?? (terminal ? 'pretty' : 'json'),
    trustProxy: e.FLOTILLA_TRUST_PROXY,
  };
}

export const HUB_CONFIG = Symbol('HUB_CONFIG');
