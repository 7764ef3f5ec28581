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
    return { error: describeFailure(err) };
  }
}


/**
 * A thrown value as text, with its cause ("fetch failed (connect
 * ECONNREFUSED ...)"). Duck-typed: errors from another realm (fetch inside a
 * VM context) are not `instanceof Error` here.
 */
export function describeFailure(err: unknown): string {
  const text = (v: unknown): string | null =>
    typeof v === 'object' && v !== null && 'message' in v ? String((v as { message: unknown }).message) : null;
  const main = text(err) ?? String(err);
  const cause = typeof err === 'object' && err !== null && 'cause' in err ? text((err as { cause: unknown }).cause) : null;
  return cause ? `${main} (${cause})` : main;
}
