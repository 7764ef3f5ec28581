import { z } from 'zod';

/**
 * One way to name a GPU product everywhere: the value NVIDIA GPU Feature
 * Discovery (GFD, part of NVIDIA/k8s-device-plugin) puts in the node label
 * `nvidia.com/gpu.product`.
 *
 * GFD takes the product name NVML reports (the one `nvidia-smi` prints,
 * e.g. "NVIDIA H100 80GB HBM3"), removes every character other than ASCII
 * letters, digits, '-', '_', '.' and space, and joins the remaining
 * space-separated words with '-': "NVIDIA-H100-80GB-HBM3". Applying the same
 * rule to the name a policy asks for and to the names agents report (from
 * nvidia-smi) makes "NVIDIA H100 80GB HBM3" and "NVIDIA-H100-80GB-HBM3" the
 * same product, and gives the Kubernetes runtime a nodeSelector value that
 * matches the nodes GFD labelled.
 *
 * Short forms ("H100") are not products: GFD never labels a node with them, so
 * a pod selecting one would never schedule.
 */

/** The node label GPU Feature Discovery sets to the product name. */
export const GPU_PRODUCT_NODE_LABEL = 'nvidia.com/gpu.product';

/** The node label value GFD derives from a product name (its `sanitise` rule). Idempotent. */
export function gpuProductLabelValue(product: string): string {
  return product
    .replace(/[^A-Za-z0-9\-_. ]/g, '')
    .split(' ')
    .filter((word) => word !== '')
    .join('-');
}

/** Whether two product names, each as nvidia-smi reports it or as GFD labels it, are the same product. */
export function sameGpuProduct(a: string, b: string): boolean {
  const la = gpuProductLabelValue(a);
  return la !== '' && la === gpuProductLabelValue(b);
}

/**
 * How a product may be written in a policy: letters, digits, '-', '_', '.'
 * and spaces, starting and ending with a letter or digit, at most 63
 * characters. Every such name becomes a valid label value under the GFD rule
 * (a Kubernetes label value is at most 63 characters of
 * `(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?`), so the nodeSelector the
 * Kubernetes runtime renders from it is always accepted by the API server.
 */
export const GPU_PRODUCT_PATTERN = /^[A-Za-z0-9]([A-Za-z0-9\-_. ]{0,61}[A-Za-z0-9])?$/;

export const GPU_PRODUCT_RULE =
  'must be the full GPU product name as nvidia-smi reports it ("NVIDIA H100 80GB HBM3") or as GPU Feature Discovery labels nodes ("NVIDIA-H100-80GB-HBM3"): letters, digits, \'-\', \'_\', \'.\' and spaces, starting and ending with a letter or digit, at most 63 characters';

/** A GPU product named in a policy. */
export const GpuProductSchema = z.string().regex(GPU_PRODUCT_PATTERN, GPU_PRODUCT_RULE);

const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** Whether `value` is a Kubernetes label value (at most 63 characters, alphanumeric at both ends). */
export function isLabelValue(value: string): boolean {
  return value.length <= 63 && LABEL_VALUE.test(value);
}
