import { DomainError } from '../errors/domain-error.js';
import { hashSecret } from '../common/secrets.js';

/** What a failed authentication is counted against. */
export interface FailedAuthSubject {
  /** The client address (req.ip: the socket's, or X-Forwarded-For's only behind FLOTILLA_TRUST_PROXY). */
  address: string;
  /** The credential presented, if any; counted by its hash, so it is never kept in memory. */
  credential?: string | null;
}

export interface FailedAuthLimits {
  /** Failures per address in one window; the next one is answered 429. */
  perAddress: number;
  /** Failures of one presented credential (a revoked or guessed token replayed from many addresses). */
  perCredential: number;
  /** Failures of all clients together: the last resort when addresses are many. */
  total: number;
  windowMs: number;
  /** Addresses and credentials remembered at most; the least recently failing is forgotten first. */
  maxKeys: number;
}

export const DEFAULT_FAILED_AUTH_LIMITS: FailedAuthLimits = { perAddress: 10, perCredential: 10, total: 10_000, windowMs: 60_000, maxKeys: 10_000 };

interface Window {
  start: number;
  count: number;
}

/**
 * Slows down token guessing by limiting failures only: callers check the
 * credential first and call `fail()` only when it is wrong, so a valid
 * token is never refused, whatever others sent from the same address.
 * Failures are counted per address, per presented credential and in total,
 * in fixed windows; past a limit, failures are answered 429 instead of 401.
 *
 * Memory is bounded and every call is O(1): at most `maxKeys` windows, kept
 * in a Map in least-recently-failed order (delete and re-insert on each
 * failure), the oldest dropped when full. Nothing ever scans the map.
 */
export class FailedAuthLimiter {
  private readonly windows = new Map<string, Window>();
  private total: Window = { start: 0, count: 0 };
  private readonly limits: FailedAuthLimits;

  constructor(
    limits: Partial<FailedAuthLimits> = {},
    private readonly now: () => number = Date.now,
  ) {
    this.limits = { ...DEFAULT_FAILED_AUTH_LIMITS, ...limits };
  }

  /**
   * Records a failed authentication and throws the error to answer: 429
   * `rate_limited` with Retry-After once a limit is passed, else `otherwise`
   * (the 401 the caller would have sent).
   */
  fail(subject: FailedAuthSubject, otherwise: Error): never {
    const t = this.now();
    const { perAddress, perCredential, total, windowMs } = this.limits;
    const checks: Array<{ what: string; window: Window; limit: number }> = [
      { what: `from ${subject.address}`, window: this.count(`a:${subject.address}`, t), limit: perAddress },
    ];
    if (subject.credential) {
      checks.push({ what: 'with this credential', window: this.count(`c:${hashSecret(subject.credential)}`, t), limit: perCredential });
    }
    if (t - this.total.start >= windowMs) this.total = { start: t, count: 0 };
    this.total.count++;
    checks.push({ what: 'from all clients', window: this.total, limit: total });
    const over = checks.find((c) => c.window.count > c.limit);
    if (!over) throw otherwise;
    const retryAfterSeconds = Math.max(1, Math.ceil((over.window.start + windowMs - t) / 1000));
    throw new DomainError('rate_limited', 429, `too many failed authentications ${over.what}; retry in ${retryAfterSeconds} s`, {
      retryAfterSeconds,
    });
  }

  /** Windows held now (for tests of the bound). */
  get size(): number {
    return this.windows.size;
  }

  private count(key: string, t: number): Window {
    let w = this.windows.get(key);
    if (w) this.windows.delete(key);
    if (!w || t - w.start >= this.limits.windowMs) w = { start: t, count: 0 };
    w.count++;
    this.windows.set(key, w);
    if (this.windows.size > this.limits.maxKeys) {
      const oldest = this.windows.keys().next().value;
      if (oldest !== undefined) this.windows.delete(oldest);
    }
    return w;
  }
}
