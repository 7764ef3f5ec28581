import fc from 'fast-check';
import { formatPolicyError, parsePolicyDocuments } from './documents.js';
import { evaluatePlacement, gpuProductMatches, rendezvousScore, type SpokeView } from './placement.js';
import { type Placement } from './schemas.js';
import { cpuOnly, gpus, placementFrom, spoke } from './spec-helpers.js';

const euGpu = placementFrom(`
selector:
  matchLabels: { region: eu }
  matchExpressions:
    - { key: gpu.product, operator: In, values: [L40S, H100] }
    - { key: quarantined, operator: DoesNotExist }
requirements:
  gpu: { count: 1, memoryGiB: 40 }
residency: [eu]
`);

const reasonsFor = (decision: ReturnType<typeof evaluatePlacement>, name: string): string[] =>
  decision.excluded.find((e) => e.spoke === name)?.reasons ?? [];

describe('evaluatePlacement', () => {
  it('selects spokes that match the selector, residency and GPU requirements', () => {
    const decision = evaluatePlacement(euGpu, [
      spoke('paris-1', { region: 'eu', 'gpu.product': 'L40S', 'data-residency': 'eu' }, gpus('NVIDIA L40S', 48)),
      spoke('lyon-2', { region: 'eu', 'gpu.product': 'H100', 'data-residency': 'eu' }, gpus('NVIDIA H100 80GB HBM3', 80)),
    ]);
    expect(decision).toEqual({ selected: ['lyon-2', 'paris-1'], excluded: [] });
  });

  it('explains a selector miss with the requirement and the spoke actual label', () => {
    const decision = evaluatePlacement(euGpu, [spoke('ohio-1', { region: 'us', 'gpu.product': 'H100', 'data-residency': 'us' }, gpus('H100', 80))]);
    expect(reasonsFor(decision, 'ohio-1')).toEqual([
      'label selector: needs region=eu (region is "us")',
      'residency: data-residency is "us" (allowed: eu)',
    ]);
  });

  it('explains a missing label and a quarantined spoke', () => {
    const decision = evaluatePlacement(euGpu, [
      spoke('berlin-3', { region: 'eu', 'gpu.product': 'L40S', 'data-residency': 'eu', quarantined: 'true' }, gpus('L40S', 48)),
      spoke('oslo-1', { region: 'eu', 'data-residency': 'eu' }, gpus('L40S', 48)),
    ]);
    expect(reasonsFor(decision, 'berlin-3')).toEqual(['label selector: needs !quarantined (quarantined is "true")']);
    expect(reasonsFor(decision, 'oslo-1')).toEqual(['label selector: needs gpu.product in (L40S,H100) (no gpu.product label)']);
  });

  it('excludes a spoke without a data-residency label when residency is required', () => {
    const decision = evaluatePlacement(euGpu, [spoke('paris-1', { region: 'eu', 'gpu.product': 'L40S' }, gpus('L40S', 48))]);
    expect(reasonsFor(decision, 'paris-1')).toEqual(['residency: no data-residency label (allowed: eu)']);
  });

  it('excludes a spoke that has not reported capacity when GPUs are required', () => {
    const decision = evaluatePlacement(euGpu, [spoke('paris-1', { region: 'eu', 'gpu.product': 'L40S', 'data-residency': 'eu' })]);
    expect(reasonsFor(decision, 'paris-1')).toEqual(['capacity: not reported yet, cannot confirm 1 GPU with at least 40 GiB each']);
  });

  it('excludes a spoke whose GPUs have too little memory, listing what it reports', () => {
    const decision = evaluatePlacement(euGpu, [spoke('paris-1', { region: 'eu', 'gpu.product': 'L40S', 'data-residency': 'eu' }, gpus('NVIDIA L4', 24, 2))]);
    expect(reasonsFor(decision, 'paris-1')).toEqual([
      'capacity: needs 1 GPU with at least 40 GiB each, 0 fit (reports NVIDIA L4 24 GiB, NVIDIA L4 24 GiB)',
    ]);
  });

  it('counts only GPUs of the required product and requires enough of them', () => {
    const twoH100 = placementFrom('selector: {}\nrequirements:\n  gpu: { count: 2, product: NVIDIA-H100-PCIe }');
    const mixed = { cpuCores: 64, memoryGiB: 512, gpus: [...gpus('NVIDIA H100 PCIe', 80).gpus, ...gpus('NVIDIA A100', 80).gpus] };
    const decision = evaluatePlacement(twoH100, [spoke('a', {}, mixed), spoke('b', {}, gpus('NVIDIA H100 PCIe', 80, 2)), spoke('c', {}, cpuOnly)]);
    expect(decision.selected).toEqual(['b']);
    expect(reasonsFor(decision, 'a')).toEqual(['capacity: needs 2 GPUs of product NVIDIA-H100-PCIe, 1 fit (reports NVIDIA H100 PCIe 80 GiB, NVIDIA A100 80 GiB)']);
    expect(reasonsFor(decision, 'c')).toEqual(['capacity: needs 2 GPUs of product NVIDIA-H100-PCIe, 0 fit (reports no GPUs)']);
  });

  it('ignores capacity entirely for a placement without GPU requirements', () => {
    const cpu = placementFrom('selector: { matchLabels: { class: field-unit } }');
    expect(evaluatePlacement(cpu, [spoke('van-7', { class: 'field-unit' })]).selected).toEqual(['van-7']);
  });

  it('keeps offline and stale spokes selected so that placements do not flap with the network', () => {
    const all = placementFrom('selector: {}');
    const decision = evaluatePlacement(all, [spoke('a', {}, undefined, 'offline'), spoke('b', {}, undefined, 'stale'), spoke('c', {}, undefined, 'online')]);
    expect(decision.selected).toEqual(['a', 'b', 'c']);
  });

  it('caps the selection at maxSpokes by rendezvous score and says why the rest are out', () => {
    const capped = placementFrom('selector: {}\nmaxSpokes: 2', 'capped');
    const names = ['s1', 's2', 's3', 's4', 's5'];
    const decision = evaluatePlacement(capped, names.map((n) => spoke(n, {})));
    const expected = [...names].sort((a, b) => rendezvousScore('capped', b) - rendezvousScore('capped', a)).slice(0, 2).sort();
    expect(decision.selected).toEqual(expected);
    expect(decision.excluded).toHaveLength(3);
    for (const e of decision.excluded) expect(e.reasons[0]).toMatch(/^maxSpokes: eligible, but only 2 of 5 eligible spokes are chosen \(rank [345]\)$/);
  });

  it('evaluates 10,000 spokes in one pass', () => {
    const fleet = Array.from({ length: 10_000 }, (_, i) =>
      spoke(`site-${i}`, { region: i % 2 ? 'eu' : 'us', 'gpu.product': i % 3 ? 'L40S' : 'T4', 'data-residency': i % 2 ? 'eu' : 'us' }, gpus(i % 3 ? 'NVIDIA L40S' : 'Tesla T4', i % 3 ? 48 : 16)),
    );
    const decision = evaluatePlacement({ ...euGpu, spec: { ...euGpu.spec, maxSpokes: 1000 } }, fleet);
    expect(decision.selected).toHaveLength(1000);
    expect(decision.selected.length + decision.excluded.length).toBe(10_000);
  });
});

