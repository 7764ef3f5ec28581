import { JobRunStatusSchema } from '@flotilla/contracts';
import { toStatus } from './finetune-runner.js';
import type { JobRecord } from './job-record.js';

const record = (patch: Partial<JobRecord>): JobRecord => ({
  job: 'site-tuning',
  specHash: 'a'.repeat(64),
  attempt: 1,
  phase: 'Pending',
  progress: 0,
  metrics: {},
  message: 'waiting',
  producedVersion: null,
  producedDigest: null,
  datasetFingerprint: null,
  produced: null,
  updatedAt: '2026-11-29T00:00:00.000Z',
  ...patch,
});

describe('a run record as the status report carries it', () => {
  it('folds the middle stages into Running for the phase and keeps the stage, with the dataset fingerprint once read', () => {
    const fingerprint = `sha256:${'1f'.repeat(32)}`;
    const status = JobRunStatusSchema.parse(toStatus(record({ phase: 'Training', progress: 0.4, datasetFingerprint: fingerprint, message: 'training (builtin trainer)' })));
    expect(status).toMatchObject({ phase: 'Running', stage: 'Training', datasetFingerprint: fingerprint, progress: 0.4, message: 'Training: training (builtin trainer)' });
  });

  it('reports no fingerprint before the dataset was read, and terminal stages as themselves', () => {
    const pending = JobRunStatusSchema.parse(toStatus(record({})));
    expect(pending).toMatchObject({ phase: 'Pending', stage: 'Pending' });
    expect(pending).not.toHaveProperty('datasetFingerprint');
    expect(JobRunStatusSchema.parse(toStatus(record({ phase: 'Rejected', progress: 1, message: 'rejected' })))).toMatchObject({ phase: 'Rejected', stage: 'Rejected' });
  });
});
