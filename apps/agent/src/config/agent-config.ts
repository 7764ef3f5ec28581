import path from 'node:path';
import { splitBrokerUrls } from '@flotilla/contracts';
import { z } from 'zod';
import type { GpuDiscovery } from '../health/index.js';
import type { ServiceExposure } from '../runtime/kubernetes/manifests.js';
import { readSourceSettings, type SourceFlags, type SourceSettings } from '../security/source-settings.js';
import { DEFAULT_STATE_DIR } from '../state/state-dir.js';

export type AgentRuntimeKind = 'process' | 'kubernetes' | 'none';
export type AgentLogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/**
 * Everything `flotilla agent run` (and the local agent beside the hub) runs
 * the agent with, validated once: the composition (compose.ts) receives this
 * and reads no flags or environment of its own.
 */
export interface AgentConfig {
  /** Absolute. */
  stateDir: string;
  runtime: AgentRuntimeKind;
  /** Kubernetes runtime: kubeconfig file; null = in-cluster configuration. */
  kubeconfig: string | null;
  namespace: string;
  /** Broker URL overriding the one given at enrolment. */
  mqttUrlOverride: string | null;
  /**
   * The agent's local Prometheus endpoint, or null for none. Port 0 takes
   * any free port; with `orAnyFreePort` a taken port falls back to a free
   * one instead of failing the start.
   */
  metrics: { port: number; host: string; orAnyFreePort: boolean } | null;
  gpu: GpuDiscovery;
  /** Model cache budget in bytes; unused versions beyond it are collected. */
  cacheMaxBytes: number;
  logLevel: AgentLogLevel;
  /**
   * Where inference servers listen and what host the reported endpoints
   * name (process runtime). Loopback by default: nothing off the appliance
   * reaches a workload until the operator opens it (`--serve-address
   * 0.0.0.0 --advertise-host edge-17.example.net`).
   */
  serve: { address: string; advertiseHost: string | null };
  /** How the Kubernetes runtime exposes inference Services and which URL it reports for them. */
  exposure: ServiceExposure;
  /** What desired state may make the agent read: artifact and dataset roots, private hosts, trainer registries. */
  sources: SourceSettings;
}

export type { ServiceExposure };

/** The flags as the command line gives them: strings (lists for repeatable ones), any of them missing. */
export interface AgentFlags extends SourceFlags {
  stateDir?: string;
  runtime?: string;
  kubeconfig?: string;
  namespace?: string;
  mqttUrl?: string;
  metricsPort?: string;
  metricsHost?: string;
  gpu?: string;
  cacheMaxBytes?: string;
  logLevel?: string;
  serveAddress?: string;
  advertiseHost?: string;
  serviceType?: string;
  ingressUrl?: string;
}

export const AGENT_DEFAULTS = {
  runtime: 'process',
  namespace: 'flotilla',
  metricsPort: '9464',
  metricsHost: '127.0.0.1',
  gpu: 'nvidia-smi',
  cacheMaxBytes: String(50 * 1024 ** 3),
  logLevel: 'info',
  serveAddress: '127.0.0.1',
  serviceType: 'ClusterIP',
} as const;

