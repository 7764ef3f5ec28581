import net from 'node:net';

/** One TCP connection through the proxy: every byte each way, in order. */
export interface RecordedConnection {
  /** client -> server (agent -> hub or broker). */
  up: Buffer[];
  /** server -> client. */
  down: Buffer[];
}

/**
 * A TCP proxy that records every byte in both directions, for tests that
 * must prove what crossed the wire (the fine-tuning privacy proof): put it
 * between an agent and the hub's API or broker and read `upBytes()` and
 * `downBytes()` afterwards. It does not parse anything, so nothing escapes
 * it: headers, bodies, MQTT packets, all of it.
 */
export class RecordingProxy {
  readonly connections: RecordedConnection[] = [];
  private readonly sockets = new Set<net.Socket>();

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  static async start(target: { host: string; port: number }): Promise<RecordingProxy> {
    let proxy: RecordingProxy | null = null;
    const server = net.createServer((client) => {
      const record: RecordedConnection = { up: [], down: [] };
      proxy?.connections.push(record);
      const upstream = net.connect(target.port, target.host);
      for (const s of [client, upstream]) {
        proxy?.sockets.add(s);
        s.once('close', () => proxy?.sockets.delete(s));
        s.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.on('data', (c: Buffer) => {
        record.up.push(Buffer.from(c));
        upstream.write(c);
      });
      upstream.on('data', (c: Buffer) => {
        record.down.push(Buffer.from(c));
        client.write(c);
      });
      client.once('end', () => upstream.end());
      upstream.once('end', () => client.end());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    proxy = new RecordingProxy(server, (server.address() as net.AddressInfo).port);
    return proxy;
  }

  get url(): string {
    return `127.0.0.1:${this.port}`;
  }

  upBytes(): Buffer {
    return Buffer.concat(this.connections.flatMap((c) => c.up));
  }

  downBytes(): Buffer {
    return Buffer.concat(this.connections.flatMap((c) => c.down));
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
