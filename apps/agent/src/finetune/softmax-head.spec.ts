import { argmaxRows, classificationMetrics } from './classification-metrics.js';
import { predictProbabilities, seededRandom, trainSoftmaxHead, type LabelledFeatures } from './softmax-head.js';

/** Three Gaussian blobs in 5 dimensions with large, shifted raw scales (so standardisation matters). */
function blobs(n: number, seed: number): LabelledFeatures {
  const random = seededRandom(seed);
  const dim = 5;
  const x = new Float32Array(n * dim);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i += 1) {
    const c = i % 3;
    y[i] = c;
    for (let d = 0; d < dim; d += 1) x[i * dim + d] = 1000 + (d === c ? 40 : 0) + (random() - 0.5) * 20 * (d + 1);
  }
  return { x, y, n, dim };
}

describe('softmax head', () => {
  const hp = { epochs: 100, learningRate: 0.05, l2: 1e-3, batchSize: 16, patience: 10, seed: 5 };

  it('separates separable classes on raw features, with standardisation folded into the weights', () => {
    const head = trainSoftmaxHead(blobs(150, 1), blobs(30, 2), 3, hp);
    const test = blobs(60, 3);
    const m = classificationMetrics(test.y, argmaxRows(predictProbabilities(head, test.x, test.n), test.n, 3), ['a', 'b', 'c']);
    expect(m.accuracy).toBeGreaterThanOrEqual(0.95);
    expect(head.bestEpoch).toBeGreaterThan(0);
    expect(head.epochsRun).toBeLessThanOrEqual(100);
  });

  it('is deterministic for a seed and differs for another', () => {
    const a = trainSoftmaxHead(blobs(60, 1), blobs(15, 2), 3, hp);
    const b = trainSoftmaxHead(blobs(60, 1), blobs(15, 2), 3, hp);
    const c = trainSoftmaxHead(blobs(60, 1), blobs(15, 2), 3, { ...hp, seed: 6 });
    expect(Buffer.from(a.weights.buffer).equals(Buffer.from(b.weights.buffer))).toBe(true);
    expect(Buffer.from(a.weights.buffer).equals(Buffer.from(c.weights.buffer))).toBe(false);
  });
});

describe('classification metrics', () => {
  it('computes accuracy, macro-F1, per-class recall and the confusion matrix', () => {
    const m = classificationMetrics(Int32Array.from([0, 0, 1, 1, 2, 2]), Int32Array.from([0, 1, 1, 1, 2, 0]), ['crack', 'rust', 'spall']);
    expect(m.accuracy).toBeCloseTo(4 / 6);
    expect(m.recall).toEqual({ crack: 0.5, rust: 1, spall: 0.5 });
    expect(m.confusion).toEqual([[1, 1, 0], [0, 2, 0], [1, 0, 1]]);
    // F1: crack p=.5 r=.5 -> .5; rust p=2/3 r=1 -> .8; spall p=1 r=.5 -> 2/3.
    expect(m.macroF1).toBeCloseTo((0.5 + 0.8 + 2 / 3) / 3);
  });
});