// The full product name is required, as nvidia-smi reports it or as GPU Feature Discovery labels nodes:
// short forms ("H100") used to match here but rendered a nodeSelector no node carries, so pods never scheduled.
describe('gpuProductMatches', () => {
  it.each([
    ['NVIDIA L40S', 'NVIDIA L40S', true],
    ['NVIDIA L40S', 'NVIDIA-L40S', true],
    ['NVIDIA H100 80GB HBM3', 'NVIDIA-H100-80GB-HBM3', true],
    ['NVIDIA H100 80GB HBM3', 'H100', false],
    ['NVIDIA L40S', 'NVIDIA L4', false],
    ['NVIDIA L4', 'NVIDIA L40S', false],
    ['NVIDIA A100-SXM4-40GB', 'NVIDIA-A100-SXM4-40GB', true],
    ['Tesla T4', 'NVIDIA H100 80GB HBM3', false],
  ])('%s matches %s: %s', (reported, wanted, expected) => {
    expect(gpuProductMatches(reported, wanted)).toBe(expected);
  });
});

describe('requirements.gpu.product in a policy file', () => {
  const source = (product: string) => ({
    file: 'placements/gpu.yaml',
    text: `apiVersion: flotilla.dev/v1\nkind: Placement\nmetadata: { name: gpu }\nspec:\n  selector: {}\n  requirements:\n    gpu: { count: 1, product: "${product}" }\n`,
  });

  it('accepts the full name in either form and selects the spoke reporting it', () => {
    for (const product of ['NVIDIA H100 80GB HBM3', 'NVIDIA-H100-80GB-HBM3']) {
      const parsed = parsePolicyDocuments([source(product)]);
      expect(parsed.errors).toEqual([]);
      const decision = evaluatePlacement(parsed.objects[0] as Placement, [spoke('a', {}, gpus('NVIDIA H100 80GB HBM3', 80))]);
      expect(decision.selected).toEqual(['a']);
    }
  });

  it('rejects a product that can never be a node label value, naming the field and its line', () => {
    const parsed = parsePolicyDocuments([source(`NVIDIA ${'H100 '.repeat(12)}HBM3`)]);
    expect(parsed.errors.map((e) => `${e.file}:${e.line} ${e.path}`)).toEqual(['placements/gpu.yaml:7 spec.requirements.gpu.product']);
    expect(formatPolicyError(parsed.errors[0]!)).toContain(
      'spec.requirements.gpu.product: must be the full GPU product name as nvidia-smi reports it ("NVIDIA H100 80GB HBM3") or as GPU Feature Discovery labels nodes ("NVIDIA-H100-80GB-HBM3")',
    );
    expect(parsePolicyDocuments([source('NVIDIA H100 (80GB)')]).errors).toHaveLength(1);
  });
});

