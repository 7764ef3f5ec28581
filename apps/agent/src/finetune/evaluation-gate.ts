import type { DesiredFineTuneJob } from '@flotilla/contracts';
import type { TrainerMetricsFile } from './trainer-contract.js';

export interface GateDecision {
  passed: boolean;
  metric: DesiredFineTuneJob['evaluation']['metric'];
  value: number | null;
  threshold: number;
  /** One sentence for the job's status; numbers only, never dataset contents. */
  message: string;
}

/**
 * The evaluation gate: `evaluation.metric` on the held-out split against
 * `evaluation.threshold` (accuracy and f1 must reach it, loss must not exceed
 * it). A metric the trainer did not write fails the gate.
 */
export function evaluateGate(evaluation: DesiredFineTuneJob['evaluation'], file: TrainerMetricsFile): GateDecision {
  const { metric, threshold } = evaluation;
  const raw = (file.metrics as Record<string, unknown>)[metric];
  const value = typeof raw === 'number' && Number.isFinite(raw) ? raw : null;
  if (value === null) return { passed: false, metric, value, threshold, message: `the trainer wrote no ${metric} in metrics.json` };
  const lowerIsBetter = metric === 'loss';
  const passed = lowerIsBetter ? value <= threshold : value >= threshold;
  const cmp = passed ? (lowerIsBetter ? '<=' : '>=') : lowerIsBetter ? '>' : '<';
  const decision = { passed, metric, value, threshold, message: `held-out ${metric} ${value.toFixed(4)} ${cmp} threshold ${threshold}` };
  if (!passed || evaluation.minImprovement === undefined) return decision;
  const served = servedMetric(file, metric);
  if (served === null) return { ...decision, message: `${decision.message}; no served version with the same classes to compare with` };
  const gain = value - served;
  const enough = gain >= evaluation.minImprovement;
  return { ...decision, passed: enough, message: `${decision.message}; ${enough ? '' : 'but '}${gain >= 0 ? '+' : ''}${gain.toFixed(4)} over the served version (${served.toFixed(4)}), ${enough ? 'at least' : 'below'} the minimum improvement ${evaluation.minImprovement}` };
}

/** The served version's accuracy or macro-F1 on the same split, when the trainer measured it. */
function servedMetric(file: TrainerMetricsFile, metric: GateDecision['metric']): number | null {
  const served = (file as { served?: { metrics?: { accuracy?: unknown; macroF1?: unknown } } | null }).served?.metrics;
  const v = metric === 'accuracy' ? served?.accuracy : metric === 'f1' ? served?.macroF1 : undefined;
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/**
 * The version a fine-tuning run produces: `<base version>-ft.<spoke>.<first 12 hex of the model's sha256>`.
 * Content-addressed (the same bytes give the same name) and collision-free
 * across spokes (each spoke's name is unique in the fleet), within the
 * 128-character version limit.
 */
export function producedVersionName(baseVersion: string, spoke: string, digest: string): string {
  const hex = digest.replace(/^sha256:/, '').slice(0, 12);
  const suffix = `-ft.${spoke}.${hex}`;
  return `${baseVersion.slice(0, 128 - suffix.length)}${suffix}`;
}
