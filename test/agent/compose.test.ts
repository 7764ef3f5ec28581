import { writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import path from 'node:path';
import pino from 'pino';
import { desiredTopic } from '@flotilla/contracts';
import { AgentStartError, startAgent, type RunningAgent } from '../../apps/agent/src/compose.js';
import { parseAgentConfig, type AgentConfig } from '../../apps/agent/src/config/agent-config.js';
import { isAlive } from '../../apps/agent/src/runtime/process/os-process.js';
import { stopWorkloads } from '../../apps/agent/src/runtime/process/stop-workloads.js';
import { StateDirLock } from '../../apps/agent/src/state/state-dir-lock.js';
import { startFakeKubeApiServer } from '../support/fake-kube-apiserver/index.js';
import { builtinDeployment, CLASSIFIER_V1, ensureInferenceServerBuilt, infer, payload, sha256Of } from '../process/support.js';
import { startBroker, type TestBroker } from './support/broker.js';
import { Observer } from './support/observer.js';
import { TestSigner, enrolledStateDir } from './support/spoke.js';
import { waitFor } from './support/wait-for.js';

const SPOKE = 'site-42';
const logger = pino({ level: process.env.FLOTILLA_TEST_LOG ?? 'silent' });

/** The agent as `flotilla agent run` and the local agent start it: from an AgentConfig, through startAgent. */
describe('agent composition (startAgent)', () => {
  const signer = new TestSigner();
  let broker: TestBroker;
  let observer: Observer;
  let state: Awaited<ReturnType<typeof enrolledStateDir>>;
  const running: RunningAgent[] = [];
  const blockers: Server[] = [];

  const configFor = (flags: Parameters<typeof parseAgentConfig>[0] = {}): AgentConfig =>
    parseAgentConfig({ stateDir: state.stateDir, runtime: 'none', metricsPort: '0', gpu: 'none', ...flags });
  const start = async (config: AgentConfig, extra: Partial<Parameters<typeof startAgent>[1]> = {}): Promise<RunningAgent> => {
    const agent = await startAgent(config, { logger, ...extra });
    running.push(agent);
    return agent;
  };

  beforeEach(async () => {
    broker = await startBroker();
    observer = await Observer.connect(broker.url);
    state = await enrolledStateDir(SPOKE, broker.url, signer);
  });
  afterEach(async () => {
    for (const a of running.splice(0)) await a.stop();
    for (const b of blockers.splice(0)) await new Promise((resolve) => b.close(resolve));
    await observer.close();
    await broker.stop();
    await state.cleanup();
  });

  it('runs the agent: online on the broker, its own /metrics served, the state directory locked until it stops', async () => {
    const agent = await start(configFor());

    await waitFor('the agent online', () => observer.presences(SPOKE).some((p) => p.state === 'online'));
    expect(agent.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const metrics = await (await fetch(agent.metricsUrl as string)).text();
    expect(metrics).toContain('flotilla_agent_');
    expect((await StateDirLock.holder(state.stateDir))?.pid).toBe(process.pid);

    await agent.stop();
    expect(await StateDirLock.holder(state.stateDir)).toBeNull();
    await expect(fetch(agent.metricsUrl as string)).rejects.toThrow();
  });

  it('refuses a second agent on the same state directory', async () => {
    await start(configFor());
    await expect(startAgent(configFor(), { logger })).rejects.toMatchObject({ code: 'StateDirLocked', message: expect.stringContaining('one agent per state directory') });
  });

  it('refuses a state directory that holds no credentials', async () => {
    await expect(startAgent(configFor({ stateDir: `${state.stateDir}-missing` }), { logger })).rejects.toMatchObject({ code: 'NotEnrolled' });
  });

  it('fails on a taken metrics port, leaving the state directory free, unless told to take any free port', async () => {
    const blocker = createServer();
    blockers.push(blocker);
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const taken = (blocker.address() as { port: number }).port;

    const failed = await startAgent(configFor({ metricsPort: String(taken) }), { logger }).catch((err: unknown) => err);
    expect(failed).toBeInstanceOf(AgentStartError);
    expect(failed).toMatchObject({ code: 'MetricsPort', message: expect.stringContaining(`127.0.0.1:${taken}`) });
    expect(await StateDirLock.holder(state.stateDir)).toBeNull();

    const config = configFor({ metricsPort: String(taken) });
    const agent = await start({ ...config, metrics: { ...(config.metrics as NonNullable<AgentConfig['metrics']>), orAnyFreePort: true } });
    expect(agent.metricsUrl).not.toContain(`:${taken}/`);
    expect((await fetch(agent.metricsUrl as string)).status).toBe(200);
  });

  it('with the process runtime, serves the desired model, names the running workloads, and leaves them running when it stops', async () => {
    const builtinEntry = await ensureInferenceServerBuilt();
    const digest = await sha256Of(CLASSIFIER_V1);
    const deployment = builtinDeployment('classifier', { version: '1.0.0', digest }, { model: { name: 'classifier', version: '1.0.0', digest, uri: `file://${CLASSIFIER_V1}`, format: 'onnx' } });
    const agent = await start(configFor({ runtime: 'process', artifactRoot: [path.dirname(CLASSIFIER_V1)] }), { processRuntime: { builtinEntry, stopGraceMs: 5000 } });
    await observer.publish(desiredTopic(SPOKE), JSON.stringify(signer.envelope(SPOKE, 1, payload([deployment]))), { retain: true });

    const ready = () => observer.statuses(SPOKE).find((s) => s.deployments.some((d) => d.name === 'classifier' && d.phase === 'Ready'));
    const status = await waitFor('the deployment Ready', ready, { timeoutMs: 60_000 });
    const endpoint = status.deployments[0]?.endpoint as string;
    expect((await infer(endpoint)).status).toBe(200);
    const [workload] = agent.runningWorkloads();
    expect(workload).toEqual({ deployment: 'classifier', pid: expect.any(Number), modelVersion: '1.0.0', endpoint });

    await agent.stop();
    expect(await isAlive(workload?.pid as number)).toBe(true);
    expect((await infer(endpoint)).status).toBe(200);

    const { stopped } = await stopWorkloads(state.stateDir, { graceMs: 5000 });
    expect(stopped).toEqual([{ deployment: 'classifier', pid: workload?.pid, how: 'SIGTERM' }]);
    expect(await isAlive(workload?.pid as number)).toBe(false);
  });

  it('with the Kubernetes runtime (loaded only then), reconciles against the API server and reports online; a missing kubeconfig is named', async () => {
    const missing = path.join(state.stateDir, 'no-such-kubeconfig');
    await expect(startAgent(configFor({ runtime: 'kubernetes', kubeconfig: missing }), { logger })).rejects.toMatchObject({
      code: 'KubeConfig',
      message: expect.stringContaining(missing),
    });
    const kube = await startFakeKubeApiServer({ namespaces: ['flotilla'] });
    try {
      const kubeconfig = path.join(state.stateDir, 'kubeconfig');
      await writeFile(kubeconfig, kube.kubeconfigYaml);
      await start(configFor({ runtime: 'kubernetes', kubeconfig, namespace: 'flotilla' }));
      await observer.publish(desiredTopic(SPOKE), JSON.stringify(signer.envelope(SPOKE, 1, payload([]))), { retain: true });
      await waitFor('a status at generation 1 from the Kubernetes runtime', () => observer.statuses(SPOKE).some((s) => s.observedGeneration === 1));
      expect(kube.requests().some((r) => r.namespace === 'flotilla')).toBe(true);
    } finally {
      for (const a of running.splice(0)) await a.stop();
      await kube.close();
    }
  });
});
