import { parsePolicyDocuments } from './documents.js';
import { renderDesired } from './render.js';
import { gpus, objectsFrom, spoke } from './spec-helpers.js';

const DIGEST = `sha256:${'1'.repeat(64)}`;
const model = `apiVersion: flotilla.dev/v1
kind: Model
metadata: { name: m }
spec:
  task: image-classification
  versions: [{ version: "1.0.0", uri: "s3://m/1.onnx", digest: "${DIGEST}", format: onnx }]
---
apiVersion: flotilla.dev/v1
kind: Placement
metadata: { name: all }
spec:
  selector: { matchLabels: { site: a } }
`;
const job = (spec: string) => `apiVersion: flotilla.dev/v1
kind: FineTuneJob
metadata: { name: tune }
spec:
  baseModel: { name: m, version: "1.0.0" }
  placement: all
  evaluation: { metric: accuracy, holdoutFraction: 0.2, threshold: 0.9 }
  output: { model: m, artifact: keep-local }
${spec.replace(/^/gm, '  ')}
`;
const errorsOf = (text: string) => parsePolicyDocuments([{ file: 'job.yaml', text }]).errors.map((e) => `${e.path ?? ''}: ${e.message}`);

describe('FineTuneJob trainers, dataset columns, timeout and schedule', () => {
  it('renders a command trainer, csv columns, the timeout in seconds and the schedule for the spoke', () => {
    const objects = objectsFrom(
      model +
        '---\n' +
        job(`dataset: { path: /data/x, format: csv, labelColumn: defect, featureColumns: [a, b] }
trainer: { command: [/opt/train, --fast], hyperparameters: { lr: 0.1 } }
resources: { gpu: 1, memory: 4Gi }
timeout: 1h30m
schedule: { timezone: Europe/Paris, windows: [{ days: [mon], start: "22:00", end: "06:00" }] }`),
    );
    const payload = renderDesired(objects, [spoke('a-1', { site: 'a' }, gpus('NVIDIA L40S', 48))], { telemetryIntervalSeconds: 30, registry: [] }).get('a-1')!;
    expect(payload.fineTuneJobs[0]).toMatchObject({
      dataset: { path: '/data/x', format: 'csv', labelColumn: 'defect', featureColumns: ['a', 'b'] },
      trainer: { command: ['/opt/train', '--fast'], hyperparameters: { lr: 0.1 } },
      timeoutSeconds: 5400,
      schedule: { timezone: 'Europe/Paris', windows: [{ days: ['mon'], start: '22:00', end: '06:00' }] },
    });
  });

  it('refuses a trainer with none of builtin, image or command, column fields on imagefolder, a bad timeout and an unknown zone', () => {
    const errors = errorsOf(
      job(`dataset: { path: /data/x, format: imagefolder, labelColumn: y }
trainer: { hyperparameters: {} }
timeout: soon
schedule: { timezone: Mars/Olympus, windows: [{ days: [mon], start: "22:00", end: "06:00" }] }`),
    ).join('\n');
    expect(errors).toMatch(/needs "builtin", "image" or "command"/);
    expect(errors).toMatch(/labelColumn.*only applies to csv and jsonl datasets/);
    expect(errors).toMatch(/timeout.*must be a duration/);
    expect(errors).toMatch(/timezone/);
  });
});
