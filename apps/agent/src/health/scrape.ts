export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

/** GETs a Prometheus endpoint with a timeout; resolves with the text or what went wrong. */
export async function scrapeText(
  fetchFn: FetchLike,
  url: string,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<string | { error: string }> {
  const timeout = AbortSignal.timeout(timeoutMs);
  try {
    const res = await fetchFn(url, {
      signal: AbortSignal.any([signal, timeout]),
      headers: { accept: 'text/plain;version=0.0.4;q=1,*/*;q=0.1' },
    });
    if (!res.ok) {
      await res.body?.cancel().catch(() => undefined);
      return { error: `answered ${res.status}` };
    }
    return await res.text();
  } catch (err) {
    if (signal.aborted) return { error: 'aborted' };
    if (timeout.aborted) return { error: `timed out after ${timeoutMs} ms` };
    const cause = err instanceof Error && err.cause instanceof Error ? ` (${err.cause.message})` : '';
    return { error: `${err instanceof Error ? err.message : String(err)}${cause}` };
  }
}

