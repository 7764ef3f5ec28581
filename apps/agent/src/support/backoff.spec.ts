import { equalJitterDelay, fullJitterDelay, spread } from './backoff.js';

const opts = { initialMs: 500, maxMs: 30_000 };

describe('fullJitterDelay', () => {
  it('doubles the ceiling from 0.5 s per attempt and caps it at 30 s', () => {
    const top = (attempt: number): number => fullJitterDelay(attempt, opts, () => 0.999999);
    expect([0, 1, 2, 3, 4, 5, 6, 7].map(top)).toEqual([499, 999, 1999, 3999, 7999, 15_999, 29_999, 29_999]);
    expect(top(10_000)).toBe(29_999);
  });

  it('can be anywhere from zero up to the ceiling', () => {
    expect(fullJitterDelay(3, opts, () => 0)).toBe(0);
    expect(fullJitterDelay(3, opts, () => 0.5)).toBe(2000);
  });

  it('treats a negative or non-finite attempt as the first', () => {
    expect(fullJitterDelay(-3, opts, () => 0.999999)).toBe(499);
    expect(fullJitterDelay(Number.NaN, opts, () => 0.999999)).toBe(499);
  });
});

describe('equalJitterDelay', () => {
  it('keeps at least half of the exponential step', () => {
    expect(equalJitterDelay(2, { initialMs: 1000, maxMs: 60_000 }, () => 0)).toBe(2000);
    expect(equalJitterDelay(2, { initialMs: 1000, maxMs: 60_000 }, () => 0.999999)).toBe(3999);
    expect(equalJitterDelay(20, { initialMs: 1000, maxMs: 60_000 }, () => 0)).toBe(30_000);
  });
});

describe('spread', () => {
  it('spreads an interval over plus or minus the fraction', () => {
    expect(spread(30_000, 0.1, () => 0)).toBe(27_000);
    expect(spread(30_000, 0.1, () => 0.5)).toBe(30_000);
    expect(spread(30_000, 0.1, () => 0.999999)).toBe(32_999);
  });
});
