/**
 * A softmax classification head trained on frozen embeddings: features are
 * standardised (mean 0, variance 1 per dimension on the training split), the
 * weights fitted with Adam on cross-entropy plus L2, and the epoch with the
 * lowest validation loss kept (early stopping). The standardisation is folded
 * into the returned weights, so the exported graph takes raw embeddings.
 * Everything random comes from one seed: two runs on the same data agree.
 */

export interface HeadHyperparameters {
  epochs: number;
  learningRate: number;
  l2: number;
  batchSize: number;
  patience: number;
  seed: number;
}

export const DEFAULT_HEAD_HYPERPARAMETERS: HeadHyperparameters = { epochs: 200, learningRate: 0.01, l2: 1e-3, batchSize: 32, patience: 20, seed: 1 };

export interface LabelledFeatures {
  /** Row-major [n, dim]. */
  x: Float32Array;
  y: Int32Array;
  n: number;
  dim: number;
}

export interface TrainedHead {
  dim: number;
  classes: number;
  /** Row-major [dim, classes], standardisation folded in. */
  weights: Float32Array;
  bias: Float32Array;
  bestEpoch: number;
  epochsRun: number;
  trainLoss: number;
  validationLoss: number;
}

export interface EpochReport {
  epoch: number;
  epochs: number;
  trainLoss: number;
  validationLoss: number;
}

/** mulberry32: a small, well-mixed 32-bit PRNG; enough for shuffles and initial weights. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function shuffleInPlace<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i -= 1) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

/** Softmax probabilities of logits = x W + b for one row. */
function rowProbabilities(x: Float32Array, offset: number, dim: number, w: Float64Array | Float32Array, b: Float64Array | Float32Array, k: number, out: Float64Array): void {
  let max = -Infinity;
  for (let c = 0; c < k; c += 1) {
    let z = b[c]!;
    for (let d = 0; d < dim; d += 1) z += x[offset + d]! * w[d * k + c]!;
    out[c] = z;
    if (z > max) max = z;
  }
  let sum = 0;
  for (let c = 0; c < k; c += 1) {
    out[c] = Math.exp(out[c]! - max);
    sum += out[c]!;
  }
  for (let c = 0; c < k; c += 1) out[c] = out[c]! / sum;
}

/** Probabilities [n, classes] of a trained head on raw (unstandardised) features. */
export function predictProbabilities(head: Pick<TrainedHead, 'dim' | 'classes' | 'weights' | 'bias'>, x: Float32Array, n: number): Float32Array {
  const out = new Float32Array(n * head.classes);
  const row = new Float64Array(head.classes);
  for (let i = 0; i < n; i += 1) {
    rowProbabilities(x, i * head.dim, head.dim, head.weights, head.bias, head.classes, row);
    for (let c = 0; c < head.classes; c += 1) out[i * head.classes + c] = row[c]!;
  }
  return out;
}

function standardise(x: Float32Array, n: number, dim: number): { mean: Float64Array; std: Float64Array } {
  const mean = new Float64Array(dim);
  const std = new Float64Array(dim);
  for (let i = 0; i < n; i += 1) for (let d = 0; d < dim; d += 1) mean[d] = mean[d]! + x[i * dim + d]!;
  for (let d = 0; d < dim; d += 1) mean[d] = mean[d]! / Math.max(n, 1);
  for (let i = 0; i < n; i += 1) {
    for (let d = 0; d < dim; d += 1) {
      const v = x[i * dim + d]! - mean[d]!;
      std[d] = std[d]! + v * v;
    }
  }
  for (let d = 0; d < dim; d += 1) std[d] = Math.sqrt(std[d]! / Math.max(n, 1)) + 1e-6;
  return { mean, std };
}

function applyStandardisation(x: Float32Array, n: number, dim: number, s: { mean: Float64Array; std: Float64Array }): Float32Array {
  const out = new Float32Array(n * dim);
  for (let i = 0; i < n; i += 1) for (let d = 0; d < dim; d += 1) out[i * dim + d] = (x[i * dim + d]! - s.mean[d]!) / s.std[d]!;
  return out;
}

function meanLoss(x: Float32Array, y: Int32Array, n: number, dim: number, w: Float64Array, b: Float64Array, k: number): number {
  if (n === 0) return 0;
  const p = new Float64Array(k);
  let loss = 0;
  for (let i = 0; i < n; i += 1) {
    rowProbabilities(x, i * dim, dim, w, b, k, p);
    loss -= Math.log(Math.max(p[y[i]!]!, 1e-12));
  }
  return loss / n;
}

