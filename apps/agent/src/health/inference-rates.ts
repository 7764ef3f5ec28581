import { labelsMatch, sumSamples, type Sample } from './prometheus-text.js';

/**
 * Cumulative inference counters read from one scrape of a workload's
 * Prometheus endpoint (Triton names; the builtin server exports the same).
 */
export interface InferenceCounters {
  /** When the scrape was taken, in ms. */
  atMs: number;
  success: number | null;
  failure: number | null;
  /** `flotilla_inference_request_duration_seconds` buckets, cumulative, summed over label sets. */
  histogram: HistogramBuckets | null;
  /** Triton's optional latency summary (`nv_inference_request_summary_us`), in seconds. */
  summary: { p50: number | null; p99: number | null } | null;
}

export interface HistogramBuckets {
  /** Sorted by upper bound; the last is +Inf. Counts are cumulative. */
  buckets: Array<{ le: number; count: number }>;
}

export interface InferenceRates {
  requestsPerSecond: number;
  /** Failed share of requests in the interval; 0 when there were none. */
  errorRatio: number;
  /** Null when unknown (no histogram, or no requests in the interval). */
  latencyP50Seconds: number | null;
  latencyP99Seconds: number | null;
}

export const TRITON_SUCCESS = 'nv_inference_request_success';
export const TRITON_FAILURE = 'nv_inference_request_failure';
export const TRITON_SUMMARY = 'nv_inference_request_summary_us';
export const LATENCY_HISTOGRAM = 'flotilla_inference_request_duration_seconds';

/**
 * Extracts the counters; `model` narrows to one model's series when a
 * server hosts several. Null when the scrape has no inference metrics.
 */
export function countersFromSamples(samples: readonly Sample[], atMs: number, model?: string): InferenceCounters | null {
  const match: Record<string, string> = model ? { model } : {};
  const success = sumSamples(samples, TRITON_SUCCESS, match);
  const failure = sumSamples(samples, TRITON_FAILURE, match);

  const byLe = new Map<number, number>();
  for (const s of samples) {
    if (s.name !== `${LATENCY_HISTOGRAM}_bucket` || !labelsMatch(s.labels, match)) continue;
    const le = s.labels.le === undefined ? Number.NaN : parseLe(s.labels.le);
    if (Number.isNaN(le)) continue;
    byLe.set(le, (byLe.get(le) ?? 0) + s.value);
  }
  const histogram = byLe.size > 0 ? { buckets: [...byLe].map(([le, count]) => ({ le, count })).sort((a, b) => a.le - b.le) } : null;

  const quantile = (q: string): number | null => {
    const v = sumSamples(
      samples.filter((s) => s.labels.quantile !== undefined && Number(s.labels.quantile) === Number(q)),
      TRITON_SUMMARY,
      match,
    );
    return v === null || !Number.isFinite(v) ? null : v / 1e6;
  };
  const hasSummary = samples.some((s) => s.name === TRITON_SUMMARY && labelsMatch(s.labels, match));
  const summary = hasSummary ? { p50: quantile('0.5'), p99: quantile('0.99') } : null;

  if (success === null && failure === null && histogram === null) return null;
  return { atMs, success, failure, histogram, summary };
}

function parseLe(le: string): number {
  if (le === '+Inf' || le === 'Inf' || le === 'inf') return Number.POSITIVE_INFINITY;
  return /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(le) ? Number(le) : Number.NaN;
}

/** Counter increase; a decrease means the server restarted, so all of `cur` is new. */
function increase(prev: number | null, cur: number | null): number {
  if (cur === null) return 0;
  if (prev === null || cur < prev) return cur;
  return cur - prev;
}

/**
 * Rates over the interval between two scrapes. Latency quantiles come from
 * the histogram buckets' increase in that interval, interpolated within a
 * bucket as Prometheus's histogram_quantile does; failing that, from
 * Triton's own summary; otherwise null.
 */
export function inferenceRates(prev: InferenceCounters, cur: InferenceCounters): InferenceRates | null {
  const seconds = (cur.atMs - prev.atMs) / 1000;
  if (!(seconds > 0)) return null;

  let bucketDelta: HistogramBuckets | null = null;
  if (cur.histogram) {
    const prevCounts = new Map(prev.histogram?.buckets.map((b) => [b.le, b.count]) ?? []);
    const totalPrev = prev.histogram?.buckets.at(-1)?.count ?? 0;
    const totalCur = cur.histogram.buckets.at(-1)?.count ?? 0;
    const reset = totalCur < totalPrev;
    bucketDelta = {
      buckets: cur.histogram.buckets.map((b) => ({ le: b.le, count: reset ? b.count : Math.max(0, b.count - (prevCounts.get(b.le) ?? 0)) })),
    };
  }

  let ok = increase(prev.success, cur.success);
  let failed = increase(prev.failure, cur.failure);
  if (cur.success === null && cur.failure === null && bucketDelta) {
    // Only the histogram is exported: its count is every request.
    ok = bucketDelta.buckets.at(-1)?.count ?? 0;
    failed = 0;
  }
  const requests = ok + failed;

  let p50: number | null = null;
  let p99: number | null = null;
  if (bucketDelta) {
    p50 = histogramQuantile(0.5, bucketDelta);
    p99 = histogramQuantile(0.99, bucketDelta);
  } else if (cur.summary) {
    p50 = cur.summary.p50;
    p99 = cur.summary.p99;
  }
  return {
    requestsPerSecond: requests / seconds,
    errorRatio: requests > 0 ? failed / requests : 0,
    latencyP50Seconds: p50,
    latencyP99Seconds: p99,
  };
}

/**
 * The q-quantile of a cumulative histogram, linearly interpolated inside the
 * bucket where it falls; the lowest bucket starts at 0. A quantile in the
 * +Inf bucket is reported as the highest finite bound. Null without
 * observations.
 */
export function histogramQuantile(q: number, histogram: HistogramBuckets): number | null {
  const buckets = histogram.buckets;
  const total = buckets.at(-1)?.count ?? 0;
  if (total <= 0 || buckets.length === 0) return null;
  const rank = q * total;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const b of buckets) {
    if (b.count >= rank) {
      if (b.le === Number.POSITIVE_INFINITY) return lowerBound;
      const inBucket = b.count - lowerCount;
      if (inBucket <= 0) return b.le;
      return lowerBound + (b.le - lowerBound) * ((rank - lowerCount) / inBucket);
    }
    lowerBound = b.le;
    lowerCount = b.count;
  }
  return lowerBound;
}
