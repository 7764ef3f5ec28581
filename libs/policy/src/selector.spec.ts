import fc from 'fast-check';
import {
  formatSelector,
  matches,
  parseSelector,
  type Requirement,
  type Selector,
  SelectorError,
  selectorFromSpec,
} from './selector.js';

function parseError(text: string): SelectorError {
  try {
    parseSelector(text);
  } catch (e) {
    if (e instanceof SelectorError) return e;
    throw e;
  }
  throw new Error(`expected "${text}" to be rejected`);
}

describe('parseSelector', () => {
  it('parses the example from the API documentation', () => {
    expect(parseSelector('region=eu,gpu.product in (L40S,H100),!quarantined')).toEqual({
      requirements: [
        { key: 'region', operator: 'In', values: ['eu'] },
        { key: 'gpu.product', operator: 'In', values: ['L40S', 'H100'] },
        { key: 'quarantined', operator: 'DoesNotExist', values: [] },
      ],
    });
  });

  it('treats = and == as In with one value and != as NotIn with one value', () => {
    expect(parseSelector('a=b, c==d, e!=f').requirements).toEqual([
      { key: 'a', operator: 'In', values: ['b'] },
      { key: 'c', operator: 'In', values: ['d'] },
      { key: 'e', operator: 'NotIn', values: ['f'] },
    ]);
  });

  it('parses notin, bare keys, Gt and Lt', () => {
    expect(parseSelector('tier notin (x, y),site,gpu.count>1,temp<-5').requirements).toEqual([
      { key: 'tier', operator: 'NotIn', values: ['x', 'y'] },
      { key: 'site', operator: 'Exists', values: [] },
      { key: 'gpu.count', operator: 'Gt', values: ['1'] },
      { key: 'temp', operator: 'Lt', values: ['-5'] },
    ]);
  });

  it('accepts prefixed keys', () => {
    expect(parseSelector('topology.kubernetes.io/zone=eu-west-1a').requirements[0]?.key).toBe(
      'topology.kubernetes.io/zone',
    );
  });

  it('reads the empty string as the selector that matches everything', () => {
    expect(parseSelector('')).toEqual({ requirements: [] });
    expect(parseSelector('   ')).toEqual({ requirements: [] });
  });

  it('reads a=  as In with the empty value, as Kubernetes does', () => {
    expect(parseSelector('a=,b').requirements[0]).toEqual({ key: 'a', operator: 'In', values: [''] });
  });

  it.each([
    ['region=eu,', 11, 'a label key'],
    ['region in eu', 11, '"("'],
    ['region in (eu', 14, '"," or ")"'],
    ['region=eu)', 10, '"," or end of selector'],
    ['gpu.count>many', 11, 'an integer'],
    ['region eu', 8, 'one of "=", "==", "!=", ">", "<", "in", "notin", "," or end of selector'],
    [',region', 1, 'a label key'],
    ['!', 2, 'a label key'],
  ])('rejects %j at column %i, expecting %s', (text, column, expected) => {
    const e = parseError(text);
    expect(e.column).toBe(column);
    expect(e.expected).toBe(expected);
    expect(e.message).toContain(`column ${column}`);
  });

  it('rejects a label value longer than 63 characters, naming the column', () => {
    const e = parseError(`a=${'x'.repeat(64)}`);
    expect(e.column).toBe(3);
    expect(e.message).toMatch(/63 characters or fewer/);
  });

  it('rejects a key name longer than 63 characters', () => {
    expect(parseError(`${'k'.repeat(64)}=v`).message).toMatch(/63 characters or fewer/);
  });

  it('rejects a key prefix that is not a DNS subdomain', () => {
    expect(parseError('Example.COM/zone=a').message).toMatch(/DNS subdomain/);
  });

  it('rejects a value with characters outside the label alphabet', () => {
    expect(parseError('a=b*c').message).toMatch(/label value "b\*c"/);
  });

  it('rejects a value that starts with a dash', () => {
    expect(parseError('a=-b').column).toBe(3);
  });
});

describe('selectorFromSpec', () => {
  it('puts matchLabels first in key order, then matchExpressions in order', () => {
    expect(
      selectorFromSpec({
        matchLabels: { zone: 'a', region: 'eu' },
        matchExpressions: [{ key: 'gpu.product', operator: 'In', values: ['L40S', 'H100'] }],
      }).requirements,
    ).toEqual([
      { key: 'region', operator: 'In', values: ['eu'] },
      { key: 'zone', operator: 'In', values: ['a'] },
      { key: 'gpu.product', operator: 'In', values: ['L40S', 'H100'] },
    ]);
  });

  it.each([
    [{ matchExpressions: [{ key: 'a', operator: 'In' as const, values: [] }] }, ['matchExpressions', 0, 'values']],
    [{ matchExpressions: [{ key: 'a', operator: 'Exists' as const, values: ['x'] }] }, ['matchExpressions', 0, 'values']],
    [{ matchExpressions: [{ key: 'a', operator: 'Gt' as const, values: ['x'] }] }, ['matchExpressions', 0, 'values', 0]],
    [{ matchExpressions: [{ key: 'a', operator: 'Lt' as const, values: ['1', '2'] }] }, ['matchExpressions', 0, 'values']],
    [{ matchExpressions: [{ key: 'bad key', operator: 'Exists' as const }] }, ['matchExpressions', 0, 'key']],
    [{ matchLabels: { a: 'not valid!' } }, ['matchLabels', 'a']],
  ])('rejects %j with the path of the bad field', (spec, path) => {
    try {
      selectorFromSpec(spec);
      throw new Error('expected rejection');
    } catch (e) {
      expect(e).toBeInstanceOf(SelectorError);
      expect((e as SelectorError).path).toEqual(path);
    }
  });
});

