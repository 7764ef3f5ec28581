import http from 'node:http';
import https from 'node:https';

/** An answer read whole (bounded), so a failed attempt can be retried elsewhere before the caller sees anything. */
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

/**
 * HTTP/1.1 to spokes and the hub over kept-alive connections (node:http's
 * agent: no per-request handshake, so the gateway adds little to a call).
 */
export class UpstreamClient {
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;

  constructor(private readonly o: UpstreamOptions) {
    const maxSockets = o.maxSockets ?? 256;
    this.httpAgent = new http.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets, scheduling: 'lifo' });
    this.httpsAgent = new https.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets, scheduling: 'lifo', ...(o.ca ? { ca: o.ca } : {}) });
  }

  request(url: URL, method: string, headers: http.OutgoingHttpHeaders, body: Buffer | null, timeoutMs: number): Promise<UpstreamResponse> {
    const isHttps = url.protocol === 'https:';
    const mod = isHttps ? https : http;
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (code: string, message: string, reused: boolean) => {
        if (settled) return;
        settled = true;
        reject(new UpstreamError(code, message, reused));
      };
      const req = mod.request(
        url,
        {
          method,
          agent: isHttps ? this.httpsAgent : this.httpAgent,
          headers: body ? { ...headers, 'content-length': body.length } : headers,
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > this.o.maxResponseBytes) {
              req.destroy();
              fail('TooLarge', `answer larger than ${this.o.maxResponseBytes} bytes`, false);
              return;
            }
            chunks.push(c);
          });
          res.on('end', () => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            resolve({ status: res.statusCode ?? 502, headers: res.headers, body: Buffer.concat(chunks) });
          });
          res.on('error', (err: NodeJS.ErrnoException) => fail(err.code ?? 'ResponseError', err.message, req.reusedSocket));
        },
      );
      const timer = setTimeout(() => {
        req.destroy();
        fail('Timeout', `no answer within ${timeoutMs} ms`, false);
      }, timeoutMs);
      req.on('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        fail(err.code ?? 'RequestError', err.message, req.reusedSocket);
      });
      req.end(body ?? undefined);
    });
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}
