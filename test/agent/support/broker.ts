import { createServer, type AddressInfo, type Server } from 'node:net';
import { Aedes, type Client } from 'aedes';

export interface TestBroker {
  port: number;
  url: string;
  aedes: Aedes;
  /** Connected clients by client id. */
  clients: Map<string, Client>;
  /** Closes the broker, dropping every client and every retained message. */
  stop(): Promise<void>;
}

export interface BrokerOptions {
  port?: number;
  /** Decides per client id whether a CONNECT is accepted (all are by default). */
  admit?: (clientId: string) => boolean;
}

/** An in-process aedes broker on 127.0.0.1 (no auth), on `port` or a free one. */
export async function startBroker(opts: BrokerOptions = {}): Promise<TestBroker> {
  const aedes = await Aedes.createBroker();
  const clients = new Map<string, Client>();
  if (opts.admit) {
    const admit = opts.admit;
    aedes.authenticate = (client, _username, _password, done) => done(null, admit(client.id));
  }
  aedes.on('client', (client) => clients.set(client.id, client));
  aedes.on('clientDisconnect', (client) => {
    if (clients.get(client.id) === client) clients.delete(client.id);
  });
  const server: Server = createServer(aedes.handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  return {
    port: bound,
    url: `mqtt://127.0.0.1:${bound}`,
    aedes,
    clients,
    stop: async () => {
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A port nothing listens on (bound once, then released). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
