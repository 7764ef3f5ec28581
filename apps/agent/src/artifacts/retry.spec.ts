import fc from 'fast-check';
import { abortableDelay, backoffDelay, validateRetryPolicy, type RetryPolicy } from './retry.js';

const policy: RetryPolicy = { attempts: 4, initialDelayMs: 100, maxDelayMs: 1000, factor: 2 };

describe('backoffDelay', () => {
  it('doubles the base delay per attempt up to the cap, with jitter in its upper half', () => {
    expect(backoffDelay(policy, 1, () => 0)).toBe(50);
    expect(backoffDelay(policy, 1, () => 1)).toBe(100);
    expect(backoffDelay(policy, 3, () => 1)).toBe(400);
    expect(backoffDelay(policy, 10, () => 1)).toBe(1000);
  });

  it('always lies between half the capped base and the capped base', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 50 }), fc.double({ min: 0, max: 1, noNaN: true }), (attempt, r) => {
        const base = Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** (attempt - 1));
        const d = backoffDelay(policy, attempt, () => r);
        return d >= base / 2 && d <= base;
      }),
    );
  });
});

describe('abortableDelay', () => {
  it('rejects with the abort reason when aborted while waiting', async () => {
    const ac = new AbortController();
    const waiting = abortableDelay(60_000, ac.signal);
    ac.abort(new Error('shutdown'));
    await expect(waiting).rejects.toThrow('shutdown');
  });

  it('rejects at once for an aborted signal', async () => {
    await expect(abortableDelay(1, AbortSignal.abort(new Error('gone')))).rejects.toThrow('gone');
  });
});

describe('validateRetryPolicy', () => {
  it('names every problem', () => {
    expect(() => validateRetryPolicy({ attempts: 0, initialDelayMs: -1, maxDelayMs: -2, factor: 0.5 })).toThrow(
      'invalid retry policy: attempts must be an integer in 1..20; initialDelayMs must be >= 0; maxDelayMs must be >= initialDelayMs; factor must be >= 1',
    );
  });
});
