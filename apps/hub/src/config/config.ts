import net from 'node:net';
import path from 'node:path';
import { splitBrokerUrls } from '@flotilla/contracts';
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
  explicitPorts: { api: boolean; mqtt: boolean; https: boolean; mqtts: boolean };
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
  /**
   * Where fine-tuned models uploaded by spokes are kept (output.artifact:
   * upload): a directory (default `$FLOTILLA_HOME/artifacts-store`) or an S3
   * bucket and prefix (`FLOTILLA_ARTIFACT_STORE=s3://bucket/prefix`, with the
   * AWS SDK's usual credentials and region; `FLOTILLA_ARTIFACT_S3_ENDPOINT`
   * for MinIO and other S3-compatible stores).
   */
  artifactStore: { kind: 'filesystem'; directory: string } | { kind: 's3'; bucket: string; prefix: string; endpoint: string | null };
  /** The largest artifact one upload may carry (FLOTILLA_ARTIFACT_MAX_BYTES, default 8 GiB). */
  artifactMaxBytes: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** `pretty` (one readable line per event) or `json` (one JSON object per line, for collectors). */
  logFormat: 'pretty' | 'json';
  /**
   * Reverse proxies whose X-Forwarded-For is believed (Express `trust proxy`:
   * addresses, CIDRs, or loopback / linklocal / uniquelocal). Empty: none,
   * and the client address is always the socket's.
   */
  trustProxy: string[];
  /**
   * HTTPS for the API and MQTT over TLS on the embedded broker. The plain
   * listeners (apiHost/mqttHost) stay on loopback unless a variable names
   * another address.
   */
  tls: {
    enabled: boolean;
    certFile: string | null;
    keyFile: string | null;
    /** CA certificate handed to agents at enrolment with a brought certificate. */
    caFile: string | null;
    host: string;
    httpsPort: number;
    mqttsPort: number;
    /** More host names or addresses for the generated server certificate. */
    extraNames: string[];
  };
  /** This hub among its replicas (leader election, /readyz, /metrics); generated per process unless given. */
  hubId: string | null;
  /** FLOTILLA_BROKER_AUTH=http: where the broker's auth hooks are answered, and the secret they must present. */
  brokerHook: { host: string; port: number; secret: string | null };
  /**
   * Which external broker MQTT_URL is: Mosquitto and EMQX share agent
   * messages among hubs with `$share/...` subscriptions; RabbitMQ with one
   * queue bound to amq.topic, read over AMQP (FLOTILLA_AMQP_URL).
   */
  brokerKind: 'mosquitto' | 'emqx' | 'rabbitmq';
  amqpUrl: string | null;
  /** The broker's management API (RabbitMQ management, EMQX REST), used to end a revoked spoke's session. */
  brokerAdminUrl: string | null;
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
/** One URL or several comma-separated (the nodes of a broker cluster), each checked. */
const urlList = (name: string, protocols: string[]) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v.trim() === '') return null;
      for (const one of splitBrokerUrls(v)) {
        let parsed: URL;
        try {
          parsed = new URL(one);
        } catch {
          ctx.addIssue({ code: 'custom', message: `${name} is not a URL (or a comma-separated list of URLs)` });
          return z.NEVER;
        }
        if (!protocols.includes(parsed.protocol)) {
          ctx.addIssue({ code: 'custom', message: `${name} must use ${protocols.join(' or ')} (got ${parsed.protocol})` });
          return z.NEVER;
        }
      }
      return splitBrokerUrls(v).join(',');
    });

