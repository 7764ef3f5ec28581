import pino from 'pino';
import { ensureInferenceServerBuilt } from '../process/support.js';
import { runCli } from '../support/cli.js';
import { startTestHub, type TestHub } from '../support/hub.js';
import { DEPLOYMENT, LoadGenerator, type ProcessFleet, VERSIONS, rolloutPolicy, startProcessFleet } from '../support/rollout-fleet.js';
import { waitFor } from '../support/wait.js';

/**
 * Progressive rollouts with real parts only: three agents with the process
 * runtime serving a real ONNX model through the real inference server, a
 * load generator sending real requests, gates measured from the telemetry
 * the agents send. A good version goes canary first, then the next wave;
 * a version that fails 20% of requests stops in the canary wave and is
 * rolled back, and the other spokes never get it.
 * (The fuller scenario, with ten agents, a version that never becomes
 * Ready, pause/resume/abort and a hub kill -9, is `npm run rollouts`.)
 */
describe('progressive rollouts gated on live inference health', () => {
  let t: TestHub;
  let fleet: ProcessFleet;
  let load: LoadGenerator;
  /** Every version each spoke reported serving, sampled while the test runs. */
  const served = new Map<string, Set<string>>();
  let sampler: NodeJS.Timeout;
  const log = pino({ level: process.env.FLOTILLA_TEST_LOG ?? 'silent' });

  const rollout = async () => (await t.api('GET', `/api/v1/rollouts/${DEPLOYMENT}`)).body;
  const finished = (phase: string) => async () => {
    const r = await rollout();
    return r.phase === phase && !r.rollingBack ? r : null;
  };

  beforeAll(async () => {
    await ensureInferenceServerBuilt();
    t = await startTestHub({ FLOTILLA_TELEMETRY_INTERVAL: '5' });
    fleet = await startProcessFleet(t.hub.apiUrl, t.api, [{ name: 'eu-1', canary: true }, { name: 'eu-2' }, { name: 'eu-3' }], log);
    expect((await t.api('POST', '/api/v1/apply', rolloutPolicy({ version: VERSIONS.good1.version, maxConcurrency: 2, minSuccessTime: '3s' }))).status).toBe(200);
    await waitFor('every spoke Ready on 1.0.0', async () => {
      const spokes = (await t.api('GET', `/api/v1/deployments/${DEPLOYMENT}`)).body.compliance.spokes ?? [];
      return spokes.length === 3 && spokes.every((s: any) => s.state === 'Compliant' && s.servingVersion === '1.0.0');
    }, 60_000, 250);
    sampler = setInterval(() => {
      void t.api('GET', `/api/v1/deployments/${DEPLOYMENT}`).then((r) => {
        for (const s of r.body?.compliance?.spokes ?? []) if (s.servingVersion) served.set(s.spoke, (served.get(s.spoke) ?? new Set()).add(s.servingVersion));
      }, () => undefined);
    }, 250);
    load = new LoadGenerator(t.api, DEPLOYMENT, 20);
    load.start();
  }, 120_000);

  afterAll(async () => {
    clearInterval(sampler);
    await load?.stop();
    await fleet?.stop();
    await t?.stop();
  });

  test('a good version passes the canary wave, then the next wave, and every transition is audited', async () => {
    expect((await t.api('POST', '/api/v1/apply', rolloutPolicy({ version: VERSIONS.good2.version, maxConcurrency: 2, minSuccessTime: '3s' }))).status).toBe(200);
    const started = await waitFor('the rollout to start', async () => {
      const r = (await t.api('GET', `/api/v1/rollouts/${DEPLOYMENT}`)).body;
      return r.toVersion === '2.0.0' ? r : null;
    });
    expect(started.fromVersion).toBe('1.0.0');
    expect(started.waves).toBe(2);
    expect(started.spokes.map((s: any) => [s.spoke, s.wave])).toEqual([['eu-1', 1], ['eu-2', 2], ['eu-3', 2]]);

    // While the canary is verified, the second wave still serves the old version.
    const verifying = await waitFor('the canary to be verified', async () => {
      const r = await rollout();
      return r.spokes[0].state === 'Verifying' ? r : null;
    }, 40_000, 100);
    expect(verifying.wave).toBe(1);
    expect(verifying.spokes.slice(1).map((s: any) => s.state)).toEqual(['Pending', 'Pending']);
    const deployment = (await t.api('GET', `/api/v1/deployments/${DEPLOYMENT}`)).body;
    expect(deployment.rollout.toVersion).toBe('2.0.0');
    expect(deployment.compliance.spokes.filter((s: any) => s.spoke !== 'eu-1').map((s: any) => s.servingVersion)).toEqual(['1.0.0', '1.0.0']);

    const done = await waitFor('the rollout to succeed', finished('Succeeded'), 60_000, 250);
    expect(done.spokes.map((s: any) => s.state)).toEqual(['Succeeded', 'Succeeded', 'Succeeded']);
    for (const s of done.spokes) expect(s.gates.find((g: any) => g.name === 'errorRatio').ok).toBe(true);
    await waitFor('every spoke serving 2.0.0', async () => {
      const spokes = (await t.api('GET', `/api/v1/deployments/${DEPLOYMENT}`)).body.compliance.spokes;
      return spokes.every((s: any) => s.servingVersion === '2.0.0');
    }, 20_000, 250);
    const audit = (await t.api('GET', '/api/v1/audit-events?limit=200')).body.items.map((e: any) => e.action);
    expect(audit).toEqual(expect.arrayContaining(['rollout.started', 'rollout.wave-started', 'rollout.succeeded']));
  }, 120_000);

  test('a version that fails a share of real requests stops in the canary wave and is rolled back; the others never get it', async () => {
    expect((await t.api('POST', '/api/v1/apply', rolloutPolicy({ version: VERSIONS.flaky.version, maxConcurrency: 2, minSuccessTime: '3s' }))).status).toBe(200);
    const failed = await waitFor('the rollout to fail', async () => {
      const r = await rollout();
      return r.toVersion === VERSIONS.flaky.version && (r.phase === 'Failed' || r.phase === 'RolledBack') ? r : null;
    }, 60_000, 250);
    const canary = failed.spokes[0];
    expect(canary).toMatchObject({ spoke: 'eu-1', failed: true, reason: 'GateFailed' });
    const gate = canary.gates.find((g: any) => g.name === 'errorRatio');
    expect(gate.ok).toBe(false);
    expect(gate.threshold).toBe(0.05);
    expect(gate.value).toBeGreaterThan(0.05);
    expect(failed.message).toContain('eu-1');

    const back = await waitFor('the rollback to finish', finished('RolledBack'), 60_000, 250);
    expect(back.spokes[0].state).toBe('RolledBack');
    expect(back.spokes.slice(1).map((s: any) => s.state)).toEqual(['Pending', 'Pending']);
    await waitFor('the canary serving 2.0.0 again', async () => {
      const spokes = (await t.api('GET', `/api/v1/deployments/${DEPLOYMENT}`)).body.compliance.spokes;
      return spokes.find((s: any) => s.spoke === 'eu-1')?.servingVersion === '2.0.0';
    }, 20_000, 250);
    // The real servers answered errors on the canary only while it ran the flaky version.
    expect(load.answers.get('eu-1')?.failed ?? 0).toBeGreaterThan(0);
    expect(served.get('eu-1')).toContain(VERSIONS.flaky.version);
    expect(served.get('eu-2')).not.toContain(VERSIONS.flaky.version);
    expect(served.get('eu-3')).not.toContain(VERSIONS.flaky.version);

    // The CLI names the spoke, the gate, the measured value and the threshold.
    const cli = await runCli(['rollout', 'status', DEPLOYMENT], { FLOTILLA_URL: t.hub.apiUrl, FLOTILLA_TOKEN: t.adminToken });
    expect(cli.code).toBe(0);
    expect(cli.stdout).toMatch(/eu-1\s+1\s+RolledBack \(failed\)\s+GateFailed\s+errorRatio 0\.\d+ \(max 0\.05\) FAIL/);
    const metrics = await (await fetch(`${t.hub.apiUrl}/metrics`)).text();
    expect(metrics).toMatch(/flotilla_rollouts\{phase="RolledBack"\} 1/);
    expect(metrics).toMatch(/flotilla_rollout_rollbacks_total\{deployment="classifier-eu",cause="failed"\} 1/);
  }, 120_000);

  test('commands to agents: restart one deployment (a new server process), diagnostics with recent workload logs', async () => {
    const pidOf = () => fleet.agents.get('eu-3')?.runningWorkloads().find((w) => w.deployment === DEPLOYMENT)?.pid;
    const before = pidOf();
    const env = { FLOTILLA_URL: t.hub.apiUrl, FLOTILLA_TOKEN: t.adminToken };
    const restarted = await runCli(['spoke', 'command', 'eu-3', 'restart', '--target', DEPLOYMENT], env);
    expect({ code: restarted.code, stderr: restarted.stderr }).toEqual({ code: 0, stderr: '' });
    expect(restarted.stdout).toMatch(/State:\s+Succeeded/);
    const after = await waitFor('a new server process on eu-3', () => {
      const pid = pidOf();
      return pid !== undefined && pid !== before ? pid : null;
    }, 30_000, 100);
    expect(after).not.toBe(before);
    const sent = await t.api('POST', '/api/v1/spokes/eu-2/commands', { type: 'diagnostics' });
    expect(sent.status).toBe(202);
    const diag = await waitFor('the diagnostics bundle', async () => {
      const r = await t.api('GET', `/api/v1/spokes/eu-2/commands/${sent.body.id}`);
      return r.body.state === 'Succeeded' ? r.body : null;
    }, 20_000, 100);
    expect(diag.result.logs[DEPLOYMENT].length).toBeGreaterThan(0);
    expect(JSON.stringify(diag.result).length).toBeLessThan(128 * 1024);
    expect(diag.result.workloads).toEqual([expect.objectContaining({ name: DEPLOYMENT, phase: 'Ready' })]);
    const viewer = await t.api('POST', '/api/v1/api-tokens', { name: 'cmd-viewer', role: 'viewer' });
    expect((await t.api('POST', '/api/v1/spokes/eu-2/commands', { type: 'resync' }, viewer.body.token)).status).toBe(403);
  }, 60_000);
});
