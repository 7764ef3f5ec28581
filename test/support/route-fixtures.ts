import type { DataSource } from 'typeorm';

/** One spoke as the route table reads it, written straight into Postgres (tests and the routing benchmark). */
export interface RouteSpokeFixture {
  name: string;
  labels?: Record<string, string>;
  location?: { lat: number; lon: number } | null;
  presence?: 'online' | 'offline';
  /** Seconds ago the spoke was last heard (default 1). */
  seenAgo?: number;
  /** Seconds ago its last telemetry arrived (default 1; null: never). */
  telemetryAgo?: number | null;
  desiredGeneration?: number;
  acceptedGeneration?: number;
  observedGeneration?: number;
  deployment?: string;
  model?: string;
  version?: string;
  /** The deployment's reported status; fields override a Ready, Compliant status at the spoke's generation. */
  status?: Partial<{ phase: string; compliance: string; readyReplicas: number; observedGeneration: number; endpoint: string | null; servingVersion: string }> | null;
  requestsPerSecond?: number;
  errorRatio?: number;
  latencyP99Ms?: number | null;
}

const ago = (s: number) => new Date(Date.now() - s * 1000).toISOString();

/** Inserts spokes with their desired state, reported status and telemetry, many per statement. */
export async function insertRouteSpokes(ds: DataSource, spokes: RouteSpokeFixture[]): Promise<void> {
  for (let i = 0; i < spokes.length; i += 1000) {
    const rows = spokes.slice(i, i + 1000).map((s) => {
      const gen = s.desiredGeneration ?? 2;
      const deployment = s.deployment ?? 'bridge-defects-inference';
      const version = s.version ?? '1.0.0';
      const status =
        s.status === null
          ? []
          : [
              {
                name: deployment,
                phase: 'Ready',
                readyReplicas: 1,
                desiredReplicas: 1,
                servingVersion: version,
                endpoint: `http://${s.name}.example:8000/v2/models/${s.model ?? 'bridge-defects'}`,
                compliance: 'Compliant',
                conditions: [],
                message: '',
                observedGeneration: gen,
                ...s.status,
              },
            ];
      return {
        name: s.name,
        labels: s.labels ?? {},
        location: s.location ?? null,
        presence: s.presence ?? 'online',
        lastSeenAt: ago(s.seenAgo ?? 1),
        telemetryAt: s.telemetryAgo === null ? null : ago(s.telemetryAgo ?? 1),
        desired: gen,
        accepted: s.acceptedGeneration ?? gen,
        observed: s.observedGeneration ?? gen,
        statuses: status,
        telemetry: {
          inference: [{ deployment, requestsPerSecond: s.requestsPerSecond ?? 0, errorRatio: s.errorRatio ?? 0, latencyP50Ms: null, latencyP99Ms: s.latencyP99Ms ?? null }],
        },
        payload: { deployments: [{ name: deployment, model: { name: s.model ?? 'bridge-defects', version } }], fineTuneJobs: [] },
      };
    });
    await ds.query(
      `WITH v AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(name text, labels jsonb, location jsonb, presence text, "lastSeenAt" timestamptz,
         "telemetryAt" timestamptz, desired int, accepted int, observed int, statuses jsonb, telemetry jsonb, payload jsonb)),
       ins AS (
         INSERT INTO spokes (name, labels, location, presence, last_seen_at, telemetry_at, desired_generation, accepted_generation, observed_generation,
           deployment_statuses, telemetry, mqtt_username)
         SELECT name, labels, CASE WHEN location = 'null'::jsonb THEN NULL ELSE location END, presence, "lastSeenAt", "telemetryAt", desired, accepted, observed,
           statuses, telemetry, name || '.fixture' FROM v
         RETURNING id, name, desired_generation)
       INSERT INTO desired_states (spoke_id, generation, payload, hash, issued_at)
       SELECT ins.id, ins.desired_generation, v.payload, md5(v.payload::text), now() FROM ins JOIN v ON v.name = ins.name`,
      [JSON.stringify(rows)],
    );
  }
}
