import type { DesiredDeployment, DesiredFineTuneJob, DesiredPayload, UnsignedEnvelope } from '../messages.js';

/** Valid sample values for the contracts' own specs. */

export const DIGEST = `sha256:${'ab'.repeat(32)}`;

export function sampleDeployment(name = 'bridge-defects-inference'): DesiredDeployment {
  return {
    name,
    model: {
      name: 'bridge-defects',
      version: '1.0.0',
      digest: DIGEST,
      uri: 's3://models/bridge-defects/1.0.0/model.onnx',
      format: 'onnx',
      sizeBytes: 48213770,
    },
    runtime: 'builtin',
    resources: { gpu: 1, cpu: '2', memory: '8Gi' },
    replicas: { min: 1, max: 4, targetConcurrency: 8 },
    remediation: 'enforce',
  };
}

export function sampleJob(name = 'bridge-defects-site-tuning'): DesiredFineTuneJob {
  return {
    name,
    baseModel: sampleDeployment().model,
    dataset: { path: '/data/labelled/bridge-defects', format: 'csv' },
    trainer: { builtin: 'linear-probe', hyperparameters: { epochs: 30, learningRate: 0.05 } },
    evaluation: { metric: 'accuracy', holdoutFraction: 0.2, threshold: 0.9 },
    output: { model: 'bridge-defects', artifact: 'keep-local' },
    promote: 'auto',
  };
}

export function samplePayload(): DesiredPayload {
  return { settings: { telemetryIntervalSeconds: 30 }, deployments: [sampleDeployment()], fineTuneJobs: [sampleJob()] };
}

export function sampleUnsigned(overrides: Partial<UnsignedEnvelope> = {}): UnsignedEnvelope {
  return { v: 1, spoke: 'site-17', generation: 3, issuedAt: '2025-01-02T03:04:05.000Z', payload: samplePayload(), ...overrides };
}
