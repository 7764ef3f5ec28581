import { ApiException } from '@kubernetes/client-node';

/** The metav1.Status a failed client-node call carried, parsed from ApiException.body. */
export interface KubeStatus {
  code: number;
  reason?: string;
  message?: string;
  details?: { name?: string; kind?: string; causes?: { reason?: string; message?: string; field?: string }[] };
}

export async function expectStatus(call: Promise<unknown>): Promise<KubeStatus> {
  try {
    await call;
  } catch (err) {
    if (!(err instanceof ApiException)) throw err;
    const body: unknown = err.body;
    const parsed = typeof body === 'string' && body !== '' ? (JSON.parse(body) as Omit<KubeStatus, 'code'>) : {};
    return { ...parsed, code: err.code };
  }
  throw new Error('expected the call to fail with an API status');
}

/** Waits for `predicate` to hold, polling; rejects after `timeoutMs` (a deadline, not a timing assertion). */
export async function waitFor(predicate: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
