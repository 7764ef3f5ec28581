import fc from 'fast-check';
import { CanonicalJsonError, canonicalJson, payloadHash } from './canonical-json.js';

/** Rebuilds every object of a JSON value with its keys in the order given by `order`. */
function reorder(value: unknown, order: (keys: string[]) => string[]): unknown {
  if (Array.isArray(value)) return value.map((v) => reorder(v, order));
  if (value !== null && typeof value === 'object') {
    // defineProperty, not assignment: a "__proto__" key (fast-check makes them) must stay an own key.
    const out: Record<string, unknown> = {};
    for (const k of order(Object.keys(value))) {
      Object.defineProperty(out, k, { value: reorder((value as Record<string, unknown>)[k], order), enumerable: true, writable: true, configurable: true });
    }
    return out;
  }
  return value;
}

describe('canonicalJson', () => {
  it('sorts keys, drops whitespace and formats numbers as RFC 8785 says', () => {
    expect(canonicalJson({ b: 1, a: [true, null, 'x'], c: { z: 1e21, y: 0.1, x: -0 } })).toBe(
      '{"a":[true,null,"x"],"b":1,"c":{"x":0,"y":0.1,"z":1e+21}}',
    );
    // RFC 8785 sorts by UTF-16 code units, so "\u20ac" (U+20AC) sorts before "\ud83d\ude00" (U+1F600 as a surrogate pair) but after "\u0080".
    expect(canonicalJson({ '\ud83d\ude00': 1, '\u20ac': 2, '\u0080': 3 })).toBe('{"\u0080":3,"\u20ac":2,"\ud83d\ude00":1}');
  });

  it.each([
    ['undefined', undefined],
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['a lone surrogate', '\ud800'],
  ])('throws CanonicalJsonError for %s', (_what, value) => {
    expect(() => canonicalJson(value)).toThrow(CanonicalJsonError);
  });

  it('throws CanonicalJsonError for a cycle', () => {
    const a: Record<string, unknown> = {};
    a.self = a;
    expect(() => canonicalJson(a)).toThrow(/Circular/);
  });

  it('does not depend on key order (property)', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.integer(), (value, seed) => {
        const shuffle = (keys: string[]): string[] =>
          keys
            .map((k, i) => ({ k, w: Math.sin(seed + i) }))
            .sort((x, y) => x.w - y.w)
            .map((e) => e.k);
        expect(canonicalJson(reorder(value, shuffle))).toBe(canonicalJson(value));
        expect(canonicalJson(reorder(value, (k) => [...k].reverse()))).toBe(canonicalJson(value));
      }),
    );
  });

  it('round-trips through JSON.parse and is a fixed point (property)', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const text = canonicalJson(value);
        expect(JSON.parse(text)).toEqual(JSON.parse(JSON.stringify(value)));
        expect(canonicalJson(JSON.parse(text))).toBe(text);
      }),
    );
  });
});

describe('payloadHash', () => {
  it('is sha256: plus the hex digest of the canonical JSON', () => {
    // sha256 of the bytes {"a":1}
    expect(payloadHash({ a: 1 })).toBe('sha256:015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862');
    expect(payloadHash({ b: [1, 2], a: 'x' })).toBe(payloadHash({ a: 'x', b: [1, 2] }));
    expect(payloadHash({ a: 1 })).not.toBe(payloadHash({ a: 2 }));
  });
});
