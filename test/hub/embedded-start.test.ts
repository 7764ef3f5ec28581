import net from 'node:net';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { ConfigError, loadConfig } from '../../apps/hub/src/config/config.js';
import { PortInUseError } from '../../apps/hub/src/common/ports.js';
import { startHub } from '../../apps/hub/src/hub.js';

const log = pino({ level: 'silent' });

describe('embedded start', () => {
  let home: string;
  beforeAll(async () => {
    home = await mkdtemp(path.join(os.tmpdir(), 'flotilla-embedded-'));
  });
  afterAll(async () => {
    await rm(home, { recursive: true, force: true });
  });

  test('with no DATABASE_URL the hub runs its own Postgres under FLOTILLA_HOME and a second start finds every token and model', async () => {
    const env = { FLOTILLA_HOME: home, FLOTILLA_API_PORT: '0', FLOTILLA_MQTT_PORT: '0', FLOTILLA_API_HOST: '127.0.0.1', FLOTILLA_MQTT_HOST: '127.0.0.1' };
    const first = await startHub(loadConfig(env), log);
    const adminFile = path.join(home, 'admin-token');
    expect((await stat(adminFile)).mode & 0o777).toBe(0o600);
    const { readFile } = await import('node:fs/promises');
    const admin = (await readFile(adminFile, 'utf8')).trim();
    const call = async (url: string, method: string, route: string, body?: unknown) => {
      const r = await fetch(url + route, {
        method,
        headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: r.status, body: (await r.json()) as any };
    };
    expect((await call(first.apiUrl, 'POST', '/api/v1/models', { name: 'kept-model' })).status).toBe(201);
    const tok = await call(first.apiUrl, 'POST', '/api/v1/api-tokens', { name: 'kept-token', role: 'viewer' });
    const enr = await call(first.apiUrl, 'POST', '/api/v1/enrollment-tokens', { uses: 1 });
    expect((await call(first.apiUrl, 'POST', '/api/v1/enroll', { token: enr.body.token, name: 'kept-spoke' })).status).toBe(201);
    await first.stop();

    const second = await startHub(loadConfig(env), log);
    try {
      expect((await call(second.apiUrl, 'GET', '/api/v1/models/kept-model')).status).toBe(200);
      expect((await call(second.apiUrl, 'GET', '/api/v1/spokes/kept-spoke')).status).toBe(200);
      const r = await fetch(second.apiUrl + '/api/v1/models', { headers: { authorization: `Bearer ${tok.body.token}` } });
      expect(r.status).toBe(200);
      const ready = await fetch(second.apiUrl + '/readyz');
      expect(ready.status).toBe(200);
    } finally {
      await second.stop();
    }
  });

  test('a taken port stops the start with an error naming the port and the variable', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const config = loadConfig({ FLOTILLA_HOME: home, FLOTILLA_API_PORT: '0', FLOTILLA_MQTT_PORT: String(port), FLOTILLA_MQTT_HOST: '127.0.0.1' });
      const err = await startHub(config, log).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PortInUseError);
      expect((err as Error).message).toContain(`port ${port}`);
      expect((err as Error).message).toContain('FLOTILLA_MQTT_PORT');
      const apiCfg = loadConfig({ FLOTILLA_HOME: home, FLOTILLA_API_PORT: String(port), FLOTILLA_API_HOST: '127.0.0.1', FLOTILLA_MQTT_PORT: '0' });
      const apiErr = await startHub(apiCfg, log).catch((e: unknown) => e);
      expect((apiErr as Error).message).toContain('FLOTILLA_API_PORT');
    } finally {
      blocker.close();
    }
  });

  test('configuration errors list every bad variable at once', () => {
    let err: unknown;
    try {
      loadConfig({ FLOTILLA_API_PORT: 'eighty', FLOTILLA_MQTT_PORT: '70000', DATABASE_URL: 'mysql://x', FLOTILLA_BROKER_AUTH: 'ldap' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const msg = (err as Error).message;
    for (const v of ['FLOTILLA_API_PORT', 'FLOTILLA_MQTT_PORT', 'DATABASE_URL', 'FLOTILLA_BROKER_AUTH']) expect(msg).toContain(v);
  });
});
