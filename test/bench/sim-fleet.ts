/**
 * The simulated fleet of `npm run bench`: a child process holding N agents,
 * each a real MQTT client with the credentials its own enrolment returned.
 * Every desired-state envelope is decoded and its Ed25519 signature checked
 * against the pinned hub key, exactly as the agent does (contracts'
 * `decodeMessage` + `verifyEnvelope`); an applied one is acknowledged with a
 * schema-valid status report. Telemetry is schema-valid too. There are no
 * workloads: a deployment is reported Ready as soon as its envelope verifies.
 *
 * Floor messages (payload starting with FLOOR_MARKER on the commands topic)
 * are echoed without parsing, with a pre-built event of the same size as the
 * spoke's status ack, so the floor measures the transport alone.
 *
 * Driven by the benchmark over IPC (sim-protocol.ts).
 */
import { randomUUID, type KeyObject } from 'node:crypto';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import mqtt, { type MqttClient } from 'mqtt';
import {
  type AgentEvent,
  type Capacity,
  type DesiredPayload,
  type EnrollResponse,
  EnrollResponseSchema,
  PROTOCOL_VERSION,
  type Presence,
  type StatusReport,
  type Telemetry,
  decodeMessage,
  spokeTopics,
  toPublicKey,
  verifyEnvelope,
} from '@flotilla/contracts';
import { FLOOR_MARKER, type SimConnected, type SimEnrolled, type SimRequest, type SimResponse, type SimSpokeSpec, type SimStats, type SimTelemetryDone } from './sim-protocol.js';

const GiB = 1024 ** 3;

class SimAgent {
  client: MqttClient | null = null;
  creds: EnrollResponse | null = null;
  lastApplied = 0;
  payload: DesiredPayload | null = null;
  envelopeBytes = 0;
  statusBytes = 0;
  /** Wall clock (ms, sub-millisecond) when the last applied envelope arrived. */
  receivedAt = 0;
  echo: string | null = null;
  readonly sessionId = randomUUID();
  readonly topics: ReturnType<typeof spokeTopics>;
  readonly capacity: Capacity;

  constructor(
    readonly spec: SimSpokeSpec,
    readonly fleet: SimFleet,
  ) {
    this.topics = spokeTopics(spec.name);
    this.capacity = {
      cpuCores: 32,
      memoryGiB: 128,
      gpus: Array.from({ length: spec.gpus.count }, (_, i) => ({
        index: i,
        uuid: `GPU-${spec.name}-${i}`,
        product: spec.gpus.product,
        memoryGiB: spec.gpus.memoryGiB,
        mig: false,
      })),
    };
  }

