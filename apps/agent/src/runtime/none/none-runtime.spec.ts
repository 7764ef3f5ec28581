import type { DesiredPayload } from '@flotilla/contracts';
import { NoneRuntime } from './none-runtime.js';

const DIGEST = `sha256:${'0'.repeat(64)}`;
const model = { name: 'm', version: '1', digest: DIGEST, uri: 'file:/m.onnx', format: 'onnx' as const };

function desired(names: string[]): DesiredPayload {
  return {
    settings: { telemetryIntervalSeconds: 30 },
    deployments: names.map((name) => ({
      name,
      model,
      runtime: 'builtin' as const,
      resources: { gpu: 0 },
      replicas: { min: 2, max: 3 },
      remediation: 'enforce' as const,
    })),
    fineTuneJobs: [
      {
        name: 'tune',
        baseModel: model,
        dataset: { path: '/d', format: 'csv' as const },
        trainer: { builtin: 'linear-probe' as const, hyperparameters: {} },
        evaluation: { metric: 'accuracy' as const, holdoutFraction: 0.2, threshold: 0.9 },
        output: { model: 'm', artifact: 'keep-local' as const },
        promote: 'auto' as const,
      },
    ],
  };
}

describe('NoneRuntime', () => {
  it('reports every desired deployment Pending with reason NoRuntime and every job Pending', async () => {
    const runtime = new NoneRuntime({ now: () => new Date('2025-01-01T00:00:00Z') });
    const report = await runtime.reconcile(desired(['a', 'b']), new AbortController().signal);
    expect(runtime.kind).toBe('none');
    expect(report.deployments.map((d) => [d.name, d.phase, d.compliance, d.desiredReplicas, d.conditions[0]?.reason])).toEqual([
      ['a', 'Pending', 'Pending', 2, 'NoRuntime'],
      ['b', 'Pending', 'Pending', 2, 'NoRuntime'],
    ]);
    expect(report.jobs).toEqual([expect.objectContaining({ name: 'tune', phase: 'Pending', progress: 0 })]);
  });

  it('keeps each deployment condition time stable across runs, so reports only change when the desired state does', async () => {
    let now = new Date('2025-01-01T00:00:00Z');
    const runtime = new NoneRuntime({ now: () => now });
    const first = await runtime.reconcile(desired(['a']), new AbortController().signal);
    now = new Date('2025-01-01T01:00:00Z');
    const second = await runtime.reconcile(desired(['a']), new AbortController().signal);
    expect(second).toEqual(first);
    const third = await runtime.reconcile(desired(['a', 'c']), new AbortController().signal);
    expect(third.deployments[1]?.conditions[0]?.lastTransitionTime).toBe('2025-01-01T01:00:00.000Z');
  });

  it('refuses to run with an aborted signal', async () => {
    const controller = new AbortController();
    controller.abort(new Error('superseded'));
    await expect(new NoneRuntime().reconcile(desired([]), controller.signal)).rejects.toThrow('superseded');
  });
});
