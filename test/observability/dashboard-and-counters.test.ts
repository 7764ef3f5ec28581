import { readFile } from 'node:fs/promises';
import { startTestHub, type TestHub } from '../support/hub.js';

const telemetry = (spoke: string) => ({
  v: 1,
  spoke,
  at: new Date().toISOString(),
  host: { cpuUtilisation: 0.25, memoryUsedBytes: 8e9, memoryTotalBytes: 64e9, diskUsedBytes: 1e11, diskTotalBytes: 1e12 },
  gpus: [{ index: 0, uuid: `GPU-${spoke}-0`, product: 'NVIDIA L40S', utilisation: 0.5, memoryUsedBytes: 20e9, memoryTotalBytes: 48e9, temperatureC: 61, powerW: 210.5 }],
  inference: [{ deployment: 'bridge-defects-inference', requestsPerSecond: 12.5, errorRatio: 0.01, latencyP50Ms: 8, latencyP99Ms: 40 }],
  agent: { reconcileSeconds: 0.05, reconcileErrors: 0, queuedReports: 0 },
  errors: [],
});

/** Label names of every series in a Prometheus text exposition, by metric name. */
function labelsByMetric(text: string): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? /.exec(line);
    if (!m || line.startsWith('#')) continue;
    const names = out.get(m[1]!) ?? new Set<string>();
    for (const l of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"/g)) names.add(l[1]!);
    out.set(m[1]!, names);
  }
  return out;
}

interface Dashboard {
  templating: { list: { name: string; type: string }[] };
  panels: { title: string; targets?: { expr: string }[] }[];
}

describe('hub counters and the Grafana dashboard', () => {
  let t: TestHub;
  const scrape = async () => (await fetch(t.hub.apiUrl + '/metrics')).text();

  beforeAll(async () => {
    t = await startTestHub();
  }, 60_000);
  afterAll(async () => {
    await t?.stop();
  });

  test('a fresh hub exports every counter for each known channel, drop reason and publish cause, at 0', async () => {
    const text = await scrape();
    const value = (series: string) => text.split('\n').find((l) => l.startsWith(`${series} `))?.split(' ')[1] ?? 'missing';
    const expected: Record<string, string> = {};
    const got: Record<string, string> = {};
    for (const channel of ['status', 'telemetry', 'events', 'presence']) {
      const received = `flotilla_hub_mqtt_messages_received_total{channel="${channel}"}`;
      [expected[received], got[received]] = ['0', value(received)];
      for (const reason of ['TooLarge', 'InvalidJson', 'SchemaViolation', 'ForeignSpoke', 'UnknownTopic']) {
        const dropped = `flotilla_hub_mqtt_messages_dropped_total{channel="${channel}",reason="${reason}"}`;
        [expected[dropped], got[dropped]] = ['0', value(dropped)];
      }
    }
    for (const cause of ['changed', 'online', 'behind', 'resync']) {
      const published = `flotilla_hub_desired_published_total{cause="${cause}"}`;
      [expected[published], got[published]] = ['0', value(published)];
    }
    expect(got).toEqual(expected);
  });

  test('every panel filters by each dashboard variable whose label its series carry, and uses no undefined variable', async () => {
    // One online spoke with GPUs, inference and a deployment, so every per-spoke series is exported.
    await t.hub.dataSource.query(
      `INSERT INTO spokes (name, labels, mqtt_username, presence, last_seen_at, desired_generation, observed_generation, telemetry, deployment_statuses)
       VALUES ('paris-01', '{"region":"eu","site":"paris"}'::jsonb, 'paris-01.x', 'online', now(), 3, 2, $1::jsonb, $2::jsonb)`,
      [
        JSON.stringify(telemetry('paris-01')),
        JSON.stringify([{ name: 'bridge-defects-inference', phase: 'Ready', readyReplicas: 1, desiredReplicas: 1, servingVersion: '1.0.0', endpoint: null, compliance: 'Compliant', conditions: [], message: '' }]),
      ],
    );
    const labels = labelsByMetric(await scrape());
    const dashboard = JSON.parse(await readFile('deploy/grafana/flotilla-fleet.json', 'utf8')) as Dashboard;
    // Query variables filter the label of the same name (region, spoke).
    const variables = dashboard.templating.list.filter((v) => v.type === 'query').map((v) => v.name);
    expect(variables).toEqual(expect.arrayContaining(['region', 'spoke']));
    const defined = new Set(dashboard.templating.list.map((v) => v.name));

    const missing: string[] = [];
    const undefinedVars: string[] = [];
    let selectors = 0;
    for (const panel of dashboard.panels) {
      for (const { expr } of panel.targets ?? []) {
        for (const v of expr.matchAll(/\$\{?([A-Za-z_][A-Za-z0-9_]*)/g)) if (!v[1]!.startsWith('__') && !defined.has(v[1]!)) undefinedVars.push(`${panel.title}: $${v[1]}`);
        for (const m of expr.matchAll(/\b(flotilla_[a-z0-9_]+)(\{[^}]*\})?/g)) {
          const carried = labels.get(m[1]!);
          if (!carried) throw new Error(`${panel.title}: ${m[1]} is not exported by the hub`);
          selectors++;
          for (const v of variables) {
            if (carried.has(v) && !(m[2] ?? '').includes(`${v}=~"$${v}"`)) missing.push(`${panel.title}: ${m[0]} lacks ${v}=~"$${v}"`);
          }
        }
      }
    }
    expect(selectors).toBeGreaterThan(10);
    expect({ missing, undefinedVars }).toEqual({ missing: [], undefinedVars: [] });
  });
});
