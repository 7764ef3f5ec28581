import { StatusReportSchema } from '@flotilla/contracts';
import { buildStatusReport, type StatusInput } from './status-report.js';

const input = (overrides: Partial<StatusInput> = {}): StatusInput => ({
  spoke: 'site-17',
  now: new Date('2025-01-01T00:00:00.000Z'),
  acceptedGeneration: 5,
  observedGeneration: 4,
  conditions: [{ type: 'Ready', status: 'True', reason: 'AllWorkloadsReady', message: '', lastTransitionTime: '2025-01-01T00:00:00.000Z' }],
  report: {
    deployments: [
      { name: 'd', phase: 'Ready', readyReplicas: 1, desiredReplicas: 1, servingVersion: '1.0.0', endpoint: 'http://x', compliance: 'Compliant', conditions: [], message: '' },
    ],
    jobs: [{ name: 'j', phase: 'Running', progress: 0.5, metrics: { loss: 0.1 }, producedVersion: null, message: '' }],
  },
  capacity: null,
  agent: { version: '0.1.0', runtime: 'none' },
  ...overrides,
});

describe('buildStatusReport', () => {
  it('stamps every workload status and its conditions with the generation whose reconcile computed them', () => {
    const result = buildStatusReport(input({ report: { deployments: [{ name: 'd', phase: 'Ready', readyReplicas: 1, desiredReplicas: 1, servingVersion: '1.0.0', endpoint: null, compliance: 'Compliant', conditions: [{ type: 'Ready', status: 'True', reason: 'Serving', message: '', lastTransitionTime: '2025-01-01T00:00:00.000Z' }], message: '' }], jobs: [{ name: 'j', phase: 'Running', progress: 0.5, metrics: {}, producedVersion: null, message: '' }] } }));
    const report = result.ok ? result.report : null;
    expect(report?.deployments[0]?.observedGeneration).toBe(4);
    expect(report?.deployments[0]?.conditions[0]?.observedGeneration).toBe(4);
    expect(report?.jobs[0]?.observedGeneration).toBe(4);
    // Spoke-level conditions are computed knowing the accepted generation.
    expect(report?.conditions[0]?.observedGeneration).toBe(5);
  });

  it('refuses a report that claims to have reconciled more than it accepted', () => {
    const result = buildStatusReport(input({ acceptedGeneration: 3, observedGeneration: 4 }));
    expect(result.ok).toBe(false);
    expect(result.ok ? '' : result.message).toContain('observedGeneration');
  });

  it('builds a schema-valid report carrying generation, conditions, workloads and agent facts', () => {
    const result = buildStatusReport(input());
    expect(result.ok).toBe(true);
    const report = result.ok ? result.report : null;
    expect(StatusReportSchema.parse(report)).toEqual(report);
    expect(report).toMatchObject({ v: 1, spoke: 'site-17', observedGeneration: 4, sentAt: '2025-01-01T00:00:00.000Z', agent: { runtime: 'none' } });
    expect(report?.acceptedGeneration).toBe(5);
    expect(report?.deployments[0]?.name).toBe('d');
    expect(report?.jobs[0]?.progress).toBe(0.5);
    expect(report).not.toHaveProperty('capacity');
  });

  it('includes capacity when there is one and empty workload lists before any reconcile', () => {
    const result = buildStatusReport(input({ report: null, capacity: { cpuCores: 8, memoryGiB: 32, gpus: [] } }));
    expect(result).toMatchObject({ ok: true, report: { deployments: [], jobs: [], capacity: { cpuCores: 8 } } });
  });

  it('cuts over-long messages instead of failing', () => {
    const base = input();
    const long = 'x'.repeat(10_000);
    const result = buildStatusReport({
      ...base,
      report: { deployments: base.report!.deployments.map((d) => ({ ...d, message: long })), jobs: [] },
    });
    expect(result.ok && result.report.deployments[0]?.message).toHaveLength(2048);
  });

  it('refuses a report over the 256 KiB message limit', () => {
    const base = input();
    const d = base.report!.deployments[0]!;
    const deployments = Array.from({ length: 256 }, (_, i) => ({ ...d, name: `d-${i}`, message: 'x'.repeat(2048) }));
    const result = buildStatusReport({ ...base, report: { deployments, jobs: [] } });
    expect(result.ok).toBe(false);
    expect(!result.ok && result.message).toMatch(/over the 262144-byte message limit/);
  });

  it('reports a runtime report that breaks the schema with the offending path', () => {
    const base = input();
    const result = buildStatusReport({
      ...base,
      report: { deployments: [{ ...base.report!.deployments[0]!, name: 'Not Valid', readyReplicas: -1 }], jobs: [] },
    });
    expect(result.ok).toBe(false);
    expect(!result.ok && result.message).toMatch(/deployments\.0\.name.*deployments\.0\.readyReplicas/);
  });
});
