import { sameGpuProduct, type Capacity } from '@flotilla/contracts';
import { type Placement } from './schemas.js';
import { compileSelector, formatSelector, type Requirement, selectorFromSpec } from './selector.js';

/**
 * Placement evaluation: which spokes a Placement puts workloads on, and for
 * every spoke left out, why. Pure and linear in the number of spokes, so the
 * hub can re-evaluate on every label or capacity change.
 */

export interface SpokeView {
  name: string;
  labels: Readonly<Record<string, string>>;
  /** As last reported by the agent; absent until the first status report. */
  capacity?: Capacity;
  connection?: 'online' | 'offline' | 'stale';
}

export interface Decision {
  /** Chosen spokes, sorted by name. */
  selected: string[];
  /** Every other spoke, sorted by name, each with at least one human-readable reason. */
  excluded: { spoke: string; reasons: string[] }[];
}

/** The spoke label that carries where a site's data may live. */
export const RESIDENCY_LABEL = 'data-residency';

/**
 * 53-bit string hash (cyrb53). Rendezvous hashing needs a well-mixed score
 * per (placement, spoke) pair, not a cryptographic one; this keeps the library
 * free of platform modules.
 */
function hash53(text: string): number {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

/**
 * Rendezvous (highest random weight) score of a spoke for a placement. Each
 * spoke's score depends only on the pair, so adding or removing one spoke never
 * changes how the others rank: a capped placement moves at most one spoke.
 */
export function rendezvousScore(placementName: string, spokeName: string): number {
  return hash53(`${placementName}\u0000${spokeName}`);
}

/**
 * Whether a reported GPU product (nvidia-smi's "NVIDIA H100 80GB HBM3") is the
 * one a placement asks for, written either that way or as GPU Feature
 * Discovery labels nodes ("NVIDIA-H100-80GB-HBM3"). Both sides are compared in
 * GFD's label form, the value the Kubernetes runtime puts in its nodeSelector,
 * so a spoke is selected exactly when its nodes can run the pods. Short forms
 * ("H100") match nothing: no node is labelled with them.
 */
export function gpuProductMatches(reported: string, wanted: string): boolean {
  return sameGpuProduct(reported, wanted);
}

function describeRequirementMiss(r: Requirement, text: string, labels: Readonly<Record<string, string>>): string {
  const actual = Object.hasOwn(labels, r.key) ? `${r.key} is "${labels[r.key]}"` : `no ${r.key} label`;
  return `label selector: needs ${text} (${actual})`;
}

type SpokeCheck = (spoke: SpokeView) => string | undefined;

/** Turn a placement into per-spoke checks once, so nothing is re-parsed per spoke. */
function compileChecks(placement: Placement): SpokeCheck[] {
  const { spec } = placement;
  const checks: SpokeCheck[] = [];

  for (const r of selectorFromSpec(spec.selector).requirements) {
    const ok = compileSelector({ requirements: [r] });
    const text = formatSelector({ requirements: [r] });
    checks.push((s) => (ok(s.labels) ? undefined : describeRequirementMiss(r, text, s.labels)));
  }

  if (spec.residency) {
    const allowed = new Set(spec.residency);
    const list = spec.residency.join(', ');
    checks.push((s) => {
      if (!Object.hasOwn(s.labels, RESIDENCY_LABEL)) return `residency: no ${RESIDENCY_LABEL} label (allowed: ${list})`;
      const v = s.labels[RESIDENCY_LABEL] as string;
      return allowed.has(v) ? undefined : `residency: ${RESIDENCY_LABEL} is "${v}" (allowed: ${list})`;
    });
  }

  const gpu = spec.requirements?.gpu;
  if (gpu) {
    const wanted = [
      `${gpu.count} GPU${gpu.count === 1 ? '' : 's'}`,
      gpu.product ? `of product ${gpu.product}` : undefined,
      gpu.memoryGiB !== undefined ? `with at least ${gpu.memoryGiB} GiB each` : undefined,
    ]
      .filter(Boolean)
      .join(' ');
    checks.push((s) => {
      if (!s.capacity) return `capacity: not reported yet, cannot confirm ${wanted}`;
      const fitting = s.capacity.gpus.filter(
        (d) => (gpu.memoryGiB === undefined || d.memoryGiB >= gpu.memoryGiB) && (!gpu.product || gpuProductMatches(d.product, gpu.product)),
      ).length;
      if (fitting >= gpu.count) return undefined;
      const reported = s.capacity.gpus.length === 0 ? 'no GPUs' : s.capacity.gpus.map((d) => `${d.product} ${d.memoryGiB} GiB`).join(', ');
      return `capacity: needs ${wanted}, ${fitting} fit (reports ${reported})`;
    });
  }
  return checks;
}

/**
 * Whether each spoke passes a placement's selector, residency and capacity
 * checks, with why not: what a placement decides about one spoke on its own,
 * before `maxSpokes` ranks the eligible ones. The hub's incremental render
 * calls it for the spokes that changed only.
 */
export function placementEligibility(placement: Placement, spokes: readonly SpokeView[]): { view: SpokeView; reasons: string[] }[] {
  const checks = compileChecks(placement);
  return spokes.map((view) => {
    const reasons: string[] = [];
    for (const check of checks) {
      const reason = check(view);
      if (reason !== undefined) reasons.push(reason);
    }
    return { view, reasons };
  });
}

/** The reason a `maxSpokes` placement gives an eligible spoke it does not choose. */
export function maxSpokesReason(max: number, eligible: number, rank: number): string {
  return `maxSpokes: eligible, but only ${max} of ${eligible} eligible spokes are chosen (rank ${rank})`;
}

/**
 * Decide which spokes a placement selects. Connection state does not matter:
 * an offline spoke keeps its assignment and converges when it reconnects,
 * so placements do not flap with the network. When more spokes qualify than
 * `maxSpokes`, the ones with the highest rendezvous score win.
 */
export function evaluatePlacement(placement: Placement, spokes: readonly SpokeView[]): Decision {
  const eligible: SpokeView[] = [];
  const excluded: Decision['excluded'] = [];
  for (const e of placementEligibility(placement, spokes)) {
    if (e.reasons.length === 0) eligible.push(e.view);
    else excluded.push({ spoke: e.view.name, reasons: e.reasons });
  }

  let selected = eligible.map((s) => s.name);
  const max = placement.spec.maxSpokes;
  if (max !== undefined && selected.length > max) {
    const name = placement.metadata.name;
    const ranked = selected
      .map((spoke) => ({ spoke, score: rendezvousScore(name, spoke) }))
      .sort((a, b) => b.score - a.score || (a.spoke < b.spoke ? -1 : a.spoke > b.spoke ? 1 : 0));
    selected = ranked.slice(0, max).map((r) => r.spoke);
    for (const [i, r] of ranked.slice(max).entries()) {
      excluded.push({
        spoke: r.spoke,
        reasons: [maxSpokesReason(max, ranked.length, max + i + 1)],
      });
    }
  }

  const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  selected.sort(byName);
  excluded.sort((a, b) => byName(a.spoke, b.spoke));
  return { selected, excluded };
}
