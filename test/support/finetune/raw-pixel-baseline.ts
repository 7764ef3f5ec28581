import { argmaxRows, classificationMetrics, type ClassificationMetrics } from '../../../apps/agent/src/finetune/classification-metrics.js';
import { readImageFolder, splitDataset, type DatasetImage } from '../../../apps/agent/src/finetune/dataset.js';
import { decodeImage } from '../../../apps/agent/src/finetune/image-embedder.js';
import { linearProbeHyperparameters } from '../../../apps/agent/src/finetune/linear-probe-spec.js';
import { predictProbabilities, trainSoftmaxHead, type LabelledFeatures } from '../../../apps/agent/src/finetune/softmax-head.js';

/**
 * The baseline a linear probe must beat: the same softmax head, same splits
 * and same hyperparameters, trained on raw pixels (the image shrunk to
 * side x side RGB) instead of the backbone's embeddings.
 */
export async function rawPixelBaseline(datasetRoot: string, opts: { side?: number; holdoutFraction?: number; hyperparameters?: Record<string, unknown> } = {}): Promise<ClassificationMetrics> {
  const side = opts.side ?? 16;
  const hp = linearProbeHyperparameters(opts.hyperparameters ?? {});
  const ds = await readImageFolder(datasetRoot);
  const splits = splitDataset(ds, opts.holdoutFraction ?? 0.2, hp.validationFraction);
  const featuresOf = async (images: DatasetImage[]): Promise<LabelledFeatures> => {
    const dim = side * side * 3;
    const x = new Float32Array(images.length * dim);
    for (const [i, img] of images.entries()) x.set(await decodeImage(img.absolutePath, { width: side, height: side }), i * dim);
    return { x, y: Int32Array.from(images.map((i) => i.label)), n: images.length, dim };
  };
  const train = await featuresOf(splits.train);
  const validation = await featuresOf(splits.validation);
  const holdout = await featuresOf(splits.holdout);
  const head = trainSoftmaxHead(train, validation, ds.labels.length, hp);
  const probs = predictProbabilities(head, holdout.x, holdout.n);
  return classificationMetrics(holdout.y, argmaxRows(probs, holdout.n, head.classes), ds.labels);
}
