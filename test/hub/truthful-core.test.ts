import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { runAgent, type AgentHandle } from '../../apps/agent/src/agent.js';
import { enroll } from '../../apps/agent/src/enroll/enroll.js';
import { NoneRuntime } from '../../apps/agent/src/runtime/none/none-runtime.js';
import { startTestHub, type TestHub } from '../support/hub.js';
import { DIGEST_1, DIGEST_2, basePolicy } from '../support/fleet-kit.js';
import { waitFor } from '../support/wait.js';
import { runCli } from '../support/cli.js';

const timing = { statusIntervalMs: 500, reconcileIntervalMs: 2_000, reconnect: { initialMs: 100, maxMs: 500 }, stopTimeoutMs: 500 };
const log = pino({ level: 'silent' });

describe('truthful core: generations, restarts, stalled objects, one registry', () => {
  let t: TestHub;
  let dir: string;
  const agents: AgentHandle[] = [];

  async function startAgent(name: string, labels: Record<string, string>, token?: string): Promise<AgentHandle> {
    const stateDir = path.join(dir, name);
    if (token) await enroll({ hubUrl: t.hub.apiUrl, token, name, labels, stateDir });
    const handle = await runAgent({ stateDir, runtime: new NoneRuntime(), logger: log, timing });
    agents.push(handle);
    return handle;
  }
  const spoke = async (name: string) => (await t.api('GET', `/api/v1/spokes/${name}`)).body;

  beforeAll(async () => {
    t = await startTestHub();
    dir = await mkdtemp(path.join(os.tmpdir(), 'flotilla-truthful-'));
  });
  afterAll(async () => {
    for (const a of agents) await a.stop();
    await t.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('a spoke that missed a change while the hub restarted gets it and converges (acceptedGeneration and observedGeneration shown)', async () => {
    const tok = (await t.api('POST', '/api/v1/enrollment-tokens', { uses: 5, allowedLabelKeys: ['*'] })).body.token as string;
    const a = await startAgent('eu-1', { region: 'eu' }, tok);
    expect((await t.api('POST', '/api/v1/apply', basePolicy())).status).toBe(200);
    const first = await waitFor('eu-1 in sync', async () => {
      const s = await spoke('eu-1');
      return s.connection === 'online' && s.desiredGeneration > 0 && s.observedGeneration === s.desiredGeneration ? s : null;
    });
    expect(first.acceptedGeneration).toBe(first.desiredGeneration);

    await a.stop();
    expect((await t.api('POST', '/api/v1/apply', basePolicy({ version: '1.1.0' }))).status).toBe(200);
    const behind = await spoke('eu-1');
    expect(behind.desiredGeneration).toBe(first.desiredGeneration + 1);
    expect(behind.acceptedGeneration).toBe(first.desiredGeneration);

    await t.stopHub();
    await t.startHub(); // the embedded broker's retained envelopes are gone with it
    const started = Date.now();
    await startAgent('eu-1', { region: 'eu' });
    const caught = await waitFor(
      'eu-1 accepts and reconciles the generation it missed',
      async () => {
        const s = await spoke('eu-1');
        return s.connection === 'online' && s.observedGeneration === behind.desiredGeneration ? s : null;
      },
      30_000,
    );
    expect(caught.acceptedGeneration).toBe(behind.desiredGeneration);
    expect(Date.now() - started).toBeLessThan(30_000);
    const dep = (await t.api('GET', '/api/v1/deployments/bridge-defects-eu')).body;
    const eu1 = dep.compliance.spokes.find((s: { spoke: string }) => s.spoke === 'eu-1');
    // The verdict now comes from the report of the current generation (the none runtime runs nothing, so it says Pending itself).
    expect(eu1).toMatchObject({ state: 'Pending', reason: 'Pending', desiredGeneration: behind.desiredGeneration, observedGeneration: behind.desiredGeneration });
  });

  it('an object that cannot be rendered is Stalled with the reason, and every other object still reaches new spokes', async () => {
    // A dangling reference that no apply would accept (written behind the API's back, as a bad migration or restore could).
    await t.hub.dataSource.query(
      `INSERT INTO policy_objects (kind, name, spec, source) VALUES ('ModelDeployment', 'ghost-deployment', $1::jsonb, 'test')`,
      [JSON.stringify({ model: { name: 'bridge-defects', version: '9.9.9' }, placement: 'eu-sites', runtime: 'builtin', resources: { gpu: 0 }, replicas: { min: 1, max: 1 }, remediation: 'enforce' })],
    );
    const tok = (await t.api('POST', '/api/v1/enrollment-tokens', { uses: 1, allowedLabelKeys: ['*'] })).body.token as string;
    await startAgent('eu-2', { region: 'eu' }, tok);
    const s = await waitFor('eu-2 gets bridge-defects-eu despite the broken object', async () => {
      const x = await spoke('eu-2');
      return x.observedGeneration > 0 && x.observedGeneration === x.desiredGeneration && x.workloads.deployments.some((d: { name: string }) => d.name === 'bridge-defects-eu') ? x : null;
    });
    expect(s.workloads.deployments.map((d: { name: string }) => d.name)).not.toContain('ghost-deployment');

    const ghost = (await t.api('GET', '/api/v1/deployments/ghost-deployment')).body;
    const stalled = ghost.conditions.find((c: { type: string }) => c.type === 'Stalled');
    expect(stalled).toMatchObject({ status: 'True', reason: 'UnresolvedReference' });
    expect(stalled.message).toContain('9.9.9');
    const metrics = await (await fetch(`${t.hub.apiUrl}/metrics`)).text();
    expect(metrics).toMatch(/flotilla_policy_object_stalled\{kind="ModelDeployment",name="ghost-deployment"\} 1/);
    expect(metrics).toMatch(/flotilla_policy_object_stalled\{kind="ModelDeployment",name="bridge-defects-eu"\} 0/);
    const described = await runCli(['describe', 'deployment', 'ghost-deployment'], { FLOTILLA_URL: t.hub.apiUrl, FLOTILLA_TOKEN: t.adminToken });
    expect(described.stdout).toMatch(/Condition: +Stalled \(UnresolvedReference\): .*9\.9\.9/);
    const spokeText = (await runCli(['describe', 'spoke', 'eu-2'], { FLOTILLA_URL: t.hub.apiUrl, FLOTILLA_TOKEN: t.adminToken })).stdout;
    expect(spokeText).toMatch(/Generation: +desired \d+, accepted \d+, observed \d+ \(in sync\)/);
    const healthy = (await t.api('GET', '/api/v1/deployments/bridge-defects-eu')).body;
    expect(healthy.conditions.find((c: { type: string }) => c.type === 'Stalled')).toMatchObject({ status: 'False' });
    await t.hub.dataSource.query(`DELETE FROM policy_objects WHERE name = 'ghost-deployment'`);
  });

  it('keeps one registry: Model YAML versions are registry rows, and no path changes a registered digest (409 naming it)', async () => {
    const versions = (await t.api('GET', '/api/v1/models/bridge-defects/versions')).body.items as { version: string; digest: string }[];
    expect(versions.map((v) => v.version)).toEqual(['1.0.0', '1.1.0']);

    const changed = basePolicy().replace(`digest: "${DIGEST_1}"`, `digest: "sha256:${'ef'.repeat(32)}"`);
    const r = await t.api('POST', '/api/v1/apply', changed);
    expect(r.status).toBe(409);
    expect(r.body.error.message).toContain(DIGEST_1);
    expect(r.body.error.details).toMatchObject({ model: 'bridge-defects', version: '1.0.0', registeredDigest: DIGEST_1 });

    const api = await t.api('POST', '/api/v1/models/bridge-defects/versions', {
      version: '1.1.0',
      digest: `sha256:${'ef'.repeat(32)}`,
      uri: 'file:///elsewhere/model.onnx',
      format: 'onnx',
    });
    expect(api.status).toBe(409);
    expect(api.body.error.message).toContain(DIGEST_2);
    // Still the original artifact.
    const v = (await t.api('GET', '/api/v1/models/bridge-defects')).body.versions.find((x: { version: string }) => x.version === '1.1.0');
    expect(v.digest).toBe(DIGEST_2);
  });
});
