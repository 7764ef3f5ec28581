import net from 'node:net';

/** Asks the kernel for a free TCP port on `host`. */
export function findFreePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

export class PortInUseError extends Error {
  constructor(
    readonly port: number,
    readonly variable: string,
    what: string,
  ) {
    super(`port ${port} (${what}) is already in use; set ${variable} to another port`);
    this.name = 'PortInUseError';
  }
}

/** Resolves when `port` can be bound on `host`; rejects with PortInUseError naming `variable` otherwise. */
export function assertPortFree(host: string, port: number, variable: string, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE' || err.code === 'EACCES') reject(new PortInUseError(port, variable, what));
      else reject(err);
    });
    srv.listen(port, host, () => srv.close(() => resolve()));
  });
}
