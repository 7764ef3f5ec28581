import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A tiny S3 look-alike for tests: path-style `GET`, `HEAD` and plain `PUT`
 * of objects (`/<bucket>/<key>`), with `Range`, `If-Match` and S3's XML
 * errors, so the real `@aws-sdk/client-s3` can talk to it with
 * `forcePathStyle` and an endpoint override, as with MinIO.
 *
 * Requests must carry SigV4 headers (`Authorization: AWS4-HMAC-SHA256 ...`,
 * `x-amz-date`, `x-amz-content-sha256`) so a test proves the SDK signed them,
 * but signatures are not verified. Streaming uploads (`aws-chunked`) are not
 * implemented.
 */
export interface FakeS3Request {
  method: string;
  bucket: string;
  key: string;
  range: string | null;
  ifMatch: string | null;
  signed: boolean;
  status: number;
  /** Body bytes actually written for this request. */
  bytesSent: number;
}

export type FakeS3Fault =
  /** Answer the next GET with this status and an S3 error body. */
  | { kind: 'status'; status: number; code?: string }
  /**
   * Send headers for the whole answer, then cut the connection after this
   * many body bytes, once `before` resolves (a test can wait there until the
   * client has stored what it received).
   */
  | { kind: 'cut'; afterBytes: number; before?: () => Promise<void> }
  /** Accept the next GET and never answer it (for timeouts). */
  | { kind: 'hang' };

interface StoredObject {
  body: Buffer;
  etag: string;
  lastModified: Date;
}

export class FakeS3 {
  readonly requests: FakeS3Request[] = [];
  private readonly objects = new Map<string, StoredObject>();
  private readonly faults: FakeS3Fault[] = [];
  private readonly hanging = new Set<ServerResponse>();

  private constructor(
    private readonly server: Server,
    readonly endpoint: string,
  ) {}

