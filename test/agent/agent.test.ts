import { readFile, stat, writeFile } from 'node:fs/promises';
import pino from 'pino';
import { commandsTopic, desiredTopic, type Telemetry } from '@flotilla/contracts';
import { runAgent, type AgentHandle, type RunAgentOptions } from '../../apps/agent/src/agent.js';
import { StateFileError, appliedEnvelopePath, credentialsPath } from '../../apps/agent/src/state/state-dir.js';
import { freePort, startBroker, type TestBroker } from './support/broker.js';
import { Observer } from './support/observer.js';
import { RecordingRuntime, TestSigner, enrolledStateDir } from './support/spoke.js';
import { waitFor } from './support/wait-for.js';

const SPOKE = 'site-17';
const logger = pino({ level: process.env.FLOTILLA_TEST_LOG ?? 'silent' });

/** Fast timings so reconnects happen within a test; reconciles only when something asks. */
const timing: NonNullable<RunAgentOptions['timing']> = {
  reconcileIntervalMs: 3_600_000,
  statusIntervalMs: 3_600_000,
  reconnect: { initialMs: 20, maxMs: 200 },
  stopTimeoutMs: 1000,
};

describe('agent against a real broker', () => {
  const signer = new TestSigner();
  let broker: TestBroker;
  let observer: Observer;
  let state: Awaited<ReturnType<typeof enrolledStateDir>>;
  const agents: AgentHandle[] = [];

  beforeEach(async () => {
    broker = await startBroker();
    observer = await Observer.connect(broker.url);
    state = await enrolledStateDir(SPOKE, broker.url, signer);
  });

  afterEach(async () => {
    for (const agent of agents.splice(0)) await agent.stop();
    await observer.close();
    await broker.stop();
    await state.cleanup();
  });

  async function start(runtime: RecordingRuntime, extra: Partial<RunAgentOptions> = {}): Promise<AgentHandle> {
    const agent = await runAgent({ stateDir: state.stateDir, runtime, logger, timing, ...extra });
    agents.push(agent);
    return agent;
  }

  const publishDesired = (body: unknown, retain = true): Promise<void> =>
    observer.publish(desiredTopic(SPOKE), typeof body === 'string' ? body : JSON.stringify(body), { retain });

  const statusWithGeneration = (generation: number) => () =>
    observer.statuses(SPOKE).find((s) => s.observedGeneration === generation);

  async function applyGeneration(runtime: RecordingRuntime, generation: number): Promise<void> {
    await publishDesired(signer.envelope(SPOKE, generation));
    await waitFor(`status acknowledging generation ${generation}`, statusWithGeneration(generation));
    await waitFor(`reconcile of generation ${generation}`, () => runtime.callsFor(generation) > 0);
  }

  it('applies a valid envelope, stores it verbatim and acknowledges it in status', async () => {
    const runtime = new RecordingRuntime();
    await start(runtime);
    const envelope = JSON.stringify(signer.envelope(SPOKE, 1));
    await publishDesired(envelope);

    const status = await waitFor('status with observedGeneration 1 after reconcile', () =>
      observer.statuses(SPOKE).find((s) => s.observedGeneration === 1 && s.deployments.length === 1),
    );
    expect(status.agent).toEqual({ version: expect.any(String), runtime: 'none' });
    expect(status.deployments[0]).toMatchObject({ name: 'bridge-defects-inference', phase: 'Pending', compliance: 'Pending' });
    expect(status.deployments[0]?.conditions[0]?.reason).toBe('NoRuntime');
    expect(status.jobs[0]).toMatchObject({ name: 'bridge-defects-site-tuning', phase: 'Pending' });
    expect(status.conditions.find((c) => c.type === 'EnvelopeRejected')).toMatchObject({ status: 'False', reason: 'EnvelopeAccepted' });
    expect(status.conditions.find((c) => c.type === 'Ready')).toMatchObject({ status: 'False', reason: 'WorkloadsNotReady' });
    expect(runtime.callsFor(1)).toBe(1);
    expect(await readFile(appliedEnvelopePath(state.stateDir), 'utf8')).toBe(envelope);
  });

  it('reports observedGeneration 0 and says it waits for a desired state before any envelope', async () => {
    await start(new RecordingRuntime());
    const status = await waitFor('first status', () => observer.lastStatus(SPOKE));
    expect(status.observedGeneration).toBe(0);
    expect(status.conditions.find((c) => c.type === 'Ready')).toMatchObject({ status: 'False', reason: 'NoDesiredState' });
  });

  it('announces itself online (retained) and offline on a clean stop', async () => {
    const agent = await start(new RecordingRuntime());
    const online = await waitFor('online presence', () => observer.presences(SPOKE).find((p) => p.state === 'online'));
    expect(online.sessionId).toBe(agent.snapshot().sessionId);
    expect(observer.seen.find((s) => s.channel === 'presence')?.retain).toBe(false); // live delivery; retained flag only on replay
    await agent.stop();
    await waitFor('offline presence', () => observer.presences(SPOKE).find((p) => p.state === 'offline'));
    const late = await Observer.connect(broker.url);
    try {
      const replayed = await waitFor('retained presence for a late subscriber', () => late.seen.find((s) => s.channel === 'presence'));
      expect(replayed).toMatchObject({ retain: true, body: { state: 'offline', sessionId: online.sessionId } });
    } finally {
      await late.close();
    }
  });

  it('is marked offline by its will when its connection dies, and comes back online', async () => {
    const agent = await start(new RecordingRuntime());
    await waitFor('online presence', () => observer.presences(SPOKE).find((p) => p.state === 'online'));
    broker.clients.get(`spoke-${SPOKE}`)!.conn.destroy();
    await waitFor('will: offline presence', () => observer.presences(SPOKE).find((p) => p.state === 'offline'));
    await waitFor('online again after reconnect', () => observer.presences(SPOKE).filter((p) => p.state === 'online').length >= 2);
    expect(agent.snapshot().connection.connects).toBeGreaterThanOrEqual(2);
  });

  it('rejects an envelope signed by another key: EnvelopeRejected event and condition, nothing applied', async () => {
    const runtime = new RecordingRuntime();
    const agent = await start(runtime);
    await applyGeneration(runtime, 1);
    const before = await readFile(appliedEnvelopePath(state.stateDir), 'utf8');

    const forger = new TestSigner();
    await publishDesired(forger.envelope(SPOKE, 2));
    const event = await waitFor('EnvelopeRejected event', () => observer.events(SPOKE).find((e) => e.type === 'EnvelopeRejected'));
    expect(event).toMatchObject({ reason: 'BadSignature', data: { generation: 2, appliedGeneration: 1 } });
    expect(event.message).toMatch(/signature does not verify/);
    const status = await waitFor('status carrying the rejection', () =>
      observer.statuses(SPOKE).find((s) => s.conditions.some((c) => c.type === 'EnvelopeRejected' && c.status === 'True')),
    );
    expect(status.observedGeneration).toBe(1);
    expect(status.conditions.find((c) => c.type === 'EnvelopeRejected')?.reason).toBe('BadSignature');
    expect(runtime.callsFor(2)).toBe(0);
    expect(await readFile(appliedEnvelopePath(state.stateDir), 'utf8')).toBe(before);
    expect(agent.snapshot()).toMatchObject({ observedGeneration: 1, envelopes: { applied: 1, rejected: 1 } });
  });

  it('rejects a genuine envelope addressed to another spoke as WrongSpoke', async () => {
    const runtime = new RecordingRuntime();
    await start(runtime);
    await waitFor('first status', () => observer.lastStatus(SPOKE));
    await publishDesired(signer.envelope('site-18', 1));
    const event = await waitFor('EnvelopeRejected event', () => observer.events(SPOKE).find((e) => e.type === 'EnvelopeRejected'));
    expect(event).toMatchObject({ reason: 'WrongSpoke' });
    expect(event.message).toContain('"site-18"');
    expect(runtime.calls).toHaveLength(0);
  });

  it('rejects an older generation as StaleGeneration and keeps the newer one', async () => {
    const runtime = new RecordingRuntime();
    const agent = await start(runtime);
    await applyGeneration(runtime, 3);
    await publishDesired(signer.envelope(SPOKE, 2));
    const event = await waitFor('EnvelopeRejected event', () => observer.events(SPOKE).find((e) => e.type === 'EnvelopeRejected'));
    expect(event).toMatchObject({ reason: 'StaleGeneration', message: 'envelope generation 2 is older than the applied generation 3' });
    expect(runtime.callsFor(2)).toBe(0);
    expect(agent.snapshot().observedGeneration).toBe(3);
  });

  it.each([
    ['not JSON', 'definitely not json', /InvalidJson/],
    ['JSON of the wrong shape', '{"generation":"one"}', /SchemaViolation: .*generation/],
    ['over 256 KiB', `{"pad":"${'x'.repeat(300 * 1024)}"}`, /TooLarge/],
  ])('rejects a desired message that is %s as Malformed, naming the problem', async (_what, body, pattern) => {
    const runtime = new RecordingRuntime();
    await start(runtime);
    await waitFor('first status', () => observer.lastStatus(SPOKE));
    await publishDesired(body, false);
    const event = await waitFor('EnvelopeRejected event', () => observer.events(SPOKE).find((e) => e.type === 'EnvelopeRejected'));
    expect(event.reason).toBe('Malformed');
    expect(event.message).toMatch(pattern);
    expect(runtime.calls).toHaveLength(0);
  });

  it('does not apply a redelivered envelope twice', async () => {
    const runtime = new RecordingRuntime();
    const agent = await start(runtime);
    const envelope = signer.envelope(SPOKE, 1);
    await applyGeneration(runtime, 1);
    await publishDesired(envelope, false);
    await publishDesired(envelope, false);
    await waitFor('two duplicates seen', () => agent.snapshot().envelopes.duplicates === 2);
    expect(runtime.callsFor(1)).toBe(1);
    expect(agent.snapshot().envelopes).toMatchObject({ applied: 1, rejected: 0 });
    expect(observer.events(SPOKE)).toEqual([]);
  });

  it('converges on the newer of two envelopes published back to back', async () => {
    const runtime = new RecordingRuntime();
    await start(runtime);
    await publishDesired(signer.envelope(SPOKE, 1));
    await publishDesired(signer.envelope(SPOKE, 2));
    await waitFor('status for generation 2 after its reconcile', () =>
      observer.statuses(SPOKE).find((s) => s.observedGeneration === 2 && s.conditions.some((c) => c.type === 'Reconciling' && c.status === 'False')),
    );
    expect(runtime.callsFor(2)).toBeGreaterThanOrEqual(1);
  });

  it('writes credentials and the applied envelope with mode 0600', async () => {
    const runtime = new RecordingRuntime();
    await start(runtime);
    await applyGeneration(runtime, 1);
    expect((await stat(credentialsPath(state.stateDir))).mode & 0o777).toBe(0o600);
    expect((await stat(appliedEnvelopePath(state.stateDir))).mode & 0o777).toBe(0o600);
  });

  it('resumes the last applied envelope from disk with the broker down, and reconciles it', async () => {
    const first = new RecordingRuntime();
    const agent = await start(first);
    await applyGeneration(first, 2);
    await agent.stop();

    const second = new RecordingRuntime();
    const port = await freePort();
    const offline = await start(second, { mqttUrlOverride: `mqtt://127.0.0.1:${port}` });
    await waitFor('reconcile of generation 2 from disk', () => second.callsFor(2) > 0);
    const snapshot = offline.snapshot();
    expect(snapshot.observedGeneration).toBe(2);
    expect(snapshot.connection.connected).toBe(false);
    expect(snapshot.reconcile.reconciledGeneration).toBe(2);
    expect(snapshot.queues.statusPending).toBe(true);

    // When a broker appears there, the status it kept while offline goes out with no new desired state.
    let admitAgent = false;
    const late = await startBroker({ port, admit: (id) => admitAgent || !id.startsWith('spoke-') });
    const lateObserver = await Observer.connect(late.url);
    try {
      admitAgent = true;
      const status = await waitFor('status from the resumed agent', () =>
        lateObserver.statuses(SPOKE).find((s) => s.observedGeneration === 2 && s.deployments.length === 1),
      );
      expect(status.conditions.find((c) => c.type === 'Reconciling')?.status).toBe('False');
    } finally {
      await offline.stop();
      await lateObserver.close();
      await late.stop();
    }
  });

  it('reconnects after the broker restarts, flushes what it queued and converges on the desired state there', async () => {
    const runtime = new RecordingRuntime();
    const sample = (): Promise<Telemetry> =>
      Promise.resolve({
        v: 1,
        spoke: 'placeholder',
        at: new Date().toISOString(),
        host: { cpuUtilisation: 0.5, memoryUsedBytes: 1, memoryTotalBytes: 2, diskUsedBytes: 1, diskTotalBytes: 2 },
        gpus: [],
        inference: [],
        agent: { reconcileSeconds: 0, reconcileErrors: 0, queuedReports: 0 },
        errors: [],
      });
    const agent = await start(runtime, { telemetry: sample, timing: { ...timing, telemetryIntervalMs: 20 }, queues: { telemetry: 3 } });
    await applyGeneration(runtime, 1);
    await waitFor('telemetry while connected', () => observer.telemetry(SPOKE).length > 0);

    const port = broker.port;
    await observer.close();
    await broker.stop();
    await waitFor('agent notices the broker is gone', () => !agent.snapshot().connection.connected);
    await waitFor('telemetry queue overflowing while offline', () => agent.snapshot().queues.telemetryDropped > 0);

    // The new broker has lost every retained message; it admits the agent only once the "hub" is ready.
    let admitAgent = false;
    broker = await startBroker({ port, admit: (id) => admitAgent || !id.startsWith('spoke-') });
    observer = await Observer.connect(broker.url);
    await publishDesired(signer.envelope(SPOKE, 2));
    admitAgent = true;

    const status = await waitFor('status acknowledging generation 2 on the new broker', statusWithGeneration(2));
    expect(status.spoke).toBe(SPOKE);
    await waitFor('reconcile of generation 2', () => runtime.callsFor(2) > 0);
    await waitFor('queued telemetry flushed', () => observer.telemetry(SPOKE).length >= 3);
    expect(observer.telemetry(SPOKE).every((t) => t.spoke === SPOKE)).toBe(true);
    expect(observer.presences(SPOKE).some((p) => p.state === 'online')).toBe(true);
    expect(agent.snapshot().connection.connects).toBeGreaterThanOrEqual(2);
  });

  it('reports a failing runtime as Degraded, retries with backoff and recovers', async () => {
    const runtime = new RecordingRuntime();
    runtime.fail = 'cluster unreachable';
    await start(runtime, { timing: { ...timing, reconcileBackoff: { initialMs: 10, maxMs: 50 } } });
    await publishDesired(signer.envelope(SPOKE, 1));
    const degraded = await waitFor('Degraded status', () =>
      observer.statuses(SPOKE).find((s) => s.conditions.some((c) => c.type === 'Degraded' && c.status === 'True')),
    );
    expect(degraded.conditions.find((c) => c.type === 'Degraded')).toMatchObject({ reason: 'ReconcileFailed', message: 'cluster unreachable' });
    await waitFor('retries', () => runtime.callsFor(1) >= 3);
    runtime.fail = null;
    await waitFor('recovered status', () =>
      observer.statuses(SPOKE).find((s) => s.conditions.some((c) => c.type === 'Degraded' && c.status === 'False') && s.deployments.length === 1),
    );
  });

  it('reconciles again when the runtime reports a change by itself', async () => {
    const runtime = new RecordingRuntime();
    await start(runtime);
    await applyGeneration(runtime, 1);
    const before = runtime.callsFor(1);
    runtime.changed();
    await waitFor('reconcile after the runtime change', () => runtime.callsFor(1) > before);
  });

  it('sends status at least every status interval, with the capacity the health side reports', async () => {
    const runtime = new RecordingRuntime();
    const capacity = { cpuCores: 16, memoryGiB: 64, gpus: [{ index: 0, uuid: 'GPU-1', product: 'L40S', memoryGiB: 48, mig: false }] };
    await start(runtime, { capacity: async () => capacity, timing: { ...timing, statusIntervalMs: 20 } });
    await waitFor('three statuses without anything happening', () => observer.statuses(SPOKE).length >= 3);
    expect(observer.lastStatus(SPOKE)?.capacity).toEqual(capacity);
  });

  it('still reports status, without workloads and Degraded, when the runtime report breaks the schema', async () => {
    const runtime = new RecordingRuntime();
    const inner = runtime.reconcile.bind(runtime);
    runtime.reconcile = async (desired, signal) => {
      const report = await inner(desired, signal);
      return { ...report, deployments: report.deployments.map((d) => ({ ...d, name: 'Not A DNS Label' })) };
    };
    await start(runtime);
    await publishDesired(signer.envelope(SPOKE, 1));
    const status = await waitFor('Degraded status about the report', () =>
      observer.statuses(SPOKE).find((s) => s.conditions.some((c) => c.reason === 'InvalidStatusReport')),
    );
    expect(status.observedGeneration).toBe(1);
    expect(status.deployments).toEqual([]);
    expect(status.conditions.find((c) => c.type === 'Degraded')?.message).toContain('deployments.0.name');
  });

  describe('commands', () => {
    it('resync republishes status and reconciles now', async () => {
      const runtime = new RecordingRuntime();
      await start(runtime);
      await applyGeneration(runtime, 1);
      const statuses = observer.statuses(SPOKE).length;
      const calls = runtime.callsFor(1);
      await observer.publish(commandsTopic(SPOKE), JSON.stringify({ v: 1, id: 'c-1', type: 'resync', issuedAt: new Date().toISOString() }));
      await waitFor('another status', () => observer.statuses(SPOKE).length > statuses);
      await waitFor('another reconcile', () => runtime.callsFor(1) > calls);
    });

    it('diagnostics answers with a CommandResult carrying connection and reconcile facts', async () => {
      const runtime = new RecordingRuntime();
      await start(runtime);
      await applyGeneration(runtime, 1);
      await observer.publish(commandsTopic(SPOKE), JSON.stringify({ v: 1, id: 'c-2', type: 'diagnostics', issuedAt: new Date().toISOString() }));
      const notice = await waitFor('Diagnostics notice', () => observer.events(SPOKE).find((e) => e.reason === 'Diagnostics'));
      expect(notice.type).toBe('CommandResult');
      expect(notice.data).toMatchObject({
        commandId: 'c-2',
        ok: true,
        connection: { connected: true, url: broker.url },
        reconcile: { reconciledGeneration: 1 },
        observedGeneration: 1,
      });
      expect(JSON.stringify(notice)).not.toContain('test-password');
    });

    it('rejects an invalid command with a Notice naming the bad field, and runs nothing', async () => {
      const runtime = new RecordingRuntime();
      await start(runtime);
      await applyGeneration(runtime, 1);
      const calls = runtime.calls.length;
      await observer.publish(commandsTopic(SPOKE), JSON.stringify({ v: 1, id: 'c-3', type: 'reboot', issuedAt: 'now' }));
      const notice = await waitFor('CommandRejected notice', () => observer.events(SPOKE).find((e) => e.reason === 'CommandRejected'));
      expect(notice.message).toMatch(/SchemaViolation: .*type.*issuedAt/);
      expect(runtime.calls.length).toBe(calls);
    });
  });

  describe('bad state directory', () => {
    it('refuses to start without credentials, naming the file', async () => {
      const err = (await runAgent({ stateDir: `${state.stateDir}-missing`, runtime: new RecordingRuntime(), logger }).catch((e: unknown) => e)) as StateFileError;
      expect(err).toBeInstanceOf(StateFileError);
      expect(err.message).toContain(`${state.stateDir}-missing/credentials.json`);
    });

    it('refuses to start with a corrupt applied envelope, naming the file', async () => {
      await writeFile(appliedEnvelopePath(state.stateDir), '{"v":1,"spo');
      await expect(runAgent({ stateDir: state.stateDir, runtime: new RecordingRuntime(), logger })).rejects.toThrow(
        `${appliedEnvelopePath(state.stateDir)} is not valid JSON`,
      );
    });

    it('refuses to start with an applied envelope the pinned key did not sign', async () => {
      await writeFile(appliedEnvelopePath(state.stateDir), JSON.stringify(new TestSigner().envelope(SPOKE, 5)));
      await expect(runAgent({ stateDir: state.stateDir, runtime: new RecordingRuntime(), logger })).rejects.toThrow(
        /does not hold a valid envelope for this spoke \(BadSignature/,
      );
    });
  });
});
