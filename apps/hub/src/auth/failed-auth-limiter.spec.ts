import { DomainError } from '../errors/domain-error.js';
import { FailedAuthLimiter } from './failed-auth-limiter.js';

const unauthorized = new Error('401');
function outcome(limiter: FailedAuthLimiter, address: string, credential?: string): string {
  try {
    limiter.fail({ address, credential }, unauthorized);
  } catch (err) {
    return err === unauthorized ? '401' : err instanceof DomainError ? `${err.status}` : 'other';
  }
  return 'none';
}

describe('FailedAuthLimiter', () => {
  it('answers 401 for the first failures of an address, then 429 with the time left in the window', () => {
    let now = 1_000_000;
    const limiter = new FailedAuthLimiter({ perAddress: 3, windowMs: 60_000 }, () => now);
    expect([1, 2, 3, 4].map((i) => outcome(limiter, '10.0.0.1', `t${i}`))).toEqual(['401', '401', '401', '429']);
    now += 30_000;
    try {
      limiter.fail({ address: '10.0.0.1' }, unauthorized);
    } catch (err) {
      expect((err as DomainError).details).toEqual({ retryAfterSeconds: 30 });
      expect((err as DomainError).message).toBe('too many failed authentications from 10.0.0.1; retry in 30 s');
    }
    now += 30_000;
    expect(outcome(limiter, '10.0.0.1')).toBe('401');
  });

  it('limits one credential across addresses, and all failures together', () => {
    const limiter = new FailedAuthLimiter({ perAddress: 100, perCredential: 2, total: 5 });
    expect(['a', 'b', 'c'].map((a) => outcome(limiter, a, 'flt_same'))).toEqual(['401', '401', '429']);
    expect(['d', 'e', 'f'].map((a) => outcome(limiter, a, `flt_${a}`))).toEqual(['401', '401', '429']);
  });

  it('holds at most maxKeys windows however many addresses fail', () => {
    const limiter = new FailedAuthLimiter({ maxKeys: 500, total: Number.MAX_SAFE_INTEGER });
    for (let i = 0; i < 5_000; i++) outcome(limiter, `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`);
    expect(limiter.size).toBe(500);
  });
});
