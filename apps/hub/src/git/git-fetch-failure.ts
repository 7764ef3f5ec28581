import type { GitHttpResponse, HttpClient } from 'isomorphic-git';
import nodeHttp from 'isomorphic-git/http/node';

/** The last HTTP answer of a fetch: its status and how many body bytes came, never the bytes. */
export interface AnswerSeen {
  status: number;
  bytes: number;
}

/** Counts the bytes of a response body as isomorphic-git reads it. */
async function* counted(body: AsyncIterableIterator<Uint8Array> | undefined, seen: AnswerSeen): AsyncIterableIterator<Uint8Array> {
  if (!body) return;
  for await (const chunk of body) {
    seen.bytes += chunk.byteLength;
    yield chunk;
  }
}

/**
 * The HTTP client isomorphic-git uses, with every request tied to the sync's
 * abort signal, remembering the status and size of the last answer so a
 * failure can be described without quoting what the remote sent.
 */
export function observedHttp(signal: AbortSignal, seen: { last: AnswerSeen | null }): HttpClient {
  return {
    request: async (req) => {
      const res: GitHttpResponse = await nodeHttp.request({ ...req, signal });
      const answer: AnswerSeen = { status: res.statusCode, bytes: 0 };
      seen.last = answer;
      return { ...res, body: counted(res.body, answer) };
    },
  };
}

/** Local socket, DNS and TLS errors: their messages are this machine's words, not the remote's. */
const LOCAL_ERROR = /^(E[A-Z0-9_]+|ERR_[A-Z0-9_]+|CERT_[A-Z0-9_]+|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_[A-Z0-9_]+|HOSTNAME_MISMATCH)$/;

/**
 * Why a fetch failed, in words that carry the HTTP status and size of what
 * the remote answered but never its body, status text or headers: a git
 * source's error is shown to every viewer, and its URL may point anywhere
 * the hub can reach (finding 6 of issue 12).
 */
export function describeFetchFailure(err: unknown, last: AnswerSeen | null): string {
  const e = err as { code?: unknown; message?: unknown; data?: { statusCode?: unknown } };
  const code = typeof e?.code === 'string' ? e.code : '';
  const answered = last ? `HTTP ${last.status}, ${last.bytes} bytes` : null;
  if (code === 'HttpError') {
    const status = typeof e.data?.statusCode === 'number' ? e.data.statusCode : last?.status;
    return `the server answered HTTP ${status ?? '?'}${last ? ` (${last.bytes} bytes)` : ''}`;
  }
  if (code === 'SmartHttpError') return `the server did not answer as a git smart-HTTP server (${answered ?? 'no answer'})`;
  if (code === 'EmptyServerResponseError') return `the server sent an empty answer (${answered ?? 'no answer'})`;
  if (LOCAL_ERROR.test(code) && typeof e.message === 'string') return e.message.slice(0, 300);
  return `git protocol error${code ? ` ${code}` : ''}${answered ? ` after ${answered}` : ''}`;
}