const EnvSchema = z.object({
  FLOTILLA_HOME: z.string().optional(),
  DATABASE_URL: url('DATABASE_URL', ['postgres:', 'postgresql:']),
  MQTT_URL: urlList('MQTT_URL', ['mqtt:', 'mqtts:', 'tcp:', 'ssl:', 'ws:', 'wss:']),
  FLOTILLA_HUB_ID: z
    .string()
    .optional()
    .refine((v) => v === undefined || v === '' || /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(v), {
      message: 'FLOTILLA_HUB_ID must be 1-63 letters, digits, ".", "_" or "-"',
    }),
  FLOTILLA_BROKER_KIND: z
    .enum(['mosquitto', 'emqx', 'rabbitmq'], { message: 'FLOTILLA_BROKER_KIND must be one of mosquitto, emqx, rabbitmq' })
    .optional(),
  FLOTILLA_AMQP_URL: urlList('FLOTILLA_AMQP_URL', ['amqp:', 'amqps:']),
  FLOTILLA_BROKER_ADMIN_URL: url('FLOTILLA_BROKER_ADMIN_URL', ['http:', 'https:']),
  FLOTILLA_BROKER_HOOK_HOST: z.string().optional().default('127.0.0.1'),
  FLOTILLA_BROKER_HOOK_PORT: port('FLOTILLA_BROKER_HOOK_PORT', 8081),
  FLOTILLA_BROKER_HOOK_SECRET: z
    .string()
    .optional()
    .refine((v) => v === undefined || v === '' || (v.length >= 24 && /^[A-Za-z0-9._~-]+$/.test(v)), {
      message: 'FLOTILLA_BROKER_HOOK_SECRET must be at least 24 URL-safe characters (letters, digits, ".", "_", "~", "-")',
    }),
  FLOTILLA_API_PORT: port('FLOTILLA_API_PORT', 8080),
  // Plain-text listeners: loopback unless a variable names another address (TLS listeners serve the network).
  FLOTILLA_API_HOST: z.string().optional().default('127.0.0.1'),
  FLOTILLA_MQTT_PORT: port('FLOTILLA_MQTT_PORT', 1883),
  FLOTILLA_MQTT_HOST: z.string().optional().default('127.0.0.1'),
  FLOTILLA_TLS: z.enum(['on', 'off'], { message: 'FLOTILLA_TLS must be on or off' }).optional().default('on'),
  FLOTILLA_TLS_CERT: z.string().optional(),
  FLOTILLA_TLS_KEY: z.string().optional(),
  FLOTILLA_TLS_CA: z.string().optional(),
  FLOTILLA_TLS_HOST: z.string().optional().default('0.0.0.0'),
  FLOTILLA_TLS_SAN: z.string().optional(),
  FLOTILLA_HTTPS_PORT: port('FLOTILLA_HTTPS_PORT', 8443),
  FLOTILLA_MQTTS_PORT: port('FLOTILLA_MQTTS_PORT', 8883),
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
  FLOTILLA_ARTIFACT_STORE: z
    .string()
    .optional()
    .refine((v) => v === undefined || v === '' || /^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?$/.test(v) || path.isAbsolute(v), {
      message: 'FLOTILLA_ARTIFACT_STORE must be s3://bucket[/prefix] or an absolute directory',
    }),
  FLOTILLA_ARTIFACT_S3_ENDPOINT: url('FLOTILLA_ARTIFACT_S3_ENDPOINT', ['http:', 'https:']),
  FLOTILLA_ARTIFACT_MAX_BYTES: z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return 8 * 1024 ** 3;
      const n = Number(v);
      if (!Number.isSafeInteger(n) || n < 1) {
        ctx.addIssue({ code: 'custom', message: `FLOTILLA_ARTIFACT_MAX_BYTES=${JSON.stringify(v)} must be a whole number of bytes` });
        return z.NEVER;
      }
      return n;
    }),
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

