import { createServer, type Server } from 'node:net';
import { isPortFree, LocalPortAllocator } from './ports.js';

function listen(port = 0): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}
const portOf = (s: Server) => (s.address() as { port: number }).port;
const close = (s: Server) => new Promise((r) => s.close(r));

describe('LocalPortAllocator', () => {
  it('gives the preferred port back when it is free, so a restarted workload keeps its endpoint', async () => {
    const probe = await listen();
    const port = portOf(probe);
    await close(probe);
    expect(await new LocalPortAllocator('127.0.0.1').allocate({ preferred: port, avoid: new Set() })).toBe(port);
  });

  it('picks another port when the preferred one is taken or promised elsewhere', async () => {
    const taken = await listen();
    try {
      const allocator = new LocalPortAllocator('127.0.0.1');
      const port = await allocator.allocate({ preferred: portOf(taken), avoid: new Set() });
      expect(port).not.toBe(portOf(taken));
      expect(await isPortFree('127.0.0.1', port)).toBe(true);
      const promised = await allocator.allocate({ preferred: port, avoid: new Set([port]) });
      expect(promised).not.toBe(port);
    } finally {
      await close(taken);
    }
  });

  it('stays within its range and says so when the range is full', async () => {
    const taken = await listen();
    try {
      const p = portOf(taken);
      const allocator = new LocalPortAllocator('127.0.0.1', { min: p, max: p });
      await expect(allocator.allocate({ avoid: new Set() })).rejects.toThrow(`no free port in ${p}-${p} on 127.0.0.1`);
    } finally {
      await close(taken);
    }
  });

  it('rejects a range outside 1-65535', () => {
    expect(() => new LocalPortAllocator('127.0.0.1', { min: 0, max: 10 })).toThrow('port range 0-10 must lie within 1-65535');
  });
});
