import { scrapeText, type FetchLike } from './scrape.js';
import { countersFromSamples, inferenceRates, type InferenceCounters, type InferenceRates } from './inference-rates.js';
import { parsePrometheusText } from './prometheus-text.js';

/** A workload's metrics endpoint, as the runtime knows it. */
export interface WorkloadEndpoint {
  deployment: string;
  /** e.g. `http://127.0.0.1:8002/metrics` for Triton. */
  url: string;
  /** Only this model's series, when the server hosts several. */
  model?: string;
}

export interface InferenceReading extends InferenceRates {
  deployment: string;
}

export interface InferenceScraperOptions {
  fetch?: FetchLike;
  timeoutMs?: number;
  /** Clock for rate intervals, in ms. */
  nowMs?: () => number;
}

/**
 * Scrapes each workload's endpoint and turns counter increases between two
 * consecutive scrapes into rates. A deployment appears in the result from
 * its second successful scrape on; one that fails is reported and its
 * previous counters are dropped, so the next rate is never computed across
 * the gap.
 */
export class InferenceScraper {
  private readonly fetchFn: FetchLike;
  private readonly timeoutMs: number;
  private readonly nowMs: () => number;
  private readonly previous = new Map<string, InferenceCounters>();

  constructor(opts: InferenceScraperOptions = {}) {
    this.fetchFn = opts.fetch ?? ((input, init) => fetch(input, init));
    this.timeoutMs = opts.timeoutMs ?? 5_000;
    this.nowMs = opts.nowMs ?? Date.now;
  }

  async scrape(endpoints: readonly WorkloadEndpoint[], signal: AbortSignal): Promise<{ readings: InferenceReading[]; errors: string[] }> {
    const wanted = new Set(endpoints.map((e) => e.deployment));
    for (const key of this.previous.keys()) if (!wanted.has(key)) this.previous.delete(key);

    const results = await Promise.all(endpoints.map((e) => this.scrapeOne(e, signal)));
    const readings: InferenceReading[] = [];
    const errors: string[] = [];
    for (const r of results) {
      if (r.reading) readings.push(r.reading);
      errors.push(...r.errors);
    }
    return { readings, errors };
  }

  private async scrapeOne(endpoint: WorkloadEndpoint, signal: AbortSignal): Promise<{ reading: InferenceReading | null; errors: string[] }> {
    const where = `inference ${endpoint.deployment} (${endpoint.url})`;
    const text = await scrapeText(this.fetchFn, endpoint.url, this.timeoutMs, signal);
    const atMs = this.nowMs();
    if (typeof text !== 'string') {
      this.previous.delete(endpoint.deployment);
      return { reading: null, errors: [`${where}: ${text.error}`] };
    }
    const parsed = parsePrometheusText(text);
    const errors = parsed.errors.slice(0, 3).map((e) => `${where}: ${e}`);
    const counters = countersFromSamples(parsed.samples, atMs, endpoint.model);
    if (!counters) {
      this.previous.delete(endpoint.deployment);
      return { reading: null, errors: [...errors, `${where}: no inference metrics in the scrape`] };
    }
    const prev = this.previous.get(endpoint.deployment);
    this.previous.set(endpoint.deployment, counters);
    const rates = prev ? inferenceRates(prev, counters) : null;
    return { reading: rates ? { deployment: endpoint.deployment, ...rates } : null, errors };
  }
}
