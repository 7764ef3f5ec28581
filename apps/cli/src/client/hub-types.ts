/**
 * The parts of the admin API's answers the CLI reads. The hub sends more;
 * `-o json|yaml` prints all of it.
 */

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
}

export interface SpokeView {
  name: string;
  labels: Record<string, string>;
  connection: 'online' | 'offline' | 'stale';
  lastSeenAt: string | null;
  desiredGeneration: number;
  observedGeneration: number;
  inSync: boolean;
  conditions: Condition[];
  capacity: { cpuCores: number; memoryGiB: number; gpus: { index: number; product: string; memoryGiB: number; mig?: boolean }[] } | null;
  workloads: {
    deployments: {
      name: string;
      phase: string;
      readyReplicas: number;
      desiredReplicas: number;
      servingVersion: string | null;
      endpoint: string | null;
      compliance: string;
      conditions: Condition[];
      message: string;
    }[];
    jobs: { name: string; phase: string; progress: number; metrics: Record<string, number>; producedVersion: string | null; message: string }[];
  };
  facts?: Record<string, unknown>;
  createdAt: string;
}

export interface PolicyObjectView {
  kind: string;
  name: string;
  labels: Record<string, string>;
  spec: Record<string, unknown>;
  source: string;
  commit: string | null;
  generation: number;
  createdAt: string;
  updatedAt: string;
}

export interface PlacementView extends PolicyObjectView {
  spec: {
    selector: { matchLabels?: Record<string, string>; matchExpressions?: { key: string; operator: string; values?: string[] }[] };
    requirements?: { gpu?: { count: number; memoryGiB?: number; product?: string } };
    residency?: string[];
    maxSpokes?: number;
  };
  decision: {
    evaluatedAt: string;
    spokeCount: number;
    selectedCount: number;
    excludedCount: number;
    selected?: string[];
    excluded?: { spoke: string; reasons: string[] }[];
  };
  usedBy?: { deployments: string[]; fineTuneJobs: string[] };
}

interface WorkloadPlacement {
  name: string;
  found: boolean;
  selectedCount: number;
  selected?: string[];
}

export interface DeploymentView extends PolicyObjectView {
  spec: {
    model: { name: string; version: string };
    placement: string;
    runtime: string;
    replicas: { min: number; max: number; targetConcurrency?: number };
    resources?: { gpu?: number; cpu?: string; memory?: string };
    remediation?: string;
    schedule?: { timezone: string };
  };
  placement: WorkloadPlacement;
  compliance: {
    evaluatedAt: string;
    counts: Record<'Compliant' | 'NonCompliant' | 'Pending' | 'Unknown', number>;
    spokes?: {
      spoke: string;
      state: string;
      reason: string;
      message: string;
      connection: string;
      phase: string | null;
      readyReplicas: number | null;
      desiredReplicas: number | null;
      servingVersion: string | null;
    }[];
  };
}

export interface JobView extends PolicyObjectView {
  spec: {
    baseModel: { name: string; version: string };
    placement: string;
    dataset: { path: string; format: string };
    trainer: { builtin?: string; image?: string };
    evaluation: { metric: string; threshold: number };
    output: { model: string; artifact: string };
    promote?: string;
  };
  placement: WorkloadPlacement;
  runs: {
    evaluatedAt: string;
    counts: Record<'Succeeded' | 'Running' | 'Pending' | 'Failed' | 'Unknown', number>;
    spokes?: { spoke: string; state: string; reason: string; message: string; progress: number | null; producedVersion: string | null; metrics: Record<string, number> }[];
  };
}

export interface GitSourceView {
  name: string;
  url: string;
  branch: string;
  path: string;
  intervalSeconds: number;
  lastCommit: string | null;
  lastSyncedAt: string | null;
  lastError: { commit: string | null; message: string; problems: { file: string; line: number; column: number; field: string; message: string }[]; at: string } | null;
  objectCount: number;
  createdAt: string;
}

/** A model as `flotilla get models` shows it: from a Model policy object or from the registry. */
export interface ModelView {
  name: string;
  task: string | null;
  source: string;
  versions: string[];
}
