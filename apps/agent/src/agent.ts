import { randomUUID, type KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import {
  PROTOCOL_VERSION,
  TelemetrySchema,
  decodeMessage,
  formatIssues,
  parseSpokeTopic,
  spokeTopics,
  toPublicKey,
  verifyEnvelopeFollowingRotation,
  type FollowedKey,
  type AgentEvent,
  type Capacity,
  type Command,
  type Condition,
  type DesiredPayload,
  type EnvelopeRejectReason,
  type Presence,
  type SpokeChannel,
  type Telemetry,
} from '@flotilla/contracts';
import { ReconcileRunner, type ReconcileResult, type ReconcileState } from './reconcile/runner.js';
import type { WorkloadRuntime } from './runtime/runtime.js';
import { MqttSession, type ConnectionFacts } from './session/mqtt-session.js';
import {
  StateFileError,
  appliedEnvelopePath,
  readAppliedEnvelope,
  readCredentials,
  writeAppliedEnvelope,
  writeCredentials,
  type AgentCredentials,
} from './state/state-dir.js';
import { setCondition, truncate, workloadConditions } from './status/conditions.js';
import { buildStatusReport } from './status/status-report.js';
import { errorMessage, settleWithin } from './support/abort.js';
import { BoundedQueue } from './support/bounded-queue.js';
import { AGENT_VERSION } from './version.js';

export interface RunAgentOptions {
  stateDir: string;
  runtime: WorkloadRuntime;
  logger: Logger;
  /** Connect here instead of the URL the hub gave at enrolment. */
  mqttUrlOverride?: string;
  /** Health summary sent on `telemetry` every `settings.telemetryIntervalSeconds`. */
  telemetry?: () => Promise<Telemetry>;
  /** What this spoke can host, carried in status reports. */
  capacity?: () => Promise<Capacity>;
  /** Aborting stops the agent, like `stop()`. */
  signal?: AbortSignal;
  /** Receives the agent's own measurements (the health collector's AgentMetrics fits). */
  selfMetrics?: {
    observeReconcile(seconds: number, outcome: 'success' | 'error'): void;
    setMqttConnected(connected: boolean): void;
    setQueuedReports(count: number): void;
  };
  /** Tuning, mostly for tests and simulated fleets. Defaults in brackets. */
  timing?: {
    /** Reconcile requeue after success [30 s]. */
    reconcileIntervalMs?: number;
    /** Reconcile requeue after failure [1 s doubling to 5 min]. */
    reconcileBackoff?: { initialMs?: number; maxMs?: number };
    /** Status is sent at least this often [30 s]. */
    statusIntervalMs?: number;
    /** Broker reconnects [0.5 s doubling to 30 s, full jitter]. */
    reconnect?: { initialMs?: number; maxMs?: number };
    /** Overrides the envelope's telemetry interval. */
    telemetryIntervalMs?: number;
    /** How long stop() waits for the farewell presence [2 s]. */
    stopTimeoutMs?: number;
  };
  /** Bounds of what is kept while offline [events 1000, telemetry 100]. */
  queues?: { events?: number; telemetry?: number };
  random?: () => number;
  now?: () => Date;
}

export interface AgentSnapshot {
  spoke: string;
  sessionId: string;
  /** Generation of the envelope verified and stored. */
  acceptedGeneration: number;
  /** Generation whose reconcile has finished. */
  observedGeneration: number;
  conditions: Condition[];
  connection: ConnectionFacts;
  reconcile: ReconcileState;
  envelopes: { applied: number; duplicates: number; rejected: number };
  queues: { events: number; eventsDropped: number; telemetry: number; telemetryDropped: number; statusPending: boolean };
}

export interface AgentHandle {
  readonly spoke: string;
  snapshot(): AgentSnapshot;
  /** Stops timers, the reconcile runner and the MQTT session (saying offline first). Leaves the runtime to its owner. */
  stop(): Promise<void>;
}

const DEFAULT_TELEMETRY_SECONDS = 30;
/** The workload log lines a diagnostics bundle carries, at most (bytes over all workloads). */
const DIAGNOSTIC_LOG_BYTES = 64 * 1024;

/** Longest a capacity or telemetry probe may take before the agent goes on without it. */
const PROBE_TIMEOUT_MS = 10_000;

/**
 * Starts the agent: loads its state directory, reconciles the last applied
 * desired state at once (offline first), then keeps an MQTT session to the
 * hub's broker, applying verified envelopes and reporting status, events and
 * telemetry. Resolves once started; the broker need not be reachable.
 */
export async function runAgent(opts: RunAgentOptions): Promise<AgentHandle> {
  opts.signal?.throwIfAborted();
  const credentials = await readCredentials(opts.stateDir);
  const agent = new Agent(opts, credentials);
  await agent.start();
  if (opts.signal) {
    const onAbort = (): void => void agent.stop();
    if (opts.signal.aborted) await agent.stop();
    else opts.signal.addEventListener('abort', onAbort, { once: true });
  }
  return { spoke: credentials.spoke, snapshot: () => agent.snapshot(), stop: () => agent.stop() };
}

interface Applied {
  generation: number;
  payload: DesiredPayload;
}

class Agent {
  private readonly spoke: string;
  /** The pinned hub signing key; moves forward when the hub rotates it (adoptHubKey). */
  private hubKey: KeyObject;
  private readonly topics: Record<SpokeChannel, string>;
  private readonly sessionId = randomUUID();
  /** When the current (or last) broker connection was attempted. */
  private connectionAt: Date | null = null;
  private readonly log: Logger;
  private readonly now: () => Date;
  private readonly runner: ReconcileRunner;
  private readonly session: MqttSession;
  private readonly events: BoundedQueue<AgentEvent>;
  private readonly telemetryQueue: BoundedQueue<Telemetry>;
  private applied: Applied | null = null;
  private conditions: Condition[] = [];
  private capacity: Capacity | null = null;
  private statusPending = false;
  /** observedGeneration of the last status sent (-1 before any). */
  private reportedObservedGeneration = -1;
  private desiredChain: Promise<void> = Promise.resolve();
  private readonly counters = { applied: 0, duplicates: 0, rejected: 0 };
  private readonly recentCommands: string[] = [];
  private statusTimer: NodeJS.Timeout | null = null;
  private telemetryTimer: NodeJS.Timeout | null = null;
  private telemetryIntervalMs: number;
  private stopped: Promise<void> | null = null;

  constructor(
    private readonly opts: RunAgentOptions,
    private credentials: AgentCredentials,
  ) {
    this.spoke = credentials.spoke;
    this.hubKey = toPublicKey(credentials.hubPublicKey);
    this.topics = spokeTopics(this.spoke);
    this.log = opts.logger.child({ spoke: this.spoke });
    this.now = opts.now ?? (() => new Date());
    this.events = new BoundedQueue(opts.queues?.events ?? 1000);
    this.telemetryQueue = new BoundedQueue(opts.queues?.telemetry ?? 100);
    this.telemetryIntervalMs = opts.timing?.telemetryIntervalMs ?? DEFAULT_TELEMETRY_SECONDS * 1000;
    this.runner = new ReconcileRunner({
      runtime: opts.runtime,
      logger: this.log.child({ component: 'reconcile' }),
      intervalMs: opts.timing?.reconcileIntervalMs,
      backoff: opts.timing?.reconcileBackoff,
      random: opts.random,
      now: this.now,
      onResult: (result) => this.onReconcileResult(result),
    });
    this.session = new MqttSession({
      url: opts.mqttUrlOverride ?? credentials.mqtt.url,
      clientId: credentials.mqtt.clientId,
      username: credentials.mqtt.username,
      password: credentials.mqtt.password,
      ...(credentials.caCertificate ? { ca: credentials.caCertificate } : {}),
      subscriptions: [this.topics.desired, this.topics.commands],
      // Computed at each connection attempt: the will and the `online` that follows carry that attempt's time.
      will: () => {
        this.connectionAt = this.now();
        return { topic: this.topics.presence, payload: this.presence('offline', this.connectionAt), qos: 1, retain: true };
      },
      reconnect: opts.timing?.reconnect,
      random: opts.random,
      logger: this.log.child({ component: 'mqtt' }),
      onConnect: () => {
        opts.selfMetrics?.setMqttConnected(true);
        this.onConnect();
      },
      onDisconnect: () => opts.selfMetrics?.setMqttConnected(false),
      onMessage: (topic, payload) => this.onMessage(topic, payload),
    });
    this.refreshWorkloadConditions();
    this.setCondition({ type: 'EnvelopeRejected', status: 'False', reason: 'NoRejection', message: '' });
  }

  async start(): Promise<void> {
    await this.loadApplied();
    this.opts.runtime.onChange?.(() => this.runner.trigger());
    this.runner.start();
    if (this.applied) this.runner.setDesired(this.applied.generation, this.applied.payload);
    this.session.start();
    const statusEvery = this.opts.timing?.statusIntervalMs ?? 30_000;
    this.statusTimer = setInterval(() => void this.publishStatus(), statusEvery);
    this.scheduleTelemetry();
  }

  stop(): Promise<void> {
    this.stopped ??= (async () => {
      if (this.statusTimer) clearInterval(this.statusTimer);
      if (this.telemetryTimer) clearTimeout(this.telemetryTimer);
      this.statusTimer = null;
      this.telemetryTimer = null;
      await this.runner.stop();
      await this.desiredChain;
      await this.session.stop(
        { topic: this.topics.presence, payload: this.presence('offline'), qos: 1, retain: true },
        this.opts.timing?.stopTimeoutMs ?? 2000,
      );
      this.log.info('agent stopped');
    })();
    return this.stopped;
  }

  snapshot(): AgentSnapshot {
    return {
      spoke: this.spoke,
      sessionId: this.sessionId,
      acceptedGeneration: this.applied?.generation ?? 0,
      observedGeneration: this.observedGeneration(),
      conditions: this.conditions.map((c) => ({ ...c })),
      connection: this.session.connection(),
      reconcile: this.runner.snapshot(),
      envelopes: { ...this.counters },
      queues: {
        events: this.events.size,
        eventsDropped: this.events.dropped,
        telemetry: this.telemetryQueue.size,
        telemetryDropped: this.telemetryQueue.dropped,
        statusPending: this.statusPending,
      },
    };
  }

  /* ------------------------------------------------------------ desired */

  /** Offline first: the last applied envelope is re-verified and served before any broker is reached. */
  private async loadApplied(): Promise<void> {
    const stored = await readAppliedEnvelope(this.opts.stateDir);
    if (stored === null) {
      this.log.info('no applied desired state yet; waiting for the hub');
      return;
    }
    const file = appliedEnvelopePath(this.opts.stateDir);
    const result = verifyEnvelopeFollowingRotation(stored.raw, this.hubKey, { spoke: this.spoke, lastAppliedGeneration: 0 });
    if (!result.ok) {
      throw new StateFileError(
        file,
        'Corrupt',
        `${file} does not hold a valid envelope for this spoke (${result.reason}: ${result.message}); ` +
          `delete it to take the hub's current desired state at the next connection`,
      );
    }
    // Stored, then the agent stopped before pinning the key that signed it.
    if (result.hubKey.rotated) await this.adoptHubKey(result.hubKey);
    this.applied = { generation: result.envelope.generation, payload: result.envelope.payload };
    this.applyTelemetryInterval(result.envelope.payload);
    this.refreshWorkloadConditions();
    this.log.info({ generation: result.envelope.generation }, 'resuming the last applied desired state');
  }

  private onMessage(topic: string, payload: Buffer): void {
    const parsed = parseSpokeTopic(topic);
    if (parsed === null || parsed.spoke !== this.spoke) {
      this.log.warn({ topic }, 'ignoring a message on a topic this agent did not subscribe to');
      return;
    }
    if (parsed.channel === 'desired') {
      // One envelope at a time, in arrival order: the generation check depends on the previous outcome.
      this.desiredChain = this.desiredChain
        .then(() => this.handleDesired(payload))
        .catch((err: unknown) => this.log.error({ err: errorMessage(err) }, 'handling a desired state failed'));
    } else if (parsed.channel === 'commands') {
      this.handleCommand(payload);
    } else {
      this.log.warn({ topic }, 'ignoring a message on an agent -> hub channel');
    }
  }

  private async handleDesired(payload: Buffer): Promise<void> {
    if (this.stopped) return;
    if (payload.length === 0) {
      // A zero-length retained message clears the topic; it is not an envelope.
      this.log.warn({ generation: this.applied?.generation ?? 0 }, 'desired state cleared on the broker; keeping the applied one');
      return;
    }
    const decoded = decodeMessage('desired', payload);
    if (!decoded.ok) {
      this.reject('Malformed', `${decoded.code}: ${decoded.message}`, null);
      return;
    }
    const lastAppliedGeneration = this.applied?.generation ?? 0;
    const result = verifyEnvelopeFollowingRotation(decoded.raw, this.hubKey, { spoke: this.spoke, lastAppliedGeneration });
    if (!result.ok) {
      this.reject(result.reason, result.message, decoded.value.generation);
      return;
    }
    const { envelope } = result;
    if (result.hubKey.rotated) {
      // The same generation signed by the hub's new key: stored first (a restart re-verifies it by its announcements), then the key is pinned.
      try {
        await writeAppliedEnvelope(this.opts.stateDir, payload);
        await this.adoptHubKey(result.hubKey);
      } catch (err) {
        this.log.error({ err: errorMessage(err) }, 'cannot pin the rotated hub signing key; keeping the old one');
        return;
      }
    }
    if (result.duplicate) {
      this.counters.duplicates += 1;
      this.log.debug({ generation: envelope.generation }, 'desired state redelivered; already applied');
      return;
    }
    try {
      await writeAppliedEnvelope(this.opts.stateDir, payload);
    } catch (err) {
      // Not applied: after a restart the agent would otherwise fall back to an older state than it reported.
      const message = `cannot store generation ${envelope.generation} in ${appliedEnvelopePath(this.opts.stateDir)}: ${errorMessage(err)}`;
      this.log.error({ err: errorMessage(err) }, 'cannot store the desired state; not applying it');
      this.emitEvent({ type: 'WorkloadError', reason: 'StateWriteFailed', message, data: { generation: envelope.generation } });
      return;
    }
    this.applied = { generation: envelope.generation, payload: envelope.payload };
    this.counters.applied += 1;
    this.setCondition({ type: 'EnvelopeRejected', status: 'False', reason: 'EnvelopeAccepted', message: `generation ${envelope.generation} applied` });
    this.refreshWorkloadConditions();
    this.applyTelemetryInterval(envelope.payload);
    this.log.info({ generation: envelope.generation, from: lastAppliedGeneration }, 'applied desired state');
    this.runner.setDesired(envelope.generation, envelope.payload);
    void this.publishStatus();
  }

  /** Pins the hub's new signing key in credentials.json; from now on envelopes signed by the old key are refused. */
  private async adoptHubKey(next: FollowedKey): Promise<void> {
    const credentials = { ...this.credentials, hubPublicKey: next.publicKeyPem };
    await writeCredentials(this.opts.stateDir, credentials);
    this.credentials = credentials;
    this.hubKey = next.key;
    this.log.info('the hub rotated its signing key; pinned the new key (announced under the old one)');
  }

  private reject(reason: EnvelopeRejectReason, message: string, generation: number | null): void {
    this.counters.rejected += 1;
    this.log.warn({ reason, generation }, `rejected a desired-state envelope: ${message}`);
    this.setCondition({ type: 'EnvelopeRejected', status: 'True', reason, message });
    this.emitEvent({
      type: 'EnvelopeRejected',
      reason,
      message,
      data: { generation, appliedGeneration: this.applied?.generation ?? 0 },
    });
    void this.publishStatus();
  }

  /* ----------------------------------------------------------- commands */

  private handleCommand(payload: Buffer): void {
    const decoded = decodeMessage('commands', payload);
    if (!decoded.ok) {
      this.log.warn({ code: decoded.code }, `rejected a command: ${decoded.message}`);
      this.emitEvent({ type: 'Notice', reason: 'CommandRejected', message: `${decoded.code}: ${decoded.message}`, data: {} });
      return;
    }
    const command = decoded.value;
    if (this.recentCommands.includes(command.id)) return; // QoS 1 redelivery
    this.recentCommands.push(command.id);
    if (this.recentCommands.length > 64) this.recentCommands.shift();
    this.log.info({ command: command.type, id: command.id }, 'command received');
    this.runCommand(command);
  }

  /**
   * Runs one command and reports its outcome as a CommandResult event that
   * carries the command's id (the hub files it under that id; a redelivered
   * id was already skipped above). Diagnostics is a bounded bundle of the
   * agent's state and its workloads' recent log lines, never dataset contents.
   */
  private runCommand(command: Command): void {
    void this.executeCommand(command).then(
      (r) => this.emitEvent({ type: 'CommandResult', reason: r.reason, message: r.message, data: { commandId: command.id, command: command.type, ok: true, ...r.data } }),
      (err: unknown) =>
        this.emitEvent({ type: 'CommandResult', reason: 'CommandFailed', message: errorMessage(err), data: { commandId: command.id, command: command.type, ok: false } }),
    );
  }

  private async executeCommand(command: Command): Promise<{ reason: string; message: string; data: Record<string, unknown> }> {
    switch (command.type) {
      case 'resync':
        this.runner.trigger();
        await this.publishStatus();
        return { reason: 'Resynced', message: 'reconcile triggered and status sent', data: {} };
      case 'restart': {
        const target = command.target as string;
        const runtime = this.opts.runtime;
        if (!runtime.restartDeployment) throw new Error(`the ${runtime.kind} runtime cannot restart a deployment`);
        if (!(await runtime.restartDeployment(target))) throw new Error(`deployment ${target} has no running workload on this spoke`);
        this.runner.trigger();
        return { reason: 'Restarted', message: `deployment ${target} stopped; the reconcile starts it again`, data: { target } };
      }
      case 'diagnostics': {
        const s = this.snapshot();
        const logs = (await this.opts.runtime.recentLogs?.(DIAGNOSTIC_LOG_BYTES)) ?? {};
        return {
          reason: 'Diagnostics',
          message: `connected to ${s.connection.url}; generation ${s.observedGeneration}; ${s.reconcile.runs} reconciles, ${s.reconcile.errors} failed`,
          data: {
            agent: { version: AGENT_VERSION, runtime: this.opts.runtime.kind, sessionId: this.sessionId },
            connection: s.connection,
            reconcile: { ...s.reconcile, report: undefined },
            envelopes: s.envelopes,
            queues: s.queues,
            observedGeneration: s.observedGeneration,
            telemetryIntervalMs: this.telemetryIntervalMs,
            workloads: (s.reconcile.report?.deployments ?? []).map((d) => ({ name: d.name, phase: d.phase, servingVersion: d.servingVersion, message: d.message })),
            logs,
          },
        };
      }
    }
  }

  /* ------------------------------------------------------------- status */

  private onReconcileResult(result: ReconcileResult): void {
    this.opts.selfMetrics?.observeReconcile(result.durationMs / 1000, result.ok ? 'success' : 'error');
    this.opts.selfMetrics?.setQueuedReports(this.events.size + this.telemetryQueue.size);
    const before = JSON.stringify(this.conditions.map(({ type, status, reason }) => [type, status, reason]));
    this.refreshWorkloadConditions();
    const after = JSON.stringify(this.conditions.map(({ type, status, reason }) => [type, status, reason]));
    // A finished generation is always reported, even when nothing else changed: the hub waits for it.
    const finished = this.observedGeneration() !== this.reportedObservedGeneration;
    if (result.changed || before !== after || finished) void this.publishStatus();
  }

  private refreshWorkloadConditions(): void {
    const state = this.runner.snapshot();
    for (const c of workloadConditions({
      appliedGeneration: this.applied?.generation ?? 0,
      reconciledGeneration: state.reconciledGeneration,
      lastError: state.lastError,
      report: state.report,
    })) {
      this.setCondition(c);
    }
  }

  private setCondition(next: Omit<Condition, 'lastTransitionTime'>): void {
    this.conditions = setCondition(this.conditions, next, this.now());
  }

  /**
   * The generation whose reconcile has finished. The runner may have finished a
   * generation older than the accepted one (a new envelope arrived since), never a newer one.
   */
  private observedGeneration(state: ReconcileState = this.runner.snapshot()): number {
    return Math.min(state.reconciledGeneration, this.applied?.generation ?? 0);
  }

  /** Level-based: while offline only "a status is due" is remembered; it is built when sent. */
  private async publishStatus(): Promise<void> {
    if (!this.session.connected) {
      this.statusPending = true;
      return;
    }
    this.statusPending = false;
    if (this.opts.capacity) {
      try {
        // A hung probe (nvidia-smi stuck on a bad GPU) must not stop status reports.
        const probed = await settleWithin(this.opts.capacity(), PROBE_TIMEOUT_MS, null);
        if (probed === null) this.log.warn('capacity probe timed out; reporting the last known capacity');
        else this.capacity = probed;
      } catch (err) {
        this.log.warn({ err: errorMessage(err) }, 'capacity probe failed; reporting the last known capacity');
      }
    }
    const reconcile = this.runner.snapshot();
    const input = {
      spoke: this.spoke,
      now: this.now(),
      acceptedGeneration: this.applied?.generation ?? 0,
      // The report below was computed by the reconcile of this generation, never a later one.
      observedGeneration: this.observedGeneration(reconcile),
      conditions: this.conditions,
      report: reconcile.report,
      capacity: this.capacity,
      agent: { version: AGENT_VERSION, runtime: this.opts.runtime.kind },
    };
    let built = buildStatusReport(input);
    if (!built.ok) {
      // Still tell the hub what the agent knows, and why the workloads are missing.
      this.log.error(built.message);
      built = buildStatusReport({
        ...input,
        report: null,
        capacity: null,
        conditions: setCondition(this.conditions, { type: 'Degraded', status: 'True', reason: 'InvalidStatusReport', message: built.message }, input.now),
      });
      if (!built.ok) return;
    }
    this.reportedObservedGeneration = built.report.observedGeneration;
    await this.send('status', JSON.stringify(built.report), 1).catch(() => {
      this.statusPending = true;
    });
  }

  /* ------------------------------------------------ events and telemetry */

  private emitEvent(e: Pick<AgentEvent, 'type' | 'reason' | 'message' | 'data'>): void {
    const event: AgentEvent = { v: PROTOCOL_VERSION, spoke: this.spoke, at: this.now().toISOString(), ...e, message: truncate(e.message, 4096) };
    if (!this.session.connected) {
      this.events.push(event);
      return;
    }
    this.send('events', JSON.stringify(event), 1).catch(() => this.events.unshift(event));
  }

  private applyTelemetryInterval(payload: DesiredPayload): void {
    if (this.opts.timing?.telemetryIntervalMs !== undefined) return;
    const ms = payload.settings.telemetryIntervalSeconds * 1000;
    if (ms === this.telemetryIntervalMs) return;
    this.telemetryIntervalMs = ms;
    if (this.telemetryTimer !== null) this.scheduleTelemetry();
  }

  private scheduleTelemetry(): void {
    if (!this.opts.telemetry || this.stopped) return;
    if (this.telemetryTimer) clearTimeout(this.telemetryTimer);
    this.telemetryTimer = setTimeout(() => {
      void this.sendTelemetry().finally(() => {
        if (this.telemetryTimer !== null) this.scheduleTelemetry();
      });
    }, this.telemetryIntervalMs);
  }

  private async sendTelemetry(): Promise<void> {
    let sample: Telemetry | null;
    try {
      sample = await settleWithin(this.opts.telemetry!(), PROBE_TIMEOUT_MS, null);
    } catch (err) {
      this.log.warn({ err: errorMessage(err) }, 'telemetry collection failed');
      return;
    }
    if (sample === null) {
      this.log.warn('telemetry collection timed out');
      return;
    }
    const checked = TelemetrySchema.safeParse({ ...sample, spoke: this.spoke });
    if (!checked.success) {
      this.log.error(`telemetry sample violates the schema, not sent: ${formatIssues(checked.error.issues)}`);
      return;
    }
    if (!this.session.connected) {
      this.telemetryQueue.push(checked.data);
      return;
    }
    await this.send('telemetry', JSON.stringify(checked.data), 0).catch(() => this.telemetryQueue.push(checked.data));
  }

  /* ----------------------------------------------------------- session */

  private onConnect(): void {
    void this.send('presence', this.presence('online', this.connectionAt ?? this.now()), 1, true).catch(() => undefined);
    void this.publishStatus();
    for (const event of this.events.drain()) {
      this.send('events', JSON.stringify(event), 1).catch(() => this.events.push(event));
    }
    for (const sample of this.telemetryQueue.drain()) {
      this.send('telemetry', JSON.stringify(sample), 0).catch(() => this.telemetryQueue.push(sample));
    }
  }

  private send(channel: SpokeChannel, payload: string, qos: 0 | 1, retain = false): Promise<void> {
    return this.session.publish(this.topics[channel], payload, { qos, retain });
  }

  /**
   * `at` orders presence messages that may be stored out of order (hub
   * replicas): a connection's `online` and its will carry the time that
   * connection was attempted, so the late will of an earlier connection is
   * older than the `online` of the current one; a clean stop says `offline` now.
   */
  private presence(state: Presence['state'], at: Date = this.now()): string {
    const presence: Presence = { v: PROTOCOL_VERSION, spoke: this.spoke, state, sessionId: this.sessionId, at: at.toISOString() };
    return JSON.stringify(presence);
  }
}
