import { startTestHub, type TestHub } from '../support/hub.js';

/**
 * Finding 2 of the security issue, replayed over real HTTP: a storm of failed
 * authentications from one address must not lock out a valid token from that
 * address, and X-Forwarded-For rotation must not reset the count when no
 * proxy is trusted (the default).
 */
describe('failed-auth limiter (finding 2)', () => {
  let t: TestHub;
  beforeAll(async () => {
    t = await startTestHub();
  });
  afterAll(async () => {
    await t.stop();
  });

  const get = (token: string, headers: Record<string, string> = {}) =>
    fetch(`${t.hub.apiUrl}/api/v1/models`, { headers: { authorization: `Bearer ${token}`, ...headers } }).then(async (r) => {
      await r.arrayBuffer();
      return r.status;
    });

  it('keeps answering the valid admin token during a failed-auth storm from the same address', async () => {
    const storm: Promise<number>[] = [];
    const valid: Promise<number>[] = [];
    for (let i = 0; i < 60; i++) {
      storm.push(get(`flt_wrong-${i}`));
      if (i % 6 === 0) valid.push(get(t.adminToken));
    }
    const stormStatuses = await Promise.all(storm);
    expect(new Set(await Promise.all(valid))).toEqual(new Set([200]));
    // The storm itself is limited: the first failures are 401, the rest 429.
    expect(stormStatuses.filter((s) => s === 401)).toHaveLength(10);
    expect(stormStatuses.filter((s) => s === 429)).toHaveLength(50);
    expect(await get(t.adminToken)).toBe(200);
  });

  it('does not let a rotating X-Forwarded-For reset the count when no proxy is trusted', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push(await get(`flt_other-${i}`, { 'x-forwarded-for': `203.0.113.${i}` }));
    // Still the loopback address that failed 60 times above.
    expect(statuses).toEqual([429, 429, 429, 429, 429]);
  });

  it('limits one presented token replayed from many addresses behind a trusted proxy', async () => {
    const behindProxy = await startTestHub({ FLOTILLA_TRUST_PROXY: '127.0.0.1' });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 12; i++) {
        const r = await fetch(`${behindProxy.hub.apiUrl}/api/v1/models`, {
          headers: { authorization: 'Bearer flt_leaked-and-revoked', 'x-forwarded-for': `198.51.100.${i}` },
        });
        await r.arrayBuffer();
        statuses.push(r.status);
      }
      expect(statuses.slice(0, 10)).toEqual(Array(10).fill(401));
      expect(statuses.slice(10)).toEqual([429, 429]);
      // Another address with a fresh (wrong) token is judged on its own.
      const other = await fetch(`${behindProxy.hub.apiUrl}/api/v1/models`, { headers: { authorization: 'Bearer flt_x', 'x-forwarded-for': '198.51.100.200' } });
      expect(other.status).toBe(401);
    } finally {
      await behindProxy.stop();
    }
  });
});
