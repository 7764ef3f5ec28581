import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import type { DesiredPayload, JobRunStatus } from '@flotilla/contracts';
import { NoneRuntime, enroll, runAgent, type AgentHandle } from '../../apps/agent/src/index.js';
import type { TestHub } from '../support/hub.js';
import { waitFor } from '../support/wait.js';

/** NoneRuntime that remembers every payload it was asked to reconcile. */
export class RecordingRuntime extends NoneRuntime {
  readonly seen: DesiredPayload[] = [];
  /** When set, what the agent reports of its fine-tuning jobs instead of the NoneRuntime's Pending (API contract tests). */
  jobReports: ((jobs: DesiredPayload['fineTuneJobs']) => JobRunStatus[]) | null = null;
  override async reconcile(desired: DesiredPayload, signal: AbortSignal) {
    this.seen.push(desired);
    const report = await super.reconcile(desired, signal);
    return this.jobReports ? { ...report, jobs: this.jobReports(desired.fineTuneJobs) } : report;
  }
  /** Deployments of the last payload, as `name@version`. */
  deployments(): string[] {
    return (this.seen.at(-1)?.deployments ?? []).map((d) => `${d.name}@${d.model.version}`);
  }
}

const timing = { statusIntervalMs: 500, reconcileIntervalMs: 2_000, reconnect: { initialMs: 100, maxMs: 500 }, stopTimeoutMs: 500 };

export interface Fleet {
  agents: Map<string, { handle: AgentHandle; runtime: RecordingRuntime; stateDir: string }>;
  /** Resolves when every agent is online and has applied its desired generation. */
  converged(): Promise<{ name: string; desiredGeneration: number; observedGeneration: number }[]>;
  stop(): Promise<void>;
}

/** Real agents (NoneRuntime, recording what they receive), enrolled through the hub's enrolment API. */
export async function startFleet(t: TestHub, spokes: { name: string; labels: Record<string, string> }[]): Promise<Fleet> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'flotilla-policy-fleet-'));
  const log = pino({ level: 'silent' });
  const agents: Fleet['agents'] = new Map();
  // The agents ask for their own labels: the token lets them.
  const tok = await t.api('POST', '/api/v1/enrollment-tokens', { uses: spokes.length, allowedLabelKeys: ['*'] });
  for (const s of spokes) {
    await enroll({ hubUrl: t.hub.apiUrl, token: tok.body.token, name: s.name, labels: s.labels, stateDir: path.join(dir, s.name) });
    const runtime = new RecordingRuntime();
    const handle = await runAgent({ stateDir: path.join(dir, s.name), runtime, logger: log, timing });
    agents.set(s.name, { handle, runtime, stateDir: path.join(dir, s.name) });
  }
  const names = spokes.map((s) => s.name).sort();
  const converged = () =>
    waitFor('every agent online and in sync', async () => {
      const items = [];
      for (const n of names) items.push((await t.api('GET', `/api/v1/spokes/${n}`)).body);
      return items.every((s) => s.connection === 'online' && s.desiredGeneration > 0 && s.observedGeneration === s.desiredGeneration) ? items : null;
    });
  return {
    agents,
    converged,
    async stop() {
      for (const a of agents.values()) await a.handle.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export const DIGEST_1 = 'sha256:' + 'ab'.repeat(32);
export const DIGEST_2 = 'sha256:' + 'cd'.repeat(32);

/** A model with two versions, a placement per region and a deployment on the eu placement. */
export const basePolicy = (opts: { version?: string; replicas?: number; extra?: string } = {}) => `
apiVersion: flotilla.dev/v1
kind: Model
metadata: { name: bridge-defects }
spec:
  task: image-classification
  versions:
    - { version: "1.0.0", uri: "file:///models/bridge-defects/1.0.0/model.onnx", digest: "${DIGEST_1}", format: onnx }
    - { version: "1.1.0", uri: "file:///models/bridge-defects/1.1.0/model.onnx", digest: "${DIGEST_2}", format: onnx }
---
apiVersion: flotilla.dev/v1
kind: Placement
metadata: { name: eu-sites }
spec:
  selector: { matchLabels: { region: eu } }
---
apiVersion: flotilla.dev/v1
kind: Placement
metadata: { name: us-sites }
spec:
  selector: { matchLabels: { region: us } }
---
apiVersion: flotilla.dev/v1
kind: ModelDeployment
metadata: { name: bridge-defects-eu }
spec:
  model: { name: bridge-defects, version: "${opts.version ?? '1.0.0'}" }
  placement: eu-sites
  runtime: builtin
  replicas: { min: ${opts.replicas ?? 1}, max: ${opts.replicas ?? 1} }
  rollout: { strategy: AllAtOnce }   # these agents never report Ready (NoneRuntime): no health to gate waves on
${opts.extra ?? ''}`;

/** A deployment on the us placement, to add to basePolicy. */
export const usDeployment = (version = '1.0.0') => `---
apiVersion: flotilla.dev/v1
kind: ModelDeployment
metadata: { name: bridge-defects-us }
spec:
  model: { name: bridge-defects, version: "${version}" }
  placement: us-sites
  runtime: builtin
  rollout: { strategy: AllAtOnce }
`;