  async enroll(hubUrl: string): Promise<void> {
    const res = await fetch(`${hubUrl}/api/v1/enroll`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: this.spec.token, name: this.spec.name, labels: this.spec.labels, facts: { simulated: true } }),
    });
    const body: unknown = await res.json().catch(() => null);
    if (!res.ok) throw new Error(`enrol ${this.spec.name}: HTTP ${res.status} ${JSON.stringify(body).slice(0, 300)}`);
    const parsed = EnrollResponseSchema.safeParse(body);
    if (!parsed.success) throw new Error(`enrol ${this.spec.name}: response does not match the contract: ${parsed.error.message}`);
    this.creds = parsed.data;
    this.fleet.pinKey(parsed.data.hubPublicKey);
  }

  connect(keepalive: number, localAddress: string | null): Promise<void> {
    const c = this.creds;
    if (!c) throw new Error(`${this.spec.name} is not enrolled`);
    return new Promise((resolve, reject) => {
      const options: mqtt.IClientOptions = {
        clientId: c.mqtt.clientId,
        username: c.mqtt.username,
        password: c.mqtt.password,
        protocolVersion: 4,
        clean: true,
        keepalive,
        reconnectPeriod: 2000,
        connectTimeout: 60_000,
        queueQoSZero: false,
        will: { topic: this.topics.presence, payload: Buffer.from(this.presence('offline')), qos: 1, retain: true },
      };
      // mqtt.js does not pass a source address to net.connect: with one, the client builds its own stream.
      const url = new URL(c.mqtt.url);
      const client =
        localAddress && url.protocol === 'mqtt:'
          ? new mqtt.MqttClient(() => net.createConnection({ host: url.hostname, port: Number(url.port || 1883), localAddress }), { ...options, protocol: 'mqtt', host: url.hostname, port: Number(url.port || 1883) })
          : mqtt.connect(c.mqtt.url, options);
      this.client = client;
      let first = true;
      client.on('connect', () => {
        client.subscribe([this.topics.desired, this.topics.commands], { qos: 1 }, (err, grants) => {
          if (err || grants?.some((g) => g.qos === 128)) {
            const why = err ? err.message : 'subscription refused';
            if (first) reject(new Error(`${this.spec.name}: ${why}`));
            return;
          }
          this.publish(this.topics.presence, this.presence('online'), true);
          this.sendStatus();
          if (first) {
            first = false;
            this.fleet.connected += 1;
            resolve();
          }
        });
      });
      client.on('close', () => {
        if (!first && !this.fleet.stopping) this.fleet.disconnects += 1;
      });
      client.on('error', (err) => {
        if (first) reject(new Error(`${this.spec.name}: ${err.message}`));
      });
      client.on('message', (topic, payload) => this.onMessage(topic, payload));
    });
  }

  private onMessage(topic: string, payload: Buffer): void {
    if (topic === this.topics.commands) {
      if (payload.length >= FLOOR_MARKER.length && payload.toString('latin1', 0, FLOOR_MARKER.length) === FLOOR_MARKER) {
        this.fleet.floorEchoes += 1;
        this.publish(this.topics.events, this.echo ?? this.buildEcho(payload.length), false);
      }
      return;
    }
    if (topic !== this.topics.desired || payload.length === 0) return;
    const arrived = performance.timeOrigin + performance.now();
    const f = this.fleet;
    f.received += 1;
    const decoded = decodeMessage('desired', payload);
    if (!decoded.ok) {
      f.reject(this, decoded.code, decoded.message);
      return;
    }
    const result = verifyEnvelope(decoded.raw, f.key!, { spoke: this.spec.name, lastAppliedGeneration: this.lastApplied });
    if (!result.ok) {
      f.reject(this, result.reason, result.message);
      return;
    }
    if (result.duplicate) {
      f.duplicate += 1;
      return;
    }
    f.applied += 1;
    this.lastApplied = result.envelope.generation;
    this.payload = result.envelope.payload;
    this.envelopeBytes = payload.length;
    this.receivedAt = arrived;
    this.sendStatus();
  }

  sendStatus(): void {
    const now = new Date().toISOString();
    const report: StatusReport = {
      v: PROTOCOL_VERSION,
      spoke: this.spec.name,
      sentAt: now,
      // A simulated agent has nothing to reconcile: it accepts and finishes a generation in one report.
      acceptedGeneration: this.lastApplied,
      observedGeneration: this.lastApplied,
      conditions: [{ type: 'Ready', status: 'True', reason: 'Reconciled', message: '', lastTransitionTime: now, observedGeneration: this.lastApplied }],
      capacity: this.capacity,
      deployments: (this.payload?.deployments ?? []).map((d) => ({
        name: d.name,
        phase: 'Ready',
        readyReplicas: d.replicas.min,
        desiredReplicas: d.replicas.min,
        servingVersion: d.model.version,
        endpoint: `http://${this.spec.name}.sim:8000/v2/models/${d.name}`,
        compliance: 'Compliant',
        observedGeneration: this.lastApplied,
        conditions: [],
        message: '',
      })),
      jobs: [],
      agent: { version: 'bench-sim', runtime: 'none' },
    };
    const text = JSON.stringify(report);
    this.statusBytes = Buffer.byteLength(text);
    this.echo = this.buildEcho(this.statusBytes);
    this.publish(this.topics.status, text, false);
  }

  /** A valid Notice event padded to `bytes`, what the floor echoes. */
  buildEcho(bytes: number): string {
    const event: AgentEvent = { v: PROTOCOL_VERSION, spoke: this.spec.name, at: new Date().toISOString(), type: 'Notice', reason: 'FloorEcho', message: '', data: {} };
    const base = JSON.stringify(event);
    event.message = 'x'.repeat(Math.max(0, Math.min(4096, bytes - Buffer.byteLength(base))));
    return JSON.stringify(event);
  }

  telemetry(): number {
    const now = new Date().toISOString();
    const t: Telemetry = {
      v: PROTOCOL_VERSION,
      spoke: this.spec.name,
      at: now,
      host: { cpuUtilisation: 0.21, memoryUsedBytes: 41 * GiB, memoryTotalBytes: 128 * GiB, diskUsedBytes: 310 * GiB, diskTotalBytes: 1800 * GiB },
      gpus: this.capacity.gpus.map((g) => ({
        index: g.index,
        uuid: g.uuid,
        product: g.product,
        utilisation: 0.4 + g.index / 100,
        memoryUsedBytes: Math.round(g.memoryGiB * 0.6 * GiB),
        memoryTotalBytes: g.memoryGiB * GiB,
        temperatureC: 61,
        powerW: 212.5,
      })),
      inference: (this.payload?.deployments ?? []).map((d) => ({ deployment: d.name, requestsPerSecond: 41.5, errorRatio: 0.001, latencyP50Ms: 7.9, latencyP99Ms: 23.4 })),
      agent: { reconcileSeconds: 0.004, reconcileErrors: 0, queuedReports: 0 },
      errors: [],
    };
    const text = JSON.stringify(t);
    this.publish(this.topics.telemetry, text, false);
    return Buffer.byteLength(text);
  }

  presence(state: Presence['state']): string {
    const p: Presence = { v: PROTOCOL_VERSION, spoke: this.spec.name, state, sessionId: this.sessionId, at: new Date().toISOString() };
    return JSON.stringify(p);
  }

  publish(topic: string, payload: string, retain: boolean): void {
    this.client?.publish(topic, payload, { qos: 1, retain }, (err) => {
      if (err && !this.fleet.stopping) this.fleet.publishErrors += 1;
    });
  }
}

