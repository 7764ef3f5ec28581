import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A model file host on a free loopback port: Range, If-Range, ETag, and injectable faults. */
export interface ServedRequest {
  path: string;
  range: string | null;
  ifRange: string | null;
  status: number;
  bytesSent: number;
}

export type HttpFault =
  | { kind: 'status'; status: number }
  /**
   * Headers for the whole answer, then the connection is cut after this many
   * body bytes, once `before` resolves (a test waits there until the client
   * has stored what it got, since fetch drops chunks still queued at a cut).
   */
  | { kind: 'cut'; afterBytes: number; before?: () => Promise<void> }
  /** Never answer. */
  | { kind: 'hang' };

export interface ServeOptions {
  /** Answer Range requests with 206 (default true); false answers 200 with the whole file. */
  ranges?: boolean;
  /** Send Content-Length (default true); false streams chunked. */
  contentLength?: boolean;
}

export class HttpArtifactServer {
  readonly requests: ServedRequest[] = [];
  private readonly files = new Map<string, { body: Buffer; etag: string; opts: ServeOptions }>();
  private readonly faults: HttpFault[] = [];
  private readonly hanging = new Set<ServerResponse>();

  private constructor(
    private readonly server: Server,
    readonly baseUrl: string,
  ) {}

  static async start(): Promise<HttpArtifactServer> {
    let self: HttpArtifactServer | null = null;
    const server = createServer((req, res) => self?.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    self = new HttpArtifactServer(server, `http://127.0.0.1:${port}`);
    return self;
  }

  serve(path: string, body: Buffer, opts: ServeOptions = {}): string {
    this.files.set(path, { body, etag: `"${createHash('sha1').update(body).digest('hex')}"`, opts });
    return `${this.baseUrl}${path}`;
  }

  injectFault(...faults: HttpFault[]): void {
    this.faults.push(...faults);
  }

  async close(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const entry: ServedRequest = {
      path,
      range: (req.headers.range as string | undefined) ?? null,
      ifRange: (req.headers['if-range'] as string | undefined) ?? null,
      status: 0,
      bytesSent: 0,
    };
    this.requests.push(entry);
    const fault = this.faults.shift();
    if (fault?.kind === 'hang') {
      this.hanging.add(res);
      return;
    }
    if (fault?.kind === 'status') {
      entry.status = fault.status;
      res.writeHead(fault.status).end('injected failure');
      return;
    }
    const file = this.files.get(path);
    if (!file) {
      entry.status = 404;
      res.writeHead(404).end('not found');
      return;
    }
    const size = file.body.length;
    let start = 0;
    let status = 200;
    const rangeOk = file.opts.ranges !== false && entry.range && (!entry.ifRange || entry.ifRange === file.etag);
    if (rangeOk) {
      const m = /^bytes=(\d+)-$/.exec(entry.range ?? '');
      if (m) {
        start = Number(m[1]);
        if (start >= size) {
          entry.status = 416;
          res.writeHead(416, { 'content-range': `bytes */${size}` }).end();
          return;
        }
        status = 206;
      }
    }
    const slice = file.body.subarray(start);
    const headers: Record<string, string | number> = { etag: file.etag, 'accept-ranges': file.opts.ranges === false ? 'none' : 'bytes' };
    if (file.opts.contentLength !== false) headers['content-length'] = slice.length;
    if (status === 206) headers['content-range'] = `bytes ${start}-${size - 1}/${size}`;
    entry.status = status;
    res.writeHead(status, headers);
    if (fault?.kind === 'cut' && fault.afterBytes < slice.length) {
      const part = slice.subarray(0, fault.afterBytes);
      entry.bytesSent = part.length;
      const cut = (): void => void res.socket?.destroy();
      res.write(part, () => void (fault.before ? fault.before().then(cut, cut) : cut()));
      return;
    }
    entry.bytesSent = slice.length;
    res.end(slice);
  }
}
