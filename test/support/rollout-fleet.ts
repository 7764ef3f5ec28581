import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import { startAgent, type RunningAgent } from '../../apps/agent/src/compose.js';
import { parseAgentConfig } from '../../apps/agent/src/config/agent-config.js';
import { enroll } from '../../apps/agent/src/index.js';
import { stopWorkloads } from '../../apps/agent/src/runtime/process/stop-workloads.js';

/**
 * A fleet for rollout tests made only of real parts: agents as `flotilla
 * agent run --runtime process` composes them (real inference servers over
 * real ONNX models, real telemetry), and a load generator sending real
 * inference requests to every endpoint the hub reports.
 */

export type ApiCall = (method: string, route: string, body?: unknown) => Promise<{ status: number; body: any }>;

const MODELS = path.resolve('test/fixtures/models');
const file = (name: string) => path.join(MODELS, name);
const digest = (name: string) => `sha256:${createHash('sha256').update(readFileSync(file(name))).digest('hex')}`;

/** Model versions: two good classifiers, one that errors on 20% of the load below, one that never loads. */
export const VERSIONS = {
  good1: { version: '1.0.0', file: 'linear-classifier-1.0.0.onnx' },
  good2: { version: '2.0.0', file: 'linear-classifier-2.0.0.onnx' },
  flaky: { version: '3.0.0-flaky', file: 'flaky-classifier.onnx' },
  neverReady: { version: '4.0.0-never-ready', file: 'never-ready.onnx' },
} as const;

export const DEPLOYMENT = 'classifier-eu';

export interface RolloutPolicyOptions {
  version: string;
  maxConcurrency?: number | string;
  minSuccessTime?: string;
  progressDeadline?: string;
  maxFailures?: number;
  maxLatencyP99Ratio?: number;
}

export function rolloutPolicy(o: RolloutPolicyOptions): string {
  const versions = Object.values(VERSIONS)
    .map((v) => `    - { version: "${v.version}", uri: "file://${file(v.file)}", digest: "${digest(v.file)}", format: onnx }`)
    .join('\n');
  return `apiVersion: flotilla.dev/v1
kind: Model
metadata: { name: classifier }
spec:
  task: tabular-classification
  versions:
${versions}
---
apiVersion: flotilla.dev/v1
kind: Placement
metadata: { name: eu-sites }
spec: { selector: { matchLabels: { region: eu } } }
---
apiVersion: flotilla.dev/v1
kind: ModelDeployment
metadata: { name: ${DEPLOYMENT} }
spec:
  model: { name: classifier, version: "${o.version}" }
  placement: eu-sites
  runtime: builtin
  rollout:
    strategy: Progressive
    canary: { matchLabels: { canary: "true" } }
    maxConcurrency: ${typeof o.maxConcurrency === 'string' ? `"${o.maxConcurrency}"` : (o.maxConcurrency ?? 1)}
    minSuccessTime: ${o.minSuccessTime ?? '6s'}
    progressDeadline: ${o.progressDeadline ?? '40s'}
    maxFailures: ${o.maxFailures ?? 0}
    gates: { maxErrorRatio: 0.05, maxLatencyP99Ratio: ${o.maxLatencyP99Ratio ?? 20}, noRestarts: true }
`;
}

export interface ProcessFleet {
  names: string[];
  agents: Map<string, RunningAgent>;
  /** Stops one agent (its workloads keep running, as after a crash of the agent alone). */
  stopAgent(name: string): Promise<void>;
  startAgent(name: string): Promise<void>;
  stop(): Promise<void>;
}