/**
 * Trains on `train`, stops early on `validation` (when it is empty, on the
 * training loss). `onEpoch` sees every epoch, for progress reports.
 */
export function trainSoftmaxHead(
  train: LabelledFeatures,
  validation: LabelledFeatures,
  classes: number,
  hp: HeadHyperparameters,
  onEpoch?: (r: EpochReport) => void,
): TrainedHead {
  const { dim } = train;
  if (train.n === 0) throw new Error('no training examples');
  const s = standardise(train.x, train.n, dim);
  const xs = applyStandardisation(train.x, train.n, dim, s);
  const vs = applyStandardisation(validation.x, validation.n, dim, s);
  const random = seededRandom(hp.seed);
  const k = classes;
  const w = new Float64Array(dim * k);
  for (let i = 0; i < w.length; i += 1) w[i] = (random() - 0.5) * 0.02;
  const b = new Float64Array(k);
  const mW = new Float64Array(w.length);
  const vW = new Float64Array(w.length);
  const mB = new Float64Array(k);
  const vB = new Float64Array(k);
  const gW = new Float64Array(w.length);
  const gB = new Float64Array(k);
  const p = new Float64Array(k);
  const beta1 = 0.9;
  const beta2 = 0.999;
  const eps = 1e-8;
  let step = 0;
  let best = { loss: Infinity, epoch: 0, w: w.slice(), b: b.slice(), trainLoss: Infinity };
  const order = Array.from({ length: train.n }, (_, i) => i);
  let epochsRun = 0;
  for (let epoch = 1; epoch <= hp.epochs; epoch += 1) {
    shuffleInPlace(order, random);
    for (let start = 0; start < train.n; start += hp.batchSize) {
      const batch = order.slice(start, start + hp.batchSize);
      gW.fill(0);
      gB.fill(0);
      for (const i of batch) {
        rowProbabilities(xs, i * dim, dim, w, b, k, p);
        p[train.y[i]!] = p[train.y[i]!]! - 1;
        for (let c = 0; c < k; c += 1) gB[c] = gB[c]! + p[c]!;
        for (let d = 0; d < dim; d += 1) {
          const xv = xs[i * dim + d]!;
          if (xv === 0) continue;
          for (let c = 0; c < k; c += 1) gW[d * k + c] = gW[d * k + c]! + xv * p[c]!;
        }
      }
      step += 1;
      const scale = 1 / batch.length;
      const c1 = 1 - beta1 ** step;
      const c2 = 1 - beta2 ** step;
      for (let j = 0; j < w.length; j += 1) {
        const g = gW[j]! * scale + hp.l2 * w[j]!;
        mW[j] = beta1 * mW[j]! + (1 - beta1) * g;
        vW[j] = beta2 * vW[j]! + (1 - beta2) * g * g;
        w[j] = w[j]! - (hp.learningRate * (mW[j]! / c1)) / (Math.sqrt(vW[j]! / c2) + eps);
      }
      for (let c = 0; c < k; c += 1) {
        const g = gB[c]! * scale;
        mB[c] = beta1 * mB[c]! + (1 - beta1) * g;
        vB[c] = beta2 * vB[c]! + (1 - beta2) * g * g;
        b[c] = b[c]! - (hp.learningRate * (mB[c]! / c1)) / (Math.sqrt(vB[c]! / c2) + eps);
      }
    }
    epochsRun = epoch;
    const trainLoss = meanLoss(xs, train.y, train.n, dim, w, b, k);
    const validationLoss = validation.n > 0 ? meanLoss(vs, validation.y, validation.n, dim, w, b, k) : trainLoss;
    onEpoch?.({ epoch, epochs: hp.epochs, trainLoss, validationLoss });
    if (validationLoss < best.loss - 1e-6) best = { loss: validationLoss, epoch, w: w.slice(), b: b.slice(), trainLoss };
    else if (epoch - best.epoch >= hp.patience) break;
  }
  // Fold (x - mean) / std into the weights: W' = W / std (per row), b' = b - sum_d mean_d W'_d.
  const weights = new Float32Array(dim * k);
  const bias = new Float32Array(k);
  for (let c = 0; c < k; c += 1) {
    let shift = best.b[c]!;
    for (let d = 0; d < dim; d += 1) {
      const wf = best.w[d * k + c]! / s.std[d]!;
      weights[d * k + c] = wf;
      shift -= s.mean[d]! * wf;
    }
    bias[c] = shift;
  }
  return { dim, classes: k, weights, bias, bestEpoch: best.epoch, epochsRun, trainLoss: best.trainLoss, validationLoss: best.loss };
}
