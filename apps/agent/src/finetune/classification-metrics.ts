/** Held-out metrics of a classifier, with class names so a report reads on its own. */
export interface ClassificationMetrics {
  examples: number;
  accuracy: number;
  macroF1: number;
  /** By class name. */
  recall: Record<string, number>;
  /** confusion[actual][predicted], in `labels` order. */
  confusion: number[][];
  labels: string[];
}

export function argmaxRows(probabilities: Float32Array, n: number, classes: number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i += 1) {
    let best = 0;
    for (let c = 1; c < classes; c += 1) if (probabilities[i * classes + c]! > probabilities[i * classes + best]!) best = c;
    out[i] = best;
  }
  return out;
}

export function classificationMetrics(actual: Int32Array, predicted: Int32Array, labels: string[]): ClassificationMetrics {
  const k = labels.length;
  const confusion = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  for (let i = 0; i < actual.length; i += 1) confusion[actual[i]!]![predicted[i]!]! += 1;
  let correct = 0;
  let f1Sum = 0;
  const recall: Record<string, number> = {};
  for (let c = 0; c < k; c += 1) {
    const tp = confusion[c]![c]!;
    correct += tp;
    const actualCount = confusion[c]!.reduce((a, v) => a + v, 0);
    const predictedCount = confusion.reduce((a, row) => a + row[c]!, 0);
    const r = actualCount === 0 ? 0 : tp / actualCount;
    const p = predictedCount === 0 ? 0 : tp / predictedCount;
    recall[labels[c]!] = r;
    f1Sum += p + r === 0 ? 0 : (2 * p * r) / (p + r);
  }
  return { examples: actual.length, accuracy: actual.length === 0 ? 0 : correct / actual.length, macroF1: k === 0 ? 0 : f1Sum / k, recall, confusion, labels };
}