/* ------------------------------------------------------------- properties */

const spokeName = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}[a-z0-9]$/);
const spokeArb = (name: fc.Arbitrary<string>) =>
  fc.record({
    name,
    labels: fc.record(
      {
        region: fc.constantFrom('eu', 'us'),
        'gpu.product': fc.constantFrom('L40S', 'H100', 'T4'),
        'data-residency': fc.constantFrom('eu', 'us'),
        quarantined: fc.constant('true'),
      },
      { requiredKeys: [] },
    ),
    capacity: fc.option(
      fc.record({
        cpuCores: fc.constant(16),
        memoryGiB: fc.constant(64),
        gpus: fc.array(
          fc.record({ index: fc.nat(7), uuid: fc.constant('GPU-x'), product: fc.constantFrom('NVIDIA L40S', 'NVIDIA H100 80GB HBM3', 'Tesla T4'), memoryGiB: fc.constantFrom(16, 48, 80), mig: fc.constant(false) }),
          { maxLength: 3 },
        ),
      }),
      { nil: undefined },
    ),
  }) as fc.Arbitrary<SpokeView>;
const fleetArb = fc.uniqueArray(spokeArb(spokeName), { selector: (s) => s.name, maxLength: 40 });
const placementArb: fc.Arbitrary<Placement> = fc
  .record({ name: fc.constantFrom('eu-gpu', 'anywhere', 'capped'), maxSpokes: fc.option(fc.integer({ min: 1, max: 10 }), { nil: undefined }), gpu: fc.boolean(), residency: fc.boolean() })
  .map(({ name, maxSpokes, gpu, residency }) => ({
    ...euGpu,
    metadata: { name },
    spec: {
      selector: { matchExpressions: [{ key: 'quarantined', operator: 'DoesNotExist' as const }] },
      ...(gpu ? { requirements: { gpu: { count: 1, memoryGiB: 40 } } } : {}),
      ...(residency ? { residency: ['eu'] } : {}),
      ...(maxSpokes !== undefined ? { maxSpokes } : {}),
    },
  }));

describe('placement properties', () => {
  it('partitions the fleet: every spoke is selected or excluded with a reason, never both', () => {
    fc.assert(
      fc.property(placementArb, fleetArb, (placement, fleet) => {
        const d = evaluatePlacement(placement, fleet);
        const excluded = d.excluded.map((e) => e.spoke);
        expect([...d.selected, ...excluded].sort()).toEqual(fleet.map((s) => s.name).sort());
        expect(new Set([...d.selected, ...excluded]).size).toBe(fleet.length);
        for (const e of d.excluded) expect(e.reasons.length).toBeGreaterThan(0);
      }),
    );
  });

  it('never selects more than maxSpokes', () => {
    fc.assert(
      fc.property(placementArb, fleetArb, (placement, fleet) => {
        const max = placement.spec.maxSpokes;
        if (max !== undefined) expect(evaluatePlacement(placement, fleet).selected.length).toBeLessThanOrEqual(max);
      }),
    );
  });

  it('gives the same decision whatever the order of the spokes', () => {
    fc.assert(
      fc.property(placementArb, fleetArb.chain((f) => fc.tuple(fc.constant(f), fc.shuffledSubarray(f, { minLength: f.length, maxLength: f.length }))), (placement, [fleet, shuffled]) => {
        expect(evaluatePlacement(placement, shuffled)).toEqual(evaluatePlacement(placement, fleet));
      }),
    );
  });

  it('moves at most one selected spoke when one spoke joins a capped placement', () => {
    fc.assert(
      // The dot keeps the newcomer's name distinct from every generated fleet name.
      fc.property(placementArb, fleetArb, spokeArb(spokeName.map((n) => `new.${n}`)), (placement, fleet, joining) => {
        const before = new Set(evaluatePlacement(placement, fleet).selected);
        const after = new Set(evaluatePlacement(placement, [...fleet, joining]).selected);
        const dropped = [...before].filter((s) => !after.has(s));
        const gained = [...after].filter((s) => !before.has(s));
        expect(dropped.length).toBeLessThanOrEqual(1);
        expect(gained.every((s) => s === joining.name)).toBe(true);
        // Someone is dropped only to make room for the newcomer.
        if (dropped.length === 1) expect(gained).toEqual([joining.name]);
      }),
    );
  });
});
