import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The gateway's own /metrics: requests, errors, latency and retries, by model and by spoke. */
export class GatewayMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'flotilla_gateway_requests_total',
    help: 'Inference API requests answered, by model, the spoke that answered (none when none did) and HTTP status',
    labelNames: ['model', 'spoke', 'code'] as const,
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: 'flotilla_gateway_request_duration_seconds',
    help: 'Time from the request to the answer, retries included, by model',
    labelNames: ['model'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly upstreamErrors = new Counter({
    name: 'flotilla_gateway_upstream_errors_total',
    help: 'Attempts on a spoke that failed (connection error, timeout or 5xx), by spoke and reason',
    labelNames: ['spoke', 'reason'] as const,
    registers: [this.registry],
  });
  readonly retries = new Counter({
    name: 'flotilla_gateway_retries_total',
    help: 'Requests sent on to another spoke after a failed attempt, by the spoke that failed',
    labelNames: ['spoke'] as const,
    registers: [this.registry],
  });
  readonly ejected = new Gauge({
    name: 'flotilla_gateway_ejected_spokes',
    help: 'Spokes passed over for now after failing (circuit open)',
    registers: [this.registry],
  });
  readonly routeRefreshes = new Counter({
    name: 'flotilla_gateway_route_refreshes_total',
    help: 'Route table reads from the hub, by outcome',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  /** Label children bound once per label set: the request path only increments. */
  private readonly answered = new Map<string, { inc(): void }>();
  private readonly durations = new Map<string, { observe(v: number): void }>();

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'flotilla_gateway_' });
  }

  /** Counts one answered request and its duration (seconds). */
  answer(model: string, spoke: string, code: number, seconds: number): void {
    const key = `${model}\u0000${spoke}\u0000${code}`;
    let c = this.answered.get(key);
    if (c === undefined) {
      c = this.requests.labels(model, spoke, String(code));
      this.answered.set(key, c);
    }
    c.inc();
    let h = this.durations.get(model);
    if (h === undefined) {
      h = this.duration.labels(model);
      this.durations.set(model, h);
    }
    h.observe(seconds);
  }
}