export class AgentConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid agent configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'AgentConfigError';
  }
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
/** A host name, IPv4 or IPv6 address: no scheme, port, path or spaces. */
const HOST = /^([A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*)$/;
const MQTT_PROTOCOLS = ['mqtt:', 'mqtts:', 'tcp:', 'ssl:', 'ws:', 'wss:'];

const text = (flag: string) => z.string({ message: `${flag} must be a string` }).optional();

const FlagsSchema = z
  .object({
    stateDir: text('--state-dir').refine((v) => v === undefined || v.trim() !== '', { message: '--state-dir must not be empty' }),
    runtime: z.enum(['process', 'kubernetes', 'none'], { error: (iss) => `--runtime must be process, kubernetes or none (got ${JSON.stringify(iss.input)})` }).optional(),
    kubeconfig: text('--kubeconfig'),
    namespace: text('--namespace').refine((v) => v === undefined || DNS_LABEL.test(v), {
      message: '--namespace must be a Kubernetes namespace name (lower-case letters, digits and "-", at most 63)',
    }),
    mqttUrl: text('--mqtt-url').transform((v, ctx) => {
      if (v === undefined || v === '') return null;
      // Several comma-separated URLs name the nodes of one broker cluster.
      for (const one of splitBrokerUrls(v)) {
        let url: URL;
        try {
          url = new URL(one);
        } catch {
          ctx.addIssue({ code: 'custom', message: `--mqtt-url ${JSON.stringify(one)} is not a URL` });
          return z.NEVER;
        }
        if (!MQTT_PROTOCOLS.includes(url.protocol)) {
          ctx.addIssue({ code: 'custom', message: `--mqtt-url must use ${MQTT_PROTOCOLS.join(', ')} (got ${url.protocol})` });
          return z.NEVER;
        }
      }
      return v;
    }),
    metricsPort: text('--metrics-port').transform((v, ctx) => {
      const value = v ?? AGENT_DEFAULTS.metricsPort;
      if (value === 'off') return null;
      const n = Number(value);
      if (value.trim() === '' || !Number.isInteger(n) || n < 0 || n > 65535) {
        ctx.addIssue({ code: 'custom', message: `--metrics-port must be a TCP port (0-65535, 0: any free port) or "off" (got ${JSON.stringify(value)})` });
        return z.NEVER;
      }
      return n;
    }),
    metricsHost: text('--metrics-host').refine((v) => v === undefined || v.trim() !== '', { message: '--metrics-host must not be empty' }),
    gpu: text('--gpu').transform((v, ctx): GpuDiscovery => {
      const value = v ?? AGENT_DEFAULTS.gpu;
      if (value === 'none') return { kind: 'none' };
      if (value === 'nvidia-smi') return { kind: 'nvidia-smi' };
      if (value.startsWith('dcgm=')) {
        const url = value.slice(5);
        if (URL.canParse(url) && /^https?:$/.test(new URL(url).protocol)) return { kind: 'dcgm', url };
        ctx.addIssue({ code: 'custom', message: `--gpu dcgm=URL needs an http(s) URL of a DCGM exporter (got ${JSON.stringify(url)})` });
        return z.NEVER;
      }
      ctx.addIssue({ code: 'custom', message: `--gpu must be nvidia-smi, dcgm=URL or none (got ${JSON.stringify(value)})` });
      return z.NEVER;
    }),
    cacheMaxBytes: text('--cache-max-bytes').transform((v, ctx) => {
      const value = v ?? AGENT_DEFAULTS.cacheMaxBytes;
      const n = Number(value);
      if (value.trim() === '' || !Number.isSafeInteger(n) || n < 0) {
        ctx.addIssue({ code: 'custom', message: `--cache-max-bytes must be a whole number of bytes (got ${JSON.stringify(value)})` });
        return z.NEVER;
      }
      return n;
    }),
    serveAddress: text('--serve-address').refine((v) => v === undefined || HOST.test(v), {
      message: '--serve-address must be an IP address or host name to listen on (0.0.0.0: every interface)',
    }),
    advertiseHost: text('--advertise-host').refine((v) => v === undefined || HOST.test(v), {
      message: '--advertise-host must be a host name or IP address clients reach this appliance at',
    }),
    serviceType: z.enum(['ClusterIP', 'NodePort'], { error: (iss) => `--service-type must be ClusterIP or NodePort (got ${JSON.stringify(iss.input)})` }).optional(),
    ingressUrl: text('--ingress-url').refine((v) => v === undefined || (URL.canParse(v) && /^https?:$/.test(new URL(v).protocol)), {
      message: '--ingress-url must be an http(s) URL, e.g. https://edge-17.example.net',
    }),
    logLevel: z.enum(LOG_LEVELS, { error: (iss) => `--log-level must be one of ${LOG_LEVELS.join(', ')} (got ${JSON.stringify(iss.input)})` }).optional(),
    artifactRoot: z.array(z.string()).optional(),
    datasetRoot: z.array(z.string()).optional(),
    trainerRegistry: z.array(z.string()).optional(),
    artifactHostCidr: z.array(z.string()).optional(),
    allowPrivateArtifactHosts: z.boolean().optional(),
    sourcePolicy: text('--source-policy'),
  })
  .strict();

/**
 * Validates the agent's flags and fills in defaults; throws one
 * AgentConfigError naming every bad flag, so a user fixes them all at once.
 * `env` adds the source policy's variables (FLOTILLA_ARTIFACT_ROOTS, ...; see
 * security/source-settings.ts) to the flags.
 */
export function parseAgentConfig(flags: AgentFlags, cwd: string = process.cwd(), env: NodeJS.ProcessEnv = {}): AgentConfig {
  const parsed = FlagsSchema.safeParse(flags);
  const problems = parsed.success
    ? []
    : parsed.error.issues.map((i) => {
        const key = String(i.path[0] ?? '');
        return i.code === 'unrecognized_keys' ? `unknown setting(s): ${i.keys.join(', ')}` : i.message.startsWith('--') ? i.message : `${key}: ${i.message}`;
      });
  const runtime = flags.runtime ?? AGENT_DEFAULTS.runtime;
  if (flags.kubeconfig && (runtime === 'process' || runtime === 'none')) problems.push(`--kubeconfig is only used with --runtime kubernetes (the runtime is ${runtime})`);
  if (runtime === 'kubernetes' && flags.serviceType === 'NodePort' && !flags.advertiseHost) {
    problems.push('--service-type NodePort needs --advertise-host: the node address clients reach the node port at');
  }
  if (flags.ingressUrl && flags.serviceType === 'NodePort') problems.push('give --ingress-url or --service-type NodePort, not both');
  const sources = readSourceSettings(flags, env, cwd, problems);
  if (!parsed.success || problems.length > 0) throw new AgentConfigError(problems);
  const f = parsed.data;
  return {
    stateDir: path.resolve(cwd, f.stateDir ?? DEFAULT_STATE_DIR),
    runtime: f.runtime ?? AGENT_DEFAULTS.runtime,
    kubeconfig: f.kubeconfig ? path.resolve(cwd, f.kubeconfig) : null,
    namespace: f.namespace ?? AGENT_DEFAULTS.namespace,
    mqttUrlOverride: f.mqttUrl,
    metrics: f.metricsPort === null ? null : { port: f.metricsPort, host: f.metricsHost ?? AGENT_DEFAULTS.metricsHost, orAnyFreePort: false },
    gpu: f.gpu,
    cacheMaxBytes: f.cacheMaxBytes,
    logLevel: f.logLevel ?? AGENT_DEFAULTS.logLevel,
    serve: { address: f.serveAddress ?? AGENT_DEFAULTS.serveAddress, advertiseHost: f.advertiseHost ?? null },
    exposure: f.ingressUrl
      ? { type: 'Ingress', url: f.ingressUrl.replace(/\/+$/, '') }
      : f.serviceType === 'NodePort'
        ? { type: 'NodePort', host: f.advertiseHost as string }
        : { type: 'ClusterIP' },
    sources,
  };
}