/** Enrols and starts real agents with the process runtime; spokes with `canary` get the label canary=true. */
export async function startProcessFleet(apiUrl: string, api: ApiCall, spokes: { name: string; canary?: boolean }[], log: Logger): Promise<ProcessFleet> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'flotilla-rollout-fleet-'));
  const agents = new Map<string, RunningAgent>();
  // The token lets canary spokes ask for their label (enrolment tokens decide which keys agents may claim).
  const tok = await api('POST', '/api/v1/enrollment-tokens', { uses: spokes.length, labels: { region: 'eu' }, allowedLabelKeys: ['canary'] });
  if (tok.status !== 201) throw new Error(`enrolment token: ${tok.status} ${JSON.stringify(tok.body)}`);
  const stateDir = (name: string) => path.join(dir, name);
  const start = async (name: string) => {
    // The agents read the fixture models (their source policy allows that directory only).
    const config = parseAgentConfig({ stateDir: stateDir(name), runtime: 'process', metricsPort: 'off', gpu: 'none', artifactRoot: [MODELS] });
    agents.set(name, await startAgent(config, { logger: log.child({ spoke: name }), processRuntime: { restartBackoff: { initialMs: 500, maxMs: 2_000 } } }));
  };
  for (const s of spokes) {
    await enroll({ hubUrl: apiUrl, token: tok.body.token, name: s.name, labels: s.canary ? { canary: 'true' } : {}, stateDir: stateDir(s.name) });
    await start(s.name);
  }
  return {
    names: spokes.map((s) => s.name),
    agents,
    async stopAgent(name) {
      await agents.get(name)?.stop();
      agents.delete(name);
    },
    startAgent: start,
    async stop() {
      for (const a of agents.values()) await a.stop().catch(() => undefined);
      for (const s of spokes) await stopWorkloads(stateDir(s.name), { graceMs: 2_000 }).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Sends inference requests at a steady rate to every endpoint the hub
 * reports for the deployment, with the first feature uniform in [0, 10)
 * (the flaky version fails on 8 and above). Counts answers per spoke and
 * per version served.
 */
export class LoadGenerator {
  readonly answers = new Map<string, { ok: number; failed: number; versions: Set<string> }>();
  private endpoints = new Map<string, string>();
  private timer: NodeJS.Timeout | null = null;
  private refresh: NodeJS.Timeout | null = null;
  private readonly inflight = new Set<Promise<void>>();

  constructor(
    private readonly api: ApiCall,
    private readonly deployment: string,
    private readonly requestsPerSecondPerSpoke = 20,
  ) {}

  start(): void {
    const poll = async () => {
      const r = await this.api('GET', `/api/v1/deployments/${this.deployment}`).catch(() => null);
      const spokes: { spoke: string; endpoint: string | null }[] = r?.status === 200 ? (r.body.compliance.spokes ?? []) : [];
      const next = new Map<string, string>();
      for (const s of spokes) if (s.endpoint) next.set(s.spoke, s.endpoint);
      if (r?.status === 200) this.endpoints = next;
    };
    void poll();
    this.refresh = setInterval(() => void poll(), 500);
    this.timer = setInterval(() => {
      for (const [spoke, endpoint] of this.endpoints) {
        const p = this.send(spoke, endpoint).finally(() => this.inflight.delete(p));
        this.inflight.add(p);
      }
    }, 1000 / this.requestsPerSecondPerSpoke);
  }

  private async send(spoke: string, endpoint: string): Promise<void> {
    const stats = this.answers.get(spoke) ?? { ok: 0, failed: 0, versions: new Set<string>() };
    this.answers.set(spoke, stats);
    const x0 = Math.random() * 10;
    try {
      const res = await fetch(`${endpoint}/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [x0, 1, 2, 3] }] }),
        signal: AbortSignal.timeout(2_000),
      });
      const body = (await res.json()) as { model_version?: string };
      if (res.ok) stats.ok += 1;
      else stats.failed += 1;
      if (body.model_version) stats.versions.add(body.model_version);
    } catch {
      stats.failed += 1; // a server swapped away mid-request, or a timeout
    }
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    if (this.refresh) clearInterval(this.refresh);
    await Promise.allSettled([...this.inflight]);
  }
}

/** Every spoke serving `version` per the deployment's compliance, or null. */
export async function servingVersions(api: ApiCall): Promise<Map<string, string | null>> {
  const r = await api('GET', `/api/v1/deployments/${DEPLOYMENT}`);
  return new Map((r.body.compliance.spokes ?? []).map((s: { spoke: string; servingVersion: string | null }) => [s.spoke, s.servingVersion]));
}
