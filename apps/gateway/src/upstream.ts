import http from 'node:http';
import https from 'node:https';

/** An answer read whole (bounded): the hub's route table, and why a spoke failed. */
export interface UpstreamResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** Why an attempt got no HTTP answer at all. */
export class UpstreamError extends Error {
  constructor(
    /** ECONNREFUSED, ECONNRESET, Timeout, TooLarge, ... */
    readonly code: string,
    message: string,
    /** The request went out on a kept-alive socket the other end may have closed while idle. */
    readonly reusedSocket: boolean,
  ) {
    super(message);
    this.name = 'UpstreamError';
  }
}

export interface UpstreamOptions {
  /** Extra CA certificates (PEM) that https:// spokes and the hub may chain to. */
  ca?: string | undefined;
  /** Sockets kept per origin. */
  maxSockets?: number;
  /** Largest answer read from a spoke or the hub. */
  maxResponseBytes: number;
}

/** Where a spoke's model is served, split once when the route table is read (no URL parsing per request). */
export interface UpstreamTarget {
  https: boolean;
  hostname: string;
  port: number;
  /** The endpoint's path without its trailing slash, e.g. `/v2/models/NAME`. */
  basePath: string;
}

export function upstreamTarget(endpoint: string): UpstreamTarget {
  const u = new URL(endpoint);
  const https = u.protocol === 'https:';
  return {
    https,
    hostname: u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname,
    port: u.port === '' ? (https ? 443 : 80) : Number(u.port),
    basePath: u.pathname.replace(/\/+$/, ''),
  };
}

/**
 * HTTP/1.1 to spokes and the hub over kept-alive connections: one node:http
 * agent per scheme keeps a pool of sockets per origin (per spoke), so a
 * forwarded request costs no handshake.
 */
export class UpstreamClient {
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;

  constructor(private readonly o: UpstreamOptions) {
    const maxSockets = o.maxSockets ?? 256;
    this.httpAgent = new http.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets, scheduling: 'lifo' });
    this.httpsAgent = new https.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets, scheduling: 'lifo', ...(o.ca ? { ca: o.ca } : {}) });
  }

  /**
   * Starts a request and hands back the ClientRequest to write the body to;
   * `onResponse` gets the answer's head (its body still to be read), `onError`
   * why there is none. Exactly one of the two is called. Past `timeoutMs`
   * the request is cut, whether or not its answer started.
   */
  open(
    t: UpstreamTarget,
    path: string,
    method: string,
    headers: http.OutgoingHttpHeaders,
    timeoutMs: number,
    onResponse: (res: http.IncomingMessage) => void,
    onError: (err: UpstreamError) => void,
  ): http.ClientRequest {
    let settled = false;
    const req = (t.https ? https : http).request({ hostname: t.hostname, port: t.port, path, method, headers, agent: t.https ? this.httpsAgent : this.httpAgent }, (res) => {
      if (settled) return void res.resume();
      settled = true;
      onResponse(res);
    });
    // The bound covers the whole exchange, the answer's body included: past it the socket is cut (an answer being read breaks off).
    req.on('close', () => clearTimeout(timer));
    const fail = (err: UpstreamError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      onError(err);
    };
    const timer = setTimeout(() => {
      fail(new UpstreamError('Timeout', `no answer within ${timeoutMs} ms`, false));
      req.destroy();
    }, timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) => fail(new UpstreamError(err.code ?? 'RequestError', err.message, req.reusedSocket)));
    return req;
  }

  /** A whole request and its whole (bounded) answer: the hub's route table. */
  request(url: URL, method: string, headers: http.OutgoingHttpHeaders, body: Buffer | null, timeoutMs: number): Promise<UpstreamResponse> {
    return new Promise((resolve, reject) => {
      const t = upstreamTarget(url.origin);
      const req = this.open(
        t,
        url.pathname + url.search,
        method,
        body ? { ...headers, 'content-length': body.length } : headers,
        timeoutMs,
        (res) => {
          readBody(res, this.o.maxResponseBytes).then(
            (b) => resolve({ status: res.statusCode ?? 502, headers: res.headers, body: b }),
            (err: NodeJS.ErrnoException) => {
              req.destroy();
              reject(err instanceof UpstreamError ? err : new UpstreamError(err.code ?? 'ResponseError', err.message, req.reusedSocket));
            },
          );
        },
        reject,
      );
      req.end(body ?? undefined);
    });
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}

/** An answer's body, refused past `max` bytes. */
export function readBody(res: http.IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) {
        res.destroy();
        reject(new UpstreamError('TooLarge', `answer larger than ${max} bytes`, false));
        return;
      }
      chunks.push(c);
    });
    res.on('end', () => resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size)));
    res.on('error', reject);
    res.on('aborted', () => reject(new UpstreamError('ECONNRESET', 'the answer was cut off', false)));
  });
}
