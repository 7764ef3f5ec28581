import { request } from 'node:http';
import { sleep } from '../../support/abort.js';

/**
 * One GET of the Open Inference Protocol readiness endpoint. Uses a fresh
 * connection each time (no keep-alive pool), so a probe never holds a socket
 * to a server that is about to be stopped.
 */
export function probeReady(baseUrl: string, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve(false);
      return;
    }
    const req = request(`${baseUrl}/v2/health/ready`, { method: 'GET', agent: false, timeout: timeoutMs, signal }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode === 200));
      res.once('error', () => resolve(false));
    });
    req.once('timeout', () => req.destroy(new Error('readiness probe timed out')));
    req.once('error', () => resolve(false));
    req.end();
  });
}

export type ReadyOutcome = 'ready' | 'stopped' | 'timeout';

/**
 * Polls readiness until the server answers 200, the process is gone
 * (`running` returns false), or `timeoutMs` passes. Aborting rejects.
 */
export async function waitUntilReady(
  baseUrl: string,
  opts: { timeoutMs: number; intervalMs?: number; running: () => boolean; signal: AbortSignal },
): Promise<ReadyOutcome> {
  const deadline = Date.now() + opts.timeoutMs;
  const interval = opts.intervalMs ?? 100;
  for (;;) {
    opts.signal.throwIfAborted();
    if (!opts.running()) return 'stopped';
    if (await probeReady(baseUrl, Math.min(2000, Math.max(100, deadline - Date.now())), opts.signal)) return 'ready';
    opts.signal.throwIfAborted();
    if (Date.now() >= deadline) return 'timeout';
    await sleep(interval, opts.signal);
  }
}
