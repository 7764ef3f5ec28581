import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Request phases timed per inference, in microseconds, as Triton reports them. */
export interface InferenceTimings {
  requestUs: number;
  queueUs: number;
  computeInputUs: number;
  computeInferUs: number;
  computeOutputUs: number;
}

export type ModelLabels = { model: string; version: string };

/**
 * Triton-compatible inference metrics (same names, labels `model` and
 * `version`, cumulative microsecond counters), so dashboards and the agent's
 * health collector read the builtin server and Triton alike; plus a latency
 * histogram for quantiles. Each server owns its Registry: several servers in
 * one process (tests, the local agent) must not share counters.
 */
export class InferenceMetrics {
  readonly registry = new Registry();
  private readonly success: Counter<'model' | 'version'>;
  private readonly failure: Counter<'model' | 'version'>;
  private readonly inferenceCount: Counter<'model' | 'version'>;
  private readonly execCount: Counter<'model' | 'version'>;
  private readonly requestDuration: Counter<'model' | 'version'>;
  private readonly queueDuration: Counter<'model' | 'version'>;
  private readonly computeInput: Counter<'model' | 'version'>;
  private readonly computeInfer: Counter<'model' | 'version'>;
  private readonly computeOutput: Counter<'model' | 'version'>;
  private readonly pending: Gauge<'model' | 'version'>;
  private readonly latency: Histogram<'model' | 'version' | 'outcome'>;
  private readonly provider: Gauge<'model' | 'version' | 'provider'>;

  constructor() {
    const registers = [this.registry];
    const labelNames = ['model', 'version'] as const;
    const counter = (name: string, help: string) => new Counter({ name, help, labelNames, registers });
    this.success = counter('nv_inference_request_success', 'Number of successful inference requests, all batch sizes');
    this.failure = counter('nv_inference_request_failure', 'Number of failed inference requests, all batch sizes');
    this.inferenceCount = counter('nv_inference_count', 'Number of inferences performed (a batch of N counts N)');
    this.execCount = counter('nv_inference_exec_count', 'Number of model executions performed');
    this.requestDuration = counter('nv_inference_request_duration_us', 'Cumulative inference request duration in microseconds');
    this.queueDuration = counter('nv_inference_queue_duration_us', 'Cumulative inference queuing duration in microseconds');
    this.computeInput = counter('nv_inference_compute_input_duration_us', 'Cumulative compute input duration in microseconds');
    this.computeInfer = counter('nv_inference_compute_infer_duration_us', 'Cumulative compute inference duration in microseconds');
    this.computeOutput = counter('nv_inference_compute_output_duration_us', 'Cumulative inference compute output duration in microseconds');
    this.pending = new Gauge({
      name: 'nv_inference_pending_request_count',
      help: 'Instantaneous number of pending requests awaiting execution per-model',
      labelNames,
      registers,
    });
    this.latency = new Histogram({
      name: 'flotilla_inference_request_duration_seconds',
      help: 'End-to-end inference request latency in seconds, by outcome',
      labelNames: ['model', 'version', 'outcome'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.provider = new Gauge({
      name: 'flotilla_inference_execution_provider_info',
      help: 'Execution provider serving each model (value 1)',
      labelNames: ['model', 'version', 'provider'],
      registers,
    });
  }

  /** Makes a loaded model's series visible at zero before its first request. */
  registerModel(labels: ModelLabels, executionProvider: string): void {
    for (const c of [
      this.success, this.failure, this.inferenceCount, this.execCount, this.requestDuration,
      this.queueDuration, this.computeInput, this.computeInfer, this.computeOutput,
    ]) {
      c.inc(labels, 0);
    }
    this.pending.set(labels, 0);
    this.provider.set({ ...labels, provider: executionProvider }, 1);
  }

  pendingChanged(labels: ModelLabels, delta: 1 | -1): void {
    this.pending.inc(labels, delta);
  }

  recordSuccess(labels: ModelLabels, batchSize: number, t: InferenceTimings): void {
    this.success.inc(labels);
    this.inferenceCount.inc(labels, batchSize);
    this.execCount.inc(labels);
    this.requestDuration.inc(labels, t.requestUs);
    this.queueDuration.inc(labels, t.queueUs);
    this.computeInput.inc(labels, t.computeInputUs);
    this.computeInfer.inc(labels, t.computeInferUs);
    this.computeOutput.inc(labels, t.computeOutputUs);
    this.latency.observe({ ...labels, outcome: 'success' }, t.requestUs / 1e6);
  }

  recordFailure(labels: ModelLabels, requestUs: number): void {
    this.failure.inc(labels);
    this.latency.observe({ ...labels, outcome: 'failure' }, requestUs / 1e6);
  }

  async exposition(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
