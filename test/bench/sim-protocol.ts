/**
 * Messages between the benchmark (parent) and the simulated fleet (a child
 * process, `sim-fleet.ts`) over Node's IPC channel. Each request carries an
 * `id`; the child answers with the same `id` and either `ok` data or `error`.
 */

export interface SimSpokeSpec {
  name: string;
  /** Enrolment token to use. */
  token: string;
  /** Labels the agent asks for (the token's own labels win at the hub). */
  labels: Record<string, string>;
  /** GPUs this simulated spoke reports as capacity. */
  gpus: { product: string; memoryGiB: number; count: number };
}

export type SimRequest =
  | { id: number; op: 'enroll'; hubUrl: string; spokes: SimSpokeSpec[]; concurrency: number; /** Wall-clock ms after which no new enrolment starts. */ deadlineMs?: number }
  /**
   * `sourceAddresses` > 1: client i connects from 127.0.0.(1 + i mod k), so a
   * fleet larger than the ephemeral port range (about 28,000 ports per source
   * and destination address) fits on loopback.
   */
  | { id: number; op: 'connect'; concurrency: number; keepaliveSeconds: number; sourceAddresses?: number; firstIndex?: number }
  | { id: number; op: 'stats' }
  | { id: number; op: 'telemetry'; spreadMs: number }
  | { id: number; op: 'stop' };

export interface SimEnrolled {
  enrolled: number;
  seconds: number;
  /** Per-request latencies, ms. */
  latenciesMs: number[];
  /** Wall-clock ms (performance.timeOrigin + now) at which each enrolment was answered, in completion order. */
  doneAtMs: number[];
}

export interface SimConnected {
  connected: number;
  seconds: number;
  /** RSS of the simulator before its first client connected and after all had. */
  rssBeforeBytes: number;
  rssAfterBytes: number;
  heapBeforeBytes: number;
  heapAfterBytes: number;
}

export interface SimStats {
  rssBytes: number;
  heapUsedBytes: number;
  cpuSeconds: number;
  /** Desired-state envelopes received, verified and applied, rejected, and redeliveries. */
  envelopes: { received: number; applied: number; duplicate: number; rejected: number; rejectReasons: Record<string, number> };
  /** Size in bytes of the last applied envelope and of the status ack sent for it, per spoke (index order). */
  envelopeBytes: number[];
  statusBytes: number[];
  /** Last applied generation per spoke (index order). */
  applied: number[];
  /** Wall-clock ms at which each spoke's last applied envelope arrived (index order). */
  receivedAt: number[];
  floorEchoes: number;
  telemetrySent: number;
  publishErrors: number;
  disconnects: number;
  connected: number;
}

export interface SimTelemetryDone {
  sent: number;
  seconds: number;
  bytes: number;
}

export type SimResponse = { id: number; ok: unknown } | { id: number; error: string };

/** First bytes of a floor message; the simulator echoes such messages without parsing them. */
export const FLOOR_MARKER = '{"floor":';