class SimFleet {
  agents: SimAgent[] = [];
  key: KeyObject | null = null;
  private keyPem: string | null = null;
  received = 0;
  applied = 0;
  duplicate = 0;
  rejected = 0;
  rejectReasons: Record<string, number> = {};
  floorEchoes = 0;
  telemetrySent = 0;
  publishErrors = 0;
  disconnects = 0;
  connected = 0;
  stopping = false;

  pinKey(pem: string): void {
    if (this.keyPem === pem) return;
    if (this.keyPem !== null) throw new Error('the hub handed out two different signing keys');
    this.keyPem = pem;
    this.key = toPublicKey(pem);
  }

  reject(agent: SimAgent, reason: string, message: string): void {
    this.rejected += 1;
    this.rejectReasons[reason] = (this.rejectReasons[reason] ?? 0) + 1;
    if (this.rejected <= 5) process.stderr.write(`sim ${agent.spec.name}: envelope rejected (${reason}): ${message}\n`);
  }

  async enroll(hubUrl: string, specs: SimSpokeSpec[], concurrency: number, deadlineMs = Infinity): Promise<SimEnrolled> {
    this.agents = specs.map((s) => new SimAgent(s, this));
    let done = 0;
    const latencies: number[] = [];
    const doneAt: number[] = [];
    const t0 = performance.now();
    await pool(this.agents, concurrency, async (a) => {
      if (performance.timeOrigin + performance.now() > deadlineMs) return; // out of time: left unenrolled
      const t = performance.now();
      await a.enroll(hubUrl);
      done += 1;
      const now = performance.now();
      latencies.push(now - t);
      doneAt.push(performance.timeOrigin + now);
      // Progress for long runs: enrolment through some brokers slows as the fleet grows.
      if (latencies.length % 1000 === 0) {
        process.stderr.write(`  sim pid ${process.pid}: ${latencies.length}/${this.agents.length} enrolled after ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
      }
    });
        // Only enrolled agents go on (a run stopped by its time budget).
    this.agents = this.agents.filter((a) => a.creds !== null);
    return { enrolled: done, seconds: (performance.now() - t0) / 1000, latenciesMs: latencies, doneAtMs: doneAt };
  }

  async connect(concurrency: number, keepalive: number, sourceAddresses = 1, firstIndex = 0): Promise<SimConnected> {
    const m0 = process.memoryUsage();
    const t0 = performance.now();
    const index = new Map(this.agents.map((a, i) => [a, firstIndex + i]));
    const source = (a: SimAgent) => (sourceAddresses > 1 ? `127.0.0.${1 + ((index.get(a) ?? 0) % sourceAddresses)}` : null);
    await pool(this.agents, concurrency, (a) => a.connect(keepalive, source(a)));
    const seconds = (performance.now() - t0) / 1000;
    // Settle and collect what can be collected, so the figure is the clients' steady cost.
    await new Promise((r) => setTimeout(r, 2000));
    (globalThis as { gc?: () => void }).gc?.();
    const m1 = process.memoryUsage();
    return { connected: this.connected, seconds, rssBeforeBytes: m0.rss, rssAfterBytes: m1.rss, heapBeforeBytes: m0.heapUsed, heapAfterBytes: m1.heapUsed };
  }

  stats(): SimStats {
    const m = process.memoryUsage();
    const cpu = process.cpuUsage();
    return {
      rssBytes: m.rss,
      heapUsedBytes: m.heapUsed,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      envelopes: { received: this.received, applied: this.applied, duplicate: this.duplicate, rejected: this.rejected, rejectReasons: this.rejectReasons },
      envelopeBytes: this.agents.map((a) => a.envelopeBytes),
      statusBytes: this.agents.map((a) => a.statusBytes),
      applied: this.agents.map((a) => a.lastApplied),
      receivedAt: this.agents.map((a) => a.receivedAt),
      floorEchoes: this.floorEchoes,
      telemetrySent: this.telemetrySent,
      publishErrors: this.publishErrors,
      disconnects: this.disconnects,
      connected: this.agents.filter((a) => a.client?.connected).length,
    };
  }

  /** Each agent sends one telemetry report at a random moment within `spreadMs`, as a fleet on a 30 s interval does. */
  async telemetry(spreadMs: number): Promise<SimTelemetryDone> {
    const t0 = performance.now();
    let bytes = 0;
    let sent = 0;
    await Promise.all(
      this.agents.map(
        (a) =>
          new Promise<void>((resolve) =>
            setTimeout(() => {
              bytes += a.telemetry();
              sent += 1;
              resolve();
            }, Math.random() * spreadMs),
          ),
      ),
    );
    this.telemetrySent += sent;
    return { sent, seconds: (performance.now() - t0) / 1000, bytes };
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.agents.map((a) => a.client?.endAsync(true).catch(() => undefined)));
  }
}

async function pool<T>(items: T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, async () => {
    while (next < items.length) {
      const item = items[next++]!;
      await fn(item);
    }
  });
  await Promise.all(workers);
}

const fleet = new SimFleet();

async function handle(req: SimRequest): Promise<unknown> {
  switch (req.op) {
    case 'enroll':
      return fleet.enroll(req.hubUrl, req.spokes, req.concurrency, req.deadlineMs ?? Infinity);
    case 'connect':
      return fleet.connect(req.concurrency, req.keepaliveSeconds, req.sourceAddresses ?? 1, req.firstIndex ?? 0);
    case 'stats':
      return fleet.stats();
    case 'telemetry':
      return fleet.telemetry(req.spreadMs);
    case 'stop':
      await fleet.stop();
      return { stopped: true };
  }
}

if (!process.send) {
  process.stderr.write('sim-fleet.js is started by the benchmark (fleet.bench.js) over IPC\n');
  process.exit(2);
}
process.on('message', (req: SimRequest) => {
  handle(req).then(
    (ok) => process.send!({ id: req.id, ok } satisfies SimResponse),
    (err: unknown) => process.send!({ id: req.id, error: err instanceof Error ? err.message : String(err) } satisfies SimResponse),
  );
});
process.on('disconnect', () => process.exit(0));
