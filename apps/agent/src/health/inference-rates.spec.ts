import fc from 'fast-check';
import { Registry } from 'prom-client';
import { InferenceMetrics } from '../../../../libs/inference-server/src/metrics.js';
import { countersFromSamples, histogramQuantile, inferenceRates, type InferenceCounters } from './inference-rates.js';
import { parsePrometheusText } from './prometheus-text.js';

const counters = (atMs: number, success: number, failure: number, buckets?: Array<[number, number]>): InferenceCounters => ({
  atMs,
  success,
  failure,
  histogram: buckets ? { buckets: buckets.map(([le, count]) => ({ le, count })) } : null,
  summary: null,
});

describe('inferenceRates', () => {
  it('turns counter increases over the interval into requests per second and error ratio', () => {
    const rates = inferenceRates(counters(0, 100, 0), counters(10_000, 280, 20));
    expect(rates).toEqual({ requestsPerSecond: 20, errorRatio: 0.1, latencyP50Seconds: null, latencyP99Seconds: null });
  });

  it('reads p50 and p99 from the histogram buckets added in the interval only', () => {
    const inf = Number.POSITIVE_INFINITY;
    // Before: 1000 slow requests. In the interval: 100 fast ones, all under 10 ms.
    const before = counters(0, 1000, 0, [[0.005, 0], [0.01, 0], [1, 1000], [inf, 1000]]);
    const after = counters(5000, 1100, 0, [[0.005, 50], [0.01, 100], [1, 1100], [inf, 1100]]);

    const rates = inferenceRates(before, after);

    expect(rates?.requestsPerSecond).toBe(20);
    expect(rates?.latencyP50Seconds).toBeCloseTo(0.005, 9);
    expect(rates?.latencyP99Seconds).toBeCloseTo(0.005 + 0.005 * (49 / 50), 9);
  });

  it('treats a counter that went down as a restarted server', () => {
    const rates = inferenceRates(counters(0, 5000, 10), counters(2000, 40, 0));
    expect(rates).toMatchObject({ requestsPerSecond: 20, errorRatio: 0 });
  });

  it('has no latency when no request arrived in the interval', () => {
    const inf = Number.POSITIVE_INFINITY;
    const same = [[0.1, 5], [inf, 5]] as Array<[number, number]>;
    expect(inferenceRates(counters(0, 5, 0, same), counters(1000, 5, 0, same))).toEqual({
      requestsPerSecond: 0,
      errorRatio: 0,
      latencyP50Seconds: null,
      latencyP99Seconds: null,
    });
  });

  it('refuses an interval that is not positive', () => {
    expect(inferenceRates(counters(1000, 0, 0), counters(1000, 5, 0))).toBeNull();
  });

  it('falls back to Triton summary quantiles when there is no histogram', () => {
    const cur = { ...counters(1000, 10, 0), summary: { p50: 0.002, p99: 0.02 } };
    expect(inferenceRates(counters(0, 0, 0), cur)).toMatchObject({ latencyP50Seconds: 0.002, latencyP99Seconds: 0.02 });
  });
});

describe('histogramQuantile', () => {
  it('puts a quantile in the +Inf bucket at the highest finite bound', () => {
    expect(histogramQuantile(0.99, { buckets: [{ le: 1, count: 1 }, { le: Number.POSITIVE_INFINITY, count: 100 }] })).toBe(1);
  });

  it('always lands inside the bucket holding the rank and grows with q', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 1000 }), { minLength: 1, maxLength: 10 }),
        fc.double({ min: 0.01, max: 1, noNaN: true }),
        fc.double({ min: 0.01, max: 1, noNaN: true }),
        (increments, qa, qb) => {
          let cum = 0;
          const buckets = increments.map((n, i) => ({ le: (i + 1) * 0.1, count: (cum += n) }));
          buckets.push({ le: Number.POSITIVE_INFINITY, count: cum });
          const a = histogramQuantile(Math.min(qa, qb), { buckets });
          const b = histogramQuantile(Math.max(qa, qb), { buckets });
          if (cum === 0) return a === null && b === null;
          return a !== null && b !== null && a >= 0 && b <= buckets.length * 0.1 && a <= b + 1e-12;
        },
      ),
    );
  });
});

describe('countersFromSamples', () => {
  it('reads the builtin inference server exposition, per model, across outcomes', async () => {
    const metrics = new InferenceMetrics();
    const labels = { model: 'bridge-defects', version: '1.0.0' };
    const t = { requestUs: 3000, queueUs: 10, computeInputUs: 10, computeInferUs: 2900, computeOutputUs: 10 };
    metrics.registerModel(labels, 'cpu');
    metrics.registerModel({ model: 'other', version: '1' }, 'cpu');
    metrics.recordSuccess(labels, 1, t);
    metrics.recordSuccess(labels, 1, t);
    metrics.recordFailure(labels, 500);
    metrics.recordSuccess({ model: 'other', version: '1' }, 1, t);
    const { body } = await metrics.exposition();

    const c = countersFromSamples(parsePrometheusText(body).samples, 42, 'bridge-defects');

    expect(c).toMatchObject({ atMs: 42, success: 2, failure: 1, summary: null });
    expect(c?.histogram?.buckets.at(-1)).toEqual({ le: Number.POSITIVE_INFINITY, count: 3 });
  });

  it('returns null for a scrape without inference metrics', async () => {
    const registry = new Registry();
    expect(countersFromSamples(parsePrometheusText(await registry.metrics()).samples, 0)).toBeNull();
  });
});