  static async start(host = '127.0.0.1'): Promise<FakeS3> {
    let fake: FakeS3 | null = null;
    const server = createServer((req, res) => {
      fake?.handle(req, res).catch((err: unknown) => {
        res.destroy(err instanceof Error ? err : new Error(String(err)));
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, host, () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    fake = new FakeS3(server, `http://${host}:${port}`);
    return fake;
  }

  putObject(bucket: string, key: string, body: Buffer): string {
    const etag = `"${createHash('md5').update(body).digest('hex')}"`;
    this.objects.set(`${bucket}/${key}`, { body, etag, lastModified: new Date(Math.floor(Date.now() / 1000) * 1000) });
    return etag;
  }

  getObject(bucket: string, key: string): Buffer | undefined {
    return this.objects.get(`${bucket}/${key}`)?.body;
  }

  /** Queues a misbehaviour for the next GET requests, in order. */
  injectFault(...faults: FakeS3Fault[]): void {
    this.faults.push(...faults);
  }

  async close(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const [, bucket = '', ...rest] = url.pathname.split('/');
    const key = decodeURIComponent(rest.join('/'));
    const entry: FakeS3Request = {
      method: req.method ?? '',
      bucket: decodeURIComponent(bucket),
      key,
      range: header(req, 'range'),
      ifMatch: header(req, 'if-match'),
      signed: isSigV4(req),
      status: 0,
      bytesSent: 0,
    };
    this.requests.push(entry);
    const body = await readBody(req);

    if (!entry.signed) return this.error(res, entry, 403, 'AccessDenied', 'Missing or malformed SigV4 authorization');
    if (!entry.bucket || !key) return this.error(res, entry, 400, 'InvalidRequest', 'Path-style /bucket/key expected');

    if (req.method === 'PUT') {
      if (header(req, 'content-encoding')?.includes('aws-chunked')) {
        return this.error(res, entry, 501, 'NotImplemented', 'aws-chunked uploads are not implemented by the fake');
      }
      const etag = this.putObject(entry.bucket, key, body);
      entry.status = 200;
      res.writeHead(200, { etag, 'x-amz-request-id': 'fake' }).end();
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return this.error(res, entry, 405, 'MethodNotAllowed', 'Method not allowed');

    if (req.method === 'GET') {
      const fault = this.faults.shift();
      if (fault?.kind === 'status') return this.error(res, entry, fault.status, fault.code ?? 'InternalError', 'Injected failure');
      if (fault?.kind === 'hang') {
        entry.status = -1;
        this.hanging.add(res);
        return;
      }
      return this.serve(req, res, entry, fault?.kind === 'cut' ? fault : null);
    }
    return this.serve(req, res, entry, null);
  }

  private serve(
    req: IncomingMessage,
    res: ServerResponse,
    entry: FakeS3Request,
    cut: { afterBytes: number; before?: () => Promise<void> } | null,
  ): void {
    const obj = this.objects.get(`${entry.bucket}/${entry.key}`);
    if (!obj) {
      return req.method === 'HEAD'
        ? this.error(res, entry, 404, 'NotFound', '')
        : this.error(res, entry, 404, 'NoSuchKey', 'The specified key does not exist.');
    }
    if (entry.ifMatch && entry.ifMatch !== obj.etag) {
      return this.error(res, entry, 412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold');
    }
    const size = obj.body.length;
    let start = 0;
    let end = size - 1;
    let status = 200;
    if (entry.range) {
      const m = /^bytes=(\d+)-(\d*)$/.exec(entry.range);
      if (!m) return this.error(res, entry, 400, 'InvalidArgument', 'Malformed Range');
      start = Number(m[1]);
      end = m[2] ? Math.min(Number(m[2]), size - 1) : size - 1;
      if (start >= size) {
        res.setHeader('content-range', `bytes */${size}`);
        return this.error(res, entry, 416, 'InvalidRange', 'The requested range is not satisfiable');
      }
      status = 206;
    }
    const slice = obj.body.subarray(start, end + 1);
    const headers: Record<string, string | number> = {
      'content-length': slice.length,
      'content-type': 'application/octet-stream',
      etag: obj.etag,
      'last-modified': obj.lastModified.toUTCString(),
      'accept-ranges': 'bytes',
      'x-amz-request-id': 'fake',
    };
    if (status === 206) headers['content-range'] = `bytes ${start}-${end}/${size}`;
    entry.status = status;
    res.writeHead(status, headers);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    if (cut && cut.afterBytes < slice.length) {
      const part = slice.subarray(0, cut.afterBytes);
      entry.bytesSent = part.length;
      const destroy = (): void => void res.socket?.destroy();
      res.write(part, () => void (cut.before ? cut.before().then(destroy, destroy) : destroy()));
      return;
    }
    entry.bytesSent = slice.length;
    res.end(slice);
  }

  private error(res: ServerResponse, entry: FakeS3Request, status: number, code: string, message: string): void {
    entry.status = status;
    const xml =
      entry.method === 'HEAD'
        ? ''
        : `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message>` +
          `<Key>${escapeXml(entry.key)}</Key><RequestId>fake</RequestId></Error>`;
    res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(xml), 'x-amz-request-id': 'fake' });
    res.end(xml);
  }
}

function header(req: IncomingMessage, name: string): string | null {
  const v = req.headers[name];
  return Array.isArray(v) ? (v[0] ?? null) : (v ?? null);
}

function isSigV4(req: IncomingMessage): boolean {
  const auth = header(req, 'authorization') ?? '';
  return (
    /^AWS4-HMAC-SHA256 Credential=[^/]+\/\d{8}\/[^/]+\/s3\/aws4_request, ?SignedHeaders=[^,]+, ?Signature=[a-f0-9]{64}$/.test(auth) &&
    header(req, 'x-amz-date') !== null &&
    header(req, 'x-amz-content-sha256') !== null
  );
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