describe('matches', () => {
  const labels = { region: 'eu', 'gpu.product': 'L40S', 'gpu.count': '2' };

  it('matches every spoke with the empty selector', () => {
    expect(matches(parseSelector(''), {})).toBe(true);
  });

  it('requires the key for In and Exists', () => {
    expect(matches(parseSelector('region=eu'), labels)).toBe(true);
    expect(matches(parseSelector('region=us'), labels)).toBe(false);
    expect(matches(parseSelector('zone'), labels)).toBe(false);
    expect(matches(parseSelector('gpu.product in (H100,L40S)'), labels)).toBe(true);
  });

  it('lets NotIn and != match spokes that lack the key, as Kubernetes does', () => {
    expect(matches(parseSelector('zone!=a'), labels)).toBe(true);
    expect(matches(parseSelector('zone notin (a,b)'), labels)).toBe(true);
    expect(matches(parseSelector('region!=eu'), labels)).toBe(false);
  });

  it('compares Gt and Lt as integers and fails them when the label is missing or not an integer', () => {
    expect(matches(parseSelector('gpu.count>1'), labels)).toBe(true);
    expect(matches(parseSelector('gpu.count>2'), labels)).toBe(false);
    expect(matches(parseSelector('gpu.count<10'), labels)).toBe(true);
    expect(matches(parseSelector('missing<10'), labels)).toBe(false);
    expect(matches(parseSelector('region<10'), labels)).toBe(false);
  });

  it('does not treat inherited object properties as labels', () => {
    expect(matches(parseSelector('constructor'), {})).toBe(false);
    expect(matches(parseSelector('toString!=x'), {})).toBe(true);
  });
});

/* ------------------------------------------------------------- properties */

const nameChar = fc.constantFrom(...'abcXYZ019'.split(''));
const innerChar = fc.constantFrom(...'abZ09-_.'.split(''));
const labelName = fc
  .tuple(nameChar, fc.array(innerChar, { maxLength: 6 }), nameChar)
  .map(([a, mid, b]) => a + mid.join('') + b)
  .filter((s) => s.length <= 63);
const shortName = fc.oneof(nameChar, labelName);
// "in" and "notin" are keys too: the keywords only count after a key.
const labelKey = fc.oneof(
  shortName,
  fc.constantFrom('in', 'notin'),
  fc.tuple(fc.constantFrom('flotilla.dev', 'a', 'x-1.example'), shortName).map(([p, n]) => `${p}/${n}`),
);
// A small alphabet of keys and values so that generated labels often hit the selector.
const smallKey = fc.constantFrom('region', 'gpu.product', 'flotilla.dev/site', 'count', 'in', 'notin');
const smallValue = fc.constantFrom('eu', 'us', 'L40S', 'H100', '1', '7', '-3', '007', '-0', '');
const intValue = fc.integer({ min: -50, max: 50 }).map(String);

function requirementArb(key: fc.Arbitrary<string>, value: fc.Arbitrary<string>): fc.Arbitrary<Requirement> {
  return fc.oneof(
    fc.record({ key, operator: fc.constantFrom('In' as const, 'NotIn' as const), values: fc.array(value, { minLength: 1, maxLength: 4 }) }),
    fc.record({ key, operator: fc.constantFrom('Exists' as const, 'DoesNotExist' as const), values: fc.constant<string[]>([]) }),
    fc.record({ key, operator: fc.constantFrom('Gt' as const, 'Lt' as const), values: intValue.map((v) => [v]) }),
  );
}
const selectorArb = (key: fc.Arbitrary<string>, value: fc.Arbitrary<string>): fc.Arbitrary<Selector> =>
  fc.array(requirementArb(key, value), { maxLength: 5 }).map((requirements) => ({ requirements }));

/** An independent, deliberately literal reading of the Kubernetes rules. */
function naiveMatches(selector: Selector, labels: Record<string, string>): boolean {
  for (const r of selector.requirements) {
    const present = Object.keys(labels).includes(r.key);
    const value = present ? labels[r.key] : undefined;
    let ok: boolean;
    if (r.operator === 'In') ok = present && r.values.some((v) => v === value);
    else if (r.operator === 'NotIn') ok = !present || r.values.every((v) => v !== value);
    else if (r.operator === 'Exists') ok = present;
    else if (r.operator === 'DoesNotExist') ok = !present;
    else {
      const n = value !== undefined && /^-?\d+$/.test(value) ? Number(value) : NaN;
      const bound = Number(r.values[0]);
      ok = !Number.isNaN(n) && (r.operator === 'Gt' ? n > bound : n < bound);
    }
    if (!ok) return false;
  }
  return true;
}

describe('selector properties', () => {
  it('parses what it formats back to the same selector', () => {
    fc.assert(
      fc.property(selectorArb(labelKey, fc.oneof(labelName, fc.constant(''))), (selector) => {
        expect(parseSelector(formatSelector(selector))).toEqual(selector);
      }),
    );
  });

  it('agrees with a naive evaluation of the Kubernetes rules', () => {
    fc.assert(
      fc.property(
        selectorArb(smallKey, smallValue),
        fc.dictionary(smallKey, fc.oneof(smallValue, intValue)),
        (selector, labels) => {
          expect(matches(selector, labels)).toBe(naiveMatches(selector, labels));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('never throws anything but SelectorError on arbitrary text', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(...'a=!(),<> in notin 1-.'.split('')), maxLength: 30 }), (text) => {
        try {
          parseSelector(text);
        } catch (e) {
          expect(e).toBeInstanceOf(SelectorError);
          expect((e as SelectorError).column).toBeGreaterThanOrEqual(1);
          expect((e as SelectorError).column).toBeLessThanOrEqual(text.length + 1);
        }
      }),
    );
  });
});