function artifactStore(value: string | undefined, endpoint: string | null, home: string): HubConfig['artifactStore'] {
  if (!value) return { kind: 'filesystem', directory: path.join(home, 'artifacts-store') };
  if (!value.startsWith('s3://')) return { kind: 'filesystem', directory: value };
  const u = new URL(value);
  return { kind: 's3', bucket: u.hostname, prefix: u.pathname.replace(/^\/+|\/+$/g, ''), endpoint };
}

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
    if (!e.FLOTILLA_BROKER_HOOK_SECRET) {
      problems.push('FLOTILLA_BROKER_AUTH=http needs FLOTILLA_BROKER_HOOK_SECRET (the secret the broker presents to the hub\'s auth hooks)');
    }
    if (!e.FLOTILLA_MQTT_USERNAME || !e.FLOTILLA_MQTT_PASSWORD) {
      problems.push('FLOTILLA_BROKER_AUTH=http needs FLOTILLA_MQTT_USERNAME and FLOTILLA_MQTT_PASSWORD (the hub\'s own broker login, answered by its hooks)');
    }
  }
  if (Boolean(e.FLOTILLA_TLS_CERT) !== Boolean(e.FLOTILLA_TLS_KEY)) {
    problems.push('FLOTILLA_TLS_CERT and FLOTILLA_TLS_KEY go together: set both (PEM certificate chain and its private key) or neither (the hub generates a CA)');
  }
  if (e.FLOTILLA_TLS_CA && !e.FLOTILLA_TLS_CERT) problems.push('FLOTILLA_TLS_CA is the CA of FLOTILLA_TLS_CERT: set it only with FLOTILLA_TLS_CERT and FLOTILLA_TLS_KEY');
  const brokerKind = e.FLOTILLA_BROKER_KIND ?? 'mosquitto';
  if (brokerKind === 'rabbitmq' && !e.FLOTILLA_AMQP_URL) {
    problems.push('FLOTILLA_BROKER_KIND=rabbitmq needs FLOTILLA_AMQP_URL (hubs share agent messages through one queue read over AMQP)');
  }
  if (brokerKind === 'rabbitmq' && brokerAuth === 'mosquitto-dynsec') problems.push('FLOTILLA_BROKER_KIND=rabbitmq needs FLOTILLA_BROKER_AUTH=http');
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    home: path.resolve(cwd, e.FLOTILLA_HOME || '.flotilla'),
    databaseUrl: e.DATABASE_URL,
    mqttUrl: e.MQTT_URL,
    apiPort: e.FLOTILLA_API_PORT,
    apiHost: e.FLOTILLA_API_HOST,
    mqttPort: e.FLOTILLA_MQTT_PORT,
    mqttHost: e.FLOTILLA_MQTT_HOST,
    explicitPorts: {
      api: given(env.FLOTILLA_API_PORT),
      mqtt: given(env.FLOTILLA_MQTT_PORT),
      https: given(env.FLOTILLA_HTTPS_PORT),
      mqtts: given(env.FLOTILLA_MQTTS_PORT),
    },
    adminToken: e.FLOTILLA_ADMIN_TOKEN || null,
    signingKeyFile: e.FLOTILLA_SIGNING_KEY || null,
    brokerAuth,
    mqttUsername: e.FLOTILLA_MQTT_USERNAME || null,
    mqttPassword: e.FLOTILLA_MQTT_PASSWORD || null,
    telemetryIntervalSeconds: e.FLOTILLA_TELEMETRY_INTERVAL,
    applySpokesInAnswer: e.FLOTILLA_APPLY_SPOKES_IN_ANSWER,
    localAgentCacheBytes: e.FLOTILLA_LOCAL_AGENT_CACHE_BYTES,
    publicUrl: e.FLOTILLA_PUBLIC_URL,
    artifactStore: artifactStore(e.FLOTILLA_ARTIFACT_STORE, e.FLOTILLA_ARTIFACT_S3_ENDPOINT, path.resolve(cwd, e.FLOTILLA_HOME || '.flotilla')),
    artifactMaxBytes: e.FLOTILLA_ARTIFACT_MAX_BYTES,
    logLevel: e.FLOTILLA_LOG_LEVEL,
    logFormat: e.FLOTILLA_LOG_FORMAT ?? (terminal ? 'pretty' : 'json'),
    trustProxy: e.FLOTILLA_TRUST_PROXY,
    tls: {
      enabled: e.FLOTILLA_TLS === 'on',
      certFile: e.FLOTILLA_TLS_CERT ? path.resolve(cwd, e.FLOTILLA_TLS_CERT) : null,
      keyFile: e.FLOTILLA_TLS_KEY ? path.resolve(cwd, e.FLOTILLA_TLS_KEY) : null,
      caFile: e.FLOTILLA_TLS_CA ? path.resolve(cwd, e.FLOTILLA_TLS_CA) : null,
      host: e.FLOTILLA_TLS_HOST,
      httpsPort: e.FLOTILLA_HTTPS_PORT,
      mqttsPort: e.FLOTILLA_MQTTS_PORT,
      extraNames: (e.FLOTILLA_TLS_SAN ?? '').split(',').map((n) => n.trim()).filter(Boolean),
    },
    hubId: e.FLOTILLA_HUB_ID || null,
    brokerKind,
    amqpUrl: e.FLOTILLA_AMQP_URL,
    brokerAdminUrl: e.FLOTILLA_BROKER_ADMIN_URL,
    brokerHook: { host: e.FLOTILLA_BROKER_HOOK_HOST, port: e.FLOTILLA_BROKER_HOOK_PORT, secret: e.FLOTILLA_BROKER_HOOK_SECRET || null },
  };
}

export const HUB_CONFIG = Symbol('HUB_CONFIG');
