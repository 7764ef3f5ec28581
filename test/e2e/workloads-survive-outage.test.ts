import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { ArtifactCache } from '../../apps/agent/src/artifacts/index.js';
import { enroll, runAgent, type AgentHandle } from '../../apps/agent/src/index.js';
import { ProcessRuntime, readLedger } from '../../apps/agent/src/runtime/process/index.js';
import { startTestHub, type TestHub } from '../support/hub.js';
import { waitFor } from '../support/wait.js';
import { testSourcePolicy } from '../support/source-policy.js';

const MODEL = path.resolve('test/fixtures/models/linear-classifier-1.0.0.onnx');
const POLICY = `
apiVersion: flotilla.dev/v1
kind: Model
metadata: { name: bridge-defects }
spec:
  task: image-classification
  versions: [{ version: "1.0.0", uri: "file://${MODEL}", digest: "sha256:9a3065dbe5e11b744789cb652460f85cfdb705fa5f4e45a9776f06cdf7ec2ab9", format: onnx }]
---
apiVersion: flotilla.dev/v1
kind: Placement
metadata: { name: lyon }
spec: { selector: { matchLabels: { site: lyon } } }
---
apiVersion: flotilla.dev/v1
kind: ModelDeployment
metadata: { name: bridge-defects-inference }
spec: { model: { name: bridge-defects, version: "1.0.0" }, placement: lyon, runtime: builtin }
`;

describe('after a broker outage the agent converges without restarting healthy workloads', () => {
  let t: TestHub;
  let dir: string;
  let agent: AgentHandle;
  let runtime: ProcessRuntime;

  beforeAll(async () => {
    t = await startTestHub();
    dir = await mkdtemp(path.join(os.tmpdir(), 'flotilla-outage-'));
    const tok = await t.api('POST', '/api/v1/enrollment-tokens', { uses: 1, labels: { site: 'lyon' } });
    await enroll({ hubUrl: t.hub.apiUrl, token: tok.body.token, name: 'lyon-01', stateDir: dir });
    const log = pino({ level: 'silent' });
    const artifacts = new ArtifactCache({ root: path.join(dir, 'cache'), maxBytes: 1 << 30, maxArtifactBytes: 1 << 30, sources: testSourcePolicy() });
    runtime = new ProcessRuntime({ stateDir: dir, artifacts, logger: log });
    agent = await runAgent({
      stateDir: dir,
      runtime,
      logger: log,
      timing: { statusIntervalMs: 500, reconcileIntervalMs: 1_000, reconnect: { initialMs: 100, maxMs: 500 }, stopTimeoutMs: 500 },
    });
  }, 60_000);

  afterAll(async () => {
    await agent.stop();
    await runtime.close({ stopWorkloads: true });
    await t.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('the same server process keeps serving through the outage and after reconvergence', async () => {
    expect((await t.api('POST', '/api/v1/apply', POLICY)).status).toBe(200);
    const ready = async () => {
      const s = (await t.api('GET', '/api/v1/spokes/lyon-01')).body;
      const d = s.workloads?.deployments?.[0];
      return s.connection === 'online' && s.observedGeneration === s.desiredGeneration && d?.phase === 'Ready' ? d : null;
    };
    const before = await waitFor('Ready on lyon-01', ready, 60_000, 200);
    const pidBefore = (await readLedger(dir)).ledger.processes.map((p) => p.pid);
    expect(pidBefore).toHaveLength(1);

    await t.stopHub();
    await waitFor('agent sees the broker gone', () => !agent.snapshot().connection.connected);
    // Offline, the workload keeps answering.
    expect((await fetch(`${before.endpoint}/ready`)).status).toBe(200);
    await new Promise((r) => setTimeout(r, 2_500)); // a couple of reconcile intervals while offline
    await t.startHub();

    const after = await waitFor('reconverged', ready, 60_000, 200);
    expect(after.endpoint).toBe(before.endpoint);
    expect((await readLedger(dir)).ledger.processes.map((p) => p.pid)).toEqual(pidBefore);
    expect((await fetch(`${after.endpoint}/ready`)).status).toBe(200);
  });
});
