import { startTestHub, type TestHub } from '../support/hub.js';
import { promtool, promtoolCheck } from '../support/promtool.js';

const telemetry = (spoke: string, gpus: number) => ({
  v: 1,
  spoke,
  at: new Date().toISOString(),
  host: { cpuUtilisation: 0.25, memoryUsedBytes: 8e9, memoryTotalBytes: 64e9, diskUsedBytes: 1e11, diskTotalBytes: 1e12 },
  gpus: Array.from({ length: gpus }, (_, i) => ({
    index: i,
    uuid: `GPU-${spoke}-${i}`,
    product: 'NVIDIA L40S',
    utilisation: 0.5,
    memoryUsedBytes: 20e9,
    memoryTotalBytes: 48e9,
    temperatureC: 61,
    powerW: 210.5,
  })),
  inference: [{ deployment: 'bridge-defects-inference', requestsPerSecond: 12.5, errorRatio: 0.01, latencyP50Ms: 8, latencyP99Ms: 40 }],
  agent: { reconcileSeconds: 0.05, reconcileErrors: 0, queuedReports: 0 },
  errors: [],
});

describe('hub /metrics', () => {
  let t: TestHub;
  beforeAll(async () => {
    t = await startTestHub({ FLOTILLA_TELEMETRY_INTERVAL: '10' });
    const q = (name: string, region: string, presence: string, lastSeenSecondsAgo: number, gpus: number) =>
      t.hub.dataSource.query(
        `INSERT INTO spokes (name, labels, mqtt_username, presence, last_seen_at, desired_generation, observed_generation, telemetry, deployment_statuses)
         VALUES ($1, $2::jsonb, $3, $4, now() - make_interval(secs => $5), 3, 2, $6::jsonb, $7::jsonb)`,
        [
          name,
          JSON.stringify({ region, site: `${name}-site` }),
          `${name}.x`,
          presence,
          lastSeenSecondsAgo,
          JSON.stringify(telemetry(name, gpus)),
          JSON.stringify([{ name: 'bridge-defects-inference', phase: 'Ready', readyReplicas: 1, desiredReplicas: 1, servingVersion: '1.0.0', endpoint: null, compliance: 'Compliant', conditions: [], message: '' }]),
        ],
      );
    await q('paris-01', 'eu', 'online', 2, 2);
    await q('lyon-01', 'eu', 'online', 5, 1);
    await q('austin-01', 'us', 'online', 45, 1); // 3 x 10 s without a report: stale
    await q('denver-01', 'us', 'offline', 600, 1);
  });
  afterAll(async () => {
    await t.stop();
  });

  async function scrape(): Promise<string> {
    const r = await fetch(t.hub.apiUrl + '/metrics');
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toContain('text/plain');
    return r.text();
  }
  const series = (text: string, metric: string) => text.split('\n').filter((l) => l.startsWith(metric + '{'));

  test('one series per reporting spoke for each health metric, labelled spoke, region and site', async () => {
    const text = await scrape();
    const rate = series(text, 'flotilla_spoke_inference_requests_per_second');
    expect(rate.map((l) => /spoke="([^"]+)"/.exec(l)![1]).sort()).toEqual(['lyon-01', 'paris-01']);
    expect(rate[0]).toMatch(/region="eu"/);
    expect(rate[0]).toMatch(/site="(paris|lyon)-01-site"/);
    expect(series(text, 'flotilla_spoke_gpu_utilisation_ratio')).toHaveLength(3);
    expect(series(text, 'flotilla_spoke_inference_latency_p50_seconds').filter((l) => l.includes('spoke="paris-01"'))).toEqual([expect.stringMatching(/ 0\.008$/)]);
    expect(series(text, 'flotilla_spoke_inference_latency_p99_seconds').filter((l) => l.includes('spoke="paris-01"'))).toEqual([expect.stringMatching(/ 0\.04$/)]);
  });

  test('stale and offline spokes are counted and marked; their health series are not exported', async () => {
    const text = await scrape();
    expect(text).toMatch(/flotilla_fleet_spokes\{connection="online"\} 2/);
    expect(text).toMatch(/flotilla_fleet_spokes\{connection="stale"\} 1/);
    expect(text).toMatch(/flotilla_fleet_spokes\{connection="offline"\} 1/);
    expect(text).toMatch(/flotilla_spoke_stale\{spoke="austin-01",region="us",site="austin-01-site"\} 1/);
    expect(text).toMatch(/flotilla_spoke_up\{spoke="denver-01",region="us",site="denver-01-site"\} 0/);
    expect(series(text, 'flotilla_spoke_gpu_utilisation_ratio').some((l) => l.includes('austin-01'))).toBe(false);
    expect(text).toMatch(/flotilla_fleet_spokes_behind 4/);
    const api = await t.api('GET', '/api/v1/spokes/austin-01');
    expect(api.body.connection).toBe('stale');
  });

  test('promtool accepts the exposition', async () => {
    if (!promtool()) {
      console.warn('SKIPPED: promtool not installed (Debian package prometheus); .ci/run installs it');
      return;
    }
    const r = promtoolCheck(['metrics'], await scrape());
    expect(r).toEqual({ code: 0, output: '' });
  });
});
